//! A small blocking client for chatd that speaks only the public protocol
//! (shared/PROTOCOL.md, v1): REST over HTTP/1.1 and the `/v1/ws` WebSocket,
//! both plain or over TLS. JSON is `serde_json::Value` throughout, so the
//! client never depends on server internals.
//!
//! Used by: the `chat` CLI, and the engine's integration tests.
//!
//! # Layout
//! - limits            every timeout and size bound, in one place
//! - `ClientError`     what can go wrong, with messages that say where
//! - `Endpoint`        `http://host:port` / `https://host:port` + trusted PEM
//! - `request*`        one request per connection (`Connection: close`)
//! - `parse_response`  sans-IO HTTP/1.1 response parser (length, chunked, EOF)
//! - `login`           OTP request → code from the `file:` sink → verify
//! - `Ws`              WebSocket: send, recv with timeout, typed waits

use std::collections::VecDeque;
use std::fmt;
use std::fs;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tungstenite::client::IntoClientRequest;
use tungstenite::handshake::HandshakeError;
use tungstenite::http::header::{HeaderValue, AUTHORIZATION};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::CloseFrame;
use tungstenite::Message;

/// All limits of the client. Units last.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `login` polls the OTP file for the code (the server promises 1 s).
pub const OTP_WAIT: Duration = Duration::from_secs(3);
pub const OTP_POLL_INTERVAL: Duration = Duration::from_millis(20);
/// How long `Ws::close` waits for the server's close frame.
pub const CLOSE_WAIT: Duration = Duration::from_secs(2);
pub const RESPONSE_HEAD_BYTES_MAX: usize = 64 * 1024;
/// Media is at most 16 MiB; leave room for error bodies and framing.
pub const RESPONSE_BODY_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Events `Ws::recv_where` may set aside before it gives up.
pub const PENDING_EVENTS_MAX: usize = 1 << 20;
const READ_CHUNK_BYTES: usize = 64 * 1024;
const _: () = assert!(RESPONSE_HEAD_BYTES_MAX < RESPONSE_BODY_BYTES_MAX);
const _: () = assert!(OTP_POLL_INTERVAL.as_millis() < OTP_WAIT.as_millis());

pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// Everything the client can fail with.
#[derive(Debug)]
pub enum ClientError {
    /// A bad URL, an unreadable PEM file, a TLS setup problem, a bad argument.
    Config(String),
    /// Connecting, reading or writing failed; `context` says what was being done.
    Io { context: String, source: io::Error },
    /// The server's bytes are not valid HTTP.
    Http(String),
    /// A body or frame is not the JSON it should be.
    Json(String),
    /// Nothing (or not the awaited thing) arrived in time.
    Timeout(String),
    /// A REST call answered with a non-2xx status (from `expect_success`).
    Status {
        status: u16,
        code: String,
        message: String,
    },
    /// The WebSocket upgrade was refused with an HTTP status.
    Handshake { status: u16, body: String },
    /// The WebSocket is closed; the code of the server's close frame, if any.
    Closed(Option<u16>),
    /// The server answered a WebSocket event with `{"type":"error"}`.
    Remote {
        code: String,
        message: String,
        event: Value,
    },
    /// Any other WebSocket failure.
    WebSocket(String),
    /// No OTP code for the phone appeared in the sink file.
    Otp(String),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Config(m) => write!(f, "config: {m}"),
            ClientError::Io { context, source } => write!(f, "{context}: {source}"),
            ClientError::Http(m) => write!(f, "bad HTTP response: {m}"),
            ClientError::Json(m) => write!(f, "bad JSON: {m}"),
            ClientError::Timeout(m) => write!(f, "timed out: {m}"),
            ClientError::Status {
                status,
                code,
                message,
            } => write!(f, "HTTP {status} {code}: {message}"),
            ClientError::Handshake { status, body } => {
                write!(f, "WebSocket upgrade refused: HTTP {status} {body}")
            }
            ClientError::Closed(Some(code)) => write!(f, "WebSocket closed with code {code}"),
            ClientError::Closed(None) => write!(f, "WebSocket closed without a close code"),
            ClientError::Remote { code, message, .. } => {
                write!(f, "server error event {code}: {message}")
            }
            ClientError::WebSocket(m) => write!(f, "WebSocket: {m}"),
            ClientError::Otp(m) => write!(f, "OTP: {m}"),
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl ClientError {
    /// The close code when this is `Closed`.
    pub fn close_code(&self) -> Option<u16> {
        match self {
            ClientError::Closed(code) => *code,
            _ => None,
        }
    }

    fn io(context: impl Into<String>, source: io::Error) -> ClientError {
        ClientError::Io {
            context: context.into(),
            source,
        }
    }
}

// ---------------------------------------------------------------------------
// Endpoint

/// Where chatd listens, and how to reach it.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// `host:port` (IPv6 hosts in brackets), also sent as `Host`.
    pub host_port: String,
    /// Present for `https://`: trusts only the given certificate(s).
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl Endpoint {
    /// Parses `http://host:port` or `https://host:port` (a bare `host:port` is
    /// http; a missing port is 80 / 443). `https` trusts the certificates of
    /// `ca_pem` (e.g. the self-signed one from `chatd gen-cert`); the TLS
    /// server name is the host.
    pub fn parse(url: &str, ca_pem: Option<&Path>) -> Result<Endpoint> {
        let (secure, rest) = if let Some(rest) = url.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("http://") {
            (false, rest)
        } else if url.contains("://") {
            return Err(ClientError::Config(format!(
                "unsupported scheme in {url:?}: use http:// or https://"
            )));
        } else {
            (false, url)
        };
        let authority = rest.trim_end_matches('/');
        if authority.is_empty() || authority.contains(['/', '?', '#', '@', ' ']) {
            return Err(ClientError::Config(format!(
                "{url:?} is not http(s)://host:port"
            )));
        }
        let has_port = match authority.strip_prefix('[') {
            Some(v6) => {
                let (_, after) = v6.split_once(']').ok_or_else(|| {
                    ClientError::Config(format!("unclosed [ in IPv6 host of {url:?}"))
                })?;
                !after.is_empty()
            }
            None => authority.contains(':'),
        };
        let host_port = if has_port {
            authority.to_owned()
        } else {
            format!("{authority}:{}", if secure { 443 } else { 80 })
        };
        let (host, port) = split_host_port(&host_port)?;
        if host.is_empty() || port.parse::<u16>().is_err() {
            return Err(ClientError::Config(format!("bad host or port in {url:?}")));
        }
        let tls = if secure {
            let ca_pem = ca_pem.ok_or_else(|| {
                ClientError::Config(format!(
                    "{url} is https: give the server's certificate (--ca PEM)"
                ))
            })?;
            Some(tls_config(ca_pem)?)
        } else {
            None
        };
        Ok(Endpoint { host_port, tls })
    }

    /// The host without port or brackets: the TLS server name.
    pub fn host(&self) -> &str {
        split_host_port(&self.host_port)
            .map(|(host, _)| host)
            .unwrap_or(&self.host_port)
    }
}

/// `host:port` → (`host`, `port`), IPv6 brackets removed.
fn split_host_port(host_port: &str) -> Result<(&str, &str)> {
    let (host, port) = host_port
        .rsplit_once(':')
        .ok_or_else(|| ClientError::Config(format!("{host_port:?} has no port")))?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    Ok((host, port))
}

/// A rustls client config (ring) that trusts exactly the certificates in `ca_pem`.
pub fn tls_config(ca_pem: &Path) -> Result<Arc<rustls::ClientConfig>> {
    let pem = fs::read(ca_pem)
        .map_err(|e| ClientError::io(format!("reading {}", ca_pem.display()), e))?;
    let certs = rustls_pemfile::certs(&mut &pem[..])
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ClientError::Config(format!("{}: {e}", ca_pem.display())))?;
    if certs.is_empty() {
        return Err(ClientError::Config(format!(
            "{}: no CERTIFICATE in the PEM file",
            ca_pem.display()
        )));
    }
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| ClientError::Config(format!("{}: {e}", ca_pem.display())))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Config(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

// ---------------------------------------------------------------------------
// Transport: a TCP stream, maybe wrapped in TLS.

enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(tcp) => tcp,
            Stream::Tls(tls) => tls.get_ref(),
        }
    }

    fn set_read_timeout(&self, timeout: Duration) -> io::Result<()> {
        // A zero timeout means "block forever" to std; never ask for that.
        self.tcp()
            .set_read_timeout(Some(timeout.max(Duration::from_millis(1))))
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// Connects (10 s), sets 10 s read/write timeouts, and for TLS completes the
/// handshake so certificate problems surface here with a clear message.
fn connect(ep: &Endpoint) -> Result<Stream> {
    let addrs = ep
        .host_port
        .to_socket_addrs()
        .map_err(|e| ClientError::io(format!("resolving {}", ep.host_port), e))?;
    let mut last_error = None;
    let mut tcp = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, IO_TIMEOUT) {
            Ok(stream) => {
                tcp = Some(stream);
                break;
            }
            Err(e) => last_error = Some(e),
        }
    }
    let mut tcp = tcp.ok_or_else(|| {
        let e = last_error.unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address"));
        ClientError::io(format!("connecting to {}", ep.host_port), e)
    })?;
    let context = || format!("setting up the socket to {}", ep.host_port);
    tcp.set_read_timeout(Some(IO_TIMEOUT))
        .map_err(|e| ClientError::io(context(), e))?;
    tcp.set_write_timeout(Some(IO_TIMEOUT))
        .map_err(|e| ClientError::io(context(), e))?;
    tcp.set_nodelay(true)
        .map_err(|e| ClientError::io(context(), e))?;
    let Some(config) = &ep.tls else {
        return Ok(Stream::Plain(tcp));
    };
    let name = ServerName::try_from(ep.host().to_owned())
        .map_err(|e| ClientError::Config(format!("TLS server name {:?}: {e}", ep.host())))?;
    let mut conn = rustls::ClientConnection::new(config.clone(), name)
        .map_err(|e| ClientError::Config(format!("TLS: {e}")))?;
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp)
            .map_err(|e| ClientError::io(format!("TLS handshake with {}", ep.host_port), e))?;
    }
    Ok(Stream::Tls(Box::new(rustls::StreamOwned::new(conn, tcp))))
}

