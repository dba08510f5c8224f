//! HTTP/1.1 serving with hyper on glommio: the accept loop (`serve`), one task
//! per connection (TLS handshake, hyper, the WebSocket upgrade on `GET /v1/ws`),
//! request bodies read under a size limit, and the `Handler` the engine implements.
//!
//! Lives on: every core runs its own `serve` over its own listener; each
//! connection stays on the core that accepted it, WebSocket included.

use std::cell::{Cell, RefCell};
use std::convert::Infallible;
use std::future::{poll_fn, Future};
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_lite::future::or;
use futures_lite::io::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::server::conn::http1;
use hyper::{Method, StatusCode};

use crate::body::{OutBody, Streamed, Upload};
use crate::constants::{
    ACCEPT_ERROR_BACKOFF_MS, HTTP_BODY_BYTES_MAX, HTTP_HEADER_READ_TIMEOUT_MS,
    HTTP_LINGER_BYTES_MAX, HTTP_LINGER_MS, HTTP_LINGER_READ_BYTES, HTTP_MEDIA_BODY_BYTES_MAX,
    HTTP_MEDIA_PATH_PREFIX, HTTP_READ_BUFFER_BYTES_MAX, TLS_HANDSHAKE_TIMEOUT_MS, WS_PATH,
};
use crate::io::{Conn, HyperIo};
use crate::stop::StopSignal;
use crate::timer::GlommioTimer;
use crate::ws::WebSocket;

/// One HTTP request, body read in full (at most `HTTP_BODY_BYTES_MAX`),
/// except for `POST /v1/media`, whose body is left to the handler
/// (`upload`; `body` is then empty).
#[derive(Debug)]
pub struct Request {
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    /// From `Authorization: Bearer X`.
    pub bearer: Option<String>,
    pub content_type: Option<String>,
    pub body: Bytes,
    /// `POST /v1/media`: the body, to be read as it arrives (taken once).
    pub upload: RefCell<Option<Upload>>,
    /// Headers a handler may need beyond the ones above (`Range`,
    /// `If-None-Match`), lowercase names.
    pub headers: hyper::HeaderMap,
    pub peer: SocketAddr,
}

impl Request {
    /// A header's value, if present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// One HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    /// Sent as `Content-Type` unless empty.
    pub content_type: &'static str,
    pub body: Vec<u8>,
    /// Extra headers; names that are not valid header names are skipped.
    pub headers: Vec<(&'static str, String)>,
    /// `Some`: the body is streamed from here (and `body` is ignored).
    pub stream: Option<Streamed>,
}

impl Response {
    /// A JSON response.
    pub fn json(status: u16, body: Vec<u8>) -> Self {
        Self {
            status,
            content_type: "application/json",
            body,
            headers: Vec::new(),
            stream: None,
        }
    }

    /// `{"error":{"code":CODE,"message":TEXT}}` with `status` (PROTOCOL.md error shape).
    pub fn error(status: u16, code: &str, message: &str) -> Self {
        let body = serde_json::json!({ "error": { "code": code, "message": message } });
        Self::json(status, body.to_string().into_bytes())
    }
}

/// What happened to a connection, for the engine's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionEvent {
    /// Accepted and served (TLS handshake not yet done).
    Opened,
    /// A served connection ended (after `Opened`, exactly once).
    Closed,
    /// Accepted and closed at once: `connections_max` connections were open.
    Rejected,
    /// The TLS handshake failed or timed out (`Closed` follows).
    TlsHandshakeFailed,
}

/// The engine's side of the HTTP server. Futures need not be `Send`.
pub trait Handler: 'static {
    /// Any request except the WebSocket upgrade on `GET /v1/ws`.
    fn request(&self, req: Request) -> impl Future<Output = Response>;

    /// Runs the WebSocket session of one connection, on the connection's own task.
    /// The connection ends when this future does.
    fn websocket(
        &self,
        ws: WebSocket,
        bearer: Option<String>,
        peer: SocketAddr,
    ) -> impl Future<Output = ()>;

    /// Counts connections; the default ignores them.
    fn connection_event(&self, event: ConnectionEvent) {
        let _ = event;
    }
}

/// How one core serves its listener.
#[derive(Clone)]
pub struct ServeConfig {
    /// `Some`: every connection starts with a TLS handshake.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Open connections on this core above which new ones are closed at once.
    pub connections_max: usize,
}

