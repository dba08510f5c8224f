//! Live events over WebSocket (PROTOCOL.md "WebSocket"): typing, presence
//! and its privacy, ping, group `message.status` coalescing, direct
//! `message.delivered` to every sender device, and multi-device delivery.

mod common;

use std::time::{Duration, Instant};

use chat_tools::client::{ClientError, Ws};
use common::*;
use serde_json::{json, Value};

fn typing(ws: &mut Ws, conv: &str, state: &str) {
    ws.send(&json!({"type": "typing", "conversation_id": conv, "state": state}))
        .unwrap();
}

/// The next `presence` event about `user`.
fn presence_of(ws: &mut Ws, user: &str) -> Value {
    ws.recv_where(WAIT, "a presence event", |e| {
        e["type"] == "presence" && e["user_id"] == user
    })
    .expect("presence")
}

/// Asserts no `presence` event arrives within `QUIET`.
fn no_presence(ws: &mut Ws) {
    assert_no(ws, "presence");
}

fn subscribe(ws: &mut Ws, users: &[&str]) {
    ws.send(&json!({"type": "presence.subscribe", "user_ids": users}))
        .unwrap();
}

fn ack(ws: &mut Ws, conv: &str, seq: u64) {
    ws.send(&json!({"type": "message.ack", "conversation_id": conv, "seq": seq}))
        .unwrap();
}

fn read(ws: &mut Ws, conv: &str, seq: u64) {
    ws.send(&json!({"type": "message.read", "conversation_id": conv, "seq": seq}))
        .unwrap();
}

fn set_privacy(server: &Server, s: &chat_tools::client::Session, privacy: &str) {
    let (status, body) = server.rest(
        "PATCH",
        "/v1/me",
        Some(&s.token),
        Some(&json!({ "last_seen_privacy": privacy })),
    );
    assert_eq!(status, 200, "{body}");
}

// ---------------------------------------------------------------------------
// Typing

#[test]
fn typing_start_reaches_the_other_member_and_auto_stops_after_5_s() {
    let server = Server::start();
    let alice = server.user("+15555000001", "alice");
    let bob = server.user("+15555000002", "bob");
    let conv = server.direct(&alice, &bob);
    let (mut a, _) = server.ws_synced(&alice);
    let (mut b, _) = server.ws_synced(&bob);
    typing(&mut a, &conv, "start");
    let started = Instant::now();
    let start = b.recv_type("typing", WAIT).unwrap();
    assert_eq!(
        start,
        json!({"type": "typing", "conversation_id": conv, "user_id": alice.user_id, "state": "start"})
    );
    let stop = b.recv_type("typing", Duration::from_secs(8)).unwrap();
    let after = started.elapsed();
    assert_eq!(stop["state"], "stop", "{stop}");
    assert_eq!(stop["user_id"], alice.user_id.as_str());
    assert_eq!(stop["conversation_id"], conv.as_str());
    assert!(
        after >= Duration::from_secs(4) && after <= Duration::from_secs(8),
        "auto stop after {after:?}, not ~5 s"
    );
    // The typist's own socket hears none of it; nothing is stored.
    assert_no(&mut a, "typing");
    assert_eq!(server.history(&bob, &conv, "")["messages"], json!([]));
}

#[test]
fn explicit_typing_stop_reaches_the_other_member_and_no_auto_stop_follows() {
    let server = Server::start();
    let alice = server.user("+15555000011", "alice");
    let bob = server.user("+15555000012", "bob");
    let carol = server.user("+15555000013", "carol");
    let conv = server.group(&alice, "team", &[&bob, &carol]);
    let (mut a, _) = server.ws_synced(&alice);
    let (mut b, _) = server.ws_synced(&bob);
    let (mut c, _) = server.ws_synced(&carol);
    typing(&mut a, &conv, "start");
    for ws in [&mut b, &mut c] {
        assert_eq!(ws.recv_type("typing", WAIT).unwrap()["state"], "start");
    }
    typing(&mut a, &conv, "stop");
    for ws in [&mut b, &mut c] {
        let stop = ws.recv_type("typing", WAIT).unwrap();
        assert_eq!(
            stop,
            json!({"type": "typing", "conversation_id": conv, "user_id": alice.user_id, "state": "stop"})
        );
    }
    // The 5 s timer of the stopped start sends nothing more.
    match b.recv_type("typing", Duration::from_millis(5800)) {
        Err(ClientError::Timeout(_)) => {}
        other => panic!("a second stop or more: {other:?}"),
    }
}

#[test]
fn typing_in_a_conversation_one_is_not_in_is_not_member() {
    let server = Server::start();
    let alice = server.user("+15555000021", "alice");
    let bob = server.user("+15555000022", "bob");
    let eve = server.user("+15555000023", "eve");
    let conv = server.direct(&alice, &bob);
    let (mut b, _) = server.ws_synced(&bob);
    let (mut e, _) = server.ws_synced(&eve);
    let err = e
        .call(
            json!({"type": "typing", "conversation_id": conv, "state": "start", "ref": "t"}),
            WAIT,
        )
        .expect_err("not a member");
    match err {
        ClientError::Remote { code, event, .. } => {
            assert_eq!(code, "not_member");
            assert_eq!(event["ref"], "t");
        }
        other => panic!("{other}"),
    }
    assert_no(&mut b, "typing");
    let pong = e.call(json!({"type": "ping"}), WAIT).unwrap();
    assert_eq!(pong["type"], "pong");
}