// ---------------------------------------------------------------------------
// REST

/// One parsed HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// Header names lower-cased, in arrival order.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl Response {
    /// The first header of that (lower-case) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one JSON request and parses the JSON answer (empty body → `Null`).
/// Any status is returned as is; see `expect_success` to turn errors into `Err`.
pub fn request(
    ep: &Endpoint,
    method: &str,
    path_and_query: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Result<(u16, Value)> {
    let bytes = body.map(|b| b.to_string().into_bytes());
    let content_type = body.map(|_| "application/json");
    let response = request_full(
        ep,
        method,
        path_and_query,
        token,
        content_type,
        bytes.as_deref(),
    )?;
    let value = json_body(&response.body).map_err(|e| {
        ClientError::Json(format!(
            "{method} {path_and_query} answered {} with a non-JSON body ({e}): {}",
            response.status,
            snippet(&response.body)
        ))
    })?;
    Ok((response.status, value))
}

/// Sends raw bytes (for malformed JSON, oversized or media bodies) and returns
/// the status and the raw answer body.
pub fn request_raw(
    ep: &Endpoint,
    method: &str,
    path_and_query: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    body: Option<&[u8]>,
) -> Result<(u16, Vec<u8>)> {
    let response = request_full(ep, method, path_and_query, token, content_type, body)?;
    Ok((response.status, response.body))
}

/// Like `request_raw`, with the response headers too.
pub fn request_full(
    ep: &Endpoint,
    method: &str,
    path_and_query: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    body: Option<&[u8]>,
) -> Result<Response> {
    let no_headers: &[(&str, &str)] = &[];
    request_with(
        ep,
        method,
        path_and_query,
        token,
        content_type,
        no_headers,
        body,
    )
}

/// Like `request_full`, with extra request headers (`Range`, `If-None-Match`).
pub fn request_with(
    ep: &Endpoint,
    method: &str,
    path_and_query: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Result<Response> {
    let mut head = encode_request_head(ep, method, path_and_query, token, content_type, body)?;
    for (name, value) in headers {
        let bad = |t: &str| t.is_empty() || t.bytes().any(|b| b.is_ascii_control());
        if bad(name) || name.contains(':') || value.bytes().any(|b| b.is_ascii_control()) {
            return Err(ClientError::Config(format!("bad header {name:?}")));
        }
        head.truncate(head.len() - 2);
        head.push_str(&format!("{name}: {value}\r\n\r\n"));
    }
    let what = format!("{method} {path_and_query} to {}", ep.host_port);
    let mut stream = connect(ep)?;
    let mut out = head.into_bytes();
    if let Some(body) = body {
        out.extend_from_slice(body);
    }
    stream
        .write_all(&out)
        .and_then(|()| stream.flush())
        .map_err(|e| ClientError::io(format!("sending {what}"), e))?;
    let is_head = method.eq_ignore_ascii_case("HEAD");
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; READ_CHUNK_BYTES];
    loop {
        if let Some(response) = parse_response(&buf, false, is_head)? {
            return Ok(response);
        }
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // TLS peers that close without close_notify: treat as EOF, the
            // framing check below still catches a truncated body.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(e) if is_timeout(&e) => {
                return Err(ClientError::Timeout(format!(
                    "no complete answer to {what} within {IO_TIMEOUT:?}"
                )))
            }
            Err(e) => return Err(ClientError::io(format!("reading the answer to {what}"), e)),
        }
    }
    match parse_response(&buf, true, is_head)? {
        Some(response) => Ok(response),
        None => unreachable!("parse_response with eof=true answers or fails"),
    }
}

