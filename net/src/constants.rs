//! All limits of the transport layer. Units last in every name.
//!
//! Lives on: compile time; read by every core.

/// Pending-connection queue of each per-core `SO_REUSEPORT` listener.
pub const LISTEN_BACKLOG: i32 = 4096;

/// Largest request body read into memory; over it the answer is 413 `too_large`
/// and the handler is not called.
pub const HTTP_BODY_BYTES_MAX: usize = 1024 * 1024;

/// Largest request body under `HTTP_MEDIA_PATH_PREFIX` (`POST /v1/media`,
/// PROTOCOL.md: "over 16 MiB → 413").
pub const HTTP_MEDIA_BODY_BYTES_MAX: usize = 16 * 1024 * 1024;

/// Paths with this prefix get `HTTP_MEDIA_BODY_BYTES_MAX` instead of `HTTP_BODY_BYTES_MAX`.
pub const HTTP_MEDIA_PATH_PREFIX: &str = "/v1/media";

/// hyper's read buffer ceiling per connection; bounds the request head (hyper's floor is 8 KiB).
pub const HTTP_READ_BUFFER_BYTES_MAX: usize = 64 * 1024;

/// Lingering close of an HTTP connection: after our FIN, what the client still
/// sends is read and discarded for at most this long / this many bytes.
pub const HTTP_LINGER_MS: u64 = 2_000;
pub const HTTP_LINGER_BYTES_MAX: usize = 4 * 1024 * 1024;
/// Read size while lingering (a heap buffer, only while lingering).
pub const HTTP_LINGER_READ_BYTES: usize = 16 * 1024;

/// A request head (request line and headers) must arrive whole within
/// this long of its first byte, or the connection is closed (nginx waits
/// 60 s by default).
pub const HTTP_HEADER_READ_TIMEOUT_MS: u64 = 10_000;

/// The path that upgrades to a WebSocket.
pub const WS_PATH: &str = "/v1/ws";

/// tungstenite read buffer per WebSocket (allocated once, at upgrade).
pub const WS_READ_BUFFER_BYTES: usize = 8192;

/// tungstenite writes to the socket once this many bytes are buffered (and on every flush).
pub const WS_WRITE_BUFFER_BYTES: usize = 8192;

/// Largest incoming WebSocket message (and frame); over it `Incoming::TooLarge`.
pub const WS_MESSAGE_BYTES_MAX: usize = 128 * 1024;

/// Default bound of an `Outbox` in frames (the engine may pass its own to `split`).
pub const WS_OUTBOX_FRAMES_MAX: usize = 1024;

/// Second bound of an `Outbox`: bytes of text queued. A frame is always accepted
/// into an empty outbox, so one frame of any size can pass.
pub const WS_OUTBOX_BYTES_MAX: usize = 8 * 1024 * 1024;

/// Frames the writer task writes before one flush (one batch of system calls).
pub const WS_WRITE_BATCH_FRAMES_MAX: usize = 64;

/// After `Outbox::close` (or the peer's Close) the writer gets this long to flush
/// what is queued and the Close frame; then the socket is shut regardless.
pub const WS_CLOSE_LINGER_MS: u64 = 2_000;

/// Pause after a failed `accept` (e.g. EMFILE) before the next one.
pub const ACCEPT_ERROR_BACKOFF_MS: u64 = 10;

/// A TLS handshake that takes longer is abandoned and the socket closed.
pub const TLS_HANDSHAKE_TIMEOUT_MS: u64 = 10_000;

const _: () = assert!(
    WS_READ_BUFFER_BYTES >= 14,
    "must hold the largest frame header"
);
const _: () = assert!(WS_OUTBOX_BYTES_MAX > WS_MESSAGE_BYTES_MAX);
const _: () = assert!(WS_MESSAGE_BYTES_MAX < HTTP_BODY_BYTES_MAX);
const _: () = assert!(HTTP_BODY_BYTES_MAX <= HTTP_MEDIA_BODY_BYTES_MAX);
const _: () = assert!(HTTP_READ_BUFFER_BYTES_MAX >= 8192, "hyper's minimum");
const _: () = assert!(WS_WRITE_BATCH_FRAMES_MAX > 0 && WS_OUTBOX_FRAMES_MAX > 0);

/// The HTTP client (`client.rs`): the most of an answer's body it reads
/// (a gateway's `{"rejected":[...]}`); more is an error.
pub const CLIENT_ANSWER_BYTES_MAX: usize = 64 * 1024;

/// The HTTP client: the longest URL it takes (`Url::parse`).
pub const CLIENT_URL_BYTES_MAX: usize = 2048;
