//! chat-engine: shards, the chat state machine, routing, the core mesh,
//! stats and configuration; the `chatd` binary is `main.rs`.
//!
//! # Layout
//! - `constants.rs` every limit of the engine, units last
//! - `config.rs`    flags, TOML file, defaults
//! - `ids.rs`       newtypes (`UserId`, `ConvId`, `Seq`...), wire ids, home shards
//! - `records.rs`   the log records (rkyv): every durable change
//! - `state.rs`     durable state of a shard = fold of its records
//! - `snapshot.rs`  snapshots of the durable state (bound replay)
//! - `soft.rs`      soft state: online devices, pointers, OTP codes
//! - `shard.rs`     a shard: log + state; `write` (validate, append, apply, await durable); `exec`
//! - `otp.rs`       OTP request/verify and the code sinks
//! - `token.rs`     bearer tokens
//! - `users.rs`     user-home operations: profile, devices, connect, cursors, delivery, presence
//! - `convs.rs`     conversation-home operations: create, members, roles, announce
//! - `cache.rs`     recent messages in memory (sync and history without disk reads)
//! - `messages.rs`  send, receipts, typing, history, sync fetch
//! - `ops.rs`       `Op`/`Answer`/`MeshMsg`: what cores say to each other
//! - `core.rs`      one core: its shards, connections, mesh end; call/tell/push
//! - `gate.rs`      a strictly FIFO gate (ticket lock) for sends to a peer core
//! - `wire.rs`      server JSON: message objects and events
//! - `rest.rs`      the REST API
//! - `session.rs`   one WebSocket session: auth, sync, events
//! - `api.rs`       the HTTP handlers (client API, ops port)
//! - `stats.rs`     counters, histograms, Prometheus/JSON rendering
//! - `node.rs`      executors, startup, readiness, shutdown

pub mod api;
pub mod cache;
pub mod config;
pub mod constants;
pub mod convs;
pub mod core;
pub mod gate;
pub mod ids;
pub mod messages;
pub mod node;
pub mod ops;
pub mod otp;
pub mod records;
pub mod rest;
pub mod session;
pub mod shard;
pub mod snapshot;
pub mod soft;
pub mod state;
pub mod stats;
pub mod token;
pub mod users;
pub mod wire;
