//! chat-engine: the chat server. A pure state machine per shard, an I/O
//! shell around it, the node of cores that run shards and connections, and
//! the front end clients talk to; the `chatd` binary is `main.rs`.
//!
//! # Layout (each layer uses only those above it)
//! - `constants.rs` every limit of the engine, units last
//! - `config.rs`    flags, TOML file, defaults
//! - `machine/`     the pure chat state machine: records, state, commands, apply, effects, queries, snapshots
//! - `wire/`        the JSON text of server events (encoded once per message)
//! - `cluster/`     cluster mode: Raft per shard, peer links, forwarding to leaders
//! - `media/`       the node's content-addressed media files; Range and ETag rules
//! - `search/`      words, queries and the per-shard inverted index (pure)
//! - `shard/`       the I/O shell: log store, write path, effects, recovery, snapshots, soft state, operations
//! - `push/`        push notifications beside `shard/` (which offers it each delivery): outbox (pure), who is owed one, the gateway sender
//! - `node/`        cores, the mesh, connections, stats, startup and shutdown
//! - `front/`       REST, WebSocket sessions, error shapes, the ops port
//! - `sim/`         the deterministic simulation's harness (in-memory logs and mesh, model checks)
//!
//! docs/ARCHITECTURE.md draws how a message flows through them.

pub mod cluster;
pub mod config;
pub mod constants;
pub mod front;
pub mod machine;
pub mod media;
pub mod node;
pub mod push;
pub mod search;
pub mod shard;
pub mod sim;
pub mod wire;
