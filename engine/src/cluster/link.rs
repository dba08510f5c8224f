//! Peer links: one outbound TCP connection per (core, peer node), which
//! carries this core's frames to that node; inbound connections from
//! peers are accepted on every core (one port, SO_REUSEPORT) and their
//! frames routed to the core that owns each group.
//!
//! Every frame is length-prefixed, versioned and CRC'd
//! (`chat_replication::frame`); the first on a link is a hello naming
//! the cluster and the sender, and the accepting node answers it with its
//! own hello. A link is up once that answer came and names the node it
//! dialed in the same cluster: a connection that something accepts and
//! drops (a proxy, a load balancer, a peer that refuses the hello) is no
//! link, and a `--peers` entry that reaches the wrong node is found at
//! once. Queues are bounded: when a peer is slow or
//! down, Raft messages over the bound are dropped (Raft resends) and the
//! peer is reported unreachable. Reconnects back off up to a second.
//! A bad frame closes the link, never panics. With `--peer-tls-*` every
//! link is mutual TLS 1.3 (`chat_net::peer_tls`); a peer whose handshake
//! and hello (both ways) do not complete within `HELLO_TIMEOUT_MS` is
//! dropped.
//!
//! Lives on: the core that made it.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::Duration;

use std::sync::Arc;

use chat_replication::{decode_frame, encode_frame, Frame, NodeId};
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use glommio::net::TcpStream;
use tracing::{debug, info, warn};

use crate::constants::LINK_QUEUE_BYTES_MAX;

/// Bytes written to a socket at once.
pub const LINK_WRITE_BYTES_MAX: usize = 1024 * 1024;
pub const RECONNECT_MIN_MS: u64 = 20;
pub const RECONNECT_MAX_MS: u64 = 1000;
/// A peer that sends (or, dialed, answers) no hello within this is dropped.
pub const HELLO_TIMEOUT_MS: u64 = 5000;
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// This core's link to one peer node.
pub struct Link {
    pub to: NodeId,
    addr: String,
    hello: Vec<u8>,
    /// The cluster a peer's answering hello must name.
    cluster: u64,
    queue: RefCell<VecDeque<Vec<u8>>>,
    queued: Cell<usize>,
    waker: RefCell<Option<Waker>>,
    up: Cell<bool>,
    pub dropped: Cell<u64>,
    /// Mutual TLS (`None`: plain TCP).
    tls: Option<Arc<rustls::ClientConfig>>,
}

/// A peer link's byte stream, plain or TLS (boxed: one per link, and the
/// rustls state is large). Both ends read and write: the hellos go both
/// ways, then the frames one way.
trait Duplex: AsyncRead + AsyncWrite + Unpin {}
impl<T: AsyncRead + AsyncWrite + Unpin> Duplex for T {}
type Stream = Box<dyn Duplex>;

