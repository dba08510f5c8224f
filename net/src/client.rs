//! A small HTTP/1.1 client on hyper, for the gateways chatd calls (push
//! notifications, the OTP webhook): POST a JSON body to an `http://` or
//! `https://` URL (rustls, `tls::gateway_client_config`) and read a
//! bounded answer, all within a deadline.
//!
//! `Client` keeps connections open between calls (a busy push gateway);
//! `post_json` makes one connection per call (the OTP webhook, rare).
//!
//! Lives on: the core that calls; each connection's driver is a task there.

use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_lite::future;
use http_body_util::{BodyExt, Full};
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST};
use rustls::pki_types::ServerName;

use crate::constants::{CLIENT_ANSWER_BYTES_MAX, CLIENT_URL_BYTES_MAX};
use crate::io::HyperIo;

/// An `http[s]://host[:port][/path]` URL, checked once (at startup).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    /// `https://`: the connection is TLS, and the certificate must name
    /// `host`.
    pub tls: bool,
    /// The host without port or brackets (the TLS server name).
    pub host: String,
    /// `host:port`, what the socket connects to.
    pub address: String,
    /// What the `Host` header says.
    pub authority: String,
    pub path: String,
}

impl Url {
    pub fn parse(text: &str) -> Result<Url, String> {
        if text.len() > CLIENT_URL_BYTES_MAX {
            return Err(format!("a URL is at most {CLIENT_URL_BYTES_MAX} bytes"));
        }
        let (tls, rest) = match (text.strip_prefix("http://"), text.strip_prefix("https://")) {
            (Some(rest), _) => (false, rest),
            (_, Some(rest)) => (true, rest),
            _ => {
                return Err(format!(
                    "{text:?}: only http:// and https:// URLs are supported"
                ))
            }
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_string()),
            Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
            None => (rest, "/".to_string()),
        };
        let bad = |why: &str| format!("{text:?}: {why}");
        if authority.is_empty() || authority.contains('@') {
            return Err(bad("no host, or user info in the URL"));
        }
        if path.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(bad("spaces or control characters in the path"));
        }
        let host_end = if authority.starts_with('[') {
            authority
                .find(']')
                .ok_or_else(|| bad("an unclosed [ in the host"))?
                + 1
        } else {
            authority.find(':').unwrap_or(authority.len())
        };
        let (host, port) = authority.split_at(host_end);
        if host.is_empty() || host == "[]" {
            return Err(bad("no host"));
        }
        let address = match port.strip_prefix(':') {
            Some(p) => {
                p.parse::<u16>().map_err(|_| bad("a bad port"))?;
                authority.to_string()
            }
            None if port.is_empty() => format!("{authority}:{}", if tls { 443 } else { 80 }),
            None => return Err(bad("junk after the host")),
        };
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        Ok(Url {
            tls,
            host,
            address,
            authority: authority.to_string(),
            path,
        })
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "https" } else { "http" };
        write!(f, "{scheme}://{}{}", self.authority, self.path)
    }
}

/// What the server answered.
#[derive(Debug, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Why a call got no answer.
#[derive(Debug)]
pub enum CallError {
    /// No connection (refused, unreachable, a name that does not resolve).
    Connect(std::io::Error),
    /// The exchange broke off, or the answer was not HTTP.
    Http(String),
    /// The TLS handshake failed (an unknown CA, a certificate for another
    /// name, ...).
    Tls(String),
    /// The answer's body was over `CLIENT_ANSWER_BYTES_MAX`.
    AnswerTooLarge,
    /// No whole answer within the deadline.
    Timeout,
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Connect(e) => write!(f, "cannot connect: {e}"),
            CallError::Http(e) => write!(f, "http: {e}"),
            CallError::Tls(e) => write!(f, "tls: {e}"),
            CallError::AnswerTooLarge => {
                write!(f, "the answer is over {CLIENT_ANSWER_BYTES_MAX} bytes")
            }
            CallError::Timeout => write!(f, "no answer in time"),
        }
    }
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// A client of one URL that keeps up to `idle_max` connections open
/// between calls (HTTP/1.1 keep-alive), so that a busy gateway is not
/// paid a TCP handshake per call.
pub struct Client {
    url: Url,
    tls: Option<Arc<rustls::ClientConfig>>,
    idle: RefCell<Vec<Sender>>,
    idle_max: usize,
}

impl Client {
    /// `tls` is needed for an `https://` URL (`tls::gateway_client_config`).
    pub fn new(url: Url, tls: Option<Arc<rustls::ClientConfig>>, idle_max: usize) -> Client {
        Client {
            url,
            tls,
            idle: RefCell::new(Vec::new()),
            idle_max,
        }
    }

    pub fn url(&self) -> &Url {
        &self.url
    }

    /// POSTs `body` (JSON); the whole call, connecting included, takes at
    /// most `deadline`. A kept connection the server closed meanwhile is
    /// replaced by a new one, once.
    pub async fn post_json(&self, body: String, deadline: Duration) -> Result<Answer, CallError> {
        let body = Bytes::from(body);
        let call = async {
            let kept = self.idle.borrow_mut().pop();
            if let Some(mut sender) = kept {
                if let Ok(answer) = exchange(&mut sender, &self.url, body.clone()).await {
                    self.keep(sender);
                    return Ok(answer);
                }
            }
            let mut sender = connect(&self.url, self.tls.as_ref()).await?;
            let answer = exchange(&mut sender, &self.url, body).await?;
            self.keep(sender);
            Ok(answer)
        };
        within(deadline, call).await
    }

