//! Slow and hostile clients (issue 13): a client that sends half a
//! request head is closed once `HTTP_HEADER_READ_TIMEOUT_MS` (10 s)
//! passed, while well-behaved clients keep being served meanwhile.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

const SLOW_SOCKETS: usize = 200;

#[test]
fn half_a_request_head_is_closed_after_the_header_timeout_and_others_are_served() {
    let server = Server::start();
    let started = Instant::now();
    let mut slow: Vec<TcpStream> = (0..SLOW_SOCKETS)
        .map(|_| {
            let mut s = TcpStream::connect(&server.http.host_port).expect("connects");
            s.write_all(b"GET /v1/me HTTP/1.1\r\nHost: chatd\r\nX-Slow: ")
                .unwrap();
            s
        })
        .collect();
    // Meanwhile a user signs in and is served as usual.
    let alice = server.user("+15550700001", "alice");
    let mut took = Vec::new();
    while started.elapsed() < Duration::from_secs(8) {
        let t = Instant::now();
        let (status, _) = server.rest("GET", "/v1/me", Some(&alice.token), None);
        assert_eq!(status, 200);
        took.push(t.elapsed());
        std::thread::sleep(Duration::from_millis(100));
    }
    took.sort();
    let p99 = took[took.len() * 99 / 100];
    eprintln!(
        "GET /v1/me beside {SLOW_SOCKETS} half heads: {} calls, max {:?}, p99 {p99:?}",
        took.len(),
        took[took.len() - 1]
    );
    assert!(p99 < Duration::from_secs(1), "{took:?}");
    // Still open before the timeout ...
    for s in slow.iter_mut().take(10) {
        s.set_nonblocking(true).unwrap();
        let mut b = [0u8; 64];
        let open = matches!(s.read(&mut b), Err(e) if e.kind() == ErrorKind::WouldBlock);
        assert!(open, "closed before the timeout");
        s.set_nonblocking(false).unwrap();
    }
    // ... and closed by the server soon after it.
    std::thread::sleep(Duration::from_secs(10).saturating_sub(started.elapsed()));
    let deadline = Instant::now() + Duration::from_secs(5);
    for (i, s) in slow.iter_mut().enumerate() {
        let left = deadline.saturating_duration_since(Instant::now());
        s.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        let mut sink = Vec::new();
        match s.read_to_end(&mut sink) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
            Err(e) => panic!(
                "slow socket {i} still open {:?} after it connected: {e}",
                started.elapsed()
            ),
        }
    }
    eprintln!(
        "all {SLOW_SOCKETS} closed {:?} after they connected",
        started.elapsed()
    );
    let (status, _) = server.rest("GET", "/v1/me", Some(&alice.token), None);
    assert_eq!(status, 200);
}
