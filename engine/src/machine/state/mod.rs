//! The durable state of one shard: a fold of its records.
//!
//! Lives on: the shard's core, inside the shard runner. `apply.rs` is the
//! only way it changes. It is made of independent entities (users,
//! conversations, the shard's counters), each stamped with the log offset
//! of the last record applied to it (`Lsn`): that stamp lets a snapshot be
//! taken entity by entity while writes go on (`machine/snapshot.rs`).

mod changes;
mod conv;
mod dedupe;
mod index;
mod keys;
mod media;
mod user;

use std::collections::{BTreeMap, HashMap};

use rkyv::{Archive, Deserialize, Serialize};

pub use changes::{body_hash, Changed, Version};
pub use conv::{Conv, ConvPointer, Member, RecentSenders, Watermark};
pub use dedupe::{Dedupe, DedupeKey};
pub use index::MessageIndex;
pub use keys::DeviceKeys;
pub use media::{hex, unhex, Media, MediaRef};
pub use user::{Cursors, Device, User};

use crate::machine::ids::{ConvId, UserId};

/// The log offset of the last record applied to an entity.
#[derive(
    Archive, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord,
)]
#[rkyv(derive(Debug))]
pub struct Lsn(pub u64);

/// Whether a record at `at` is already reflected in an entity stamped
/// `lsn`: only possible while replaying over a snapshot, for records at or
/// below the state's `replay_floor`; anywhere else it is a bug.
pub fn covered(floor: Lsn, lsn: Lsn, at: Lsn) -> bool {
    if at <= lsn {
        assert!(
            at <= floor,
            "record at {} applied again to an entity at {} (above the replay floor {})",
            at.0,
            lsn.0,
            floor.0
        );
        return true;
    }
    false
}

/// Settings every replica of a shard must share (they shape decisions and
/// effects). From the configuration; not part of snapshots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    pub group_members_max: usize,
    /// Groups with more members fan out on read.
    pub fanout_on_read_members: usize,
    pub token_ttl_seconds: u64,
    pub edit_window_seconds: u64,
    /// Not a decision's: the shell's limit on key fetches per user.
    pub key_fetches_per_minute: u32,
}

/// The shard's own counters (an entity of its own).
#[derive(Archive, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct Meta {
    pub lsn: Lsn,
    /// Accounts minted on this shard (the next is `users_minted + 1`).
    pub users_minted: u64,
    /// Groups minted on this shard.
    pub groups_minted: u64,
}

/// Everything a shard's log says.
#[derive(Debug)]
pub struct State {
    pub params: Params,
    pub users: BTreeMap<UserId, User>,
    /// Derived from `users` (rebuilt when a snapshot is loaded).
    pub phones: HashMap<String, UserId>,
    pub convs: BTreeMap<ConvId, Conv>,
    pub meta: Meta,
    /// Records at or below this offset may already be reflected in the
    /// entities a snapshot restored (it was taken while writes went on):
    /// replaying them skips entities stamped at or after them. Above it,
    /// every record must be new to every entity it touches.
    pub replay_floor: Lsn,
}

impl State {
    pub fn new(params: Params) -> State {
        State {
            params,
            users: BTreeMap::new(),
            phones: HashMap::new(),
            convs: BTreeMap::new(),
            meta: Meta::default(),
            replay_floor: Lsn(0),
        }
    }

    /// The user a record at `at` changes, stamped with it; `None` when the
    /// user already holds the record (replay over a snapshot).
    pub fn user_at(&mut self, user: UserId, at: Lsn) -> Option<&mut User> {
        let floor = self.replay_floor;
        let u = self.users.get_mut(&user).expect("a record of a known user");
        if covered(floor, u.lsn, at) {
            return None;
        }
        u.lsn = at;
        Some(u)
    }

    /// The conversation a record at `at` changes, stamped with it; `None`
    /// when it already holds the record.
    pub fn conv_at(&mut self, conv: ConvId, at: Lsn) -> Option<&mut Conv> {
        let floor = self.replay_floor;
        let c = self
            .convs
            .get_mut(&conv)
            .expect("a record of a known conversation");
        if covered(floor, c.lsn, at) {
            return None;
        }
        c.lsn = at;
        Some(c)
    }

    /// Rebuilds what is derived from the entities (after a snapshot load).
    pub fn rebuild_derived(&mut self) {
        self.phones = self
            .users
            .iter()
            .filter(|(_, u)| !u.deleted)
            .map(|(id, u)| (u.phone.clone(), *id))
            .collect();
        for conv in self.convs.values_mut() {
            conv.dedupe.rebuild();
        }
    }
}
