//! WebSocket over real sockets: upgrade, echo through `Inbox`/`Outbox`, the
//! message size limit, a full outbox, and the same echo over TLS.

mod common;

use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use common::{eventually, start, Options};
use tungstenite::client::IntoClientRequest;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::{Message, WebSocket};

fn connect_plain(addr: std::net::SocketAddr, bearer: Option<&str>) -> WebSocket<TcpStream> {
    let mut request = format!("ws://{addr}/v1/ws").into_client_request().unwrap();
    if let Some(token) = bearer {
        let value = format!("Bearer {token}").parse().unwrap();
        request.headers_mut().insert("authorization", value);
    }
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let (ws, response) = tungstenite::client(request, stream).expect("handshake");
    assert_eq!(response.status(), 101);
    ws
}

fn read_text<S: std::io::Read + std::io::Write>(ws: &mut WebSocket<S>) -> String {
    loop {
        match ws.read().expect("read") {
            Message::Text(text) => return text.as_str().to_string(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected text, got {other:?}"),
        }
    }
}

fn echo_roundtrips<S: std::io::Read + std::io::Write>(ws: &mut WebSocket<S>) {
    for i in 0..50 {
        ws.send(Message::text(format!("message {i}"))).unwrap();
    }
    for i in 0..50 {
        assert_eq!(read_text(ws), format!("message {i}"));
    }
    // A binary frame holding UTF-8 is delivered as text.
    ws.send(Message::binary(b"{\"type\":\"ping\"}".to_vec()))
        .unwrap();
    assert_eq!(read_text(ws), "{\"type\":\"ping\"}");
    // Pings are answered by the server without reaching the handler.
    ws.send(Message::Ping(b"p".to_vec().into())).unwrap();
    match ws.read().unwrap() {
        Message::Pong(data) => assert_eq!(&data[..], b"p"),
        other => panic!("expected pong, got {other:?}"),
    }
    // Just under the limit passes.
    let big = "y".repeat(chat_net::constants::WS_MESSAGE_BYTES_MAX - 1);
    ws.send(Message::text(big.clone())).unwrap();
    assert_eq!(read_text(ws), big);
}

fn close_cleanly<S: std::io::Read + std::io::Write>(ws: &mut WebSocket<S>) {
    ws.close(None).unwrap();
    loop {
        match ws.read() {
            Ok(_) => continue,
            Err(tungstenite::Error::ConnectionClosed) => break,
            Err(e) => panic!("unclean close: {e}"),
        }
    }
}

#[test]
fn upgrade_and_echo_through_inbox_and_outbox() {
    let server = start(Options::default());
    let mut ws = connect_plain(server.addr, Some("secret"));
    assert_eq!(read_text(&mut ws), "hello bearer=secret");
    echo_roundtrips(&mut ws);
    close_cleanly(&mut ws);
    eventually("connection closed on the server", || {
        server.events.closed.load(Ordering::SeqCst) == 1
    });

    let mut anonymous = connect_plain(server.addr, None);
    assert_eq!(read_text(&mut anonymous), "hello bearer=-");
    server.stop();
}

#[test]
fn message_over_limit_yields_too_large_then_close_1009() {
    let server = start(Options::default());
    let mut ws = connect_plain(server.addr, None);
    assert_eq!(read_text(&mut ws), "hello bearer=-");
    ws.send(Message::text("z".repeat(200 * 1024))).unwrap();
    assert_eq!(read_text(&mut ws), "too_large");
    match ws.read().expect("close frame") {
        Message::Close(Some(frame)) => assert_eq!(frame.code, CloseCode::Size),
        other => panic!("expected close 1009, got {other:?}"),
    }
    eventually("connection closed on the server", || {
        server.events.closed.load(Ordering::SeqCst) == 1
    });
    server.stop();
}

#[test]
fn try_send_is_full_when_the_peer_does_not_read_and_close_frees_it() {
    let frames_max = 16;
    let server = start(Options {
        outbox_frames_max: frames_max,
        ..Options::default()
    });
    let mut ws = connect_plain(server.addr, None);
    assert_eq!(read_text(&mut ws), "hello bearer=-");
    ws.send(Message::text("flood:65536")).unwrap();
    // We do not read: the socket fills, then the outbox.
    let flood = server
        .flood
        .recv_timeout(Duration::from_secs(15))
        .expect("flood report");
    assert!(flood.full, "never full: {flood:?}");
    assert_eq!(flood.queued_at_full, frames_max);
    assert!(flood.frames_accepted >= frames_max, "{flood:?}");
    // The handler closed the outbox; the peer still does not read, yet the server
    // lets go of the connection within WS_CLOSE_LINGER_MS.
    eventually("slow consumer disconnected", || {
        server.events.closed.load(Ordering::SeqCst) == 1
    });
    drop(ws);
    server.stop();
}

#[test]
fn echo_over_tls_with_a_self_signed_certificate() {
    let (cert_pem, key_pem) =
        chat_net::tls::generate_self_signed(&["localhost".to_string()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, &cert_pem).unwrap();
    std::fs::write(&key_path, &key_pem).unwrap();
    let tls = chat_net::tls::load_server_config(&cert_path, &key_path).unwrap();
    let server = start(Options {
        tls: Some(tls),
        ..Options::default()
    });

    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut cert_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client_config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connect = || {
        let name = "localhost".try_into().unwrap();
        let conn = rustls::ClientConnection::new(Arc::new(client_config.clone()), name).unwrap();
        let tcp = TcpStream::connect(server.addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        rustls::StreamOwned::new(conn, tcp)
    };

    let url = format!("wss://localhost:{}/v1/ws", server.addr.port());
    let (mut ws, response) = tungstenite::client(url.as_str(), connect()).expect("handshake");
    assert_eq!(response.status(), 101);
    assert_eq!(read_text(&mut ws), "hello bearer=-");
    echo_roundtrips(&mut ws);
    close_cleanly(&mut ws);

    // Plain HTTP on the TLS port fails the handshake and is counted.
    let mut plain = TcpStream::connect(server.addr).unwrap();
    std::io::Write::write_all(&mut plain, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    eventually("TLS failure counted", || {
        server.events.tls_failed.load(Ordering::SeqCst) == 1
    });
    server.stop();
}

#[test]
fn tls_files_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing-cert.pem");
    let key = dir.path().join("key.pem");
    let error = chat_net::tls::load_server_config(&missing, &key).unwrap_err();
    assert!(error.contains("missing-cert.pem"), "{error}");

    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a pem").unwrap();
    let error = chat_net::tls::load_server_config(&empty, &key).unwrap_err();
    assert!(
        error.contains("empty.pem") && error.contains("CERTIFICATE"),
        "{error}"
    );

    let (cert_pem, _) = chat_net::tls::generate_self_signed(&["localhost".to_string()]).unwrap();
    let cert = dir.path().join("cert.pem");
    std::fs::write(&cert, cert_pem).unwrap();
    let error = chat_net::tls::load_server_config(&cert, &empty).unwrap_err();
    assert!(
        error.contains("empty.pem") && error.contains("PRIVATE KEY"),
        "{error}"
    );
}

fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// Not a pass/fail check: prints the server's userspace memory per idle WebSocket
/// (the clients here are bare sockets, so the delta is the server's).
#[test]
#[ignore = "measurement: cargo test -p chat-net --release --test websocket -- --ignored --nocapture"]
fn idle_websocket_memory_per_connection() {
    use std::io::{Read, Write};
    const CONNECTIONS: usize = 5000;
    let server = start(Options {
        connections_max: CONNECTIONS + 1,
        ..Options::default()
    });
    let rss_before = rss_bytes();
    let mut sockets = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS {
        let mut socket = TcpStream::connect(server.addr).unwrap();
        socket
            .write_all(
                b"GET /v1/ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                  Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
            )
            .unwrap();
        let mut seen = Vec::new();
        let mut buf = [0u8; 512];
        while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = socket.read(&mut buf).unwrap();
            assert!(n > 0);
            seen.extend_from_slice(&buf[..n]);
        }
        assert!(seen.starts_with(b"HTTP/1.1 101"));
        sockets.push(socket);
    }
    std::thread::sleep(Duration::from_millis(300));
    let rss_after = rss_bytes();
    println!(
        "{CONNECTIONS} idle WebSockets: RSS {} KiB -> {} KiB, {} bytes per connection",
        rss_before / 1024,
        rss_after / 1024,
        (rss_after.saturating_sub(rss_before)) / CONNECTIONS
    );
    drop(sockets);
    server.stop();
}
