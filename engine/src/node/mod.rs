//! The node: one pinned executor per core, each a `Core` holding its
//! shards and connections, joined by the mesh; startup, shutdown, stats.
//!
//! Lives on: `run.rs` on the main thread and each core's thread; the rest
//! on each core (one `Core` per executor).
//!
//! # Layout
//! - `core.rs`   one core: local shards, connections, the shards' `Mesh`
//! - `mesh.rs`   `MeshMsg` and the `Transport` behind a trait (glommio rings)
//! - `gate.rs`   a strictly FIFO gate (ticket lock) per peer core
//! - `conns.rs`  a core's connections (`Outlet`), held events during sync
//! - `stats.rs`  counters, histograms, Prometheus / JSON rendering
//! - `replica_stats.rs` cluster mode: per-shard role, term, leader, indexes, lag
//! - `run.rs`    executors, open and recover shards, announce, ready, shutdown
//!
//! # Must not
//! Decide anything about chat (the machine does) or parse requests (the
//! front end does).

pub mod conns;
pub mod core;
pub mod gate;
pub mod mesh;
pub mod replica_stats;
pub mod run;
pub mod stats;
