//! Peer links: one outbound TCP connection per (core, peer node), which
//! carries this core's frames to that node; inbound connections from
//! peers are accepted on every core (one port, SO_REUSEPORT) and their
//! frames routed to the core that owns each group.
//!
//! Every frame is length-prefixed, versioned and CRC'd
//! (`chat_replication::frame`); the first on a link is a hello naming
//! the cluster and the sender. Queues are bounded: when a peer is slow or
//! down, Raft messages over the bound are dropped (Raft resends) and the
//! peer is reported unreachable. Reconnects back off up to a second.
//! A bad frame closes the link, never panics.
//!
//! Lives on: the core that made it.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::Duration;

use chat_replication::{decode_frame, encode_frame, Frame, NodeId};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use tracing::{debug, info, warn};

use crate::constants::LINK_QUEUE_BYTES_MAX;

/// Bytes written to a socket at once.
pub const LINK_WRITE_BYTES_MAX: usize = 1024 * 1024;
pub const RECONNECT_MIN_MS: u64 = 20;
pub const RECONNECT_MAX_MS: u64 = 1000;
/// A peer that sends no hello within this is dropped.
pub const HELLO_TIMEOUT_MS: u64 = 5000;
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// This core's link to one peer node.
pub struct Link {
    pub to: NodeId,
    addr: String,
    hello: Vec<u8>,
    queue: RefCell<VecDeque<Vec<u8>>>,
    queued: Cell<usize>,
    waker: RefCell<Option<Waker>>,
    up: Cell<bool>,
    pub dropped: Cell<u64>,
}

impl Link {
    pub fn new(to: NodeId, addr: String, hello: &Frame) -> Rc<Link> {
        let mut bytes = Vec::new();
        encode_frame(hello, &mut bytes);
        Rc::new(Link {
            to,
            addr,
            hello: bytes,
            queue: RefCell::new(VecDeque::new()),
            queued: Cell::new(0),
            waker: RefCell::new(None),
            up: Cell::new(false),
            dropped: Cell::new(0),
        })
    }

    pub fn is_up(&self) -> bool {
        self.up.get()
    }

    /// Queues `frame`; false when it was dropped (peer down or too slow).
    pub fn send(&self, frame: &Frame) -> bool {
        if !self.up.get() {
            self.dropped.set(self.dropped.get() + 1);
            return false;
        }
        let mut bytes = Vec::new();
        encode_frame(frame, &mut bytes);
        if self.queued.get() + bytes.len() > LINK_QUEUE_BYTES_MAX {
            self.dropped.set(self.dropped.get() + 1);
            return false;
        }
        self.queued.set(self.queued.get() + bytes.len());
        self.queue.borrow_mut().push_back(bytes);
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
        true
    }

    /// Connects, says hello, writes what is queued; reconnects for ever.
    /// `down` is called whenever the link goes down.
    pub async fn run(self: Rc<Self>, down: impl Fn(NodeId)) {
        let mut backoff = RECONNECT_MIN_MS;
        loop {
            match self.connect().await {
                Ok(mut stream) => {
                    backoff = RECONNECT_MIN_MS;
                    self.up.set(true);
                    info!(peer = self.to.0, addr = %self.addr, "peer link up");
                    let e = self.write_loop(&mut stream).await;
                    debug!(peer = self.to.0, error = %e, "peer link down");
                }
                Err(e) => debug!(peer = self.to.0, error = %e, "peer connect failed"),
            }
            if self.up.replace(false) {
                warn!(peer = self.to.0, "peer link lost; reconnecting");
            }
            self.queue.borrow_mut().clear();
            self.queued.set(0);
            down(self.to);
            glommio::timer::sleep(Duration::from_millis(backoff)).await;
            backoff = (backoff * 2).min(RECONNECT_MAX_MS);
        }
    }

    async fn connect(&self) -> std::io::Result<TcpStream> {
        use std::net::ToSocketAddrs;
        let addr = self
            .addr
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| std::io::Error::other("no address"))?;
        let mut s = TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        s.write_all(&self.hello).await?;
        Ok(s)
    }

    async fn write_loop(&self, stream: &mut TcpStream) -> std::io::Error {
        let mut buf = Vec::with_capacity(LINK_WRITE_BYTES_MAX);
        loop {
            poll_fn(|cx| {
                if self.queue.borrow().is_empty() {
                    *self.waker.borrow_mut() = Some(cx.waker().clone());
                    Poll::Pending
                } else {
                    Poll::Ready(())
                }
            })
            .await;
            buf.clear();
            {
                let mut q = self.queue.borrow_mut();
                while let Some(front) = q.front() {
                    if !buf.is_empty() && buf.len() + front.len() > LINK_WRITE_BYTES_MAX {
                        break;
                    }
                    let f = q.pop_front().expect("front exists");
                    buf.extend_from_slice(&f);
                }
            }
            self.queued.set(self.queued.get().saturating_sub(buf.len()));
            if let Err(e) = stream.write_all(&buf).await {
                return e;
            }
        }
    }
}

/// Reads one inbound peer connection: the hello (checked by `accept`),
/// then frames handed to `on_frame` with the sender's node id, until the
/// peer closes or sends a bad frame.
pub async fn read_peer(
    mut stream: TcpStream,
    accept: impl Fn(u64, NodeId) -> bool,
    on_frame: impl Fn(NodeId, Frame),
) {
    let mut buf: Vec<u8> = Vec::with_capacity(READ_CHUNK_BYTES);
    let mut chunk = vec![0u8; READ_CHUNK_BYTES];
    let mut from: Option<NodeId> = None;
    // A peer that says nothing is dropped; once it said hello, silence is
    // fine (an idle link between heartbeats).
    let _ = stream.set_read_timeout(Some(Duration::from_millis(HELLO_TIMEOUT_MS)));
    loop {
        loop {
            match decode_frame(&buf) {
                Ok(Some((frame, used))) => {
                    buf.drain(..used);
                    match (from, frame) {
                        (None, Frame::Hello { cluster, node, .. }) if accept(cluster, node) => {
                            from = Some(node);
                            let _ = stream.set_read_timeout(None);
                        }
                        (None, _) => {
                            warn!("peer link refused: bad hello");
                            return;
                        }
                        (Some(node), Frame::Hello { .. }) => {
                            warn!(peer = node.0, "second hello on a link: closed");
                            return;
                        }
                        (Some(node), frame) => on_frame(node, frame),
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    warn!(error = %e, "bad frame from a peer: link closed");
                    return;
                }
            }
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}
