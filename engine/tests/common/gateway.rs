//! A loopback HTTP gateway for the tests of what chatd POSTs (push
//! notifications, the OTP webhook): it records each request's JSON body
//! and answers from a script (then `200 {}`); it can be stopped and come
//! back on the same port.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// How the gateway answers one request.
#[derive(Clone, Debug)]
pub enum Reply {
    /// 200 with this body.
    Ok(String),
    /// This status, empty body.
    Status(u16),
}

/// A request as it arrived.
#[derive(Clone, Debug)]
pub struct Received {
    pub at: Instant,
    pub path: String,
    pub body: Value,
    pub raw: String,
}

#[derive(Default)]
struct Book {
    received: Vec<Received>,
    script: VecDeque<Reply>,
}

pub struct Gateway {
    pub port: u16,
    book: Arc<Mutex<Book>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Gateway {
    pub fn start() -> Gateway {
        Gateway::start_on(0)
    }

    /// Listens on `port` (0: any free one).
    pub fn start_on(port: u16) -> Gateway {
        Gateway::launch(port, None)
    }

    /// An https:// gateway with this server configuration.
    pub fn start_tls(tls: std::sync::Arc<rustls::ServerConfig>) -> Gateway {
        Gateway::launch(0, Some(tls))
    }

    fn launch(port: u16, tls: Option<std::sync::Arc<rustls::ServerConfig>>) -> Gateway {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("gateway binds");
        let port = listener.local_addr().unwrap().port();
        let book = Arc::new(Mutex::new(Book::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (b, s) = (book.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(conn) = conn {
                    let (b, tls) = (b.clone(), tls.clone());
                    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
                    std::thread::spawn(move || match tls {
                        None => serve(conn, &b),
                        Some(cfg) => {
                            let Ok(tls) = rustls::ServerConnection::new(cfg) else {
                                return;
                            };
                            serve(rustls::StreamOwned::new(tls, conn), &b)
                        }
                    });
                }
            }
        });
        Gateway {
            port,
            book,
            stop,
            thread: Some(thread),
        }
    }

    /// A port nothing listens on now (for a gateway that starts later).
    pub fn free_port() -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/push", self.port)
    }

    pub fn https_url(&self) -> String {
        format!("https://127.0.0.1:{}/push", self.port)
    }

    /// The next answers, in order (after them: `200 {}`).
    pub fn script(&self, replies: &[Reply]) {
        self.book
            .lock()
            .unwrap()
            .script
            .extend(replies.iter().cloned());
    }

    pub fn received(&self) -> Vec<Received> {
        self.book.lock().unwrap().received.clone()
    }

    /// Waits until at least `n` requests arrived (at most `within`).
    pub fn wait_for(&self, n: usize, within: Duration) -> Vec<Received> {
        let deadline = Instant::now() + within;
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "the gateway got {} requests, not {n}, within {within:?}: {got:?}",
                got.len()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops listening (connections are refused from now on).
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.halt();
    }
}

fn serve<S: Read + Write>(conn: S, book: &Mutex<Book>) {
    let mut reader = BufReader::new(conn);
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return; // the stop poke, or a probe
    }
    let path = line.split(' ').nth(1).unwrap_or("").to_string();
    let mut length = 0;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
            break;
        }
        if let Some((k, v)) = header.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let raw = String::from_utf8_lossy(&body).into_owned();
    let reply = {
        let mut b = book.lock().unwrap();
        b.received.push(Received {
            at: Instant::now(),
            path,
            body: serde_json::from_str(&raw).unwrap_or(Value::Null),
            raw,
        });
        b.script.pop_front().unwrap_or(Reply::Ok("{}".into()))
    };
    let (status, text) = match reply {
        Reply::Ok(t) => (200, t),
        Reply::Status(s) => (s, String::new()),
    };
    let answer = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    );
    let conn = reader.get_mut();
    let _ = conn.write_all(answer.as_bytes());
    let _ = conn.flush();
}
