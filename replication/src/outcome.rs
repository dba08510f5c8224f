//! What the driver hands the shell: writes to make durable, messages to
//! send, committed entries to apply, and the fate of its own proposals.
//! Plain values, produced and consumed on the group's core.

use raft::eraftpb::{Entry, HardState, Message, Snapshot};

use crate::ids::{BatchId, GroupId, NodeId, Token};

/// The fate of one proposal this replica made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Committed on a majority at `index`: acknowledge it.
    Committed {
        group: GroupId,
        token: Token,
        index: u64,
    },
    /// Another entry committed at its index (a new leader overwrote it):
    /// it will never commit.
    Lost { group: GroupId, token: Token },
    /// A snapshot replaced the log where it was; it may or may not have
    /// committed. The client is told `unavailable` and retries (dedupe).
    Unknown { group: GroupId, token: Token },
}

/// One group's share of a write batch, in the order it must reach disk.
#[derive(Clone, Debug, Default)]
pub struct Persist {
    pub group: GroupId,
    /// A snapshot from the leader: store it, then drop the whole log.
    pub snapshot: Option<Snapshot>,
    /// Entries to append; the first may overwrite from its index on.
    pub entries: Vec<Entry>,
    /// The new hard state, if it changed.
    pub hard_state: Option<HardState>,
    /// Term or vote changed, or entries came: fdatasync before the batch is
    /// reported. Otherwise (a commit index move) it may be written lazily.
    pub must_sync: bool,
}

/// Committed work for the state machine, in order per group.
#[derive(Clone, Debug)]
pub enum Apply {
    /// Entries committed on a majority and durable here.
    Entries { group: GroupId, entries: Vec<Entry> },
    /// The state machine must be replaced by this snapshot's.
    Snapshot { group: GroupId, snapshot: Snapshot },
}

/// A raft message for a peer.
#[derive(Clone, Debug)]
pub struct Outgoing {
    pub group: GroupId,
    pub to: NodeId,
    pub msg: Message,
}

/// A read index this replica asked for (`Driver::read_index`): reads
/// that began before the request are safe once the state machine applied
/// through `index`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadDone {
    pub group: GroupId,
    pub token: Token,
    pub index: u64,
}

/// Everything one `Driver::collect` produced.
#[derive(Debug, Default)]
pub struct Output {
    /// Report with `Driver::persisted` once `persist` is durable (and every
    /// earlier batch was reported). `None`: nothing waits on this one.
    pub batch: Option<BatchId>,
    pub persist: Vec<Persist>,
    /// Send now (a leader sends its appends while its own write runs).
    pub send: Vec<Outgoing>,
    pub apply: Vec<Apply>,
    pub outcomes: Vec<Outcome>,
    pub reads: Vec<ReadDone>,
}

impl Output {
    /// Nothing to do.
    pub fn is_empty(&self) -> bool {
        self.batch.is_none()
            && self.persist.is_empty()
            && self.send.is_empty()
            && self.apply.is_empty()
            && self.outcomes.is_empty()
            && self.reads.is_empty()
    }
}
