//! What applying a record asks the shell to do: plain values, carried out
//! by `shard/effects.rs` once the record is durable (later: committed).
//!
//! Lives on: the shard's core. Applying the same records yields the same
//! effects on any replica; recovery replays records and drops their
//! effects (devices catch up by sync, user homes by announcements).

use std::sync::Arc;

use crate::machine::ids::{ConvId, DeviceId, Millis, Seq, UserId};
use crate::machine::records::{BodyKind, Mark, MessageRec};
use crate::machine::state::ConvPointer;

/// Who a new message goes to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Audience {
    /// These members, through their home shards (fan-out on write).
    Members(Vec<UserId>),
    /// Whoever is online, through every shard (fan-out on read: a large
    /// group's offline members pull on connect).
    Online,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// A new message: keep it in the recent cache and fan it out.
    Deliver {
        message: Arc<MessageRec>,
        audience: Audience,
    },
    /// Tell each user's home what it should know of `conv` (a membership
    /// began, or the conversation crossed the fan-out-on-read size).
    Announce {
        pointers: Vec<(UserId, ConvPointer)>,
    },
    /// Tell the user's home that the user left `conv`.
    Left { conv: ConvId, user: UserId },
    /// Close the connections of a revoked device.
    CloseDevice { user: UserId, device: DeviceId },
    /// The user's last device went offline at `at`: tell presence watchers.
    WentOffline { user: UserId, at: Millis },
    /// A device moved the user's position in `conv`: tell the
    /// conversation's home (a read with read receipts off counts as a
    /// delivery there).
    MemberMoved {
        conv: ConvId,
        user: UserId,
        mark: Mark,
        seq: Seq,
    },
    /// Direct conversation: tell `to` that `by` got or read up to its
    /// message `seq`.
    ReceiptToPeer {
        to: UserId,
        conv: ConvId,
        seq: Seq,
        by: UserId,
        mark: Mark,
    },
    /// A message was edited or deleted: every device of the audience
    /// hears of it, except the one that did it (it has the answer).
    Changed {
        conv: ConvId,
        seq: Seq,
        by: (UserId, DeviceId),
        change: Change,
        audience: Audience,
    },
    /// A conversation's disappearing setting changed: tell the members'
    /// devices (`conversation.updated`).
    ConvUpdated {
        conv: ConvId,
        disappearing_seconds: u64,
        audience: Audience,
    },
    /// Group: a member's watermark reached `seq`; senders get a coalesced
    /// `message.status`.
    GroupStatus { conv: ConvId, seq: Seq },
}

/// What happened to a stored message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// A new body, set at `ts`.
    Edited {
        body_kind: BodyKind,
        body: Arc<str>,
        ts: Millis,
    },
    Deleted,
}

/// The effects of one record, in the order they must be carried out.
pub type Effects = Vec<Effect>;
