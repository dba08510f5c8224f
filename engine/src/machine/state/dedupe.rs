//! The `client_msg_id`s of a conversation's latest messages, so that a
//! resent message gets its first answer instead of a second copy.
//!
//! Lives on: the conversation's home shard's core, inside `Conv`.
//!
//! A key is 128 bits of SHA-256 over (sender, device, client_msg_id): a
//! fixed 16 bytes per remembered message whatever the id's length, with a
//! collision chance (~2^-105 within a window) far below a disk's error
//! rate. Keys sit in seq order (the window slides by message); the map from
//! key to seq is derived from them and rebuilt after a snapshot load.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

use rkyv::{Archive, Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::constants::DEDUPE_WINDOW_PER_CONVERSATION;
use crate::machine::ids::{DeviceId, Seq, UserId};

#[derive(Archive, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[rkyv(derive(Debug))]
pub struct DedupeKey(pub [u8; 16]);

impl DedupeKey {
    pub fn new(sender: UserId, device: DeviceId, client_msg_id: &str) -> DedupeKey {
        let mut h = Sha256::new();
        h.update(sender.0.to_le_bytes());
        h.update(device.0.to_le_bytes());
        h.update(client_msg_id.as_bytes());
        let digest = h.finalize();
        DedupeKey(digest[..16].try_into().expect("16 of 32 bytes"))
    }
}

/// Keys are already uniform hashes: their first 8 bytes serve as the hash.
#[derive(Default)]
pub struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes.iter().take(8) {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
}

type KeyMap = HashMap<DedupeKey, Seq, BuildHasherDefault<KeyHasher>>;

#[derive(Archive, Serialize, Deserialize, Clone, Debug, Default)]
#[rkyv(derive(Debug))]
pub struct Dedupe {
    /// Keys of the latest messages in seq order; `keys[0]` is seq `first`.
    keys: VecDeque<DedupeKey>,
    first: u64,
    #[rkyv(with = rkyv::with::Skip)]
    map: KeyMap,
}

impl PartialEq for Dedupe {
    fn eq(&self, other: &Dedupe) -> bool {
        (self.first, &self.keys) == (other.first, &other.keys)
    }
}

impl Eq for Dedupe {}

impl Dedupe {
    /// The message a key names, if it is in the window.
    pub fn get(&self, key: &DedupeKey) -> Option<Seq> {
        self.map.get(key).copied()
    }

    /// Remembers the key of message `seq` (the conversation's next one),
    /// forgetting the oldest beyond the window.
    pub fn remember(&mut self, key: DedupeKey, seq: Seq) {
        if self.keys.is_empty() {
            self.first = seq.0;
        }
        assert_eq!(
            seq.0,
            self.first + self.keys.len() as u64,
            "keys in seq order"
        );
        if self.keys.len() == DEDUPE_WINDOW_PER_CONVERSATION {
            let old = self.keys.pop_front().expect("the window is full");
            if self.map.get(&old) == Some(&Seq(self.first)) {
                self.map.remove(&old);
            }
            self.first += 1;
        }
        self.keys.push_back(key);
        self.map.insert(key, seq);
    }

    /// Rebuilds the key → seq map from the keys (after a snapshot load).
    pub fn rebuild(&mut self) {
        self.map = KeyMap::default();
        for (i, key) in self.keys.iter().enumerate() {
            self.map.insert(*key, Seq(self.first + i as u64));
        }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_slides_and_rebuilds() {
        let mut d = Dedupe::default();
        let key = |i: u64| DedupeKey::new(UserId(1), DeviceId(1), &format!("m{i}"));
        let n = DEDUPE_WINDOW_PER_CONVERSATION as u64 + 10;
        for i in 1..=n {
            d.remember(key(i), Seq(i));
        }
        assert_eq!(d.get(&key(5)), None, "slid out of the window");
        assert_eq!(d.get(&key(n)), Some(Seq(n)));
        assert_eq!(d.len(), DEDUPE_WINDOW_PER_CONVERSATION);
        let mut copy = d.clone();
        copy.map.clear();
        copy.rebuild();
        assert_eq!(copy.get(&key(n - 1)), Some(Seq(n - 1)));
        assert_ne!(key(1), DedupeKey::new(UserId(1), DeviceId(2), "m1"));
    }
}
