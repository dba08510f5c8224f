//! HTTP/1.1 over real sockets: keep-alive, body limits, the `/v1/ws` guard,
//! `connections_max`, and `serve` returning on stop.

mod common;

use std::sync::atomic::Ordering;

use chat_net::constants::HTTP_BODY_BYTES_MAX;
use common::{eventually, start, HttpClient, Options};

#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    let server = start(Options::default());
    let mut client = HttpClient::connect(server.addr);

    client.send(
        "GET /v1/me?x=1&y=2 HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer tok123\r\n\r\n",
        b"",
    );
    let first = client.read_response();
    assert_eq!(first.status, 200);
    assert_eq!(first.header("content-type"), Some("application/json"));
    assert_eq!(first.header("x-peer-ip"), Some("127.0.0.1"));
    let json = first.json();
    assert_eq!(json["method"], "GET");
    assert_eq!(json["path"], "/v1/me");
    assert_eq!(json["query"], "x=1&y=2");
    assert_eq!(json["bearer"], "tok123");

    let body = vec![b'a'; 300 * 1024];
    let head = format!(
        "POST /v1/auth/otp HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    client.send(&head, &body);
    let second = client.read_response();
    assert_eq!(second.status, 200);
    let json = second.json();
    assert_eq!(json["method"], "POST");
    assert_eq!(json["content_type"], "application/json");
    assert_eq!(json["body_bytes"], body.len());
    assert!(json["bearer"].is_null());

    // A chunked body is read in full too.
    client.send(
        "PUT /v1/keys HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        b"",
    );
    let third = client.read_response();
    assert_eq!(third.status, 200);
    assert_eq!(third.json()["body_bytes"], 11);

    assert_eq!(server.events.opened.load(Ordering::SeqCst), 1);
    server.stop();
}

#[test]
fn oversized_body_gets_413_too_large_without_the_handler() {
    let server = start(Options::default());
    let mut client = HttpClient::connect(server.addr);
    let head = format!(
        "POST /v1/auth/verify HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
        HTTP_BODY_BYTES_MAX + 1
    );
    client.send(&head, b"{}");
    let response = client.read_response();
    assert_eq!(response.status, 413);
    let json = response.json();
    assert_eq!(json["error"]["code"], "too_large");
    assert!(json["error"]["message"].as_str().unwrap().contains("bytes"));
    assert!(json.get("method").is_none(), "the handler must not run");

    // A chunked body that grows past the limit is cut off the same way.
    let mut client = HttpClient::connect(server.addr);
    let chunk = vec![b'z'; 256 * 1024];
    let head = String::from("POST /v1/x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
    let mut body = Vec::new();
    for _ in 0..(HTTP_BODY_BYTES_MAX / chunk.len() + 1) {
        body.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        body.extend_from_slice(&chunk);
        body.extend_from_slice(b"\r\n");
    }
    client.send(&head, &body);
    let response = client.read_response();
    assert_eq!(response.status, 413);
    assert_eq!(response.json()["error"]["code"], "too_large");
    server.stop();
}

#[test]
fn ws_path_without_upgrade_headers_is_400_bad_request() {
    let server = start(Options::default());
    let mut client = HttpClient::connect(server.addr);
    client.send("GET /v1/ws HTTP/1.1\r\nHost: t\r\n\r\n", b"");
    let response = client.read_response();
    assert_eq!(response.status, 400);
    assert_eq!(response.json()["error"]["code"], "bad_request");

    // Missing key: still 400, and the connection stays usable.
    client.send(
        "GET /v1/ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n",
        b"",
    );
    assert_eq!(client.read_response().status, 400);
    client.send("GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n", b"");
    assert_eq!(client.read_response().status, 200);
    server.stop();
}

#[test]
fn connections_over_max_are_closed_at_once_and_counted() {
    let server = start(Options {
        connections_max: 2,
        ..Options::default()
    });
    let mut first = HttpClient::connect(server.addr);
    let mut second = HttpClient::connect(server.addr);
    for client in [&mut first, &mut second] {
        client.send("GET /a HTTP/1.1\r\nHost: t\r\n\r\n", b"");
        assert_eq!(client.read_response().status, 200);
    }

    let mut third = HttpClient::connect(server.addr);
    assert!(third.is_closed_by_server());
    eventually("rejection counted", || {
        server.events.rejected.load(Ordering::SeqCst) == 1
    });

    // Once one connection ends, a new one is served again.
    drop(first);
    eventually("first connection closed", || {
        server.events.closed.load(Ordering::SeqCst) == 1
    });
    let mut fourth = HttpClient::connect(server.addr);
    fourth.send("GET /b HTTP/1.1\r\nHost: t\r\n\r\n", b"");
    assert_eq!(fourth.read_response().status, 200);
    assert_eq!(server.events.opened.load(Ordering::SeqCst), 3);
    server.stop();
}

#[test]
fn stop_ends_the_accept_loop_and_idle_connections() {
    let server = start(Options::default());
    let mut client = HttpClient::connect(server.addr);
    client.send("GET /a HTTP/1.1\r\nHost: t\r\n\r\n", b"");
    assert_eq!(client.read_response().status, 200);
    let events = server.events.clone();
    server.stop(); // returns only once `serve` returned
    assert!(client.is_closed_by_server());
    assert!(events.opened.load(Ordering::SeqCst) >= 1);
}
