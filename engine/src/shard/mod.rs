//! The I/O shell around the machine: one shard's log, state, soft state
//! and the operations other cores run on it. Command → decide → append →
//! apply → (once durable) effects → reply.
//!
//! Lives on: the shard's core; other cores reach it only through the mesh
//! (`mesh.rs`: typed operations, `call`/`tell`).
//!
//! # Layout
//! - `storage.rs`      `LogStore`: the log behind a trait (chat-log on disk)
//! - `memlog.rs`       an in-memory `LogStore` with injectable faults
//! - `clock.rs`        `Clock`: system or manual time for the shell
//! - `conn.rs`         where a connection lives (`CoreId`, `ConnRef`), close codes
//! - `mesh.rs`         `Mesh`: the shard's port to the node; `ShardOp`, `call`, `tell`
//! - `error.rs`        `ShardError`: refused by the machine, or storage trouble
//! - `runner.rs`       `Shard`: the write path, rebuild after a failed write, reads
//! - `replicated.rs`   cluster mode: propose, apply committed entries, forward, read index
//! - `effect_queue.rs` effects held until durable, released in log order
//! - `effects.rs`      carrying out each `Effect`
//! - `compact.rs`      the erasure compaction: erased bodies removed from the segment files
//! - `recover.rs`      snapshot + replay (other record kinds pass by)
//! - `snapshotter.rs`  chunked snapshots in the background
//! - `soft.rs`         soft state: online devices, pointers, watchers, OTP codes
//! - `cache.rs`        recent messages in memory
//! - `current.rs`      messages as they read now (latest edit, deleted)
//! - `search.rs`       the search index kept up to date (applied records, the log at startup)
//! - `otp_sink.rs`     where OTP codes go
//! - `ops/`            the operations, one concept per file
//!
//! # Must not
//! Know sockets, HTTP or JSON shapes of replies (the front end's), or touch
//! another core's data except through `Mesh`.

pub mod cache;
pub mod clock;
pub mod compact;
pub mod conn;
pub mod current;
pub mod effect_queue;
pub mod effects;
pub mod error;
pub mod memlog;
pub mod mesh;
pub mod ops;
pub mod otp_sink;
pub mod recover;
pub mod replicated;
pub mod runner;
pub mod search;
pub mod snapshotter;
pub mod soft;
pub mod storage;

pub use runner::Shard;
