//! The WebSocket session after the upgrade: `WebSocket` (what the handler
//! receives), split into `Inbox` (reads, answers pings) and `Outbox` (a
//! bounded queue drained by a writer task that batches frames per flush).
//!
//! Lives on: the core that accepted the connection. `Inbox`, `Outbox` and the
//! writer task share one `Rc`; none of them crosses cores.
//!
//! Binary frames: a binary frame holding valid UTF-8 is delivered as
//! `Incoming::Text` (some clients send JSON as binary); one that is not valid
//! UTF-8 ends the session like an invalid text frame does (`Incoming::Error`,
//! close code 1007).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::Duration;

use async_tungstenite::WebSocketStream;
use bytes::Bytes;
use futures_lite::io::AsyncWrite;
use futures_lite::Stream;
use futures_util::Sink;
use tungstenite::error::CapacityError;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tungstenite::Message;

use crate::constants::{
    WS_CLOSE_LINGER_MS, WS_MESSAGE_BYTES_MAX, WS_OUTBOX_BYTES_MAX, WS_READ_BUFFER_BYTES,
    WS_WRITE_BATCH_FRAMES_MAX, WS_WRITE_BUFFER_BYTES,
};
use crate::io::Conn;

/// Close code for a message over `WS_MESSAGE_BYTES_MAX` (RFC 6455 "message too big").
pub const CLOSE_TOO_LARGE: u16 = 1009;
/// Close code when the server goes away (SIGTERM).
pub const CLOSE_GOING_AWAY: u16 = 1001;
/// Close code for a protocol violation by the peer.
pub const CLOSE_PROTOCOL_ERROR: u16 = 1002;
/// Close code for a text (or binary) message that is not valid UTF-8.
pub const CLOSE_INVALID_PAYLOAD: u16 = 1007;
/// Close code when every `Inbox` and `Outbox` handle was dropped without `close`.
pub const CLOSE_NORMAL: u16 = 1000;
/// Close code for a slow consumer whose outbox overflowed (RFC 6455 "policy violation").
pub const CLOSE_POLICY_VIOLATION: u16 = 1008;

/// The tungstenite configuration of every server-side WebSocket.
///
/// tungstenite's outgoing buffer has no ceiling of its own: the writer task waits
/// for it to drain before handing over the next frame (`poll_ready`), so it holds
/// at most `WS_WRITE_BUFFER_BYTES` plus one frame.
pub fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(WS_READ_BUFFER_BYTES)
        .write_buffer_size(WS_WRITE_BUFFER_BYTES)
        .max_message_size(Some(WS_MESSAGE_BYTES_MAX))
        .max_frame_size(Some(WS_MESSAGE_BYTES_MAX))
}

/// An upgraded connection, before `split`. What `Handler::websocket` receives.
///
/// Lives on: the core that accepted the connection.
pub struct WebSocket {
    stream: WebSocketStream<Conn>,
    peer: SocketAddr,
}

impl WebSocket {
    /// Wraps an upgraded connection. `read_ahead`: bytes the HTTP layer read past
    /// the upgrade request (the client may send frames right after it).
    pub(crate) async fn from_upgraded(conn: Conn, read_ahead: Bytes, peer: SocketAddr) -> Self {
        let stream = if read_ahead.is_empty() {
            WebSocketStream::from_raw_socket(conn, Role::Server, Some(config())).await
        } else {
            WebSocketStream::from_partially_read(
                conn,
                read_ahead.to_vec(),
                Role::Server,
                Some(config()),
            )
            .await
        };
        Self { stream, peer }
    }

    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    pub fn is_tls(&self) -> bool {
        self.stream.get_ref().is_tls()
    }