/// Accepts connections on `listener` until `stop` fires, one detached task each.
/// Returns when the accept loop ends; on `stop`, idle HTTP connections end
/// gracefully, WebSocket sessions are the engine's to close.
pub async fn serve<H: Handler>(
    listener: TcpListener,
    config: ServeConfig,
    handler: Rc<H>,
    stop: StopSignal,
) {
    let open = Rc::new(Cell::new(0usize));
    let mut stopped = pin!(stop.wait());
    loop {
        let accepted = or(async { Some(listener.accept().await) }, async {
            stopped.as_mut().await;
            None
        })
        .await;
        let stream = match accepted {
            None => break,
            Some(Ok(stream)) => stream,
            Some(Err(_)) => {
                // EMFILE, ENOBUFS, a connection reset while queued: back off a little.
                glommio::timer::sleep(Duration::from_millis(ACCEPT_ERROR_BACKOFF_MS)).await;
                continue;
            }
        };
        if open.get() >= config.connections_max {
            handler.connection_event(ConnectionEvent::Rejected);
            drop(stream);
            continue;
        }
        let Ok(peer) = stream.peer_addr() else {
            continue; // the peer already left
        };
        let _ = stream.set_nodelay(true);
        let guard = OpenGuard::new(open.clone(), handler.clone());
        let task = connection(
            stream,
            peer,
            config.tls.clone(),
            handler.clone(),
            stop.clone(),
            guard,
        );
        glommio::spawn_local(task).detach();
    }
}

/// Counts one open connection from accept to the end of its task.
struct OpenGuard<H: Handler> {
    open: Rc<Cell<usize>>,
    handler: Rc<H>,
}

impl<H: Handler> OpenGuard<H> {
    fn new(open: Rc<Cell<usize>>, handler: Rc<H>) -> Self {
        open.set(open.get() + 1);
        handler.connection_event(ConnectionEvent::Opened);
        Self { open, handler }
    }
}

impl<H: Handler> Drop for OpenGuard<H> {
    fn drop(&mut self) {
        assert!(self.open.get() > 0);
        self.open.set(self.open.get() - 1);
        self.handler.connection_event(ConnectionEvent::Closed);
    }
}

/// One connection: TLS, HTTP/1.1 with keep-alive, then maybe a WebSocket session.
async fn connection<H: Handler>(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<Arc<rustls::ServerConfig>>,
    handler: Rc<H>,
    stop: StopSignal,
    _open: OpenGuard<H>,
) {
    let conn = match tls {
        None => Conn::Plain(stream),
        Some(tls) => {
            // Boxed for the same reason as `serve_http` below.
            let handshake = Box::pin(futures_rustls::TlsAcceptor::from(tls).accept(stream));
            let timeout = async {
                glommio::timer::sleep(Duration::from_millis(TLS_HANDSHAKE_TIMEOUT_MS)).await;
                None
            };
            match or(async { Some(handshake.await) }, timeout).await {
                Some(Ok(stream)) => Conn::Tls(Box::new(stream)),
                Some(Err(_)) | None => {
                    handler.connection_event(ConnectionEvent::TlsHandshakeFailed);
                    return;
                }
            }
        }
    };

    // Boxed: hyper's state is large and lives only until the upgrade; inline it
    // would be part of every idle WebSocket's task.
    let Some(end) = Box::pin(serve_http(conn, peer, &handler, &stop)).await else {
        return; // an HTTP error: dropping the socket closes it
    };
    match end {
        HttpEnd::Upgrade {
            conn,
            read_ahead,
            bearer,
        } => {
            let ws = WebSocket::from_upgraded(conn, read_ahead, peer).await;
            handler.websocket(ws, bearer, peer).await;
        }
        HttpEnd::Done(conn) => linger_close(conn).await,
    }
}

/// How the HTTP phase of a connection ended.
enum HttpEnd {
    /// The last request was answered and the connection is to be closed.
    Done(Conn),
    /// A WebSocket upgrade was answered with 101.
    Upgrade {
        conn: Conn,
        /// Bytes the client sent after the upgrade request, already read by hyper.
        read_ahead: Bytes,
        bearer: Option<String>,
    },
}

