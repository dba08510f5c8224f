//! The key directory (PROTOCOL.md "Keys"): uploads and their rules, the
//! count a device refills by, fetches that hand out each one-time prekey
//! at most once (also under concurrency and across a kill -9), the rate
//! limit, and a revoked device's keys gone.

mod common;

use std::collections::HashSet;

use chat_tools::client::Session;
use common::*;
use serde_json::{json, Value};

const B64: &str = "AAECAwQFBgc="; // 8 bytes

fn prekeys(ids: std::ops::Range<u64>) -> Vec<Value> {
    ids.map(|id| json!({"key_id": id, "public_key": format!("{B64}")}))
        .collect()
}

fn upload(server: &Server, s: &Session, identity: &str, ids: std::ops::Range<u64>) -> (u16, Value) {
    let body = json!({
        "identity_key": identity,
        "signed_prekey": {"key_id": 1, "public_key": B64, "signature": B64},
        "one_time_prekeys": prekeys(ids),
    });
    server.rest("PUT", "/v1/keys", Some(&s.token), Some(&body))
}

fn left(server: &Server, s: &Session) -> u64 {
    let (status, v) = server.rest("GET", "/v1/keys", Some(&s.token), None);
    assert_eq!(status, 200, "{v}");
    v["one_time_prekeys_left"].as_u64().unwrap()
}

fn fetch(server: &Server, by: &Session, of: &Session) -> Value {
    let (status, v) = server.rest(
        "GET",
        &format!("/v1/keys/{}", of.user_id),
        Some(&by.token),
        None,
    );
    assert_eq!(status, 200, "{v}");
    v
}