// ---------------------------------------------------------------------------
// Presence and ping

#[test]
fn presence_subscribe_reports_online_now_and_offline_with_last_seen_on_disconnect() {
    let server = Server::start();
    let alice = server.user("+15555000031", "alice");
    let bob = server.user("+15555000032", "bob");
    let (mut a, _) = server.ws_synced(&alice);
    let (mut b, _) = server.ws_synced(&bob);
    subscribe(&mut a, &[&bob.user_id]);
    let now = presence_of(&mut a, &bob.user_id);
    assert_eq!(now["status"], "online", "{now}");
    let before_close = now_ms();
    b.close().unwrap();
    let off = presence_of(&mut a, &bob.user_id);
    assert_eq!(off["status"], "offline", "{off}");
    let last_seen = off["last_seen"].as_u64().expect("last_seen in ms");
    assert!(
        last_seen + 1000 >= before_close && last_seen <= now_ms() + 1000,
        "last_seen {last_seen} is about now ({before_close})"
    );
    // And on every change: back online.
    let (_b2, _) = server.ws_synced(&bob);
    assert_eq!(presence_of(&mut a, &bob.user_id)["status"], "online");
    // A new subscriber to an offline user hears "offline" with last_seen.
    let carol = server.user("+15555000033", "carol");
    let (mut c, _) = server.ws_synced(&carol);
    subscribe(&mut c, &[&alice.user_id]);
    assert_eq!(presence_of(&mut c, &alice.user_id)["status"], "online");
    drop(a);
    let off = presence_of(&mut c, &alice.user_id);
    assert_eq!(off["status"], "offline");
    assert!(off["last_seen"].as_u64().is_some(), "{off}");
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[test]
fn presence_with_privacy_nobody_tells_the_watcher_nothing() {
    let server = Server::start();
    let alice = server.user("+15555000041", "alice");
    let bob = server.user("+15555000042", "bob");
    server.direct(&alice, &bob);
    set_privacy(&server, &bob, "nobody");
    let (mut a, _) = server.ws_synced(&alice);
    let (mut b, _) = server.ws_synced(&bob);
    subscribe(&mut a, &[&bob.user_id]);
    no_presence(&mut a);
    b.close().unwrap();
    no_presence(&mut a);
    let (_b, _) = server.ws_synced(&bob);
    no_presence(&mut a);
}

#[test]
fn presence_with_privacy_contacts_reaches_only_users_sharing_a_direct_conversation() {
    let server = Server::start();
    let alice = server.user("+15555000051", "alice");
    let bob = server.user("+15555000052", "bob");
    let carol = server.user("+15555000053", "carol");
    server.direct(&alice, &bob);
    // Carol shares only a group with Bob: not a contact.
    server.group(&carol, "team", &[&bob]);
    set_privacy(&server, &bob, "contacts");
    let (mut a, _) = server.ws_synced(&alice);
    let (mut c, _) = server.ws_synced(&carol);
    let (mut b, _) = server.ws_synced(&bob);
    subscribe(&mut a, &[&bob.user_id]);
    subscribe(&mut c, &[&bob.user_id]);
    assert_eq!(presence_of(&mut a, &bob.user_id)["status"], "online");
    no_presence(&mut c);
    b.close().unwrap();
    let off = presence_of(&mut a, &bob.user_id);
    assert_eq!(off["status"], "offline");
    assert!(off["last_seen"].as_u64().is_some(), "{off}");
    no_presence(&mut c);
}

#[test]
fn ping_is_answered_with_pong() {
    let server = Server::start();
    let alice = server.user("+15555000061", "alice");
    let (mut a, _) = server.ws_synced(&alice);
    a.send(&json!({"type": "ping"})).unwrap();
    assert_eq!(a.recv_type("pong", WAIT).unwrap()["type"], "pong");
    let pong = a.call(json!({"type": "ping", "ref": 7}), WAIT).unwrap();
    assert_eq!(
        (pong["type"].as_str(), pong["ref"].as_u64()),
        (Some("pong"), Some(7))
    );
}

// ---------------------------------------------------------------------------
// Receipts to the sender

/// Collects `message.status` events for `conv` with their arrival times
/// until one satisfies `done`.
fn statuses_until(ws: &mut Ws, conv: &str, done: impl Fn(&Value) -> bool) -> Vec<(Instant, Value)> {
    let mut out = Vec::new();
    loop {
        let e = ws
            .recv_where(WAIT, "message.status", |e| {
                e["type"] == "message.status" && e["conversation_id"] == conv
            })
            .expect("message.status");
        out.push((Instant::now(), e.clone()));
        if done(&e) {
            return out;
        }
    }
}

#[test]
fn group_message_status_is_coalesced_and_reaches_delivered_2_then_read_2() {
    let server = Server::start();
    let alice = server.user("+15555000071", "alice");
    let bob = server.user("+15555000072", "bob");
    let carol = server.user("+15555000073", "carol");
    let conv = server.group(&alice, "team", &[&bob, &carol]);
    let (mut a, _) = server.ws_synced(&alice);
    let (mut b, _) = server.ws_synced(&bob);
    let (mut c, _) = server.ws_synced(&carol);
    let n = 10;
    send_many(&mut a, &conv, "g", n);
    for ws in [&mut b, &mut c] {
        for _ in 0..n {
            next_message(ws);
        }
    }
    // 20 acks as fast as they go: few status events, the last with the
    // final counts.
    let started = Instant::now();
    for seq in 1..=n as u64 {
        ack(&mut b, &conv, seq);
        ack(&mut c, &conv, seq);
    }
    let delivered = statuses_until(&mut a, &conv, |e| e["seq"] == n && e["delivered"] == 2);
    let elapsed = started.elapsed();
    let last = &delivered.last().unwrap().1;
    assert_eq!(last["read"], 0, "{last}");
    let most = (elapsed.as_millis() / 100 + 2) as usize;
    assert!(
        delivered.len() <= most,
        "{} status events in {elapsed:?}: not coalesced to one per 100 ms",
        delivered.len()
    );
    for pair in delivered.windows(2) {
        let gap = pair[1].0 - pair[0].0;
        assert!(
            gap >= Duration::from_millis(50),
            "two statuses {gap:?} apart"
        );
    }
    // Reads.
    read(&mut b, &conv, n as u64);
    read(&mut c, &conv, n as u64);
    let reads = statuses_until(&mut a, &conv, |e| e["seq"] == n && e["read"] == 2);
    assert_eq!(reads.last().unwrap().1["delivered"], 2);
    assert!(reads.len() <= 3, "{reads:?}");
    // Groups get counts, not per-user delivered/read events.
    assert_no(&mut a, "message.delivered");
    assert_no(&mut a, "message.read");
}

#[test]
fn direct_message_delivered_reaches_all_of_the_senders_devices() {
    let server = Server::start();
    let alice = server.user("+15555000081", "alice");
    let laptop = server.login("+15555000081", "laptop");
    let bob = server.user("+15555000082", "bob");
    let conv = server.direct(&alice, &bob);
    let (mut a1, _) = server.ws_synced(&alice);
    let (mut a2, _) = server.ws_synced(&laptop);
    let (mut b, _) = server.ws_synced(&bob);
    send(&mut a1, &conv, "d1", "hello");
    next_message(&mut b);
    ack(&mut b, &conv, 1);
    for ws in [&mut a1, &mut a2] {
        let d = ws.recv_type("message.delivered", WAIT).unwrap();
        assert_eq!(
            d,
            json!({"type": "message.delivered", "conversation_id": conv, "seq": 1, "user_id": bob.user_id})
        );
    }
    // Bob's own devices hear nothing of his ack.
    assert_no(&mut b, "message.delivered");
}

#[test]
fn online_devices_get_messages_live_an_offline_tablet_on_connect_and_the_senders_other_device_too()
{
    let server = Server::start();
    let alice = server.user("+15555000091", "alice");
    let phone = server.user("+15555000092", "bob");
    let laptop = server.login("+15555000092", "laptop");
    let tablet = server.login("+15555000092", "tablet");
    let conv = server.direct(&alice, &phone);
    let (mut a, _) = server.ws_synced(&alice);
    let (mut p, _) = server.ws_synced(&phone);
    let (mut l, _) = server.ws_synced(&laptop);
    send_many(&mut a, &conv, "live", 3);
    for ws in [&mut p, &mut l] {
        let got: Vec<u64> = (0..3)
            .map(|_| next_message(ws)["seq"].as_u64().unwrap())
            .collect();
        assert_eq!(got, [1, 2, 3]);
    }
    // The tablet was offline: it gets them, in order, when it connects.
    let (mut t, synced) = server.ws_synced(&tablet);
    assert_eq!(seqs(&Value::from(synced.clone())), [1, 2, 3]);
    assert_eq!(synced[0]["body"]["text"], "live 1");
    assert_eq!(synced[0]["sender_id"], alice.user_id.as_str());
    // Bob writes from his phone: his laptop and tablet get it, and Alice;
    // the phone itself gets only message.sent.
    let sent = send(&mut p, &conv, "from-phone", "from bob's phone");
    assert_eq!(sent["seq"], 4);
    for ws in [&mut l, &mut t, &mut a] {
        let m = next_message(ws);
        assert_eq!(m["seq"], 4);
        assert_eq!(m["sender_id"], phone.user_id.as_str());
        assert_eq!(m["sender_device"], phone.device_id.as_str());
        assert_eq!(m["body"]["text"], "from bob's phone");
    }
    assert_no(&mut p, "message.new");
}