/// Runs hyper over `conn` until the connection ends or upgrades; on `stop`, an
/// idle connection ends gracefully. `None` on an HTTP or I/O error. Returns
/// hyper's state dropped, so none of it stays with a WebSocket session.
async fn serve_http<H: Handler>(
    conn: Conn,
    peer: SocketAddr,
    handler: &Rc<H>,
    stop: &StopSignal,
) -> Option<HttpEnd> {
    let upgrade = Rc::new(RefCell::new(None));
    let service = Service {
        handler: handler.clone(),
        peer,
        upgrade: upgrade.clone(),
    };
    let mut http = http1::Builder::new();
    // A request head must arrive whole within the timeout (a client that
    // sends half a header is closed, not kept).
    http.timer(GlommioTimer)
        .header_read_timeout(Duration::from_millis(HTTP_HEADER_READ_TIMEOUT_MS))
        .keep_alive(true)
        .max_buf_size(HTTP_READ_BUFFER_BYTES_MAX);
    let mut served = http.serve_connection(HyperIo::new(conn), service);
    let mut stopped = pin!(stop.wait());
    let mut stopping = false;
    poll_fn(|cx| {
        if !stopping && stopped.as_mut().poll(cx).is_ready() {
            stopping = true;
            Pin::new(&mut served).graceful_shutdown();
        }
        served.poll_without_shutdown(cx)
    })
    .await
    .ok()?;
    let http1::Parts { io, read_buf, .. } = served.into_parts();
    let conn = io.into_inner();
    let bearer = upgrade.borrow_mut().take();
    Some(match bearer {
        Some(bearer) => HttpEnd::Upgrade {
            conn,
            read_ahead: read_buf,
            bearer,
        },
        None => HttpEnd::Done(conn),
    })
}

/// Ends an HTTP connection: FIN first, then read and discard what the client still
/// sends (e.g. the rest of a body refused with 413), so that closing does not reset
/// the connection before the client has read the last answer ("lingering close").
async fn linger_close(mut conn: Conn) {
    if conn.close().await.is_err() {
        return;
    }
    let drain = async {
        let mut buf = vec![0u8; HTTP_LINGER_READ_BYTES]; // heap: keeps the task small
        let mut total = 0;
        while total < HTTP_LINGER_BYTES_MAX {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    };
    or(
        drain,
        glommio::timer::sleep(Duration::from_millis(HTTP_LINGER_MS)),
    )
    .await;
}

/// hyper's service for one connection.
struct Service<H: Handler> {
    handler: Rc<H>,
    peer: SocketAddr,
    /// Set when a WebSocket upgrade was answered with 101: the bearer token, if any.
    upgrade: Rc<RefCell<Option<Option<String>>>>,
}

type HyperResponse = hyper::Response<OutBody>;

impl<H: Handler> hyper::service::Service<hyper::Request<Incoming>> for Service<H> {
    type Response = HyperResponse;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<HyperResponse, Infallible>>>>;

    fn call(&self, req: hyper::Request<Incoming>) -> Self::Future {
        if req.uri().path() == WS_PATH && req.method() == Method::GET {
            let response = match websocket_accept_key(&req) {
                Some(accept) => {
                    *self.upgrade.borrow_mut() = Some(bearer(&req));
                    switching_protocols(&accept)
                }
                None => to_hyper(Response::error(
                    400,
                    "bad_request",
                    "GET /v1/ws needs a WebSocket upgrade (Upgrade: websocket, Sec-WebSocket-Key, Sec-WebSocket-Version: 13)",
                )),
            };
            return Box::pin(async move { Ok(response) });
        }
        let handler = self.handler.clone();
        let peer = self.peer;
        Box::pin(async move {
            let response = match read_request(req, peer).await {
                Ok(request) => handler.request(request).await,
                Err(response) => response,
            };
            Ok(to_hyper(response))
        })
    }
}

/// Reads the request body under its limit; the `Err` is the answer to send instead.
async fn read_request(
    req: hyper::Request<Incoming>,
    peer: SocketAddr,
) -> Result<Request, Response> {
    let (head, body) = req.into_parts();
    let path = head.uri.path().to_string();
    let media = path.starts_with(HTTP_MEDIA_PATH_PREFIX);
    let body_bytes_max = if media {
        HTTP_MEDIA_BODY_BYTES_MAX
    } else {
        HTTP_BODY_BYTES_MAX
    };
    let content_length = head
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if content_length.is_some_and(|len| len > body_bytes_max as u64) {
        return Err(too_large(body_bytes_max));
    }
    let (body, upload) = if media && head.method == Method::POST {
        let upload = Upload::new(body, body_bytes_max, content_length);
        (Bytes::new(), Some(upload))
    } else {
        let hint = content_length.unwrap_or(0) as usize;
        (read_body(body, body_bytes_max, hint).await?, None)
    };
    assert!(body.len() <= body_bytes_max);
    Ok(Request {
        method: head.method,
        query: head.uri.query().map(str::to_string),
        bearer: bearer_of(&head.headers),
        content_type: head
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        path,
        body,
        upload: RefCell::new(upload),
        headers: head.headers,
        peer,
    })
}

async fn read_body(
    mut body: Incoming,
    body_bytes_max: usize,
    size_hint: usize,
) -> Result<Bytes, Response> {
    let mut first: Option<Bytes> = None;
    let mut rest = BytesMut::new();
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame
            .map_err(|e| Response::error(400, "bad_request", &format!("reading the body: {e}")))?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        total += data.len();
        if total > body_bytes_max {
            return Err(too_large(body_bytes_max));
        }
        if first.is_none() && rest.is_empty() {
            first = Some(data); // one chunk: kept as is, no copy
            continue;
        }
        if let Some(previous) = first.take() {
            rest.reserve(size_hint.max(previous.len() + data.len()));
            rest.extend_from_slice(&previous);
        }
        rest.extend_from_slice(&data);
    }
    let body = first.unwrap_or_else(|| rest.freeze());
    assert_eq!(body.len(), total);
    Ok(body)
}

