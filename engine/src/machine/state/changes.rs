//! Edits and deletes of a conversation's messages: per changed seq, what
//! readers see instead of the stored message, and where in the change
//! order it stands (so that a syncing device gets the changes it missed).
//!
//! Lives on: the conversation's home shard's core, inside `Conv`.
//!
//! A message's record is never rewritten: an edit is a record of its own
//! (`MessageEdited`), and the index here says which one holds the latest
//! body. About 40 bytes per changed message; unchanged ones cost nothing.

use rkyv::{Archive, Deserialize, Serialize};

use crate::machine::ids::Millis;

/// The current version of one changed message.
#[derive(Archive, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct Changed {
    /// Edits applied so far.
    pub edits: u8,
    /// Server time of the latest edit (0: never edited).
    pub edited_ts: Millis,
    /// Log offset of the `MessageEdited` record with the latest body (0:
    /// never edited).
    pub body_at: u64,
    /// FNV-1a of the latest edit's body: a resent edit is no new edit.
    pub body_hash: u64,
    pub deleted: bool,
    /// The conversation's last seq when the latest change was made: a
    /// device that acked seq S before it went away missed the changes of
    /// messages up to S made when the last seq was S or more.
    pub at_last_seq: u64,
}

impl Changed {
    /// How readers see the message now.
    pub fn version(&self) -> Version {
        if self.deleted {
            Version::Deleted
        } else if self.edits > 0 {
            Version::Edited(self.edited_ts)
        } else {
            Version::Original
        }
    }
}

/// How a message reads now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    Original,
    /// Edited; the time of the latest edit.
    Edited(Millis),
    /// Deleted: no body, no media.
    Deleted,
}

/// FNV-1a, 64 bits: stable across builds and replicas.
pub fn body_hash(body: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in body.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_hashes() {
        let mut c = Changed::default();
        assert_eq!(c.version(), Version::Original);
        c.edits = 1;
        c.edited_ts = Millis(5);
        assert_eq!(c.version(), Version::Edited(Millis(5)));
        c.deleted = true;
        assert_eq!(c.version(), Version::Deleted);
        assert_eq!(body_hash(""), 0xcbf2_9ce4_8422_2325);
        assert_ne!(body_hash("a"), body_hash("b"));
    }
}
