//! Media (PROTOCOL.md "Media"): uploads stored once per content and
//! durable before the 201, downloads with Range, ETag and 304, the
//! access rule (the uploader, and members of a conversation holding a
//! message that names it), `media` in `message.send`, and all of it
//! across a kill -9.

mod common;

use chat_tools::client::{self, Response, Session};
use common::*;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Bytes that differ from upload to upload of the same test (a seed).
fn bytes_of(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn upload(server: &Server, s: &Session, mime: Option<&str>, bytes: &[u8]) -> (u16, Value) {
    let r = client::request_full(
        &server.http,
        "POST",
        "/v1/media",
        Some(&s.token),
        mime,
        Some(bytes),
    )
    .expect("upload");
    (
        r.status,
        serde_json::from_slice(&r.body).unwrap_or(Value::Null),
    )
}

fn uploaded(server: &Server, s: &Session, mime: &str, bytes: &[u8]) -> Value {
    let (status, v) = upload(server, s, Some(mime), bytes);
    assert_eq!(status, 201, "{v}");
    v
}

fn get(server: &Server, s: &Session, id: &str, headers: &[(&str, &str)]) -> Response {
    let path = format!("/v1/media/{id}");
    client::request_with(
        &server.http,
        "GET",
        &path,
        Some(&s.token),
        None,
        headers,
        None,
    )
    .expect("download")
}

#[test]
fn uploads_are_stored_once_per_content_and_read_back_with_ranges_and_etags() {
    let server = Server::start();
    let alice = server.login("+15550600001", "phone");
    let bytes = bytes_of(300_000, 7);
    let v = uploaded(&server, &alice, "image/png", &bytes);
    let sha = hex(&Sha256::digest(&bytes));
    assert_eq!(v["size"], 300_000);
    assert_eq!(v["sha256"], sha.as_str());
    assert_eq!(v["mime"], "image/png");
    let id = v["media_id"].as_str().unwrap().to_string();
    let again = uploaded(&server, &alice, "application/octet-stream", &bytes);
    assert_ne!(again["media_id"], id.as_str(), "each upload has its id");
    assert_eq!(again["sha256"], sha.as_str());
    assert_eq!(media_files(&server), 1, "the same bytes are stored once");

    let r = get(&server, &alice, &id, &[]);
    assert_eq!(r.status, 200);
    assert!(r.body == bytes, "the bytes come back");
    assert_eq!(r.header("content-type"), Some("image/png"));
    assert_eq!(r.header("content-length"), Some("300000"));
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    let etag = format!("\"{sha}\"");
    assert_eq!(r.header("etag"), Some(etag.as_str()));

    let ranged = |range: &str| get(&server, &alice, &id, &[("Range", range)]);
    let r = ranged("bytes=100-199");
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &bytes[100..200]);
    assert_eq!(r.header("content-range"), Some("bytes 100-199/300000"));
    let r = ranged("bytes=-10");
    assert_eq!((r.status, &r.body[..]), (206, &bytes[299_990..]));
    let r = ranged("bytes=299000-");
    assert_eq!((r.status, r.body.len()), (206, 1000));
    assert_eq!(
        r.header("content-range"),
        Some("bytes 299000-299999/300000")
    );
    let r = ranged("bytes=300000-");
    assert_eq!(r.status, 416);
    assert_eq!(r.header("content-range"), Some("bytes */300000"));
    assert!(r.body.is_empty(), "416 carries no body");
    let r = get(&server, &alice, &id, &[("If-None-Match", &etag)]);
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty(), "304 carries no body");
    let r = get(&server, &alice, &id, &[("If-None-Match", "\"other\"")]);
    assert_eq!(r.status, 200);
}

enum Framing {
    Declared,
    Chunked,
}