    fn keep(&self, sender: Sender) {
        let mut idle = self.idle.borrow_mut();
        if !sender.is_closed() && idle.len() < self.idle_max {
            idle.push(sender);
        }
    }
}

/// POSTs `body` (JSON) to `url` on a connection of its own; the whole
/// call, connecting included, takes at most `deadline`.
pub async fn post_json(
    url: &Url,
    tls: Option<&Arc<rustls::ClientConfig>>,
    body: String,
    deadline: Duration,
) -> Result<Answer, CallError> {
    within(deadline, async {
        let mut sender = connect(url, tls).await?;
        exchange(&mut sender, url, Bytes::from(body)).await
    })
    .await
}

async fn within<T>(
    deadline: Duration,
    call: impl std::future::Future<Output = Result<T, CallError>>,
) -> Result<T, CallError> {
    let late = async {
        glommio::timer::sleep(deadline).await;
        Err(CallError::Timeout)
    };
    future::or(call, late).await
}

/// A new connection (TLS for `https://`); its driver is a task of its
/// own, which ends when the connection closes or its sender is dropped.
async fn connect(url: &Url, tls: Option<&Arc<rustls::ClientConfig>>) -> Result<Sender, CallError> {
    let stream = glommio::net::TcpStream::connect(url.address.as_str())
        .await
        .map_err(|e| CallError::Connect(e.into()))?;
    let _ = stream.set_nodelay(true);
    if !url.tls {
        return handshake(stream).await;
    }
    let config = tls.ok_or_else(|| CallError::Tls("no TLS configuration for https://".into()))?;
    let name = ServerName::try_from(url.host.clone())
        .map_err(|e| CallError::Tls(format!("server name {:?}: {e}", url.host)))?;
    let connector = futures_rustls::TlsConnector::from(config.clone());
    let stream = connector
        .connect(name, stream)
        .await
        .map_err(|e| CallError::Tls(e.to_string()))?;
    handshake(stream).await
}

async fn handshake<T>(stream: T) -> Result<Sender, CallError>
where
    T: futures_lite::AsyncRead + futures_lite::AsyncWrite + Unpin + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(HyperIo::new(stream))
        .await
        .map_err(|e| CallError::Http(e.to_string()))?;
    glommio::spawn_local(async move {
        let _ = connection.await;
    })
    .detach();
    Ok(sender)
}

/// One request on `sender` (`body` is shared, so a retry does not copy it).
async fn exchange(sender: &mut Sender, url: &Url, body: Bytes) -> Result<Answer, CallError> {
    let http = |e: hyper::Error| CallError::Http(e.to_string());
    sender.ready().await.map_err(http)?;
    let length = body.len();
    let request = hyper::Request::post(url.path.as_str())
        .header(HOST, url.authority.as_str())
        .header(CONTENT_TYPE, "application/json")
        .header(CONTENT_LENGTH, length)
        .body(Full::new(body))
        .map_err(|e| CallError::Http(e.to_string()))?;
    let response = sender.send_request(request).await.map_err(http)?;
    let status = response.status().as_u16();
    let mut incoming = response.into_body();
    let mut body = Vec::new();
    while let Some(frame) = incoming.frame().await {
        if let Ok(data) = frame.map_err(http)?.into_data() {
            if body.len() + data.len() > CLIENT_ANSWER_BYTES_MAX {
                return Err(CallError::AnswerTooLarge);
            }
            body.extend_from_slice(&data);
        }
    }
    Ok(Answer { status, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = Url::parse("http://127.0.0.1:9000/push?x=1").unwrap();
        assert_eq!(u.address, "127.0.0.1:9000");
        assert_eq!(u.path, "/push?x=1");
        let u = Url::parse("http://gateway.local").unwrap();
        assert_eq!(
            (u.address.as_str(), u.path.as_str()),
            ("gateway.local:80", "/")
        );
        let u = Url::parse("https://gw.example/v1/push").unwrap();
        assert_eq!(
            (u.tls, u.host.as_str(), u.address.as_str()),
            (true, "gw.example", "gw.example:443")
        );
        assert_eq!(u.to_string(), "https://gw.example/v1/push");
        let u = Url::parse("http://[::1]:81/a").unwrap();
        assert_eq!(u.host, "::1");
        assert_eq!(u.address, "[::1]:81");
        assert_eq!(Url::parse("http://[::1]").unwrap().address, "[::1]:80");
        let u = Url::parse("http://h?q").unwrap();
        assert_eq!((u.address.as_str(), u.path.as_str()), ("h:80", "/?q"));
        for bad in [
            "ftp://x",
            "http://",
            "http://:80/",
            "http://x:99999/",
            "http://u@x/",
            "http://x/a b",
            "http://[::1/",
            "http://[::1]x/",
        ] {
            assert!(Url::parse(bad).is_err(), "{bad}");
        }
    }
}
