//! Unit tests of the client: the sans-IO HTTP parser, OTP-file parsing, URL
//! parsing, and the transport over loopback sockets (plain, TLS, WebSocket)
//! with canned peers. Tests against a real chatd live with the engine.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::thread;

use super::*;

fn parse_all(bytes: &[u8]) -> Response {
    parse_response(bytes, false, false)
        .expect("valid")
        .expect("complete")
}

#[test]
fn content_length_body_is_complete_only_when_all_bytes_arrived() {
    let full = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"a\":12345}";
    for cut in 0..full.len() {
        assert_eq!(
            parse_response(&full[..cut], false, false).unwrap(),
            None,
            "cut {cut}"
        );
    }
    let response = parse_all(full);
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), Some("application/json"));
    assert_eq!(response.body, b"{\"a\":12345}");
    assert_eq!(json_body(&response.body).unwrap(), json!({"a": 12345}));
}

#[test]
fn content_length_body_cut_short_by_eof_is_an_error() {
    let cut = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345";
    let e = parse_response(cut, true, false).unwrap_err();
    assert!(e.to_string().contains("5 of 10"), "{e}");
}

#[test]
fn chunked_body_is_decoded_with_extensions_and_trailers() {
    let full = b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n\
        5;ext=1\r\n{\"err\r\n\
        19\r\nor\":{\"code\":\"not_found\"}}\r\n\
        0\r\nX-Trailer: yes\r\n\r\n";
    for cut in 0..full.len() {
        assert_eq!(
            parse_response(&full[..cut], false, false).unwrap(),
            None,
            "cut {cut}"
        );
    }
    let response = parse_all(full);
    assert_eq!(response.status, 404);
    assert_eq!(
        json_body(&response.body).unwrap(),
        json!({"error": {"code": "not_found"}})
    );
}

#[test]
fn chunked_body_cut_short_by_eof_is_an_error() {
    let cut = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab";
    assert!(parse_response(cut, true, false).is_err());
    let bad = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n\r\n";
    assert!(parse_response(bad, false, false).is_err());
}

#[test]
fn no_body_answers_are_complete_at_the_end_of_the_head() {
    let no_content = b"HTTP/1.1 204 No Content\r\n\r\n";
    let response = parse_all(no_content);
    assert_eq!((response.status, response.body.len()), (204, 0));
    assert_eq!(json_body(&response.body).unwrap(), Value::Null);

    let accepted_empty = b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n";
    assert_eq!(parse_all(accepted_empty).body, b"");

    let head = b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n";
    let response = parse_response(head, false, true).unwrap().unwrap();
    assert_eq!((response.status, response.body.len()), (200, 0));
}

#[test]
fn unframed_body_runs_to_eof() {
    let bytes = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{\"x\":1}";
    assert_eq!(parse_response(bytes, false, false).unwrap(), None);
    let response = parse_response(bytes, true, false).unwrap().unwrap();
    assert_eq!(response.body, b"{\"x\":1}");
}

#[test]
fn interim_100_continue_is_skipped() {
    let bytes = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}";
    let response = parse_all(bytes);
    assert_eq!(response.status, 201);
    assert_eq!(response.body, b"{}");
}

#[test]
fn malformed_heads_are_errors() {
    for bad in [
        &b"HTTP/1.1 20 OK\r\n\r\n"[..],
        b"SMTP 200 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
    ] {
        assert!(
            parse_response(bad, false, false).is_err(),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
    let endless_head = vec![b'a'; RESPONSE_HEAD_BYTES_MAX + 1];
    assert!(parse_response(&endless_head, false, false).is_err());
    assert!(parse_response(b"HTTP/1.1 200 OK\r\n", true, false).is_err());
}

#[test]
fn request_head_has_host_close_auth_and_length() {
    let ep = Endpoint::parse("http://127.0.0.1:8080", None).unwrap();
    let head = encode_request_head(
        &ep,
        "PATCH",
        "/v1/me",
        Some("tok"),
        Some("application/json"),
        Some(b"{}"),
    )
    .unwrap();
    assert_eq!(
        head,
        format!(
            "PATCH /v1/me HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nConnection: close\r\n\
             User-Agent: chat-tools/{}\r\nAccept: application/json\r\n\
             Authorization: Bearer tok\r\nContent-Type: application/json\r\n\
             Content-Length: 2\r\n\r\n",
            env!("CARGO_PKG_VERSION")
        )
    );
    let get = encode_request_head(&ep, "GET", "/v1/me", None, None, None).unwrap();
    assert!(!get.contains("Content-Length"));
    let delete = encode_request_head(&ep, "DELETE", "/v1/me", None, None, None).unwrap();
    assert!(delete.contains("Content-Length: 0\r\n"));
    assert!(encode_request_head(&ep, "GET", "/a b", None, None, None).is_err());
    assert!(encode_request_head(&ep, "GET", "/a", Some("x\r\ny"), None, None).is_err());
}

#[test]
fn expect_success_turns_protocol_errors_into_status_errors() {
    assert_eq!(
        expect_success((200, json!({"a": 1}))).unwrap(),
        json!({"a": 1})
    );
    let e = expect_success((
        429,
        json!({"error": {"code": "rate_limited", "message": "slow down"}, "retry_after_ms": 5}),
    ))
    .unwrap_err();
    match e {
        ClientError::Status {
            status,
            code,
            message,
        } => assert_eq!(
            (status, code.as_str(), message.as_str()),
            (429, "rate_limited", "slow down")
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn otp_code_is_the_last_complete_line_for_that_phone() {
    let contents =
        "+15551234567 111111\n+155512345678 999999\n+15551234567 222222\n+15550000000 333333\n";
    assert_eq!(
        last_otp_code(contents, "+15551234567").as_deref(),
        Some("222222")
    );
    assert_eq!(
        last_otp_code(contents, "+15550000000").as_deref(),
        Some("333333")
    );
    assert_eq!(last_otp_code(contents, "+1999"), None);
    // A line still being written does not count.
    let partial = "+15551234567 111111\n+15551234567 22";
    assert_eq!(
        last_otp_code(partial, "+15551234567").as_deref(),
        Some("111111")
    );
    assert_eq!(last_otp_code("+15551234567 111111", "+15551234567"), None);
    assert_eq!(last_otp_code("", "+15551234567"), None);
    // Odd lines are skipped, not fatal.
    let odd = "garbage\n\n+15551234567 1 2\n+15551234567 444444\n";
    assert_eq!(
        last_otp_code(odd, "+15551234567").as_deref(),
        Some("444444")
    );
}

#[test]
fn otp_wait_sees_only_codes_written_after_the_offset() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("otp.txt");
    assert_eq!(otp_file_len(&path), 0);
    fs::write(&path, "+15551234567 111111\n").unwrap();
    let offset = otp_file_len(&path);
    let e = wait_for_otp(&path, "+15551234567", offset, Duration::from_millis(50)).unwrap_err();
    assert!(matches!(e, ClientError::Otp(_)), "{e}");

    let writer_path = path.clone();
    let writer = thread::spawn(move || {
        thread::sleep(Duration::from_millis(100));
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(writer_path)
            .unwrap();
        f.write_all(b"+15550000000 555555\n+15551234567 222222\n")
            .unwrap();
    });
    let code = wait_for_otp(&path, "+15551234567", offset, OTP_WAIT).unwrap();
    writer.join().unwrap();
    assert_eq!(code, "222222");
}

#[test]
fn otp_file_that_shrank_is_read_from_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("otp.txt");
    fs::write(&path, "+15551234567 333333\n").unwrap();
    let code = wait_for_otp(&path, "+15551234567", 1_000, Duration::from_millis(10)).unwrap();
    assert_eq!(code, "333333");
}

#[test]
fn endpoint_parse_accepts_http_urls_and_rejects_others() {
    let cases = [
        ("http://127.0.0.1:8080", "127.0.0.1:8080", "127.0.0.1"),
        ("http://localhost:8080/", "localhost:8080", "localhost"),
        ("http://localhost", "localhost:80", "localhost"),
        ("127.0.0.1:9000", "127.0.0.1:9000", "127.0.0.1"),
        ("http://[::1]:8080", "[::1]:8080", "::1"),
        ("http://[::1]", "[::1]:80", "::1"),
    ];
    for (url, host_port, host) in cases {
        let ep = Endpoint::parse(url, None).unwrap();
        assert_eq!(
            (ep.host_port.as_str(), ep.host()),
            (host_port, host),
            "{url}"
        );
        assert!(ep.tls.is_none());
    }
    for bad in [
        "ftp://x:1",
        "http://",
        "http://host:port",
        "http://host:99999",
        "http://host:80/v1",
        "http://[::1",
    ] {
        assert!(Endpoint::parse(bad, None).is_err(), "{bad}");
    }
    let e = Endpoint::parse("https://localhost:8443", None).unwrap_err();
    assert!(e.to_string().contains("--ca"), "{e}");
}

#[test]
fn query_values_are_percent_encoded() {
    assert_eq!(encode_query_value("+15551234567"), "%2B15551234567");
    assert_eq!(encode_query_value("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    assert_eq!(encode_query_value("AZaz09-._~"), "AZaz09-._~");
}

#[test]
fn padded_event_has_exactly_the_asked_size_and_is_json() {
    for n in [24, 25, 1000, 128 * 1024 + 1] {
        let text = padded_event(n).unwrap();
        assert_eq!(text.len(), n);
        let event: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(event_type(&event), "ping");
    }
    assert!(padded_event(23).is_err());
}

#[test]
fn random_ids_differ() {
    let (a, b) = (random_id(), random_id());
    assert_eq!(a.len(), 32);
    assert_ne!(a, b);
}

// --- Loopback transport tests with canned peers --------------------------

/// Reads one request head (and a Content-Length body) from `stream`.
fn read_request(stream: &mut impl Read) -> String {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while find(&buf, b"\r\n\r\n").is_none() {
        assert_eq!(stream.read(&mut byte).unwrap(), 1);
        buf.push(byte[0]);
    }
    let head = String::from_utf8(buf).unwrap();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .map(|l| l.parse::<usize>().unwrap())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).unwrap();
    head + &String::from_utf8(body).unwrap()
}

#[test]
fn request_over_loopback_reads_a_chunked_answer_written_in_pieces() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let request = read_request(&mut stream);
        for piece in [
            &b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
            b"7\r\n{\"seq\":",
            b"\r\n2\r\n42\r\n1\r\n}\r\n",
            b"0\r\n\r\n",
        ] {
            stream.write_all(piece).unwrap();
            stream.flush().unwrap();
            thread::sleep(Duration::from_millis(20));
        }
        request
    });
    let ep = Endpoint::parse(&format!("http://{addr}"), None).unwrap();
    let (status, body) =
        request(&ep, "POST", "/v1/x", Some("t0k"), Some(&json!({"a": 1}))).unwrap();
    assert_eq!((status, body), (201, json!({"seq": 42})));
    let request = server.join().unwrap();
    assert!(request.starts_with("POST /v1/x HTTP/1.1\r\n"), "{request}");
    assert!(request.contains("Authorization: Bearer t0k\r\n"));
    assert!(request.contains("Connection: close\r\n"));
    assert!(request.ends_with("\r\n\r\n{\"a\":1}"), "{request}");
}

#[test]
fn request_over_tls_trusts_the_given_self_signed_certificate() {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pem_path = dir.path().join("cert.pem");
    fs::write(&pem_path, certified.cert.pem()).unwrap();

    let cert_der = certified.cert.der().clone();
    let key_der =
        rustls::pki_types::PrivateKeyDer::try_from(certified.signing_key.serialize_der()).unwrap();
    let server_config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert_der], key_der)
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        let conn = rustls::ServerConnection::new(Arc::new(server_config)).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        let request = read_request(&mut tls);
        tls.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n{\"tls\":true}")
            .unwrap();
        tls.conn.send_close_notify();
        tls.flush().unwrap();
        request
    });
    let ep = Endpoint::parse(&format!("https://localhost:{port}"), Some(&pem_path)).unwrap();
    assert!(ep.tls.is_some());
    let (status, body) = request_raw(&ep, "GET", "/v1/me", None, None, None).unwrap();
    assert_eq!((status, body.as_slice()), (200, &b"{\"tls\":true}"[..]));
    let seen = server.join().unwrap();
    assert!(seen.starts_with("GET /v1/me HTTP/1.1\r\n"), "{seen}");

    // A certificate the client does not trust fails the handshake clearly.
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let other_pem = dir.path().join("other.pem");
    fs::write(&other_pem, other.cert.pem()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server_config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![certified.cert.der().clone()],
        rustls::pki_types::PrivateKeyDer::try_from(certified.signing_key.serialize_der()).unwrap(),
    )
    .unwrap();
    let server = thread::spawn(move || {
        let (mut tcp, _) = listener.accept().unwrap();
        let mut conn = rustls::ServerConnection::new(Arc::new(server_config)).unwrap();
        let _ = conn.complete_io(&mut tcp);
    });
    let ep = Endpoint::parse(&format!("https://localhost:{port}"), Some(&other_pem)).unwrap();
    let e = request(&ep, "GET", "/v1/me", None, None).unwrap_err();
    assert!(e.to_string().contains("TLS handshake"), "{e}");
    server.join().unwrap();
}

