//! Push notifications (PROTOCOL.md "Push notifications") against a real
//! chatd and a loopback gateway: what is sent and to whom, within 1 s;
//! backoff; refused tokens; collapse; across kill -9 with the gateway
//! down; large groups; and the OTP webhook on the same client.

mod common;

use std::time::{Duration, Instant};

use chat_tools::client::{self, Session, Ws};
use common::gateway::{Gateway, Received, Reply};
use common::{assert_error, send, Server};
use serde_json::{json, Value};

/// Quiet long enough that a notification due now would have come.
const NONE_COMES: Duration = Duration::from_millis(1_500);

fn set_token(server: &Server, s: &Session, device: &str, token: Value) -> (u16, Value) {
    let path = format!("/v1/devices/{device}/push");
    server.rest(
        "PUT",
        &path,
        Some(&s.token),
        Some(&json!({ "push_token": token })),
    )
}

fn with_token(server: &Server, s: &Session, token: &str) {
    let answer = set_token(server, s, &s.device_id, json!(token));
    assert_eq!(answer.0, 204, "{answer:?}");
}

/// A sender and an offline recipient with a push token, in a direct
/// conversation; answers them, the conversation and the sender's socket.
fn pair(server: &Server, phones: [&str; 2], token: &str) -> (Session, Session, String, Ws) {
    let alice = server.user(phones[0], "alice");
    let bob = server.user(phones[1], "bob");
    with_token(server, &bob, token);
    let conv = server.direct(&alice, &bob);
    let a = server.ws(&alice);
    (alice, bob, conv, a)
}

fn start(gateway_url: &str, extra: &[&str]) -> Server {
    let mut args = vec!["--push-gateway", gateway_url];
    args.extend_from_slice(extra);
    Server::start_with(&args)
}

fn notification(r: &Received) -> &Value {
    &r.body["notification"]
}

#[test]
fn an_offline_device_is_notified_within_a_second_and_an_online_one_is_not() {
    let gateway = Gateway::start();
    let server = start(&gateway.url(), &[]);
    let (alice, bob, conv, mut a) = pair(&server, ["+15550100001", "+15550100002"], "tok-bob");
    let sent_at = Instant::now();
    let sent = send(&mut a, &conv, "m1", "the secret words");
    let got = gateway.wait_for(1, Duration::from_secs(5));
    let took = got[0].at.duration_since(sent_at);
    eprintln!("notification {took:?} after the send");
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert_eq!(got[0].path, "/push");
    let n = notification(&got[0]);
    assert_eq!(n["conversation_id"], conv.as_str());
    assert_eq!(n["seq"], sent["seq"]);
    assert_eq!(n["sender_id"], alice.user_id.as_str());
    assert_eq!(n["unread"], 1);
    let device =
        json!({"user_id": bob.user_id, "device_id": bob.device_id, "push_token": "tok-bob"});
    assert_eq!(n["devices"], json!([device]));
    assert!(
        !got[0].raw.contains("secret"),
        "no text goes to the gateway"
    );
    // The sender's own devices are not notified; nor is a connected one.
    let mut b = server.ws(&bob);
    send(&mut a, &conv, "m2", "while bob is here");
    common::next_message(&mut b);
    std::thread::sleep(NONE_COMES);
    assert_eq!(gateway.received().len(), 1);
    // Gone again: the next message notifies, counting both unread.
    drop(b);
    std::thread::sleep(Duration::from_millis(300));
    let third = send(&mut a, &conv, "m3", "and again");
    let got = gateway.wait_for(2, Duration::from_secs(5));
    assert_eq!(notification(&got[1])["seq"], third["seq"]);
    assert_eq!(notification(&got[1])["unread"], 3);
}

