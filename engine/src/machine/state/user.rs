//! An account on its home shard: profile, devices, delivery cursors.
//!
//! Lives on: the user's home shard's core.

use std::collections::BTreeMap;

use rkyv::{Archive, Deserialize, Serialize};

use super::{DeviceKeys, Lsn, Media};
use crate::machine::ids::{ConvId, DeviceId, Millis, Seq};
use crate::machine::records::{Mark, Privacy};

#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct User {
    pub lsn: Lsn,
    pub phone: String,
    pub name: String,
    pub privacy: Privacy,
    pub read_receipts: bool,
    pub created: Millis,
    pub last_seen: Millis,
    pub devices: BTreeMap<DeviceId, Device>,
    /// Devices ever linked (the next one gets `devices_ever + 1`).
    pub devices_ever: u64,
    /// Its uploads by number (`MediaId.n`); the next is `media_minted + 1`.
    pub media: BTreeMap<u64, Media>,
    pub media_minted: u64,
    /// `DELETE /v1/me` happened: no devices, phone or name any more; the
    /// id is never reused.
    pub deleted: bool,
}

#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct Device {
    pub name: String,
    pub token_hash: [u8; 32],
    pub expires: Millis,
    pub created: Millis,
    /// Per conversation: this device's delivered and read positions.
    pub cursors: BTreeMap<ConvId, Cursors>,
    /// Its end-to-end encryption keys, once it uploaded them (`keys.rs`).
    pub keys: Option<DeviceKeys>,
    /// Where notifications go while it is offline (`PUT .../push`).
    pub push_token: Option<String>,
}

/// A device's positions in one conversation; read implies delivered.
#[derive(Archive, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct Cursors {
    pub delivered: Seq,
    pub read: Seq,
    /// The push gateway took a notification up to here (`cmd/push.rs`).
    pub pushed: Seq,
}

impl Cursors {
    pub fn get(&self, mark: Mark) -> Seq {
        match mark {
            Mark::Delivered => self.delivered,
            Mark::Read => self.read,
        }
    }

    /// Moves forward only.
    pub fn advance(&mut self, mark: Mark, seq: Seq) {
        self.delivered = self.delivered.max(seq);
        if mark == Mark::Read {
            self.read = self.read.max(seq);
        }
    }
}

impl User {
    /// Whether some device of the user has a push token.
    pub fn has_push_token(&self) -> bool {
        self.devices.values().any(|d| d.push_token.is_some())
    }

    /// The best position of any of the user's devices in `conv`.
    pub fn level(&self, conv: ConvId, mark: Mark) -> Seq {
        self.devices
            .values()
            .filter_map(|d| d.cursors.get(&conv))
            .map(|c| c.get(mark))
            .max()
            .unwrap_or(Seq(0))
    }
}
