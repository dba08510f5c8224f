//! Cluster mode: every shard a Raft group (chat-replication's `Driver`)
//! with a replica on each node of its placement. Part of the I/O shell,
//! beside `shard/` (the shard's replicated write path is
//! `shard/replicated.rs`; it and this module use each other).
//!
//! # Layout
//! - `membership.rs` the `CLUSTER` file: members, shards, placement; refused if the flags differ
//! - `raft_log.rs`   the shard's chat-log as its Raft log; the hard state and compaction point file
//! - `catch_up.rs`   a follower behind the leader's compaction point fetches the committed log
//! - `forward.rs`    commands and replies a replica hands to the leader (rkyv, validated)
//! - `link.rs`       peer links: one TCP connection per (core, peer), bounded queues, backoff
//! - `replicator.rs` one core's driver, links and pump (persist, send, apply, fates)
//! - `serve.rs`      a forwarded call, run on the leader
//! - `start.rs`      bringing a core's replicas up at startup
//! - `status_cmd.rs` `chatd cluster-status`: the cluster as a table

pub mod catch_up;
pub mod forward;
pub mod link;
pub mod membership;
pub mod raft_log;
pub mod replicator;
pub mod serve;
pub mod start;
pub mod status_cmd;
