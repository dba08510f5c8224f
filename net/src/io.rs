//! Byte streams of one connection: `Conn` (a glommio TCP stream, plain or
//! under TLS) and `HyperIo`, the adapter from futures-io to `hyper::rt`.
//!
//! Lives on: the core that accepted the connection; never crosses cores.

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_lite::io::{AsyncRead, AsyncWrite};
use glommio::net::TcpStream;

/// hyper reads at most this many bytes per call, which bounds the zeroing of
/// its uninitialised buffer in `HyperIo::poll_read`.
const HYPER_READ_CHUNK_BYTES_MAX: usize = 16 * 1024;

/// The socket of one accepted connection, plain or TLS. futures-io `AsyncRead` + `AsyncWrite`.
pub enum Conn {
    Plain(TcpStream),
    /// Boxed: the rustls state is large and would bloat every plain connection.
    Tls(Box<futures_rustls::server::TlsStream<TcpStream>>),
}

impl Conn {
    pub fn is_tls(&self) -> bool {
        matches!(self, Conn::Tls(_))
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    /// Plain: shuts down the write half. TLS: sends close_notify, then the same.
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_close(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_close(cx),
        }
    }
}

/// Adapts a futures-io stream to hyper's `rt::Read` / `rt::Write`.
pub struct HyperIo<T> {
    inner: T,
}

impl<T> HyperIo<T> {
    pub fn new(inner: T) -> Self {
        Self { inner }
    }

    pub fn into_inner(self) -> T {
        self.inner
    }
}

impl<T: AsyncRead + Unpin> hyper::rt::Read for HyperIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        // SAFETY: we only write to the slice (zeroing it first, so it is initialised
        // before it is viewed as `[u8]`), and advance by what was read into it.
        let uninit = unsafe { buf.as_mut() };
        let len = uninit.len().min(HYPER_READ_CHUNK_BYTES_MAX);
        let uninit = &mut uninit[..len];
        uninit.fill(MaybeUninit::new(0));
        // SAFETY: every byte of `uninit` was initialised just above.
        let slice = unsafe { &mut *(uninit as *mut [MaybeUninit<u8>] as *mut [u8]) };
        match Pin::new(&mut self.get_mut().inner).poll_read(cx, slice) {
            Poll::Ready(Ok(n)) => {
                assert!(n <= len);
                // SAFETY: `n` bytes were written by the read.
                unsafe { buf.advance(n) };
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncWrite + Unpin> hyper::rt::Write for HyperIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }
}

impl Conn {
    /// Shuts the socket down now (both directions), without waiting: pending
    /// reads end with EOF, writes fail. The fd itself closes on drop.
    pub fn shutdown_now(&self) {
        use std::os::fd::AsRawFd;
        let fd = match self {
            Conn::Plain(s) => s.as_raw_fd(),
            Conn::Tls(s) => s.get_ref().0.as_raw_fd(),
        };
        // SAFETY: `fd` is the open socket owned by `self`; shutdown does not close it.
        // An error (e.g. ENOTCONN after the peer left) leaves nothing to do.
        let _ = unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
    }
}