#[test]
fn uploads_follow_the_rules_and_each_fetch_takes_one_prekey_per_device() {
    let server = Server::start();
    let alice = server.login("+15550500001", "phone");
    let laptop = server.login("+15550500001", "laptop");
    let bob = server.login("+15550500002", "phone");
    assert_eq!(left(&server, &alice), 0, "nothing uploaded yet");
    assert_eq!(upload(&server, &alice, "SWQx", 1..4).0, 204);
    assert_eq!(upload(&server, &laptop, "SWQy", 100..101).0, 204);
    assert_eq!(left(&server, &alice), 3);
    let v = fetch(&server, &bob, &alice);
    let devices = v["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 2, "{v}");
    let phone = devices
        .iter()
        .find(|d| d["device_id"] == alice.device_id.as_str())
        .unwrap();
    assert_eq!(phone["identity_key"], "SWQx");
    assert_eq!(phone["signed_prekey"]["signature"], B64);
    assert_eq!(phone["one_time_prekey"]["key_id"], 1);
    assert_eq!(left(&server, &alice), 2);
    let again = fetch(&server, &bob, &alice);
    let laptop_keys = again["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["device_id"] == laptop.device_id.as_str())
        .cloned()
        .unwrap();
    assert!(laptop_keys["one_time_prekey"].is_null(), "ran out: {again}");
    // Uploads: a reused id (stored or handed out), another identity key,
    // no signed prekey on a first upload, bad base64, too many.
    assert_error(&upload(&server, &alice, "SWQx", 1..2), 409, "conflict");
    assert_error(&upload(&server, &alice, "SWQx", 3..4), 409, "conflict");
    assert_error(
        &upload(&server, &alice, "T3RoZXI=", 10..11),
        409,
        "conflict",
    );
    let first = json!({"identity_key": B64, "one_time_prekeys": prekeys(1..2)});
    assert_error(
        &server.rest("PUT", "/v1/keys", Some(&bob.token), Some(&first)),
        400,
        "bad_request",
    );
    assert_error(
        &upload(&server, &bob, "not base64!", 1..2),
        400,
        "bad_request",
    );
    assert_error(&upload(&server, &bob, "", 1..2), 400, "bad_request");
    let huge = base64_of(1025);
    assert_error(&upload(&server, &bob, &huge, 1..2), 400, "bad_request");
    assert_error(&upload(&server, &bob, B64, 1..102), 400, "bad_request");
    for i in 0..10 {
        assert_eq!(
            upload(&server, &bob, B64, i * 100 + 1..i * 100 + 101).0,
            204
        );
    }
    assert_eq!(left(&server, &bob), 1000);
    assert_error(&upload(&server, &bob, B64, 5000..5001), 409, "conflict");
    // A later upload may leave out the signed prekey.
    let more = json!({"identity_key": "SWQx", "one_time_prekeys": prekeys(50..52)});
    assert_eq!(
        server
            .rest("PUT", "/v1/keys", Some(&alice.token), Some(&more))
            .0,
        204
    );
    assert_eq!(left(&server, &alice), 3, "1 left after two fetches, 2 more");
    // Unknown users; a revoked device's keys are gone.
    assert_error(
        &server.rest("GET", "/v1/keys/u999999", Some(&bob.token), None),
        404,
        "not_found",
    );
    let path = format!("/v1/devices/{}", laptop.device_id);
    assert_eq!(
        server.rest("DELETE", &path, Some(&alice.token), None).0,
        204
    );
    assert_eq!(
        fetch(&server, &bob, &alice)["devices"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

fn base64_of(n: usize) -> String {
    // n bytes of zeros, standard base64.
    let mut s = "A".repeat(n / 3 * 4);
    match n % 3 {
        1 => s.push_str("AA=="),
        2 => s.push_str("AAA="),
        _ => {}
    }
    s
}

#[test]
fn concurrent_fetches_and_a_kill_never_hand_out_a_prekey_twice() {
    let mut server = Server::start();
    let alice = server.login("+15550500011", "phone");
    assert_eq!(upload(&server, &alice, B64, 1..61).0, 204);
    let fetchers: Vec<Session> = (0..6)
        .map(|i| server.login(&format!("+155505001{i:02}"), "phone"))
        .collect();
    let handed = |v: &Value| v["devices"][0]["one_time_prekey"]["key_id"].as_u64();
    let mut seen = HashSet::new();
    std::thread::scope(|scope| {
        let threads: Vec<_> = fetchers
            .iter()
            .map(|f| {
                scope.spawn(|| {
                    (0..5)
                        .map(|_| handed(&fetch(&server, f, &alice)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for t in threads {
            for id in t.join().unwrap() {
                assert!(
                    seen.insert(id.expect("keys left")),
                    "key {id:?} handed out twice"
                );
            }
        }
    });
    assert_eq!(seen.len(), 30);
    // A fetch answered, then kill -9 at once: that prekey stays taken.
    let last = handed(&fetch(&server, &fetchers[0], &alice)).unwrap();
    assert!(seen.insert(last));
    server.restart();
    assert_eq!(left(&server, &alice), 29);
    while let Some(id) = handed(&fetch(&server, &fetchers[1 + seen.len() % 5], &alice)) {
        assert!(
            seen.insert(id),
            "key {id} handed out again after the restart"
        );
    }
    assert_eq!(seen.len(), 60);
}

#[test]
fn fetches_past_the_rate_are_refused() {
    let server = Server::start_with(&["--key-fetches-per-minute", "3"]);
    let alice = server.login("+15550500021", "phone");
    let bob = server.login("+15550500022", "phone");
    assert_eq!(upload(&server, &alice, B64, 1..10).0, 204);
    for _ in 0..3 {
        fetch(&server, &bob, &alice);
    }
    let path = format!("/v1/keys/{}", alice.user_id);
    let answer = server.rest("GET", &path, Some(&bob.token), None);
    assert_error(&answer, 429, "rate_limited");
    assert!(answer.1["error"]["retry_after_ms"].as_u64().unwrap() <= 60_000);
    assert_eq!(left(&server, &alice), 6, "a refused fetch takes nothing");
    fetch(&server, &alice, &alice);
}