/// An upload of `len` zero bytes written by a thread of its own (its
/// write may fail once the server has answered and closed), the answer
/// read here.
fn raw_upload(server: &Server, s: &Session, framing: Framing, len: usize) -> Response {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(&server.http.host_port).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let framing_header = match framing {
        Framing::Declared => format!("Content-Length: {len}"),
        Framing::Chunked => "Transfer-Encoding: chunked".to_string(),
    };
    let head = format!(
        "POST /v1/media HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: video/mp4\r\n{framing_header}\r\n\r\n",
        s.token
    );
    let mut writer = stream.try_clone().unwrap();
    let chunked = matches!(framing, Framing::Chunked);
    let sender = std::thread::spawn(move || {
        let piece = vec![0u8; 64 * 1024];
        let _ = writer.write_all(head.as_bytes());
        let mut sent = 0;
        while sent < len {
            let n = piece.len().min(len - sent);
            let ok = if chunked {
                writer.write_all(format!("{n:x}\r\n").as_bytes()).is_ok()
                    && writer.write_all(&piece[..n]).is_ok()
                    && writer.write_all(b"\r\n").is_ok()
            } else {
                writer.write_all(&piece[..n]).is_ok()
            };
            if !ok {
                return;
            }
            sent += n;
        }
        if chunked {
            let _ = writer.write_all(b"0\r\n\r\n");
        }
    });
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let response = loop {
        if let Some(r) = client::parse_response(&buf, false, false).unwrap() {
            break r;
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break client::parse_response(&buf, true, false).unwrap().unwrap(),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    drop(stream);
    sender.join().unwrap();
    response
}

#[test]
fn bad_uploads_are_refused_and_leave_nothing_behind() {
    let server = Server::start();
    let alice = server.login("+15550600011", "phone");
    assert_error(&upload(&server, &alice, None, b"abc"), 400, "bad_request");
    assert_error(
        &upload(&server, &alice, Some("text/plain"), b""),
        400,
        "bad_request",
    );
    // Over 16 MiB: refused before the body is read, whether the length
    // is declared or the body is chunked.
    let r = raw_upload(&server, &alice, Framing::Declared, 16 * 1024 * 1024 + 1);
    assert_eq!(r.status, 413);
    let r = raw_upload(&server, &alice, Framing::Chunked, 17 * 1024 * 1024);
    assert_eq!(r.status, 413);
    let (status, _) = client::request_raw(
        &server.http,
        "POST",
        "/v1/media",
        None,
        Some("text/plain"),
        Some(b"x"),
    )
    .unwrap();
    assert_eq!(status, 401);
    assert_eq!(media_files(&server), 0);
    let tmp = server.data_dir().join("media").join("tmp");
    assert_eq!(
        std::fs::read_dir(tmp).unwrap().count(),
        0,
        "no temporary file stays"
    );
    // Exactly 16 MiB is allowed.
    let most = bytes_of(16 * 1024 * 1024, 3);
    let v = uploaded(&server, &alice, "video/mp4", &most);
    assert_eq!(v["size"], 16 * 1024 * 1024);
    let r = get(
        &server,
        &alice,
        v["media_id"].as_str().unwrap(),
        &[("Range", "bytes=-4")],
    );
    assert_eq!(r.body, &most[most.len() - 4..]);
}

fn send_media(ws: &mut client::Ws, conv: &str, id: &str, media: Value) -> Value {
    let event = json!({"type": "message.send", "conversation_id": conv, "client_msg_id": id,
        "body": {"text": "look"}, "media": media});
    match ws.call(event, WAIT) {
        Ok(v) => v,
        Err(client::ClientError::Remote { event, .. }) => event,
        Err(e) => panic!("no answer: {e}"),
    }
}

#[test]
fn members_of_a_conversation_holding_the_media_may_read_it_and_nobody_else() {
    let mut server = Server::start();
    let alice = server.user("+15550600021", "alice");
    let bob = server.user("+15550600022", "bob");
    let carol = server.user("+15550600023", "carol");
    let dave = server.user("+15550600024", "dave");
    let bytes = bytes_of(5000, 11);
    let v = uploaded(&server, &alice, "image/jpeg", &bytes);
    let id = v["media_id"].as_str().unwrap().to_string();
    let status = |server: &Server, s: &Session| get(server, s, &id, &[]).status;
    assert_eq!(status(&server, &bob), 404, "not shared yet");
    assert_eq!(get(&server, &bob, "f999.1", &[]).status, 404);
    assert_eq!(get(&server, &bob, "nonsense", &[]).status, 404);

    let direct = server.direct(&alice, &bob);
    let (mut a, _) = server.ws_synced(&alice);
    let (mut b, _) = server.ws_synced(&bob);
    // Bob may not send what he cannot read; nobody names unknown media,
    // and media is an object.
    let e = send_media(&mut b, &direct, "b1", json!({"media_id": id}));
    assert_eq!(
        (e["type"].as_str(), e["code"].as_str()),
        (Some("error"), Some("bad_request")),
        "{e}"
    );
    let e = send_media(&mut a, &direct, "a0", json!({"media_id": "f1.99"}));
    assert_eq!(e["code"], "bad_request", "{e}");
    let e = send_media(&mut a, &direct, "a0", json!(id));
    assert_eq!(e["code"], "bad_request", "{e}");

    let sent = send_media(&mut a, &direct, "a1", json!({"media_id": id}));
    assert_eq!(sent["type"], "message.sent", "{sent}");
    let m = next_message(&mut b);
    let shown = json!({"media_id": id, "size": 5000, "sha256": hex(&Sha256::digest(&bytes)), "mime": "image/jpeg"});
    assert_eq!(m["media"], shown, "{m}");
    assert_eq!(
        status(&server, &bob),
        200,
        "a member of a conversation holding it"
    );
    assert_eq!(status(&server, &carol), 404);

    // Bob forwards it to a group with carol (not dave).
    let group = server.group(&bob, "g", &[&carol]);
    let sent = send_media(&mut b, &group, "b2", json!({"media_id": id}));
    assert_eq!(sent["type"], "message.sent", "{sent}");
    assert_eq!(status(&server, &carol), 200);
    assert_eq!(status(&server, &dave), 404);
    // Someone removed from every conversation holding it loses access.
    let path = format!("/v1/conversations/{group}/members/{}", carol.user_id);
    assert_eq!(server.rest("DELETE", &path, Some(&bob.token), None).0, 204);
    assert_eq!(status(&server, &carol), 404);

    // All of it survives a kill -9.
    drop((a, b));
    server.kill9();
    server.restart();
    assert_eq!(status(&server, &bob), 200);
    assert_eq!(status(&server, &alice), 200);
    assert_eq!(status(&server, &carol), 404);
    let history = server.history(&bob, &direct, "");
    assert_eq!(history["messages"][0]["media"], shown, "{history}");
    assert!(get(&server, &bob, &id, &[]).body == bytes);
}
