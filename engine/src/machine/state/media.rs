//! One upload's description as its uploader's home shard keeps it: what
//! the bytes are (their SHA-256 names the file in `media/`), the type the
//! client gave, and the conversations whose messages name it (their
//! members may read it).
//!
//! Lives on: the uploader's home shard's core, inside `User`.

use std::collections::BTreeSet;

use rkyv::{Archive, Deserialize, Serialize};

use crate::machine::ids::{ConvId, Millis};

#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct Media {
    pub sha256: [u8; 32],
    pub size: u64,
    pub mime: String,
    pub created: Millis,
    /// Conversations holding a message that names this media (at most
    /// `MEDIA_CONVS_MAX`).
    pub convs: BTreeSet<ConvId>,
}

/// Lowercase hex of a digest (the wire's `sha256` and the file's name).
pub fn hex(digest: &[u8; 32]) -> String {
    use std::fmt::Write;
    digest.iter().fold(String::with_capacity(64), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// What a message says of the media it names (`"media":{"media_id",
/// "size","sha256","mime"}`), fixed when it was sent. In the message
/// record it is one string, `ID \t SIZE \t SHA256 \t MIME`: the record's
/// layout stays that of logs written before media existed.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct MediaRef {
    pub id: crate::machine::ids::MediaId,
    pub size: u64,
    pub sha256: [u8; 32],
    pub mime: String,
}

impl MediaRef {
    pub fn encode(&self) -> String {
        format!(
            "{}\t{}\t{}\t{}",
            self.id,
            self.size,
            hex(&self.sha256),
            self.mime
        )
    }

    /// `None` for a string this encoding did not make (a log of an
    /// earlier version, where `media` was any string a client sent).
    pub fn decode(text: &str) -> Option<MediaRef> {
        let mut parts = text.splitn(4, '\t');
        let id = crate::machine::ids::MediaId::parse(parts.next()?)?;
        let size = parts.next()?.parse().ok()?;
        let sha256 = unhex(parts.next()?)?;
        let mime = parts.next()?.to_string();
        Some(MediaRef {
            id,
            size,
            sha256,
            mime,
        })
    }
}

/// The digest a 64-digit lowercase hex string spells.
pub fn unhex(text: &str) -> Option<[u8; 32]> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let digit = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::ids::{MediaId, UserId};

    #[test]
    fn a_media_ref_round_trips_through_its_string() {
        let r = MediaRef {
            id: MediaId {
                user: UserId(7),
                n: 2,
            },
            size: 12345,
            sha256: [0xab; 32],
            mime: "image/png; charset=x\tweird".into(),
        };
        assert_eq!(MediaRef::decode(&r.encode()), Some(r));
        assert_eq!(MediaRef::decode("some client string"), None);
        assert_eq!(unhex(&hex(&[0x0f; 32])), Some([0x0f; 32]));
        assert_eq!(unhex(&"A".repeat(64)), None);
    }
}
