//! Restarts: SIGTERM and kill -9 keep every acknowledged change.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

#[test]
fn sigterm_closes_sockets_with_1001_and_a_restart_restores_everything() {
    let mut server = Server::start();
    let alice = server.user("+15552000001", "alice");
    let alice_laptop = server.login("+15552000001", "laptop");
    let bob = server.user("+15552000002", "bob");
    let carol = server.user("+15552000003", "carol");
    let direct = server.direct(&alice, &bob);
    let group = server.group(&alice, "team", &[&bob, &carol]);
    let (s, _) = server.rest(
        "PATCH",
        &format!("/v1/conversations/{group}/members/{}", bob.user_id),
        Some(&alice.token),
        Some(&json!({"role": "admin"})),
    );
    assert_eq!(s, 204);
    let (s, _) = server.rest(
        "PATCH",
        "/v1/me",
        Some(&carol.token),
        Some(&json!({"last_seen_privacy": "nobody"})),
    );
    assert_eq!(s, 200);
    let (mut a, _) = server.ws_synced(&alice);
    let (mut b, _) = server.ws_synced(&bob);
    for i in 1..=3 {
        send(&mut a, &direct, &format!("d{i}"), &format!("direct {i}"));
        send(&mut a, &group, &format!("g{i}"), &format!("group {i}"));
    }
    for _ in 0..6 {
        next_message(&mut b);
    }
    b.send(&json!({"type": "message.read", "conversation_id": direct, "seq": 3}))
        .unwrap();
    a.recv_type("message.read", WAIT).unwrap();
    let status = server.terminate();
    assert!(status.success(), "chatd exits 0 on SIGTERM: {status}");
    let closed = loop {
        match a.recv(WAIT) {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("no close within {WAIT:?}"),
            Err(e) => break e.close_code(),
        }
    };
    assert_eq!(closed, Some(1001));

    server.spawn();
    // Tokens, profile, devices.
    let (s, me) = server.rest("GET", "/v1/me", Some(&alice.token), None);
    assert_eq!(s, 200, "{me}");
    assert_eq!(me["name"], "alice");
    assert_eq!(me["devices"].as_array().unwrap().len(), 2);
    let (s, me) = server.rest("GET", "/v1/me", Some(&carol.token), None);
    assert_eq!((s, me["last_seen_privacy"].as_str()), (200, Some("nobody")));
    // Conversations, members, roles, messages, receipts, unread counts.
    let (_, list) = server.rest("GET", "/v1/conversations", Some(&bob.token), None);
    let rows = list["conversations"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{list}");
    let row = |id: &str| {
        rows.iter()
            .find(|r| r["conversation_id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(row(&direct)["last_seq"], 3);
    assert_eq!(row(&direct)["unread"], 0);
    assert_eq!(row(&group)["unread"], 3);
    let h = server.history(&bob, &group, "");
    let texts: Vec<&str> = h["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["group 1", "group 2", "group 3"]);
    let (_, r) = server.rest(
        "GET",
        &format!("/v1/conversations/{direct}/messages/3/receipts"),
        Some(&alice.token),
        None,
    );
    assert_eq!(r["read"][0]["user_id"], bob.user_id.as_str());
    // Bob is an admin of the group: he may add... himself is there; he may remove carol.
    let (s, _) = server.rest(
        "DELETE",
        &format!("/v1/conversations/{group}/members/{}", carol.user_id),
        Some(&bob.token),
        None,
    );
    assert_eq!(s, 204);
    // Cursors: Bob's device acked nothing by ack, but read 3 in direct; the
    // group's 3 are still unacked and come again on connect.
    let (_b, synced) = server.ws_synced(&bob);
    let got: Vec<(String, u64)> = synced
        .iter()
        .map(|m| {
            (
                m["conversation_id"].as_str().unwrap().to_string(),
                m["seq"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![(group.clone(), 1), (group.clone(), 2), (group.clone(), 3)]
    );
    // The laptop (never connected) was linked before the messages: it gets them.
    let (_l, synced) = server.ws_synced(&alice_laptop);
    assert_eq!(synced.len(), 6);
}

/// Sends as fast as the socket takes, records every `message.sent`.
fn burst(
    ws: &mut chat_tools::client::Ws,
    conv: &str,
    prefix: &str,
    n: usize,
) -> HashMap<String, u64> {
    let mut acked = HashMap::new();
    for i in 0..n {
        let e = json!({"type": "message.send", "conversation_id": conv, "client_msg_id": format!("{prefix}{i}"), "body": {"text": format!("{prefix}{i}")}});
        if ws.send(&e).is_err() {
            break;
        }
        while let Ok(Some(e)) = ws.recv(Duration::from_millis(1)) {
            record(&mut acked, &e);
        }
    }
    while let Ok(Some(e)) = ws.recv(Duration::from_secs(2)) {
        record(&mut acked, &e);
    }
    acked
}

fn record(acked: &mut HashMap<String, u64>, e: &Value) {
    if e["type"] == "message.sent" {
        let prev = acked.insert(
            e["client_msg_id"].as_str().unwrap().to_string(),
            e["seq"].as_u64().unwrap(),
        );
        assert!(prev.is_none(), "two message.sent for {e}");
    }
}

#[test]
fn kill9_during_a_burst_loses_no_acknowledged_message() {
    let mut server = Server::start_with(&["--send-rate", "100000", "--send-burst", "100000"]);
    let alice = server.user("+15552000011", "alice");
    let bob = server.user("+15552000012", "bob");
    let conv = server.direct(&alice, &bob);
    let sockets: Vec<_> = (0..4).map(|_| server.ws_synced(&alice).0).collect();
    let senders: Vec<_> = sockets
        .into_iter()
        .enumerate()
        .map(|(t, mut ws)| {
            let conv = conv.clone();
            std::thread::spawn(move || burst(&mut ws, &conv, &format!("t{t}-"), 100_000))
        })
        .collect();
    let killer = {
        let pid = server.child.as_ref().unwrap().id();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(500));
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        })
    };
    let started = Instant::now();
    let mut acked = HashMap::new();
    for s in senders {
        acked.extend(s.join().unwrap());
    }
    killer.join().unwrap();
    assert!(started.elapsed() < Duration::from_secs(60));
    assert!(
        !acked.is_empty(),
        "some sends were acknowledged before the kill"
    );
    server.child.take().map(|mut c| c.wait());
    server.spawn();

    // History: gapless from 1, each acked message present once with its seq.
    let mut history = Vec::new();
    let mut after = 0;
    loop {
        let h = server.history(&bob, &conv, &format!("?after={after}&limit=100"));
        let page = h["messages"].as_array().unwrap().clone();
        if page.is_empty() {
            break;
        }
        after = page.last().unwrap()["seq"].as_u64().unwrap();
        history.extend(page);
    }
    let seqs: Vec<u64> = history.iter().map(|m| m["seq"].as_u64().unwrap()).collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "seqs are gapless"
    );
    let by_id: HashMap<String, u64> = history
        .iter()
        .map(|m| {
            (
                m["body"]["text"].as_str().unwrap().to_string(),
                m["seq"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(by_id.len(), history.len(), "no message stored twice");
    for (id, seq) in &acked {
        assert_eq!(
            by_id.get(id),
            Some(seq),
            "acked {id} (seq {seq}) is in history at its seq"
        );
    }
    eprintln!("acked {} of {} stored", acked.len(), history.len());
    // Bob was offline: everything reaches him on connect, in order, once.
    let (_b, synced) = server.ws_synced(&bob);
    let got: Vec<u64> = synced.iter().map(|m| m["seq"].as_u64().unwrap()).collect();
    assert_eq!(got, seqs);
    // Tokens still work.
    let (s, _) = server.rest("GET", "/v1/me", Some(&alice.token), None);
    assert_eq!(s, 200);
}

#[test]
fn snapshots_bound_replay_and_restore_the_same_state() {
    let mut server = Server::start_with(&["--snapshot-records", "20"]);
    let alice = server.user("+15552000021", "alice");
    let bob = server.user("+15552000022", "bob");
    let conv = server.direct(&alice, &bob);
    let group = server.group(&alice, "g", &[&bob]);
    let (mut a, _) = server.ws_synced(&alice);
    for i in 1..=60 {
        send(&mut a, &conv, &format!("s{i}"), &format!("snap {i}"));
        send(&mut a, &group, &format!("g{i}"), &format!("group {i}"));
    }
    let (mut b, synced) = server.ws_synced(&bob);
    assert_eq!(synced.len(), 120);
    b.send(&json!({"type": "message.read", "conversation_id": conv, "seq": 50}))
        .unwrap();
    a.recv_type("message.read", WAIT).unwrap();
    let snapshots = std::fs::read_dir(server.data_dir())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|d| d.path().join("snapshot").exists())
        .count();
    assert!(snapshots > 0, "a snapshot was written");
    server.restart();
    let h = server.history(&bob, &conv, "?limit=100");
    let seqs: Vec<u64> = h["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, (1..=60).collect::<Vec<_>>());
    let (_, list) = server.rest("GET", "/v1/conversations", Some(&bob.token), None);
    let row = list["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["conversation_id"] == conv.as_str())
        .unwrap()
        .clone();
    assert_eq!(
        (row["last_seq"].as_u64(), row["unread"].as_u64()),
        (Some(60), Some(10))
    );
    // Dedupe survives: a resend of an old client_msg_id keeps its seq.
    let (mut a, _) = server.ws_synced(&alice);
    assert_eq!(send(&mut a, &conv, "s7", "snap 7")["seq"], 7);
    let (s, _) = server.rest("GET", "/v1/me", Some(&bob.token), None);
    assert_eq!(s, 200);
}
