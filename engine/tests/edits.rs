//! Replies, edits and deletes (PROTOCOL.md "Replies, edits, deletes"):
//! who may, the answers, what every device and history show, what an
//! offline device gets on its next sync, and that it all survives a
//! restart.

mod common;

use chat_tools::client::{ClientError, Session, Ws};
use common::*;
use serde_json::{json, Value};

fn edit(ws: &mut Ws, conv: &str, seq: u64, text: &str) -> Result<Value, String> {
    let event = json!({"type": "message.edit", "conversation_id": conv, "seq": seq,
        "body": {"text": text}});
    ws.call(event, WAIT).map_err(|e| match e {
        ClientError::Remote { code, .. } => code,
        other => panic!("no answer to the edit: {other}"),
    })
}

fn delete(ws: &mut Ws, conv: &str, seq: u64) -> Result<Value, String> {
    let event = json!({"type": "message.delete", "conversation_id": conv, "seq": seq});
    ws.call(event, WAIT).map_err(|e| match e {
        ClientError::Remote { code, .. } => code,
        other => panic!("no answer to the delete: {other}"),
    })
}

fn message(server: &Server, s: &Session, conv: &str, seq: u64) -> Value {
    let h = server.history(s, conv, "");
    let found = h["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["seq"] == seq);
    found
        .cloned()
        .unwrap_or_else(|| panic!("no seq {seq} in {h}"))
}

#[test]
fn an_edit_reaches_every_other_device_and_history_shows_the_latest_body() {
    let server = Server::start();
    let alice = server.user("+15550300001", "alice");
    let alice2 = server.login("+15550300001", "laptop");
    let bob = server.user("+15550300002", "bob");
    let conv = server.direct(&alice, &bob);
    let (mut a1, _) = server.ws_synced(&alice);
    let (mut a2, _) = server.ws_synced(&alice2);
    let (mut b, _) = server.ws_synced(&bob);
    let sent = send(&mut a1, &conv, "e1", "helo");
    let ts = sent["ts"].as_u64().unwrap();
    next_message(&mut b);
    next_message(&mut a2);
    // The author's device gets the change as its answer, the others live.
    let answer = edit(&mut a1, &conv, 1, "hello").expect("edited");
    assert_eq!(answer["type"], "message.edited");
    assert_eq!(answer["body"]["text"], "hello");
    let edited_ts = answer["edited_ts"].as_u64().unwrap();
    assert!(edited_ts >= ts, "{answer}");
    for ws in [&mut b, &mut a2] {
        let e = ws.recv_type("message.edited", WAIT).unwrap();
        assert_eq!(
            (e["seq"].clone(), e["body"]["text"].clone()),
            (1.into(), "hello".into())
        );
        assert_eq!(e["edited_ts"], edited_ts);
    }
    assert_no(&mut a1, "message.edited");
    let m = message(&server, &bob, &conv, 1);
    assert_eq!(
        (m["body"]["text"].clone(), m["edited"].clone()),
        ("hello".into(), edited_ts.into())
    );
    // A resent edit is the same edit: same answer, nobody hears it again.
    let again = edit(&mut a1, &conv, 1, "hello").unwrap();
    assert_eq!(again["edited_ts"], edited_ts);
    assert_no(&mut b, "message.edited");
    // Who may, and how often.
    assert_eq!(edit(&mut b, &conv, 1, "mine now"), Err("forbidden".into()));
    assert_eq!(
        edit(&mut a1, &conv, 9, "nothing there"),
        Err("not_found".into())
    );
    assert_eq!(edit(&mut a1, "c999999", 1, "x"), Err("not_member".into()));
    for i in 2..=10 {
        edit(&mut a1, &conv, 1, &format!("take {i}")).expect("edits up to ten");
    }
    assert_eq!(edit(&mut a1, &conv, 1, "eleven"), Err("conflict".into()));
    assert_eq!(
        message(&server, &alice, &conv, 1)["body"]["text"],
        "take 10"
    );
    // A reply names a message of the conversation; history carries it.
    let reply = json!({"type": "message.send", "conversation_id": conv, "client_msg_id": "r1",
        "body": {"text": "answering"}, "reply_to": 1});
    b.call(reply, WAIT).expect("a reply is sent");
    assert_eq!(message(&server, &alice, &conv, 2)["reply_to"], 1);
    let bad = json!({"type": "message.send", "conversation_id": conv, "client_msg_id": "r2",
        "body": {"text": "to nothing"}, "reply_to": 77});
    match b.call(bad, WAIT) {
        Err(ClientError::Remote { code, .. }) => {
            assert_eq!(code, "bad_request")
        }
        other => panic!("a reply to nothing answered {other:?}"),
    }
}

#[test]
fn a_delete_hides_body_and_media_and_a_group_admin_may_delete_any_message() {
    let server = Server::start();
    let admin = server.user("+15550300011", "admin");
    let carol = server.user("+15550300012", "carol");
    let dave = server.user("+15550300013", "dave");
    let conv = server.group(&admin, "team", &[&carol, &dave]);
    let (mut a, _) = server.ws_synced(&admin);
    let (mut c, _) = server.ws_synced(&carol);
    let (mut d, _) = server.ws_synced(&dave);
    send(&mut c, &conv, "d1", "carol's first");
    send(&mut c, &conv, "d2", "carol's second");
    assert_eq!(
        delete(&mut d, &conv, 1),
        Err("forbidden".into()),
        "not the sender"
    );
    let gone = delete(&mut a, &conv, 1).expect("an admin deletes");
    assert_eq!(
        (gone["type"].clone(), gone["seq"].clone()),
        ("message.deleted".into(), 1.into())
    );
    for ws in [&mut c, &mut d] {
        assert_eq!(ws.recv_type("message.deleted", WAIT).unwrap()["seq"], 1);
    }
    // Deleting again answers the same; an edit of it is refused.
    assert_eq!(delete(&mut a, &conv, 1).unwrap()["type"], "message.deleted");
    assert_eq!(edit(&mut c, &conv, 1, "back"), Err("forbidden".into()));
    delete(&mut c, &conv, 2).expect("the sender deletes");
    let m = message(&server, &dave, &conv, 1);
    assert_eq!(m["deleted"], true, "{m}");
    assert!(m.get("body").is_none() && m.get("media").is_none(), "{m}");
    assert_eq!(message(&server, &dave, &conv, 2)["deleted"], true);
    // A reply may name a deleted message.
    let reply = json!({"type": "message.send", "conversation_id": conv, "client_msg_id": "d3",
        "body": {"text": "what was that?"}, "reply_to": 1});
    d.call(reply, WAIT).expect("a reply to a deleted message");
}

#[test]
fn an_offline_device_gets_the_changes_it_missed_before_sync_done_also_after_a_restart() {
    // Snapshots every few records: the restart restores changes from one.
    let mut server = Server::start_with(&["--snapshot-records", "4"]);
    let alice = server.user("+15550300021", "alice");
    let alice2 = server.login("+15550300021", "laptop");
    let bob = server.user("+15550300022", "bob");
    let conv = server.direct(&alice, &bob);
    let (mut a, _) = server.ws_synced(&alice);
    let (mut b, _) = server.ws_synced(&bob);
    for i in 1..=3 {
        send(&mut a, &conv, &format!("o{i}"), &format!("text {i}"));
    }
    for _ in 1..=3 {
        next_message(&mut b);
    }
    b.send(&json!({"type": "message.ack", "conversation_id": conv, "seq": 3}))
        .unwrap();
    a.recv_type("message.delivered", WAIT).unwrap();
    drop(b);
    // While bob is away: an acked message edited, one deleted, a new one
    // sent and edited; alice's other device edits a message of the first.
    edit(&mut a, &conv, 2, "text 2, fixed").unwrap();
    delete(&mut a, &conv, 3).unwrap();
    send(&mut a, &conv, "o4", "text 4");
    edit(&mut a, &conv, 4, "text 4, fixed").unwrap();
    drop(a);
    let (mut a2, _) = server.ws_synced(&alice2);
    edit(&mut a2, &conv, 1, "text 1, from the laptop").unwrap();
    drop(a2);
    server.restart();
    // Bob: what he lacked as it reads now, then the changes of what he had.
    let (_b, events) = synced_all(&server, &bob);
    let got: Vec<(String, u64, Value)> = events
        .into_iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap().to_string(),
                e["seq"].as_u64().unwrap(),
                e,
            )
        })
        .collect();
    let kinds: Vec<(&str, u64)> = got.iter().map(|(t, s, _)| (t.as_str(), *s)).collect();
    assert_eq!(
        kinds,
        [
            ("message.new", 4),
            ("message.edited", 1),
            ("message.edited", 2),
            ("message.deleted", 3)
        ],
        "{got:?}"
    );
    assert_eq!(got[0].2["body"]["text"], "text 4, fixed");
    assert!(got[0].2["edited"].is_u64(), "{:?}", got[0].2);
    assert_eq!(got[2].2["body"]["text"], "text 2, fixed");
    // Alice's phone sent message 1 and was away when the laptop edited it.
    let (_a, synced) = synced_all(&server, &alice);
    let first = synced
        .iter()
        .find(|e| e["seq"] == 1)
        .expect("seq 1 in the phone's sync");
    assert_eq!(first["type"], "message.edited", "{synced:?}");
    assert_eq!(first["body"]["text"], "text 1, from the laptop");
}

/// Connects and answers every event up to `sync.done`.
fn synced_all(server: &Server, s: &Session) -> (Ws, Vec<Value>) {
    let mut ws = server.ws(s);
    let mut events = Vec::new();
    loop {
        let e = ws.recv(WAIT).unwrap().expect("sync.done arrives");
        if e["type"] == "sync.done" {
            return (ws, events);
        }
        events.push(e);
    }
}

#[test]
fn an_edit_past_the_window_is_forbidden() {
    let server = Server::start_with(&["--edit-window-seconds", "1"]);
    let alice = server.user("+15550300031", "alice");
    let bob = server.user("+15550300032", "bob");
    let conv = server.direct(&alice, &bob);
    let (mut a, _) = server.ws_synced(&alice);
    send(&mut a, &conv, "w1", "quick");
    edit(&mut a, &conv, 1, "quick fix").expect("within the window");
    std::thread::sleep(std::time::Duration::from_millis(1300));
    assert_eq!(edit(&mut a, &conv, 1, "too late"), Err("forbidden".into()));
    delete(&mut a, &conv, 1).expect("a delete has no window");
}