    /// Splits into the reading and the writing half and spawns the writer task
    /// (detached; it ends on close or on a socket error). The outbox holds at most
    /// `outbox_frames_max` frames (and `WS_OUTBOX_BYTES_MAX` bytes).
    pub fn split(self, outbox_frames_max: usize) -> (Inbox, Outbox) {
        assert!(outbox_frames_max > 0);
        let shared = Rc::new(Shared {
            stream: RefCell::new(self.stream),
            queue: RefCell::new(VecDeque::new()),
            queued_bytes: Cell::new(0),
            frames_max: outbox_frames_max,
            state: Cell::new(State::Open),
            writer_waker: RefCell::new(None),
            room_wakers: RefCell::new(Vec::new()),
        });
        glommio::spawn_local(write_loop(shared.clone())).detach();
        let inbox = Inbox {
            shared: shared.clone(),
            finished: false,
        };
        (inbox, Outbox { shared })
    }
}

/// What `Inbox::recv` yields.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    /// A text message (or a binary one that is valid UTF-8).
    Text(String),
    /// A message over `WS_MESSAGE_BYTES_MAX`. Nothing more can be read; the outbox
    /// stays open so the engine can send `error too_large` and `close(1009)`.
    TooLarge,
    /// The peer closed (Close frame, EOF or reset) or we closed. Final: every
    /// later `recv` returns `Closed` too.
    Closed,
    /// The session broke (protocol violation, invalid UTF-8, I/O error). The outbox
    /// is closed (with 1002 or 1007). Every later `recv` returns `Closed`.
    Error(String),
}

/// `Outbox::try_send` refused the frame: the outbox is full, or closed (see `is_closed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

/// `Outbox::send` refused the frame: the outbox is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Frames are accepted.
    Open,
    /// `close` queued a Close frame; the writer drains up to it, then shuts the socket.
    Closing,
    /// Nothing more is written: the peer closed, an error happened, or the writer ended.
    Closed,
}

enum Outgoing {
    Text(String),
    Close(u16, String),
}

/// State shared by `Inbox`, `Outbox` clones and the writer task of one connection.
struct Shared {
    /// Borrowed only inside a single `poll`, never across an await.
    stream: RefCell<WebSocketStream<Conn>>,
    queue: RefCell<VecDeque<Outgoing>>,
    queued_bytes: Cell<usize>,
    frames_max: usize,
    state: Cell<State>,
    writer_waker: RefCell<Option<Waker>>,
    room_wakers: RefCell<Vec<Waker>>,
}

impl Shared {
    fn has_room(&self, text_bytes: usize) -> bool {
        let queue = self.queue.borrow();
        if queue.is_empty() {
            return true;
        }
        queue.len() < self.frames_max && self.queued_bytes.get() + text_bytes <= WS_OUTBOX_BYTES_MAX
    }

    fn push_text(&self, text: String) {
        assert_eq!(self.state.get(), State::Open);
        self.queued_bytes.set(self.queued_bytes.get() + text.len());
        self.queue.borrow_mut().push_back(Outgoing::Text(text));
        self.wake_writer();
    }

    fn pop(&self) -> Option<Outgoing> {
        let item = self.queue.borrow_mut().pop_front()?;
        if let Outgoing::Text(text) = &item {
            assert!(self.queued_bytes.get() >= text.len());
            self.queued_bytes.set(self.queued_bytes.get() - text.len());
        }
        self.wake_room();
        Some(item)
    }

    fn close(&self, code: u16, reason: &str) {
        if self.state.get() != State::Open {
            return;
        }
        self.state.set(State::Closing);
        self.queue
            .borrow_mut()
            .push_back(Outgoing::Close(code, reason.to_string()));
        self.wake_writer();
        self.wake_room();
    }

    /// Stops all writing now: what is queued is dropped. Idempotent.
    fn abort(&self) {
        self.state.set(State::Closed);
        let dropped = std::mem::take(&mut *self.queue.borrow_mut());
        drop(dropped);
        self.queued_bytes.set(0);
        self.wake_writer();
        self.wake_room();
    }

    fn wake_writer(&self) {
        if let Some(waker) = self.writer_waker.borrow_mut().take() {
            waker.wake();
        }
    }

    fn wake_room(&self) {
        let wakers = std::mem::take(&mut *self.room_wakers.borrow_mut());
        for waker in wakers {
            waker.wake();
        }
    }
}

