//! Messaging over WebSocket: online delivery, multi-device, sync on
//! reconnect, receipts, dedupe, ordering.

mod common;

use common::*;
use serde_json::json;

#[test]
fn message_reaches_online_peer_and_senders_other_device_not_the_sender() {
    let server = Server::start();
    let alice = server.user("+15550000001", "alice");
    let alice2 = server.login("+15550000001", "laptop");
    let bob = server.user("+15550000002", "bob");
    let conv = server.direct(&alice, &bob);
    let (mut a1, _) = server.ws_synced(&alice);
    let (mut a2, _) = server.ws_synced(&alice2);
    let (mut b, _) = server.ws_synced(&bob);
    let sent = send(&mut a1, &conv, "m1", "hello bob");
    assert_eq!(sent["type"], "message.sent");
    assert_eq!(sent["seq"], 1);
    assert_eq!(sent["client_msg_id"], "m1");
    let got = next_message(&mut b);
    assert_eq!(got["body"]["text"], "hello bob");
    assert_eq!(got["seq"], 1);
    assert_eq!(got["sender_id"], alice.user_id.as_str());
    assert_eq!(got["message_id"], sent["message_id"]);
    let mine = next_message(&mut a2);
    assert_eq!(mine["seq"], 1);
    assert_no(&mut a1, "message.new");
}

