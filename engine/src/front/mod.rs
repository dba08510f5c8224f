//! The front end: what clients and operators talk to. It parses requests
//! and events, calls the shard that owns what they name, and shapes the
//! answers (JSON). Only here do protocol errors exist.
//!
//! Lives on: every core (the one that accepted the connection).
//!
//! # Layout
//! - `api.rs`       the client port's HTTP handler: REST and WebSocket
//! - `caller.rs`    bearer tokens → `Caller`
//! - `errors.rs`    `DomainError` / `ShardError` → protocol errors
//! - `media_access.rs` who may read an upload, and naming one in a message
//! - `rest/`        the REST routes and their handlers
//! - `ws/`          the WebSocket session: auth, sync, events
//! - `ops_port.rs`  `/metrics`, `/stats`, `/healthz`, `/readyz`
//!
//! # Must not
//! Hold state of its own beyond a connection's, or decide what a command
//! does (the machine does).

pub mod api;
pub mod caller;
pub mod errors;
pub mod media_access;
pub mod ops_port;
pub mod rest;
pub mod ws;
