//! The chat state machine of one shard, pure: no glommio, no sockets, no
//! JSON, no clock. Commands are decided against the state and turned into
//! records; records are applied to the state and give effects; the shell
//! (`shard/`) does the appending, the waiting and the effects. Applying
//! the same records gives the same state on any replica, byte for byte.
//!
//! Lives on: the shard's core (values cross cores only as plain data).
//!
//! # Layout
//! - `ids.rs`       newtypes (`UserId`, `ConvId`, `Seq`, `Millis`...), wire ids, minting, homes
//! - `records.rs`   the log records (rkyv): every durable change
//! - `state/`       the durable state: users, conversations (index, dedupe), counters
//! - `ctx.rs`       what a decision may know beyond the state (time, shard)
//! - `error.rs`     `DomainError`: why a command or query was refused
//! - `effects.rs`   `Effect`: what the shell must do once a record is durable
//! - `cmd/`         one command per file: request, `decide`, `apply`, reply
//! - `apply.rs`     record → its command's `apply` (the only state change)
//! - `query/`       reads: typed answers for the front end
//! - `snapshot.rs`  fuzzy, chunked snapshots of the entities; restore
//! - `token.rs`     bearer tokens (the randomness comes from the shell)
//!
//! # Must not
//! Touch glommio, chat-net, serde_json, the clock, randomness or another
//! core. Anything the machine needs from outside comes in a command, in
//! `Ctx` or in `Params`.

pub mod apply;
pub mod cmd;
pub mod ctx;
pub mod effects;
pub mod error;
pub mod ids;
pub mod query;
pub mod records;
pub mod snapshot;
pub mod state;
pub mod token;

#[cfg(test)]
mod tests;