#[test]
#[allow(clippy::result_large_err)] // tungstenite's accept_hdr callback type
fn ws_recv_type_sets_aside_other_events_and_reports_the_close_code() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        let mut auth_header = None;
        let mut ws = tungstenite::accept_hdr(
            tcp,
            |req: &tungstenite::handshake::server::Request,
             res: tungstenite::handshake::server::Response| {
                auth_header = req
                    .headers()
                    .get("authorization")
                    .map(|v| v.to_str().unwrap().to_owned());
                assert_eq!(req.uri().path(), "/v1/ws");
                Ok(res)
            },
        )
        .unwrap();
        let first = ws.read().unwrap();
        let first: Value = serde_json::from_str(first.to_text().unwrap()).unwrap();
        for event in [
            json!({"type": "message.new", "conversation_id": "c1", "seq": 1}),
            json!({"type": "typing", "conversation_id": "c1", "state": "start"}),
            json!({"type": "pong", "ref": first["ref"]}),
            json!({"type": "sync.done"}),
        ] {
            ws.send(Message::text(event.to_string())).unwrap();
        }
        let raw = ws.read().unwrap();
        assert_eq!(raw.to_text().unwrap().len(), 100);
        ws.send(Message::text(
            json!({"type": "error", "code": "unauthorized", "message": "bye"}).to_string(),
        ))
        .unwrap();
        ws.close(Some(CloseFrame {
            code: CloseCode::from(4401),
            reason: "".into(),
        }))
        .unwrap();
        // Drive the close handshake to its end.
        while ws.read().is_ok() {}
        auth_header
    });
    let ep = Endpoint::parse(&format!("http://{addr}"), None).unwrap();
    let mut ws = Ws::connect(&ep, Some("sekret")).unwrap();
    let second = Duration::from_secs(5);
    let pong = ws.call(json!({"type": "ping"}), second).unwrap();
    assert_eq!(event_type(&pong), "pong");
    let done = ws.recv_type("sync.done", second).unwrap();
    assert_eq!(event_type(&done), "sync.done");
    // Set-aside events come back in arrival order.
    assert_eq!(ws.pending().len(), 2);
    let new = ws.recv(second).unwrap().unwrap();
    assert_eq!((event_type(&new), &new["seq"]), ("message.new", &json!(1)));
    assert_eq!(event_type(&ws.recv(second).unwrap().unwrap()), "typing");
    assert_eq!(ws.recv(Duration::from_millis(50)).unwrap(), None);

    ws.send_frame_of_size(100).unwrap();
    let error = ws.recv_type("error", second).unwrap();
    assert_eq!(error["code"], "unauthorized");
    let e = ws.recv(second).unwrap_err();
    assert_eq!(e.close_code(), Some(4401), "{e}");
    assert_eq!(ws.close_code(), Some(4401));
    assert!(ws.is_closed());
    assert!(matches!(
        ws.recv(second),
        Err(ClientError::Closed(Some(4401)))
    ));
    assert!(matches!(
        ws.send(&json!({"type": "ping"})),
        Err(ClientError::Closed(Some(4401)))
    ));
    ws.close().unwrap();
    assert_eq!(server.join().unwrap().as_deref(), Some("Bearer sekret"));
}

#[test]
fn ws_upgrade_refused_reports_the_status() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        read_request(&mut stream);
        let body = r#"{"error":{"code":"unauthorized","message":"bad token"}}"#;
        write!(
            stream,
            "HTTP/1.1 401 Unauthorized\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
    });
    let ep = Endpoint::parse(&format!("http://{addr}"), None).unwrap();
    match Ws::connect(&ep, Some("bad")) {
        Err(ClientError::Handshake { status, .. }) => assert_eq!(status, 401),
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("upgrade succeeded"),
    }
    server.join().unwrap();
}
