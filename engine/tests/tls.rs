//! TLS (PROTOCOL.md "Starting the server": `--tls-cert PEM --tls-key PEM`,
//! `https=` in the ready line): the whole happy path over https + wss with
//! a certificate from `chatd gen-cert`.

mod common;

use std::path::Path;
use std::process::Command;

use chat_tools::client;
use common::*;
use serde_json::json;

/// Runs `chatd gen-cert` into `dir`; answers the cert and key paths.
fn gen_cert(dir: &Path) -> (String, String) {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let out = Command::new(env!("CARGO_BIN_EXE_chatd"))
        .arg("gen-cert")
        .arg("--cert")
        .arg(&cert)
        .arg("--key")
        .arg(&key)
        .output()
        .expect("chatd gen-cert runs");
    assert!(out.status.success(), "gen-cert: {out:?}");
    let cert_pem = std::fs::read_to_string(&cert).unwrap();
    let key_pem = std::fs::read_to_string(&key).unwrap();
    assert!(cert_pem.contains("BEGIN CERTIFICATE"), "{cert_pem}");
    assert!(key_pem.contains("PRIVATE KEY"), "a PEM key");
    (
        cert.to_str().unwrap().to_string(),
        key.to_str().unwrap().to_string(),
    )
}

#[test]
fn login_direct_send_receive_and_delivered_work_over_https_and_wss() {
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = gen_cert(certs.path());
    let server = Server::start_with(&["--tls-cert", &cert, "--tls-key", &key]);
    // The harness turns `https=` of the ready line (and only it) into a
    // TLS endpoint.
    assert!(server.http.tls.is_some(), "the ready line says https=");
    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain =
        client::Endpoint::parse(&format!("http://{}", server.http.host_port), None).unwrap();
    assert!(
        client::request(&plain, "GET", "/v1/me", None, None).is_err(),
        "plain HTTP is not served on the TLS port"
    );

    let alice = server.user("+15556000001", "alice");
    let bob = server.user("+15556000002", "bob");
    let (status, me) = server.rest("GET", "/v1/me", Some(&alice.token), None);
    assert_eq!((status, me["name"].as_str()), (200, Some("alice")));
    let conv = server.direct(&alice, &bob);
    let (mut a, _) = server.ws_synced(&alice);
    let (mut b, _) = server.ws_synced(&bob);
    let sent = send(&mut a, &conv, "t1", "over tls");
    assert_eq!(sent["seq"], 1);
    let got = next_message(&mut b);
    assert_eq!(got["body"]["text"], "over tls");
    assert_eq!(got["sender_id"], alice.user_id.as_str());
    b.send(&json!({"type": "message.ack", "conversation_id": conv, "seq": 1}))
        .unwrap();
    let delivered = a.recv_type("message.delivered", WAIT).unwrap();
    assert_eq!(delivered["seq"], 1);
    assert_eq!(delivered["user_id"], bob.user_id.as_str());
    // First-frame auth works over wss too.
    let (mut ws, ok) = client::Ws::connect_and_auth(&server.http, &bob.token, WAIT).unwrap();
    assert_eq!(ok["user_id"], bob.user_id.as_str());
    ws.recv_type("sync.done", WAIT).unwrap();
    let h = server.history(&bob, &conv, "");
    assert_eq!(seqs(&h["messages"]), [1]);
}