#[test]
fn tokens_are_checked_and_only_on_one_s_own_devices() {
    let gateway = Gateway::start();
    let server = start(&gateway.url(), &[]);
    let alice = server.user("+15550100011", "alice");
    let bob = server.user("+15550100012", "bob");
    let own = alice.device_id.as_str();
    assert_error(
        &set_token(&server, &alice, "d99", json!("t")),
        404,
        "not_found",
    );
    assert_error(
        &set_token(&server, &alice, "nonsense", json!("t")),
        404,
        "not_found",
    );
    assert_error(
        &set_token(&server, &alice, own, json!("")),
        400,
        "bad_request",
    );
    assert_error(
        &set_token(&server, &alice, own, json!(7)),
        400,
        "bad_request",
    );
    let long = "x".repeat(4097);
    assert_error(
        &set_token(&server, &alice, own, json!(long)),
        400,
        "bad_request",
    );
    assert_error(
        &set_token(&server, &alice, own, json!("a\nb")),
        400,
        "bad_request",
    );
    let path = format!("/v1/devices/{own}/push");
    assert_error(
        &server.rest("PUT", &path, None, Some(&json!({"push_token": "t"}))),
        401,
        "unauthorized",
    );
    // Bob's second device is not Alice's to set.
    let bob2 = server.login("+15550100012", "tablet");
    assert_error(
        &set_token(&server, &alice, &bob2.device_id, json!("t")),
        404,
        "not_found",
    );
    // Removed with null: no notification goes.
    with_token(&server, &bob, "tok-b");
    assert_eq!(set_token(&server, &bob, &bob.device_id, Value::Null).0, 204);
    let conv = server.direct(&alice, &bob);
    let mut a = server.ws(&alice);
    send(&mut a, &conv, "m1", "hello");
    std::thread::sleep(NONE_COMES);
    assert!(gateway.received().is_empty(), "{:?}", gateway.received());
    // A revoked device's token goes with it.
    with_token(&server, &bob2, "tok-tablet");
    let (status, _) = server.rest(
        "DELETE",
        &format!("/v1/devices/{}", bob2.device_id),
        Some(&bob.token),
        None,
    );
    assert_eq!(status, 204);
    send(&mut a, &conv, "m2", "hello again");
    std::thread::sleep(NONE_COMES);
    assert!(gateway.received().is_empty(), "{:?}", gateway.received());
}

