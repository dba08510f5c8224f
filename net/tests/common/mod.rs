//! Test server: `chat_net::serve` on 127.0.0.1:0 inside a glommio executor on its
//! own thread, with a handler that echoes HTTP requests and WebSocket messages.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use chat_net::{ConnectionEvent, Full, Handler, Incoming, Request, Response, ServeConfig};

/// Counts of `ConnectionEvent`s, readable from the test thread.
#[derive(Default)]
pub struct Events {
    pub opened: AtomicUsize,
    pub closed: AtomicUsize,
    pub rejected: AtomicUsize,
    pub tls_failed: AtomicUsize,
}

/// What the handler saw when flooding a WebSocket whose peer does not read.
#[derive(Debug)]
pub struct Flood {
    pub frames_accepted: usize,
    pub queued_at_full: usize,
    pub full: bool,
}

/// Echo handler. HTTP: `{"method","path","query","bearer","content_type","body_bytes"}`.
/// WebSocket: first `hello bearer=TOKEN|-`, then echoes each text; `flood:N` makes it
/// `try_send` N-byte frames until `Full` (reported on the flood channel), then close
/// it as a slow consumer; a too large
/// message gets `too_large` then close 1009.
struct EchoHandler {
    events: Arc<Events>,
    outbox_frames_max: usize,
    flood: mpsc::Sender<Flood>,
}

impl Handler for EchoHandler {
    async fn request(&self, req: Request) -> Response {
        let body = serde_json::json!({
            "method": req.method.as_str(),
            "path": req.path,
            "query": req.query,
            "bearer": req.bearer,
            "content_type": req.content_type,
            "body_bytes": req.body.len(),
        });
        let mut response = Response::json(200, body.to_string().into_bytes());
        response
            .headers
            .push(("x-peer-ip", req.peer.ip().to_string()));
        response
    }

    async fn websocket(&self, ws: chat_net::WebSocket, bearer: Option<String>, _peer: SocketAddr) {
        let (mut inbox, outbox) = ws.split(self.outbox_frames_max);
        let hello = format!("hello bearer={}", bearer.as_deref().unwrap_or("-"));
        outbox.try_send(hello).expect("room for hello");
        loop {
            match inbox.recv().await {
                Incoming::Text(text) => {
                    if let Some(size) = text.strip_prefix("flood:") {
                        let size: usize = size.parse().expect("flood size");
                        let report = flood(&outbox, size).await;
                        if report.full {
                            // What the engine does to a slow consumer.
                            outbox.close(chat_net::ws::CLOSE_POLICY_VIOLATION, "slow consumer");
                        }
                        self.flood.send(report).expect("flood channel");
                        continue;
                    }
                    if outbox.send(text).await.is_err() {
                        break;
                    }
                }
                Incoming::TooLarge => {
                    let _ = outbox.try_send("too_large".to_string());
                    outbox.close(chat_net::ws::CLOSE_TOO_LARGE, "message too large");
                }
                Incoming::Closed | Incoming::Error(_) => break,
            }
        }
    }

    fn connection_event(&self, event: ConnectionEvent) {
        let counter = match event {
            ConnectionEvent::Opened => &self.events.opened,
            ConnectionEvent::Closed => &self.events.closed,
            ConnectionEvent::Rejected => &self.events.rejected,
            ConnectionEvent::TlsHandshakeFailed => &self.events.tls_failed,
        };
        counter.fetch_add(1, Ordering::SeqCst);
    }
}

async fn flood(outbox: &chat_net::Outbox, size: usize) -> Flood {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut frames_accepted = 0;
    while Instant::now() < deadline {
        match outbox.try_send("x".repeat(size)) {
            Ok(()) => frames_accepted += 1,
            Err(Full) => {
                return Flood {
                    frames_accepted,
                    queued_at_full: outbox.queued(),
                    full: true,
                }
            }
        }
        // Let the writer task move frames into the socket until the socket blocks.
        glommio::timer::sleep(Duration::from_micros(200)).await;
    }
    Flood {
        frames_accepted,
        queued_at_full: outbox.queued(),
        full: false,
    }
}

pub struct Server {
    pub addr: SocketAddr,
    pub events: Arc<Events>,
    pub flood: mpsc::Receiver<Flood>,
    stop: Arc<AtomicBool>,
    join: Option<glommio::ExecutorJoinHandle<()>>,
}

pub struct Options {
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub connections_max: usize,
    pub outbox_frames_max: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            tls: None,
            connections_max: 1000,
            outbox_frames_max: chat_net::constants::WS_OUTBOX_FRAMES_MAX,
        }
    }
}

pub fn start(options: Options) -> Server {
    let events = Arc::new(Events::default());
    let stop = Arc::new(AtomicBool::new(false));
    let (addr_tx, addr_rx) = mpsc::channel();
    let (flood_tx, flood_rx) = mpsc::channel();
    let join = {
        let events = events.clone();
        let stop = stop.clone();
        glommio::LocalExecutorBuilder::default()
            .name("test-server")
            .spawn(move || async move {
                let listener = chat_net::bind("127.0.0.1:0".parse().unwrap()).expect("bind");
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                let signal = chat_net::StopSignal::new();
                let watcher = {
                    let signal = signal.clone();
                    glommio::spawn_local(async move {
                        while !stop.load(Ordering::SeqCst) {
                            glommio::timer::sleep(Duration::from_millis(5)).await;
                        }
                        signal.fire();
                    })
                };
                let handler = Rc::new(EchoHandler {
                    events,
                    outbox_frames_max: options.outbox_frames_max,
                    flood: flood_tx,
                });
                let config = ServeConfig {
                    tls: options.tls,
                    connections_max: options.connections_max,
                };
                chat_net::serve(listener, config, handler, signal).await;
                watcher.await;
            })
            .expect("executor")
    };
    let addr = addr_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("server address");
    Server {
        addr,
        events,
        flood: flood_rx,
        stop,
        join: Some(join),
    }
}

impl Server {
    /// Fires the stop signal and waits for `serve` to return.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.join.take().unwrap().join().expect("server thread");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Waits until `f` holds, for at most 5 s.
pub fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A blocking HTTP/1.1 client over one connection (keep-alive).
pub struct HttpClient {
    reader: BufReader<TcpStream>,
}

pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

impl HttpClient {
    pub fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        Self {
            reader: BufReader::new(stream),
        }
    }

    pub fn send(&mut self, head: &str, body: &[u8]) {
        let stream = self.reader.get_mut();
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(body).unwrap();
    }

    pub fn read_response(&mut self) -> HttpResponse {
        let mut status_line = String::new();
        self.reader
            .read_line(&mut status_line)
            .expect("status line");
        let status = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).expect("header line");
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').expect("header");
            headers.push((name.trim().to_string(), value.trim().to_string()));
        }
        let mut response = HttpResponse {
            status,
            headers,
            body: Vec::new(),
        };
        let length: usize = response
            .header("content-length")
            .map(|v| v.parse().unwrap())
            .unwrap_or(0);
        response.body.resize(length, 0);
        self.reader.read_exact(&mut response.body).expect("body");
        response
    }

    /// True when the server closed the connection (EOF or reset) within 5 s.
    pub fn is_closed_by_server(&mut self) -> bool {
        let mut byte = [0u8; 1];
        match self.reader.read(&mut byte) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
            ),
        }
    }
}