fn encode_request_head(
    ep: &Endpoint,
    method: &str,
    path_and_query: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    body: Option<&[u8]>,
) -> Result<String> {
    let clean = |s: &str| !s.is_empty() && !s.bytes().any(|b| b.is_ascii_control() || b == b' ');
    if !clean(method) || !path_and_query.starts_with('/') || !clean(path_and_query) {
        return Err(ClientError::Config(format!(
            "bad request line {method:?} {path_and_query:?}"
        )));
    }
    let mut head = format!(
        "{method} {path_and_query} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\
         User-Agent: chat-tools/{}\r\nAccept: application/json\r\n",
        ep.host_port,
        env!("CARGO_PKG_VERSION")
    );
    if let Some(token) = token {
        if !clean(token) {
            return Err(ClientError::Config(
                "token has spaces or control bytes".into(),
            ));
        }
        head.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    if let Some(content_type) = content_type {
        if content_type.bytes().any(|b| b.is_ascii_control()) {
            return Err(ClientError::Config("content type has control bytes".into()));
        }
        head.push_str(&format!("Content-Type: {content_type}\r\n"));
    }
    let bodiless = ["GET", "HEAD"]
        .iter()
        .any(|m| method.eq_ignore_ascii_case(m));
    match body {
        Some(body) => head.push_str(&format!("Content-Length: {}\r\n", body.len())),
        None if !bodiless => head.push_str("Content-Length: 0\r\n"),
        None => {}
    }
    head.push_str("\r\n");
    assert!(head.ends_with("\r\n\r\n"));
    Ok(head)
}

/// Turns a non-2xx answer into `ClientError::Status` (with the protocol's
/// `{"error":{"code","message"}}`), and passes a 2xx body through.
pub fn expect_success((status, body): (u16, Value)) -> Result<Value> {
    if (200..300).contains(&status) {
        return Ok(body);
    }
    let error = &body["error"];
    let code = error["code"].as_str().unwrap_or("?").to_owned();
    let message = match error["message"].as_str() {
        Some(m) => m.to_owned(),
        None => body.to_string(),
    };
    Err(ClientError::Status {
        status,
        code,
        message,
    })
}

/// Parses a complete HTTP/1.1 response from `buf`, sans IO.
///
/// `Ok(None)`: more bytes are needed. With `eof` (the peer closed) it never
/// answers `None`: a body framed by Content-Length or chunks that is cut
/// short is an error, and a body with neither runs to the end of `buf`.
/// Interim 1xx answers are skipped; 204, 304 and answers to HEAD have no body.
pub fn parse_response(buf: &[u8], eof: bool, is_head: bool) -> Result<Option<Response>> {
    let mut start = 0;
    loop {
        let rest = &buf[start..];
        let Some(head_len) = find(rest, b"\r\n\r\n").map(|i| i + 4) else {
            if rest.len() > RESPONSE_HEAD_BYTES_MAX {
                return Err(ClientError::Http(format!(
                    "head over {RESPONSE_HEAD_BYTES_MAX} bytes"
                )));
            }
            if eof {
                return Err(ClientError::Http(format!(
                    "connection closed before the end of the head ({} bytes: {})",
                    rest.len(),
                    snippet(rest)
                )));
            }
            return Ok(None);
        };
        if head_len > RESPONSE_HEAD_BYTES_MAX {
            return Err(ClientError::Http(format!(
                "head over {RESPONSE_HEAD_BYTES_MAX} bytes"
            )));
        }
        let head = std::str::from_utf8(&rest[..head_len - 4])
            .map_err(|_| ClientError::Http("head is not UTF-8".into()))?;
        let (status, headers) = parse_head(head)?;
        if (100..200).contains(&status) && status != 101 {
            start += head_len;
            continue;
        }
        let body_bytes = &rest[head_len..];
        let body = if is_head || status == 204 || status == 304 || status == 101 {
            Some(Vec::new())
        } else if header_has_token(&headers, "transfer-encoding", "chunked") {
            decode_chunked(body_bytes, eof)?
        } else if let Some(length) = content_length(&headers)? {
            if length > RESPONSE_BODY_BYTES_MAX {
                return Err(ClientError::Http(format!(
                    "Content-Length {length} over {RESPONSE_BODY_BYTES_MAX}"
                )));
            }
            if body_bytes.len() >= length {
                Some(body_bytes[..length].to_vec())
            } else if eof {
                return Err(ClientError::Http(format!(
                    "body cut short: {} of {length} bytes",
                    body_bytes.len()
                )));
            } else {
                None
            }
        } else if eof {
            Some(body_bytes.to_vec())
        } else if body_bytes.len() > RESPONSE_BODY_BYTES_MAX {
            return Err(ClientError::Http(format!(
                "body over {RESPONSE_BODY_BYTES_MAX} bytes"
            )));
        } else {
            None
        };
        return Ok(body.map(|body| Response {
            status,
            headers,
            body,
        }));
    }
}

type Headers = Vec<(String, String)>;

fn parse_head(head: &str) -> Result<(u16, Headers)> {
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let code = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") || code.len() != 3 {
        return Err(ClientError::Http(format!(
            "bad status line {status_line:?}"
        )));
    }
    let status = code
        .parse::<u16>()
        .ok()
        .filter(|s| (100..600).contains(s))
        .ok_or_else(|| ClientError::Http(format!("bad status line {status_line:?}")))?;
    let mut headers = Vec::new();
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| ClientError::Http(format!("bad header line {line:?}")))?;
        if name.is_empty() || name.contains([' ', '\t']) {
            return Err(ClientError::Http(format!("bad header name {name:?}")));
        }
        headers.push((name.to_ascii_lowercase(), value.trim().to_owned()));
    }
    Ok((status, headers))
}

