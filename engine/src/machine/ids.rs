//! Domain integers as newtypes, and their wire spelling.
//!
//! Lives on: every core (plain values). Where a connection lives
//! (`CoreId`, `ConnId`) is the shell's business: `shard/conn.rs`.
//!
//! Wire ids are opaque strings with a one-letter prefix (`u12`, `d3`,
//! `c8012`, `m8012.5`): clients must not parse them. A prefix mismatch or a
//! number that does not parse names nothing.
//!
//! Home shards: every id we mint is built so that `id % shards` is its home
//! shard (DESIGN.md "hash(id) % S" with the identity as the hash, because
//! ids are minted per shard). A direct conversation's id is a hash of the
//! pair, with the top bit set so it never meets a minted group id.

use std::fmt;

use rkyv::{Archive, Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Archive, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[rkyv(derive(Debug, PartialEq, Eq, PartialOrd, Ord))]
        pub struct $name(pub u64);

        impl $name {
            pub const PREFIX: char = $prefix;

            pub fn parse(text: &str) -> Option<$name> {
                let digits = text.strip_prefix($prefix)?;
                if digits.is_empty() || digits.len() > 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                digits.parse().ok().map($name)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}{}", $prefix, self.0)
            }
        }
    };
}

id_type!(
    /// A user account. Home shard: `id % shards`.
    UserId, 'u'
);
id_type!(
    /// A device of one user (numbered from 1 per user).
    DeviceId, 'd'
);
id_type!(
    /// A conversation. Home shard: `id % shards`.
    ConvId, 'c'
);

/// One upload of media: the `n`-th of its uploader, whose home shard
/// holds it. Wire form `f{user}.{n}` (`f12.3`); the bytes it names are
/// stored once per content (`media/`), however often uploaded.
#[derive(
    Archive, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord,
)]
#[rkyv(derive(Debug, PartialEq, Eq, PartialOrd, Ord))]
pub struct MediaId {
    pub user: UserId,
    pub n: u64,
}

impl MediaId {
    pub fn parse(text: &str) -> Option<MediaId> {
        let (user, n) = text.strip_prefix('f')?.split_once('.')?;
        let number = |t: &str| {
            let ok = !t.is_empty() && t.len() <= 20 && t.bytes().all(|b| b.is_ascii_digit());
            ok.then(|| t.parse::<u64>().ok()).flatten()
        };
        Some(MediaId {
            user: UserId(number(user)?),
            n: number(n).filter(|&n| n > 0)?,
        })
    }
}

impl fmt::Display for MediaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "f{}.{}", self.user.0, self.n)
    }
}

/// Position of a message in its conversation: 1, 2, 3... without gaps.
#[derive(
    Archive,
    Serialize,
    Deserialize,
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
)]
#[rkyv(derive(Debug, PartialEq, Eq, PartialOrd, Ord))]
pub struct Seq(pub u64);

impl Seq {
    pub fn next(self) -> Seq {
        Seq(self.0 + 1)
    }
}

/// One shard of the data directory; lives on core `shard % cores`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShardId(pub u16);

/// Milliseconds since the Unix epoch (server time). The machine never
/// reads a clock: times come in through `Ctx` or inside records.
#[derive(
    Archive, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord,
)]
#[rkyv(derive(Debug))]
pub struct Millis(pub u64);

impl Millis {
    pub fn plus_seconds(self, seconds: u64) -> Millis {
        Millis(self.0.saturating_add(seconds.saturating_mul(1000)))
    }
}

/// The shard that owns an id minted by `mint` or made by `direct_conv_id`.
pub fn home_shard(id: u64, shards: u16) -> ShardId {
    assert!(shards > 0);
    ShardId((id % u64::from(shards)) as u16)
}

/// The `n`-th id minted on `shard` (n from 1): `n * shards + shard`.
pub fn mint(n: u64, shard: ShardId, shards: u16) -> u64 {
    assert!(shard.0 < shards);
    let id = n
        .checked_mul(u64::from(shards))
        .and_then(|x| x.checked_add(u64::from(shard.0)))
        .expect("id space exhausted");
    assert!(
        id < 1 << 63,
        "minted ids stay below the direct-conversation bit"
    );
    id
}

/// The one direct conversation of a pair of users, the same whoever asks.
pub fn direct_conv_id(a: UserId, b: UserId) -> ConvId {
    let (lo, hi) = if a <= b { (a.0, b.0) } else { (b.0, a.0) };
    let hash = mix(mix(lo) ^ hi.rotate_left(32));
    ConvId(hash | 1 << 63)
}

/// splitmix64's finaliser: a fixed, well-spread 64-bit mixer (not std's
/// randomised hasher: ids must be the same across restarts).
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A phone number's home shard (where its account is minted).
pub fn phone_shard(phone: &str, shards: u16) -> ShardId {
    let mut h = 0u64;
    for b in phone.bytes() {
        h = mix(h ^ u64::from(b));
    }
    home_shard(h, shards)
}

/// `m{conv}.{seq}`: a message id that names its conversation and place.
pub fn message_id(conv: ConvId, seq: Seq) -> String {
    format!("m{}.{}", conv.0, seq.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_reject_other_prefixes() {
        assert_eq!(UserId::parse("u12"), Some(UserId(12)));
        assert_eq!(UserId(12).to_string(), "u12");
        assert_eq!(UserId::parse("c12"), None);
        assert_eq!(UserId::parse("u"), None);
        assert_eq!(UserId::parse("u-1"), None);
        assert_eq!(UserId::parse("u99999999999999999999999"), None);
    }

    #[test]
    fn media_ids_round_trip() {
        let m = MediaId {
            user: UserId(12),
            n: 3,
        };
        assert_eq!(m.to_string(), "f12.3");
        assert_eq!(MediaId::parse("f12.3"), Some(m));
        for bad in [
            "f12", "f12.", "f.3", "f12.0", "u12.3", "f12.3x", "f1.2.3", "",
        ] {
            assert_eq!(MediaId::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn minted_ids_live_on_their_shard() {
        for shards in 1..9u16 {
            for s in 0..shards {
                for n in 1..50 {
                    let id = mint(n, ShardId(s), shards);
                    assert_eq!(home_shard(id, shards), ShardId(s));
                }
            }
        }
    }

    #[test]
    fn direct_ids_are_symmetric_and_disjoint_from_minted() {
        let c = direct_conv_id(UserId(3), UserId(9));
        assert_eq!(c, direct_conv_id(UserId(9), UserId(3)));
        assert!(c.0 >= 1 << 63);
        assert_ne!(c, direct_conv_id(UserId(3), UserId(10)));
    }
}