#[test]
fn failures_back_off_and_refused_tokens_are_removed() {
    let gateway = Gateway::start();
    gateway.script(&[
        Reply::Status(500),
        Reply::Status(503),
        Reply::Ok(r#"{"rejected":["tok-bob"]}"#.into()),
    ]);
    let server = start(&gateway.url(), &[]);
    let (_, _, conv, mut a) = pair(&server, ["+15550100021", "+15550100022"], "tok-bob");
    send(&mut a, &conv, "m1", "hello");
    let got = gateway.wait_for(3, Duration::from_secs(10));
    let gaps: Vec<Duration> = got.windows(2).map(|w| w[1].at - w[0].at).collect();
    eprintln!("retries after {gaps:?}");
    assert!(gaps[0] >= Duration::from_millis(900), "{gaps:?}");
    assert!(gaps[1] >= Duration::from_millis(1_900), "{gaps:?}");
    assert!(
        got.iter().all(|r| r.body == got[0].body),
        "the same notification each time"
    );
    // The gateway refused the token: it is gone.
    send(&mut a, &conv, "m2", "anyone?");
    std::thread::sleep(NONE_COMES);
    assert_eq!(gateway.received().len(), 3);
}

#[test]
fn pending_notifications_collapse_and_survive_a_restart_with_the_gateway_down() {
    let port = Gateway::free_port();
    let url = format!("http://127.0.0.1:{port}/push");
    let mut server = start(&url, &[]);
    let (_, _, conv, mut a) = pair(&server, ["+15550100031", "+15550100032"], "tok-bob");
    let mut last = Value::Null;
    for i in 1..=3 {
        last = send(&mut a, &conv, &format!("m{i}"), "while the gateway is down");
    }
    std::thread::sleep(Duration::from_millis(300));
    drop(a);
    server.kill9();
    let gateway = Gateway::start_on(port);
    server.spawn();
    let got = gateway.wait_for(1, Duration::from_secs(10));
    std::thread::sleep(NONE_COMES);
    let got_all = gateway.received();
    assert_eq!(
        got_all.len(),
        1,
        "one notification for the three: {got_all:?}"
    );
    let n = notification(&got[0]);
    assert_eq!(n["seq"], last["seq"]);
    assert_eq!(n["unread"], 3);
    // Taken: a second restart does not send it again.
    server.restart();
    std::thread::sleep(NONE_COMES);
    assert_eq!(gateway.received().len(), 1);
}

#[test]
fn large_groups_notify_their_offline_members() {
    let gateway = Gateway::start();
    let server = start(&gateway.url(), &["--fanout-on-read-members", "2"]);
    let alice = server.user("+15550100041", "alice");
    let bob = server.user("+15550100042", "bob");
    let carol = server.user("+15550100043", "carol");
    with_token(&server, &bob, "tok-bob");
    let conv = server.group(&alice, "big", &[&bob, &carol]);
    let mut c = server.ws(&carol);
    let mut a = server.ws(&alice);
    let sent = send(&mut a, &conv, "m1", "to all");
    common::next_message(&mut c);
    let got = gateway.wait_for(1, Duration::from_secs(5));
    let n = notification(&got[0]);
    assert_eq!(n["seq"], sent["seq"]);
    assert_eq!(n["devices"][0]["user_id"], bob.user_id.as_str());
    assert_eq!(n["unread"], 1);
    std::thread::sleep(NONE_COMES);
    assert_eq!(
        gateway.received().len(),
        1,
        "carol has no token, alice sent it"
    );
}

#[test]
fn otp_codes_reach_the_webhook() {
    let gateway = Gateway::start();
    let server = Server::start_with(&["--otp-sink", &format!("webhook:{}", gateway.url())]);
    client::request_otp(&server.http, "+15550100051").expect("202");
    let got = gateway.wait_for(1, Duration::from_secs(5));
    assert_eq!(got[0].body["phone"], "+15550100051");
    let code = got[0].body["code"].as_str().expect("a code").to_string();
    let session = client::verify(&server.http, "+15550100051", &code, "phone").expect("verified");
    assert!(!session.token.is_empty());
}

#[test]
fn an_https_gateway_is_called_over_tls_with_the_ca_it_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = chat_net::tls::generate_self_signed(&["127.0.0.1".to_string()]).unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert).unwrap();
    std::fs::write(&key_path, key).unwrap();
    let tls = chat_net::tls::load_server_config(&cert_path, &key_path).unwrap();
    let gateway = Gateway::start_tls(tls);
    let ca = cert_path.display().to_string();
    let server = start(&gateway.https_url(), &["--gateway-ca", &ca]);
    let (_, _, conv, mut a) = pair(&server, ["+15550100061", "+15550100062"], "tok-bob");
    let sent = send(&mut a, &conv, "m1", "over tls");
    let got = gateway.wait_for(1, Duration::from_secs(5));
    assert_eq!(notification(&got[0])["seq"], sent["seq"]);
    // Trusting another CA only: the certificate is refused, nothing arrives.
    let (stranger, _) = chat_net::tls::generate_self_signed(&["127.0.0.1".to_string()]).unwrap();
    let stranger_path = dir.path().join("stranger.pem");
    std::fs::write(&stranger_path, stranger).unwrap();
    let other =
        Gateway::start_tls(chat_net::tls::load_server_config(&cert_path, &key_path).unwrap());
    let stranger = stranger_path.display().to_string();
    let untrusted = start(&other.https_url(), &["--gateway-ca", &stranger]);
    let (_, _, conv, mut c) = pair(&untrusted, ["+15550100063", "+15550100064"], "tok-dave");
    send(&mut c, &conv, "m1", "to nobody");
    std::thread::sleep(NONE_COMES);
    assert!(other.received().is_empty());
}
