//! chat-tools: operator and developer tools for chatd, and a small blocking
//! client for its public protocol.
//!
//! # Layout
//! - `client.rs`       blocking REST + WebSocket client (HTTP/1.1, TLS via rustls)
//! - `client/tests.rs` its unit tests: parser, OTP file, loopback transports
//! - `bin/chat.rs`     `chat`: log in, list, send, listen, read from a terminal
//! - `bin/logdump.rs`  `logdump`: print and verify chat-log segment files
//! - `loadgen/`        the load harness (map in `loadgen/mod.rs`)
//! - `bin/loadgen.rs`  `loadgen`: coordinator and worker processes
//! - `bin/wsecho.rs`   `wsecho`: io_uring WebSocket echo server, the machine's ceiling

pub mod client;
pub mod loadgen;
