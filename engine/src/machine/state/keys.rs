//! A device's end-to-end encryption keys as the key directory holds them:
//! public parts only (the server never sees a private key or plaintext).
//!
//! Lives on: the user's home shard's core, inside `Device`. A revoked
//! device's keys go with it.

use std::collections::{BTreeSet, VecDeque};

use rkyv::{Archive, Deserialize, Serialize};

use crate::machine::records::SignedPrekey;

#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct DeviceKeys {
    /// Set by the first upload; never changes.
    pub identity_key: String,
    pub signed_prekey: SignedPrekey,
    /// One-time prekeys `(key_id, public_key)`, handed out front first,
    /// each at most once.
    pub one_time: VecDeque<(u64, String)>,
    /// Every one-time key id this device ever uploaded (a reuse is
    /// refused, also of one already handed out).
    pub used_ids: BTreeSet<u64>,
}