fn header_has_token(headers: &Headers, name: &str, token: &str) -> bool {
    headers
        .iter()
        .filter(|(n, _)| n == name)
        .flat_map(|(_, v)| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

fn content_length(headers: &Headers) -> Result<Option<usize>> {
    let mut length = None;
    for (_, value) in headers.iter().filter(|(n, _)| n == "content-length") {
        let parsed = value
            .parse::<usize>()
            .map_err(|_| ClientError::Http(format!("bad Content-Length {value:?}")))?;
        if length.is_some_and(|l| l != parsed) {
            return Err(ClientError::Http(
                "conflicting Content-Length headers".into(),
            ));
        }
        length = Some(parsed);
    }
    Ok(length)
}

/// Decodes a chunked body; `None` when incomplete (and not `eof`).
fn decode_chunked(bytes: &[u8], eof: bool) -> Result<Option<Vec<u8>>> {
    // A complete chunked body ends with CRLF; skip the full decode until then
    // so that a large body read in many pieces is not re-decoded each time.
    if !eof && !bytes.ends_with(b"\r\n") {
        return Ok(None);
    }
    let incomplete = || {
        if eof {
            Err(ClientError::Http("chunked body cut short".into()))
        } else {
            Ok(None)
        }
    };
    let mut body = Vec::new();
    let mut at = 0;
    loop {
        let Some(line_len) = find(&bytes[at..], b"\r\n") else {
            return incomplete();
        };
        let line = std::str::from_utf8(&bytes[at..at + line_len])
            .map_err(|_| ClientError::Http("chunk size line is not UTF-8".into()))?;
        let size_hex = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16)
            .map_err(|_| ClientError::Http(format!("bad chunk size {line:?}")))?;
        at += line_len + 2;
        if size == 0 {
            // Trailers, if any, then the empty line.
            loop {
                let Some(trailer_len) = find(&bytes[at..], b"\r\n") else {
                    return incomplete();
                };
                at += trailer_len + 2;
                if trailer_len == 0 {
                    return Ok(Some(body));
                }
            }
        }
        if body.len() + size > RESPONSE_BODY_BYTES_MAX {
            return Err(ClientError::Http(format!(
                "chunked body over {RESPONSE_BODY_BYTES_MAX} bytes"
            )));
        }
        if bytes.len() < at + size + 2 {
            return incomplete();
        }
        if &bytes[at + size..at + size + 2] != b"\r\n" {
            return Err(ClientError::Http("chunk not followed by CRLF".into()));
        }
        body.extend_from_slice(&bytes[at..at + size]);
        at += size + 2;
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn json_body(body: &[u8]) -> Result<Value, serde_json::Error> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(body)
}

fn snippet(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]);
    if bytes.len() > 200 {
        format!("{text}…")
    } else {
        text.into_owned()
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Percent-encodes a query value (everything but RFC 3986 unreserved bytes),
/// e.g. a phone number: `+1555` → `%2B1555`.
pub fn encode_query_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Login

/// What `POST /v1/auth/verify` answers: one device of one user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub user_id: String,
    pub device_id: String,
    pub token: String,
}

/// Logs in with the `file:` OTP sink: asks for a code, reads it from
/// `otp_file` (the last `PHONE CODE` line for `phone` written after the
/// request, polled for up to `OTP_WAIT`), and verifies it as a new device.
pub fn login(ep: &Endpoint, phone: &str, device_name: &str, otp_file: &Path) -> Result<Session> {
    let offset = otp_file_len(otp_file);
    request_otp(ep, phone)?;
    let code = wait_for_otp(otp_file, phone, offset, OTP_WAIT)?;
    verify(ep, phone, &code, device_name)
}

/// `POST /v1/auth/otp`; fails unless the server answers 2xx.
pub fn request_otp(ep: &Endpoint, phone: &str) -> Result<()> {
    let answer = request(
        ep,
        "POST",
        "/v1/auth/otp",
        None,
        Some(&json!({ "phone": phone })),
    )?;
    expect_success(answer).map(|_| ())
}

/// `POST /v1/auth/verify`; fails unless the server answers 2xx with a session.
pub fn verify(ep: &Endpoint, phone: &str, code: &str, device_name: &str) -> Result<Session> {
    let body = json!({ "phone": phone, "code": code, "device_name": device_name });
    let answer = expect_success(request(ep, "POST", "/v1/auth/verify", None, Some(&body))?)?;
    serde_json::from_value(answer.clone())
        .map_err(|e| ClientError::Json(format!("verify answered {answer}: {e}")))
}

/// The OTP file's length now (0 when it does not exist yet): pass it to
/// `wait_for_otp` so that only codes written after this point count.
pub fn otp_file_len(otp_file: &Path) -> u64 {
    fs::metadata(otp_file).map(|m| m.len()).unwrap_or(0)
}

/// Polls `otp_file` from byte `offset` until a complete `PHONE CODE` line for
/// `phone` appears, and answers the last such code. If the file shrank
/// (rotated), it is read from the start.
pub fn wait_for_otp(
    otp_file: &Path,
    phone: &str,
    offset: u64,
    timeout: Duration,
) -> Result<String> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(code) = read_otp_since(otp_file, phone, offset)? {
            return Ok(code);
        }
        if Instant::now() >= deadline {
            return Err(ClientError::Otp(format!(
                "no code for {phone} appeared in {} within {timeout:?} \
                 (is chatd running with --otp-sink file:{}?)",
                otp_file.display(),
                otp_file.display()
            )));
        }
        std::thread::sleep(OTP_POLL_INTERVAL);
    }
}

