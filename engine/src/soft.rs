//! Soft state of a shard: what is true only while the process runs, or is
//! learnt from other shards at startup. Never logged.
//!
//! Lives on: the shard's core, inside `Shard`.

use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::time::Instant;

use crate::records::MessageRec;

use crate::ids::{ConnRef, ConvId, DeviceId, Millis, Seq, UserId};
use crate::ops::ConvPointer;

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
    /// User side: who watches a user's presence (subject → watchers).
    pub watchers: HashMap<UserId, Vec<(UserId, ConnRef)>>,
    /// Phone side: live OTP codes, and requests per phone in the window.
    pub otp: HashMap<String, Otp>,
    pub otp_requests: HashMap<String, (Millis, u32)>,
    /// Conversation side: groups with a `message.status` waiting to go out
    /// (coalesced), and the range of seqs it is about.
    pub status_pending: HashMap<ConvId, (Seq, Seq)>,
    /// Conversation side: durable messages waiting to be fanned out in
    /// seq order.
    pub fanout: HashMap<ConvId, FanoutQueue>,
}

impl Soft {
    pub fn is_online(&self, user: UserId) -> bool {
        self.online.get(&user).is_some_and(|v| !v.is_empty())
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

/// A durable message to fan out.
pub struct Fanout {
    pub m: Rc<MessageRec>,
    pub started: Instant,
}

impl std::fmt::Debug for Fanout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Fanout({}/{})", self.m.conv, self.m.seq.0)
    }
}

/// Reorders one conversation's durable messages into seq order.
///
/// Messages of one conversation become durable in seq order (the log keeps
/// append order) but the tasks waiting for them wake in any order. Each
/// offers its message; whoever finds the drainer idle drains.
#[derive(Debug)]
pub struct FanoutQueue {
    /// The next seq to fan out.
    next: Seq,
    pending: BTreeMap<Seq, Fanout>,
    draining: bool,
}

impl FanoutQueue {
    /// `first`: the first message sequenced in this process (none before
    /// it is in flight, so none before it will be offered).
    pub fn new(first: Seq) -> FanoutQueue {
        FanoutQueue {
            next: first,
            pending: BTreeMap::new(),
            draining: false,
        }
    }

    /// Queues a message; true when the caller must drain.
    pub fn offer(&mut self, item: Fanout) -> bool {
        assert!(
            item.m.seq >= self.next,
            "seq {} offered after {} went out",
            item.m.seq.0,
            self.next.0
        );
        self.pending.insert(item.m.seq, item);
        if self.draining {
            return false;
        }
        self.draining = true;
        true
    }

    /// The next message in order, or None (and the drainer stops).
    pub fn take_next(&mut self) -> Option<Fanout> {
        match self.pending.remove(&self.next) {
            Some(item) => {
                self.next = Seq(self.next.0 + 1);
                Some(item)
            }
            None => {
                self.draining = false;
                None
            }
        }
    }
}