/// The reading half. Owned by the connection's task in the engine.
///
/// Lives on: the core that accepted the connection.
pub struct Inbox {
    shared: Rc<Shared>,
    finished: bool,
}

impl Inbox {
    /// The next message from the peer. Pings are answered and pongs skipped here.
    pub async fn recv(&mut self) -> Incoming {
        if self.finished {
            return Incoming::Closed;
        }
        loop {
            let next = poll_fn(|cx| {
                let mut stream = self.shared.stream.borrow_mut();
                Pin::new(&mut *stream).poll_next(cx)
            })
            .await;
            let incoming = match next {
                Some(Ok(Message::Text(text))) => Incoming::Text(text.as_str().to_owned()),
                Some(Ok(Message::Binary(data))) => match std::str::from_utf8(&data) {
                    Ok(text) => Incoming::Text(text.to_owned()),
                    Err(_) => {
                        self.shared
                            .close(CLOSE_INVALID_PAYLOAD, "binary frame is not valid UTF-8");
                        Incoming::Error("binary frame is not valid UTF-8".to_string())
                    }
                },
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {
                    // tungstenite queued the pong; the next read flushes it.
                    continue;
                }
                Some(Ok(Message::Close(_))) | None => {
                    // tungstenite queued the Close reply; the writer flushes it and shuts down.
                    self.peer_closed();
                    Incoming::Closed
                }
                Some(Err(error)) => self.error(error),
            };
            if !matches!(incoming, Incoming::Text(_)) {
                self.finished = true;
            }
            return incoming;
        }
    }

    fn peer_closed(&self) {
        if self.shared.state.get() == State::Open {
            self.shared.abort();
        }
    }

    fn error(&self, error: tungstenite::Error) -> Incoming {
        use tungstenite::error::ProtocolError;
        use tungstenite::Error as E;
        match error {
            E::Capacity(CapacityError::MessageTooLong { .. }) => Incoming::TooLarge,
            E::ConnectionClosed
            | E::AlreadyClosed
            | E::Protocol(ProtocolError::ResetWithoutClosingHandshake) => {
                self.peer_closed();
                Incoming::Closed
            }
            E::Io(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionReset
                        | std::io::ErrorKind::BrokenPipe
                        | std::io::ErrorKind::UnexpectedEof
                ) =>
            {
                self.peer_closed();
                Incoming::Closed
            }
            E::Utf8(_) => {
                self.shared
                    .close(CLOSE_INVALID_PAYLOAD, "text frame is not valid UTF-8");
                Incoming::Error(error.to_string())
            }
            E::Io(_) => {
                self.shared.abort();
                Incoming::Error(error.to_string())
            }
            other => {
                self.shared.close(CLOSE_PROTOCOL_ERROR, "protocol error");
                Incoming::Error(other.to_string())
            }
        }
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        close_if_last_handle(&self.shared);
    }
}

/// The last `Inbox`/`Outbox` handle going away closes the connection, so that the
/// writer task (which holds the remaining reference) ends and the socket is freed.
fn close_if_last_handle(shared: &Rc<Shared>) {
    const HANDLE_AND_WRITER: usize = 2;
    if Rc::strong_count(shared) == HANDLE_AND_WRITER {
        shared.close(CLOSE_NORMAL, "");
    }
}

/// The writing half: a bounded queue of text frames drained by the writer task.
/// Cheap to clone (one `Rc`).
///
/// Lives on: the core that accepted the connection.
#[derive(Clone)]
pub struct Outbox {
    shared: Rc<Shared>,
}

impl Outbox {
    /// Queues a text frame if there is room (`outbox_frames_max` frames and
    /// `WS_OUTBOX_BYTES_MAX` bytes). `Full` when there is none or the outbox is
    /// closed: the engine then disconnects the slow consumer.
    pub fn try_send(&self, text: String) -> Result<(), Full> {
        if self.shared.state.get() != State::Open || !self.shared.has_room(text.len()) {
            return Err(Full);
        }
        self.shared.push_text(text);
        Ok(())
    }