fn read_otp_since(otp_file: &Path, phone: &str, offset: u64) -> Result<Option<String>> {
    let mut file = match fs::File::open(otp_file) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(ClientError::io(
                format!("opening {}", otp_file.display()),
                e,
            ))
        }
    };
    let context = || format!("reading {}", otp_file.display());
    let len = file
        .metadata()
        .map_err(|e| ClientError::io(context(), e))?
        .len();
    let start = if len < offset { 0 } else { offset };
    file.seek(SeekFrom::Start(start))
        .map_err(|e| ClientError::io(context(), e))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(|e| ClientError::io(context(), e))?;
    Ok(last_otp_code(&String::from_utf8_lossy(&bytes), phone))
}

/// The code of the last complete (newline-terminated) `PHONE CODE` line for
/// `phone` in `contents`; a partial last line is ignored.
pub fn last_otp_code(contents: &str, phone: &str) -> Option<String> {
    let complete = match contents.rfind('\n') {
        Some(end) => &contents[..end],
        None => return None,
    };
    complete.lines().rev().find_map(|line| {
        let mut fields = line.split_whitespace();
        let (p, code) = (fields.next()?, fields.next()?);
        (p == phone && fields.next().is_none()).then(|| code.to_owned())
    })
}

// ---------------------------------------------------------------------------
// WebSocket

/// A blocking WebSocket to `/v1/ws`.
///
/// Events that `recv_type` / `recv_where` skip are kept, in order, and handed
/// out first by later calls, so nothing is lost by waiting for one type.
pub struct Ws {
    socket: tungstenite::WebSocket<Stream>,
    pending: VecDeque<Value>,
    close_code: Option<u16>,
    closed: bool,
    next_ref: u64,
}

