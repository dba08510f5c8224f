//! chat-replication: every shard a Raft group, replicated on the nodes the
//! placement names. Knows nothing of chat: it moves opaque entries.
//!
//! The consensus core is raft-rs' `RawNode`, driven sans-IO: the shell
//! (chatd's shard runner, or the simulation in `tests/`) does the disk,
//! the network and the clock; this crate decides what to write, send and
//! apply, and in which order.
//!
//! # Layout
//! - `constants.rs` every limit and default timing
//! - `ids.rs`       `NodeId`, `GroupId`, `Token`, `BatchId`
//! - `placement.rs` `Membership`: members, shard count, replicas per group
//! - `store.rs`     `GroupStore`: raft-rs' `Storage` over the entries held in memory; `Boot`
//! - `group.rs`     one group: `RawNode`, its pending proposals, seeded election timeouts
//! - `driver.rs`    `Driver`: all groups of one core; ticks, steps, proposals, `collect`, `persisted`
//! - `outcome.rs`   what `collect` hands out: `Persist`, `Outgoing`, `Apply`, `Outcome`
//! - `status.rs`    `GroupStatus`, `DriverStats` for the ops endpoint
//! - `frame.rs`     peer frames (length, version, kind, CRC; hello and raft batches)
//! - `logger.rs`    raft-rs' slog records into `tracing`
//!
//! # The write path (leader)
//! `propose` → raft appends to its unstable log → `collect` hands out the
//! appends to send *now* and the same entries to persist; the shell sends,
//! writes and fdatasyncs one batch for all groups of the core, then calls
//! `persisted` → raft counts its own copy; a majority's acknowledgements
//! move the commit index → a later `collect` hands out the committed
//! entries (`Apply`) and `Outcome::Committed` for the proposals made here.
//! A follower's acknowledgements wait for its fdatasync (`persisted`).

pub mod constants;

mod driver;
mod frame;
mod group;
mod ids;
mod logger;
mod outcome;
mod placement;
mod status;
mod store;

pub use driver::{Driver, ProposeError, Proposed, Settings, StepError};
pub use frame::{decode as decode_frame, encode as encode_frame, raft_batches, Frame, FrameError};
pub use ids::{BatchId, GroupId, NodeId, Token};
pub use outcome::{Apply, Outcome, Outgoing, Output, Persist, ReadDone};
pub use placement::{Membership, MembershipError};
pub use status::{DriverStats, GroupStatus, Role};
pub use store::{Boot, GroupStore};

/// raft-rs' protobuf types, for the shell.
pub use raft::eraftpb;
