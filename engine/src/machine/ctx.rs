//! What a decision may know beyond the state: the time and where it runs.
//!
//! Lives on: the shard's core; made by the shell for each decision. Times
//! that matter later go into the records, so that replicas never read a
//! clock of their own.

use crate::machine::ids::{Millis, ShardId};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ctx {
    /// The shell's clock when the command is decided.
    pub now: Millis,
    /// The shard deciding, and how many there are (ids are minted so that
    /// `id % shards` is their home).
    pub shard: ShardId,
    pub shards: u16,
}