impl Ws {
    /// Opens `/v1/ws`; with `token`, authenticates with the
    /// `Authorization: Bearer` header at upgrade. Without, send
    /// `{"type":"auth","token"}` yourself (or use `auth`).
    pub fn connect(ep: &Endpoint, token: Option<&str>) -> Result<Ws> {
        let stream = connect(ep)?;
        let scheme = if ep.tls.is_some() { "wss" } else { "ws" };
        let mut req = format!("{scheme}://{}/v1/ws", ep.host_port)
            .into_client_request()
            .map_err(|e| ClientError::Config(format!("WebSocket request: {e}")))?;
        if let Some(token) = token {
            let value = HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| ClientError::Config("token is not a valid header value".into()))?;
            req.headers_mut().insert(AUTHORIZATION, value);
        }
        match tungstenite::client(req, stream) {
            Ok((socket, _response)) => Ok(Ws {
                socket,
                pending: VecDeque::new(),
                close_code: None,
                closed: false,
                next_ref: 1,
            }),
            Err(HandshakeError::Failure(tungstenite::Error::Http(response))) => {
                let status = response.status().as_u16();
                let body = response.body().as_deref().map(snippet).unwrap_or_default();
                Err(ClientError::Handshake { status, body })
            }
            Err(HandshakeError::Failure(e)) => Err(ClientError::WebSocket(format!(
                "upgrade at {}: {e}",
                ep.host_port
            ))),
            Err(HandshakeError::Interrupted(_)) => Err(ClientError::Timeout(format!(
                "WebSocket upgrade at {} within {IO_TIMEOUT:?}",
                ep.host_port
            ))),
        }
    }

    /// Connects without a header and authenticates with the first frame
    /// (the path for which the protocol promises `auth.ok`); answers the
    /// `auth.ok` event (`user_id`, `device_id`).
    pub fn connect_and_auth(ep: &Endpoint, token: &str, timeout: Duration) -> Result<(Ws, Value)> {
        let mut ws = Ws::connect(ep, None)?;
        let ok = ws.auth(token, timeout)?;
        Ok((ws, ok))
    }

    /// Sends `{"type":"auth","token"}` and waits for `auth.ok` (an `error`
    /// answer → `ClientError::Remote`; the server's close → `Closed(4401)`).
    pub fn auth(&mut self, token: &str, timeout: Duration) -> Result<Value> {
        self.send(&json!({ "type": "auth", "token": token }))?;
        let answer = self.recv_where(timeout, "auth.ok or error", |e| {
            matches!(event_type(e), "auth.ok" | "error")
        })?;
        remote_error(answer)
    }

    /// Sends one event as a text frame.
    pub fn send(&mut self, event: &Value) -> Result<()> {
        self.send_text(&event.to_string())
    }

    /// Sends raw text as one frame (for malformed-JSON tests).
    pub fn send_text(&mut self, text: &str) -> Result<()> {
        self.send_message(Message::text(text))
    }

    /// Sends one valid JSON text frame of exactly `n` bytes:
    /// `{"type":"ping","pad":"xxx…"}` (for size-limit tests; `n` ≥ 24).
    pub fn send_frame_of_size(&mut self, n: usize) -> Result<()> {
        let text = padded_event(n)?;
        self.send_text(&text)
    }

    fn send_message(&mut self, message: Message) -> Result<()> {
        if self.closed {
            return Err(ClientError::Closed(self.close_code));
        }
        self.socket
            .get_ref()
            .tcp()
            .set_write_timeout(Some(IO_TIMEOUT))
            .map_err(|e| ClientError::io("setting the write timeout", e))?;
        self.socket.send(message).map_err(|e| self.map_error(e))
    }

    /// Sends `event` with a fresh `ref` (unless it has one) and waits for the
    /// event that echoes it; an `error` answer → `ClientError::Remote`.
    pub fn call(&mut self, mut event: Value, timeout: Duration) -> Result<Value> {
        let reference = match event.get("ref") {
            Some(r) => r.clone(),
            None => {
                let r = Value::String(format!("c{}", self.next_ref));
                self.next_ref += 1;
                event["ref"] = r.clone();
                r
            }
        };
        self.send(&event)?;
        let what = format!("the answer to ref {reference}");
        let answer = self.recv_where(timeout, &what, |e| e.get("ref") == Some(&reference))?;
        remote_error(answer)
    }

    /// The next event: set-aside ones first, then the socket. `Ok(None)` when
    /// nothing arrives within `timeout`; `Err(Closed(code))` once closed.
    pub fn recv(&mut self, timeout: Duration) -> Result<Option<Value>> {
        if let Some(event) = self.pending.pop_front() {
            return Ok(Some(event));
        }
        self.read_event(Instant::now() + timeout)
    }

    /// The next event of type `ty`; events of other types are set aside for
    /// later `recv`s. `Err(Timeout)` names what was set aside meanwhile.
    pub fn recv_type(&mut self, ty: &str, timeout: Duration) -> Result<Value> {
        self.recv_where(timeout, &format!("a `{ty}` event"), |e| event_type(e) == ty)
    }

    /// The next event matching `pred`, set-aside events searched first; the
    /// others are set aside in order. `what` names the wait in a timeout.
    pub fn recv_where(
        &mut self,
        timeout: Duration,
        what: &str,
        mut pred: impl FnMut(&Value) -> bool,
    ) -> Result<Value> {
        if let Some(i) = self.pending.iter().position(&mut pred) {
            return Ok(self.pending.remove(i).expect("index from position"));
        }
        let deadline = Instant::now() + timeout;
        loop {
            match self.read_event(deadline)? {
                Some(event) if pred(&event) => return Ok(event),
                Some(event) => {
                    if self.pending.len() >= PENDING_EVENTS_MAX {
                        return Err(ClientError::WebSocket(format!(
                            "over {PENDING_EVENTS_MAX} events set aside waiting for {what}"
                        )));
                    }
                    self.pending.push_back(event);
                }
                None => {
                    let types: Vec<&str> = self.pending.iter().take(8).map(event_type).collect();
                    return Err(ClientError::Timeout(format!(
                        "no {what} within {timeout:?} ({} other events set aside: {types:?}{})",
                        self.pending.len(),
                        if self.pending.len() > 8 { "…" } else { "" }
                    )));
                }
            }
        }
    }

    /// Events received but not yet handed out.
    pub fn pending(&self) -> &VecDeque<Value> {
        &self.pending
    }

    /// The code of the server's close frame, once one arrived.
    pub fn close_code(&self) -> Option<u16> {
        self.close_code
    }

    /// Whether the connection is closed (by either side).
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Sends a normal close (1000) and waits briefly for the server's close.
    pub fn close(&mut self) -> Result<()> {
        if self.closed {
            return Ok(());
        }
        let frame = CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        };
        if let Err(e) = self.socket.close(Some(frame)) {
            return match self.map_error(e) {
                ClientError::Closed(_) => Ok(()),
                other => Err(other),
            };
        }
        let deadline = Instant::now() + CLOSE_WAIT;
        loop {
            match self.read_event(deadline) {
                Ok(Some(event)) => self.pending.push_back(event),
                Ok(None) => return Ok(()),
                Err(ClientError::Closed(_)) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }

    fn read_event(&mut self, deadline: Instant) -> Result<Option<Value>> {
        if self.closed {
            return Err(ClientError::Closed(self.close_code));
        }
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            self.socket
                .get_ref()
                .set_read_timeout(deadline - now)
                .map_err(|e| ClientError::io("setting the read timeout", e))?;
            match self.socket.read() {
                Ok(Message::Text(text)) => {
                    let event = serde_json::from_str::<Value>(text.as_str()).map_err(|e| {
                        ClientError::Json(format!("frame {}: {e}", snippet(text.as_bytes())))
                    })?;
                    return Ok(Some(event));
                }
                Ok(Message::Binary(bytes)) => {
                    return Err(ClientError::WebSocket(format!(
                        "unexpected binary frame of {} bytes",
                        bytes.len()
                    )))
                }
                Ok(Message::Close(frame)) => {
                    self.close_code = frame.map(|f| u16::from(f.code));
                    self.closed = true;
                    // tungstenite queued the close reply; send it now so the
                    // server sees the closing handshake end.
                    let _ = self.socket.flush();
                    return Err(ClientError::Closed(self.close_code));
                }
                Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => continue,
                Err(tungstenite::Error::Io(e)) if is_timeout(&e) => continue,
                Err(e) => return Err(self.map_error(e)),
            }
        }
    }

    fn map_error(&mut self, e: tungstenite::Error) -> ClientError {
        use tungstenite::error::ProtocolError;
        let gone = match &e {
            tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => true,
            tungstenite::Error::Protocol(ProtocolError::ResetWithoutClosingHandshake) => true,
            tungstenite::Error::Io(io) => matches!(
                io.kind(),
                io::ErrorKind::BrokenPipe
                    | io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::UnexpectedEof
            ),
            _ => false,
        };
        if gone {
            self.closed = true;
            return ClientError::Closed(self.close_code);
        }
        match e {
            tungstenite::Error::Io(io) => ClientError::io("WebSocket", io),
            other => ClientError::WebSocket(other.to_string()),
        }
    }
}