    /// Queues a text frame, waiting for room (paced by the socket).
    pub async fn send(&self, text: String) -> Result<(), Closed> {
        let mut text = Some(text);
        poll_fn(|cx| {
            if self.shared.state.get() != State::Open {
                return Poll::Ready(Err(Closed));
            }
            let len = text.as_ref().map_or(0, String::len);
            if self.shared.has_room(len) {
                self.shared
                    .push_text(text.take().expect("send polled after completion"));
                return Poll::Ready(Ok(()));
            }
            self.shared
                .room_wakers
                .borrow_mut()
                .push(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    /// Queues a Close frame after what is queued; the writer then shuts the socket
    /// (within `WS_CLOSE_LINGER_MS` whatever the peer does). Idempotent.
    pub fn close(&self, code: u16, reason: &str) {
        self.shared.close(code, reason);
    }

    /// True once no more frames are accepted (closing, closed, or the socket failed).
    pub fn is_closed(&self) -> bool {
        self.shared.state.get() != State::Open
    }

    /// Frames queued and not yet handed to the socket.
    pub fn queued(&self) -> usize {
        self.shared.queue.borrow().len()
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        close_if_last_handle(&self.shared);
    }
}

/// The writer task: drains the queue in batches (several frames, one flush),
/// until a Close frame is written, the state turns `Closed`, or the socket fails;
/// then flushes what tungstenite holds (e.g. the reply to the peer's Close) and
/// shuts the socket. From the moment closing starts, at most `WS_CLOSE_LINGER_MS`.
async fn write_loop(shared: Rc<Shared>) {
    let work = async {
        if drain(&shared).await.is_ok() {
            let _ = flush(&shared).await;
            let _ = poll_fn(|cx| {
                let mut stream = shared.stream.borrow_mut();
                Pin::new(stream.get_mut()).poll_close(cx)
            })
            .await;
        }
    };
    let deadline = async {
        poll_fn(|cx| {
            if shared.state.get() == State::Open {
                *shared.writer_waker.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })
        .await;
        glommio::timer::sleep(Duration::from_millis(WS_CLOSE_LINGER_MS)).await;
    };
    futures_lite::future::or(work, deadline).await;
    shared.abort();
    shared.stream.borrow().get_ref().shutdown_now();
}

/// Writes queued frames until a Close frame went out or the state is `Closed`.
async fn drain(shared: &Shared) -> Result<(), tungstenite::Error> {
    loop {
        let ready = poll_fn(|cx| {
            if !shared.queue.borrow().is_empty() {
                return Poll::Ready(true);
            }
            if shared.state.get() == State::Closed {
                return Poll::Ready(false);
            }
            *shared.writer_waker.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        })
        .await;
        if !ready {
            return Ok(());
        }
        let mut written = 0;
        while written < WS_WRITE_BATCH_FRAMES_MAX {
            let Some(item) = shared.pop() else { break };
            written += 1;
            match item {
                Outgoing::Text(text) => feed(shared, Message::Text(text.into())).await?,
                Outgoing::Close(code, reason) => {
                    let frame = CloseFrame {
                        code: CloseCode::from(code),
                        reason: reason.into(),
                    };
                    feed(shared, Message::Close(Some(frame))).await?;
                    flush(shared).await?;
                    return Ok(());
                }
            }
        }
        flush(shared).await?;
    }
}

async fn feed(shared: &Shared, message: Message) -> Result<(), tungstenite::Error> {
    poll_fn(|cx| Pin::new(&mut *shared.stream.borrow_mut()).poll_ready(cx)).await?;
    Pin::new(&mut *shared.stream.borrow_mut()).start_send(message)
}

async fn flush(shared: &Shared) -> Result<(), tungstenite::Error> {
    poll_fn(|cx| Pin::new(&mut *shared.stream.borrow_mut()).poll_flush(cx)).await
}
