//! One client connection: TCP (bound to a chosen source address when asked),
//! TLS when the URL says so (futures-rustls), then the WebSocket upgrade
//! (async-tungstenite), all on the worker's glommio executor.
//!
//! Lives on: one worker executor.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{FromRawFd, IntoRawFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_tungstenite::WebSocketStream;
use futures_lite::{AsyncRead, AsyncWrite};
use futures_rustls::client::TlsStream;
use futures_rustls::TlsConnector;
use glommio::net::TcpStream;
use rustls::pki_types::ServerName;
use tungstenite::protocol::WebSocketConfig;

use super::config::ServerAddr;
use super::constants::IO_TIMEOUT;

pub type Ws = WebSocketStream<Stream>;

/// A TCP stream, maybe inside TLS.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_close(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_close(cx),
        }
    }
}

/// `fut`, or `None` after `limit`.
pub async fn within<T>(limit: Duration, fut: impl Future<Output = T>) -> Option<T> {
    futures_lite::future::or(async { Some(fut.await) }, async {
        glommio::timer::sleep(limit).await;
        None
    })
    .await
}

/// How to reach the server (or each node of a cluster): address, TLS, path.
///
/// Lives on: one worker executor (cloned into each connection task).
#[derive(Clone)]
pub struct Dialer {
    /// One per node of `--url`; never empty.
    pub servers: Vec<ServerAddr>,
    pub tls: Option<TlsConnector>,
    /// WebSocket subprotocol to ask for (XMPP: "xmpp").
    pub subprotocol: Option<&'static str>,
}

impl Dialer {
    pub fn new(
        servers: Vec<ServerAddr>,
        tls: Option<Arc<rustls::ClientConfig>>,
        subprotocol: Option<&'static str>,
    ) -> Dialer {
        assert!(!servers.is_empty(), "a dialer needs a server");
        Dialer {
            servers,
            tls: tls.map(TlsConnector::from),
            subprotocol,
        }
    }

    /// TCP connect from `source` to node `node` (mod the node count), TLS,
    /// WebSocket upgrade.
    pub async fn connect(&self, source: Option<IpAddr>, node: usize) -> Result<Ws, String> {
        let server = &self.servers[node % self.servers.len()];
        let tcp = tcp_connect(server.addr, source).await?;
        tcp.set_nodelay(true)
            .map_err(|e| format!("TCP_NODELAY: {e}"))?;
        let stream = match &self.tls {
            None => Stream::Plain(tcp),
            Some(connector) => {
                let name = ServerName::try_from(server.host.clone())
                    .map_err(|e| format!("TLS name {}: {e}", server.host))?;
                let tls = within(IO_TIMEOUT, connector.connect(name, tcp))
                    .await
                    .ok_or("TLS handshake timed out")?
                    .map_err(|e| format!("TLS handshake: {e}"))?;
                Stream::Tls(Box::new(tls))
            }
        };
        let scheme = if self.tls.is_some() { "wss" } else { "ws" };
        let url = format!("{scheme}://{}{}", server.host_port, server.ws_path);
        let mut request = tungstenite::client::IntoClientRequest::into_client_request(url)
            .map_err(|e| format!("WebSocket request: {e}"))?;
        if let Some(p) = self.subprotocol {
            request.headers_mut().insert(
                "Sec-WebSocket-Protocol",
                tungstenite::http::HeaderValue::from_static(p),
            );
        }
        let config = WebSocketConfig::default().read_buffer_size(8 * 1024);
        let upgrade = async_tungstenite::client_async_with_config(request, stream, Some(config));
        let (ws, _response) = within(IO_TIMEOUT, upgrade)
            .await
            .ok_or("WebSocket upgrade timed out")?
            .map_err(|e| format!("WebSocket upgrade: {e}"))?;
        Ok(ws)
    }
}

/// A TCP connection to `addr`, bound to `source` when given.
async fn tcp_connect(addr: SocketAddr, source: Option<IpAddr>) -> Result<TcpStream, String> {
    let Some(ip) = source else {
        return TcpStream::connect_timeout(addr, IO_TIMEOUT)
            .await
            .map_err(|e| format!("connect {addr}: {e}"));
    };
    use socket2::{Domain, Protocol, SockAddr, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .map_err(|e| format!("socket: {e}"))?;
    // Many sockets per source address: let the kernel pick ports at connect.
    set_bind_address_no_port(&socket)?;
    socket
        .bind(&SockAddr::from(SocketAddr::new(ip, 0)))
        .map_err(|e| format!("bind {ip}: {e}"))?;
    // Blocking, but on loopback with the server's deep backlog it returns at
    // once; glommio has no connect for a pre-bound socket.
    socket
        .connect_timeout(&SockAddr::from(addr), IO_TIMEOUT)
        .map_err(|e| format!("connect {addr} from {ip}: {e}"))?;
    socket
        .set_nonblocking(true)
        .map_err(|e| format!("nonblocking: {e}"))?;
    // SAFETY: the fd is a connected TCP socket that we own; glommio takes it.
    Ok(unsafe { TcpStream::from_raw_fd(socket.into_raw_fd()) })
}

/// IP_BIND_ADDRESS_NO_PORT: the port is chosen at connect, per destination,
/// so one source address serves far more than 28k sockets across targets.
fn set_bind_address_no_port(socket: &socket2::Socket) -> Result<(), String> {
    use std::os::fd::AsRawFd;
    let one: libc::c_int = 1;
    // SAFETY: a valid socket fd and a c_int option value of the right size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(format!(
            "IP_BIND_ADDRESS_NO_PORT: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}