#[test]
fn offline_device_gets_missed_messages_in_order_then_sync_done() {
    let server = Server::start();
    let alice = server.user("+15550000011", "alice");
    let bob = server.user("+15550000012", "bob");
    let conv = server.direct(&alice, &bob);
    let (mut a, _) = server.ws_synced(&alice);
    for i in 1..=30 {
        send(&mut a, &conv, &format!("c{i}"), &format!("text {i}"));
    }
    let (mut b, synced) = server.ws_synced(&bob);
    let seqs: Vec<u64> = synced.iter().map(|m| m["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=30).collect::<Vec<_>>());
    // Acked: a reconnect brings nothing again.
    b.send(&json!({"type": "message.ack", "conversation_id": conv, "seq": 30}))
        .unwrap();
    let delivered = a.recv_type("message.delivered", WAIT).unwrap();
    assert_eq!(delivered["seq"], 30);
    assert_eq!(delivered["user_id"], bob.user_id.as_str());
    drop(b);
    std::thread::sleep(std::time::Duration::from_millis(200));
    let (_b, synced) = server.ws_synced(&bob);
    assert!(synced.is_empty(), "acked messages came again: {synced:?}");
}

#[test]
fn resend_with_same_client_msg_id_is_deduped() {
    let server = Server::start();
    let alice = server.user("+15550000021", "alice");
    let bob = server.user("+15550000022", "bob");
    let conv = server.direct(&alice, &bob);
    let (mut a, _) = server.ws_synced(&alice);
    let (mut b, _) = server.ws_synced(&bob);
    let first = send(&mut a, &conv, "same", "once");
    let again = send(&mut a, &conv, "same", "once");
    assert_eq!(first["seq"], again["seq"]);
    assert_eq!(first["ts"], again["ts"]);
    next_message(&mut b);
    assert_no(&mut b, "message.new");
    let h = server.history(&alice, &conv, "");
    assert_eq!(h["messages"].as_array().unwrap().len(), 1);
}

#[test]
fn read_receipts_flow_and_can_be_turned_off() {
    let server = Server::start();
    let alice = server.user("+15550000031", "alice");
    let bob = server.user("+15550000032", "bob");
    let conv = server.direct(&alice, &bob);
    let (mut a, _) = server.ws_synced(&alice);
    let (mut b, _) = server.ws_synced(&bob);
    send(&mut a, &conv, "x1", "one");
    next_message(&mut b);
    b.send(&json!({"type": "message.read", "conversation_id": conv, "seq": 1}))
        .unwrap();
    let read = a.recv_type("message.read", WAIT).unwrap();
    assert_eq!(
        (read["seq"].as_u64(), read["user_id"].as_str()),
        (Some(1), Some(bob.user_id.as_str()))
    );
    let (s, r) = server.rest(
        "GET",
        &format!("/v1/conversations/{conv}/messages/1/receipts"),
        Some(&alice.token),
        None,
    );
    assert_eq!(s, 200);
    assert_eq!(r["read"][0]["user_id"], bob.user_id.as_str());
    assert_eq!(r["delivered"][0]["user_id"], bob.user_id.as_str());
    // Bob turns read receipts off: Alice no longer hears of his reads.
    let (s, _) = server.rest(
        "PATCH",
        "/v1/me",
        Some(&bob.token),
        Some(&json!({"read_receipts": false})),
    );
    assert_eq!(s, 200);
    send(&mut a, &conv, "x2", "two");
    next_message(&mut b);
    b.send(&json!({"type": "message.read", "conversation_id": conv, "seq": 2}))
        .unwrap();
    assert_no(&mut a, "message.read");
}

#[test]
fn group_of_50_concurrent_senders_every_member_sees_gapless_seq_order() {
    let server = Server::start();
    let users: Vec<_> = (0..50)
        .map(|i| server.user(&format!("+1555100{i:04}"), &format!("u{i}")))
        .collect();
    let others: Vec<&_> = users[1..].iter().collect();
    let conv = server.group(&users[0], "fifty", &others);
    let per_sender = 4;
    // Everyone online first, then everyone sends at once.
    let sockets: Vec<_> = users.iter().map(|u| server.ws_synced(u).0).collect();
    let handles: Vec<_> = sockets
        .into_iter()
        .enumerate()
        .map(|(i, mut ws)| {
            let conv = conv.clone();
            std::thread::spawn(move || {
                for k in 0..per_sender {
                    let e = json!({"type": "message.send", "conversation_id": conv, "client_msg_id": format!("{i}-{k}"), "body": {"text": format!("{i}:{k}")}});
                    ws.send(&e).unwrap();
                }
                let mut sent = 0;
                let mut seen = Vec::new();
                let total = 50 * per_sender;
                while sent < per_sender || seen.len() < total - per_sender {
                    let e = ws.recv(WAIT).unwrap().expect("events keep coming");
                    match e["type"].as_str().unwrap() {
                        "message.sent" => sent += 1,
                        "message.new" => seen.push(e["seq"].as_u64().unwrap()),
                        _ => {}
                    }
                }
                seen
            })
        })
        .collect();
    for h in handles {
        let seen = h.join().unwrap();
        assert!(
            seen.windows(2).all(|w| w[0] < w[1]),
            "out of order: {seen:?}"
        );
    }
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let h = server.history(&users[0], &conv, &format!("?after={after}&limit=100"));
        let page = h["messages"].as_array().unwrap().clone();
        if page.is_empty() {
            break;
        }
        after = page.last().unwrap()["seq"].as_u64().unwrap();
        all.extend(page);
    }
    let seqs: Vec<u64> = all.iter().map(|m| m["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=200).collect::<Vec<_>>());
}

#[test]
fn large_groups_fan_out_on_read_live_sync_and_unread() {
    // Groups over 3 members fan out on read in this server.
    let server = Server::start_with(&["--fanout-on-read-members", "3"]);
    let users: Vec<_> = (0..5)
        .map(|i| server.user(&format!("+1555300{i:04}"), &format!("u{i}")))
        .collect();
    let small = server.group(&users[0], "small", &[&users[1], &users[2]]);
    let (mut a, _) = server.ws_synced(&users[0]);
    let (mut b, _) = server.ws_synced(&users[1]);
    // Grows past the size while members are online: they keep getting it.
    for u in &users[3..] {
        let (s, _) = server.rest(
            "POST",
            &format!("/v1/conversations/{small}/members"),
            Some(&users[0].token),
            Some(&json!({"user_id": u.user_id})),
        );
        assert_eq!(s, 204);
    }
    let big = small;
    for i in 1..=3 {
        send(&mut a, &big, &format!("L{i}"), &format!("large {i}"));
    }
    for i in 1..=3 {
        assert_eq!(next_message(&mut b)["seq"], i);
    }
    // An offline member pulls everything on connect, in order.
    let (_d, synced) = server.ws_synced(&users[3]);
    let seqs: Vec<u64> = synced.iter().map(|m| m["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [1, 2, 3]);
    // The list pulls the group's end: unread counts stay right.
    let (_, list) = server.rest("GET", "/v1/conversations", Some(&users[4].token), None);
    assert_eq!(list["conversations"][0]["last_seq"], 3, "{list}");
    assert_eq!(list["conversations"][0]["unread"], 3);
    b.send(&json!({"type": "message.read", "conversation_id": big, "seq": 2}))
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (_, list) = server.rest("GET", "/v1/conversations", Some(&users[1].token), None);
    assert_eq!(list["conversations"][0]["unread"], 1, "{list}");
}
