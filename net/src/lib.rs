//! chat-net: listeners, TLS, HTTP/1.1, WebSocket and protocol v1 encode/decode.
//!
//! Everything runs inside one glommio `LocalExecutor` per core: a core binds its
//! own `SO_REUSEPORT` listener, serves HTTP on it, and keeps each connection
//! (WebSocket included) on the core that accepted it. Futures are `!Send`.
//!
//! # Layout
//! - `constants.rs` all limits of the transport, units last
//! - `listener.rs`  `bind`: per-core `SO_REUSEPORT` listener
//! - `tls.rs`       rustls server config from PEM (ring, TLS 1.3), self-signed certs, the gateways' client config
//! - `peer_tls.rs`  mutual TLS between cluster nodes: both ends show a certificate the cluster CA signed
//! - `io.rs`        `Conn` (plain or TLS socket) and the futures-io → hyper adapter
//! - `stop.rs`      `StopSignal`: one-shot broadcast for shutdown
//! - `timer.rs`     `GlommioTimer`: hyper's timer on glommio (the header read timeout)
//! - `http.rs`      `serve`: accept loop, hyper HTTP/1.1, body limits, WebSocket upgrade, `Handler`
//! - `client.rs`    `post_json`: an HTTP/1.1 client on hyper for the gateways chatd calls (push, OTP webhook)
//! - `body.rs`      streamed bodies: `Upload` (a request body read as it arrives), `Streamed` responses
//! - `ws.rs`        WebSocket session: `Inbox`, bounded `Outbox`, batching writer task
//! - `protocol.rs`  protocol v1: client events, server events, error codes

pub mod body;
pub mod client;
pub mod constants;
pub mod http;
pub mod io;
pub mod listener;
pub mod peer_tls;
pub mod protocol;
pub mod stop;
pub mod timer;
pub mod tls;
pub mod ws;

pub use http::{serve, ConnectionEvent, Handler, Request, Response, ServeConfig};
pub use listener::bind;
pub use stop::StopSignal;
pub use ws::{Closed, Full, Inbox, Incoming, Outbox, WebSocket};
