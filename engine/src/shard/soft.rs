//! Soft state of a shard: true only while the process runs, or learnt from
//! other shards at startup. Never logged; a restart rebuilds or forgets it.
//!
//! Lives on: the shard's core, inside `Shard`.

use std::collections::{BTreeSet, HashMap};

use super::conn::ConnRef;
use crate::machine::ids::{ConvId, DeviceId, Millis, Seq, UserId};
use crate::machine::state::ConvPointer;

/// A connected device of a user.
#[derive(Clone, Copy, Debug)]
pub struct Online {
    pub device: DeviceId,
    pub conn: ConnRef,
}

/// A pending OTP code (codes live 300 s: not worth a log record; a restart
/// only means asking for a new code).
#[derive(Clone, Debug)]
pub struct Otp {
    pub code: String,
    pub expires: Millis,
    pub tries: u32,
}

#[derive(Debug, Default)]
pub struct Soft {
    /// User side: connected devices per user.
    pub online: HashMap<UserId, Vec<Online>>,
    /// User side: the conversations of each user, with their latest seq.
    /// Rebuilt at startup from the conversation shards' announcements.
    pub pointers: HashMap<UserId, HashMap<ConvId, ConvPointer>>,
    /// User side: online users per conversation (for large groups, whose
    /// messages are pushed to whoever is online, not per member).
    pub online_by_conv: HashMap<ConvId, Vec<UserId>>,
    /// User side: this home's members of each large group, online or not
    /// (push notifications reach the offline ones with tokens).
    pub large_members: HashMap<ConvId, BTreeSet<UserId>>,
    /// User side: who watches a user's presence (subject → watchers).
    pub watchers: HashMap<UserId, Vec<(UserId, ConnRef)>>,
    /// Phone side: live OTP codes, and requests per phone in the window.
    pub otp: HashMap<String, Otp>,
    pub otp_requests: HashMap<String, (Millis, u32)>,
    /// User side: key fetches per user in the current minute.
    pub key_fetches: HashMap<UserId, (Millis, u32)>,
    /// Conversation side: groups with a `message.status` waiting to go out
    /// (coalesced), and the range of seqs it is about.
    pub status_pending: HashMap<ConvId, (Seq, Seq)>,
}

impl Soft {
    pub fn is_online(&self, user: UserId) -> bool {
        self.online.get(&user).is_some_and(|v| !v.is_empty())
    }

    /// The user's connections (all devices).
    pub fn conns_of(&self, user: UserId) -> impl Iterator<Item = &Online> {
        self.online.get(&user).into_iter().flatten()
    }

    /// The devices of the user connected to this node.
    pub fn devices_online(&self, user: UserId) -> Vec<DeviceId> {
        self.conns_of(user).map(|o| o.device).collect()
    }

    /// The conversations the user's home knows the user is in.
    pub fn convs_of(&self, user: UserId) -> Vec<ConvId> {
        self.pointers
            .get(&user)
            .map(|p| p.keys().copied().collect())
            .unwrap_or_default()
    }

    /// Whether `user` counts among this home's members of the large
    /// group `conv` (a member of a conversation that is large).
    pub fn set_large_member(&mut self, conv: ConvId, user: UserId, large: bool) {
        if large {
            self.large_members.entry(conv).or_default().insert(user);
        } else if let Some(set) = self.large_members.get_mut(&conv) {
            set.remove(&user);
            if set.is_empty() {
                self.large_members.remove(&conv);
            }
        }
    }

    /// `user` is no longer online in `conv` (went offline or left).
    pub fn leave_conv(&mut self, conv: ConvId, user: UserId) {
        if let Some(list) = self.online_by_conv.get_mut(&conv) {
            list.retain(|u| *u != user);
            if list.is_empty() {
                self.online_by_conv.remove(&conv);
            }
        }
    }
}