fn too_large(body_bytes_max: usize) -> Response {
    let mut response = Response::error(
        413,
        "too_large",
        &format!("request body over {body_bytes_max} bytes"),
    );
    // The body was not read: the connection cannot be reused.
    response.headers.push(("connection", "close".to_string()));
    response
}

fn bearer(req: &hyper::Request<Incoming>) -> Option<String> {
    bearer_of(req.headers())
}

fn bearer_of(headers: &hyper::HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    (!token.is_empty()).then(|| token.to_string())
}

/// `Some(Sec-WebSocket-Accept)` when `req` is a valid WebSocket upgrade (RFC 6455 §4.2.1).
fn websocket_accept_key(req: &hyper::Request<Incoming>) -> Option<String> {
    if req.version() != hyper::Version::HTTP_11 {
        return None;
    }
    let headers = req.headers();
    let has_token = |name: HeaderName, token: &str| {
        headers.get_all(name).iter().any(|value| {
            value.to_str().is_ok_and(|value| {
                value
                    .split(',')
                    .any(|part| part.trim().eq_ignore_ascii_case(token))
            })
        })
    };
    if !has_token(header::UPGRADE, "websocket") || !has_token(header::CONNECTION, "upgrade") {
        return None;
    }
    if headers.get(header::SEC_WEBSOCKET_VERSION)?.as_bytes() != b"13" {
        return None;
    }
    let key = headers.get(header::SEC_WEBSOCKET_KEY)?;
    const KEY_BASE64_BYTES: usize = 24; // 16 random bytes
    if key.as_bytes().len() != KEY_BASE64_BYTES {
        return None;
    }
    Some(tungstenite::handshake::derive_accept_key(key.as_bytes()))
}

fn switching_protocols(accept: &str) -> HyperResponse {
    let mut response = hyper::Response::new(OutBody::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(accept) = HeaderValue::from_str(accept) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    response
}

fn to_hyper(response: Response) -> HyperResponse {
    let body = match response.stream {
        Some(s) => OutBody::Streamed {
            left: s.len,
            chunks: s.chunks,
        },
        None if response.body.is_empty() => OutBody::empty(),
        None => OutBody::Full(Some(Bytes::from(response.body))),
    };
    let mut out = hyper::Response::new(body);
    *out.status_mut() =
        StatusCode::from_u16(response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = out.headers_mut();
    if !response.content_type.is_empty() {
        if let Ok(value) = HeaderValue::from_str(response.content_type) {
            headers.insert(header::CONTENT_TYPE, value);
        }
    }
    for (name, value) in response.headers {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::try_from(value),
        ) else {
            continue;
        };
        headers.append(name, value);
    }
    out
}