impl Link {
    pub fn new(
        to: NodeId,
        addr: String,
        hello: &Frame,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Rc<Link> {
        let mut bytes = Vec::new();
        encode_frame(hello, &mut bytes);
        let Frame::Hello { cluster, .. } = hello else {
            panic!("a link opens with a hello");
        };
        Rc::new(Link {
            to,
            addr,
            hello: bytes,
            cluster: *cluster,
            queue: RefCell::new(VecDeque::new()),
            queued: Cell::new(0),
            waker: RefCell::new(None),
            up: Cell::new(false),
            dropped: Cell::new(0),
            tls,
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

    /// Connects and exchanges hellos, bounded by `HELLO_TIMEOUT_MS`.
    async fn connect(&self) -> std::io::Result<Stream> {
        let timeout = async {
            glommio::timer::sleep(Duration::from_millis(HELLO_TIMEOUT_MS)).await;
            Err(std::io::Error::other("no hello answered in time"))
        };
        futures_lite::future::or(self.dial(), timeout).await
    }

    async fn dial(&self) -> std::io::Result<Stream> {
        use std::net::ToSocketAddrs;
        let addr = self
            .addr
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| std::io::Error::other("no address"))?;
        let s = TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        let mut s: Stream = match &self.tls {
            None => Box::new(s),
            Some(config) => {
                let name =
                    chat_net::peer_tls::server_name(&self.addr).map_err(std::io::Error::other)?;
                let connector = futures_rustls::TlsConnector::from(config.clone());
                Box::new(connector.connect(name, s).await?)
            }
        };
        s.write_all(&self.hello).await?;
        s.flush().await?;
        let mut buf = Vec::new();
        let accept = |cluster: u64, node: NodeId| cluster == self.cluster && node == self.to;
        match read_hello(&mut s, &mut buf, &accept).await {
            Some(_) if buf.is_empty() => Ok(s),
            Some(_) => Err(std::io::Error::other("frames after the answering hello")),
            None => Err(std::io::Error::other(format!(
                "{} answered no hello from node {} of this cluster",
                self.addr, self.to.0
            ))),
        }
    }

    async fn write_loop(&self, stream: &mut Stream) -> std::io::Error {
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
            if let Err(e) = stream.flush().await {
                return e;
            }
        }
    }
}

/// Reads one inbound peer connection: the TLS handshake (when `tls`),
/// the hello (checked by `accept`, answered with `answer`: this node's
/// own hello), then frames handed to `on_frame` with the sender's node
/// id, until the peer closes or sends a bad frame.
pub async fn read_peer(
    stream: TcpStream,
    tls: Option<Arc<rustls::ServerConfig>>,
    answer: &[u8],
    accept: impl Fn(u64, NodeId) -> bool,
    on_frame: impl Fn(NodeId, Frame),
) -> Inbound {
    // A peer that says nothing is dropped; once it said hello, silence is
    // fine (an idle link between heartbeats).
    let opened = async {
        let mut s: Stream = match tls {
            None => Box::new(stream),
            Some(config) => {
                let acceptor = futures_rustls::TlsAcceptor::from(config);
                match acceptor.accept(stream).await {
                    Ok(s) => Box::new(s),
                    Err(e) => {
                        warn!(error = %e, "peer TLS handshake failed: link refused");
                        return None;
                    }
                }
            }
        };
        let mut buf = Vec::with_capacity(READ_CHUNK_BYTES);
        let node = read_hello(&mut s, &mut buf, &accept).await?;
        s.write_all(answer).await.ok()?;
        s.flush().await.ok()?;
        Some((s, buf, node))
    };
    let timeout = async {
        glommio::timer::sleep(Duration::from_millis(HELLO_TIMEOUT_MS)).await;
        warn!("peer said no hello in time: link closed");
        None
    };
    let Some((mut s, mut buf, from)) = futures_lite::future::or(opened, timeout).await else {
        return Inbound::Refused;
    };
    let mut chunk = vec![0u8; READ_CHUNK_BYTES];
    loop {
        loop {
            match decode_frame(&buf) {
                Ok(Some((Frame::Hello { .. }, _))) => {
                    warn!(peer = from.0, "second hello on a link: closed");
                    return Inbound::Closed;
                }
                Ok(Some((frame, used))) => {
                    buf.drain(..used);
                    on_frame(from, frame);
                }
                Ok(None) => break,
                Err(e) => {
                    warn!(peer = from.0, error = %e, "bad frame from a peer: link closed");
                    return Inbound::Closed;
                }
            }
        }
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return Inbound::Closed,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// How an inbound connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inbound {
    /// It never became a peer link: no TLS handshake, no accepted hello,
    /// or silence past `HELLO_TIMEOUT_MS`.
    Refused,
    /// A peer link that closed (the peer went away or sent a bad frame).
    Closed,
}

/// Reads until the first frame, which must be an accepted hello; answers
/// its node (what follows it stays in `buf`).
async fn read_hello(
    s: &mut Stream,
    buf: &mut Vec<u8>,
    accept: &impl Fn(u64, NodeId) -> bool,
) -> Option<NodeId> {
    let mut chunk = vec![0u8; READ_CHUNK_BYTES];
    loop {
        match decode_frame(buf) {
            Ok(Some((Frame::Hello { cluster, node, .. }, used))) if accept(cluster, node) => {
                buf.drain(..used);
                return Some(node);
            }
            Ok(Some(_)) => {
                warn!("peer link refused: bad hello");
                return None;
            }
            Ok(None) => {}
            Err(e) => {
                warn!(error = %e, "bad first frame from a peer: link closed");
                return None;
            }
        }
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}