/// An event's `type`, or "" without one.
pub fn event_type(event: &Value) -> &str {
    event.get("type").and_then(Value::as_str).unwrap_or("")
}

/// An `error` event → `ClientError::Remote`; any other passes through.
fn remote_error(event: Value) -> Result<Value> {
    if event_type(&event) != "error" {
        return Ok(event);
    }
    Err(ClientError::Remote {
        code: event["code"].as_str().unwrap_or("?").to_owned(),
        message: event["message"].as_str().unwrap_or_default().to_owned(),
        event,
    })
}

/// `{"type":"ping","pad":"xxx…"}` of exactly `n` bytes.
pub fn padded_event(n: usize) -> Result<String> {
    const PREFIX: &str = r#"{"type":"ping","pad":""#;
    const SUFFIX: &str = r#""}"#;
    let overhead = PREFIX.len() + SUFFIX.len();
    if n < overhead {
        return Err(ClientError::Config(format!(
            "a padded event is at least {overhead} bytes, not {n}"
        )));
    }
    let mut text = String::with_capacity(n);
    text.push_str(PREFIX);
    text.push_str(&"x".repeat(n - overhead));
    text.push_str(SUFFIX);
    assert_eq!(text.len(), n);
    Ok(text)
}

/// A random id for `client_msg_id`: 32 hex digits.
pub fn random_id() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the OS random source");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests;
