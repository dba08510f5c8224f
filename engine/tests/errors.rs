//! Bad input on the WebSocket (PROTOCOL.md "Errors on the socket",
//! "Limits", "Authentication"): each is answered with its documented error,
//! and the server goes on serving — the same socket where it stays open,
//! and everybody else.

mod common;

use chat_tools::client::{ClientError, Session, Ws};
use common::*;
use serde_json::{json, Value};

/// Alice and Bob in a direct conversation, both online and synced.
struct Pair {
    alice: Session,
    bob: Session,
    conv: String,
    a: Ws,
    b: Ws,
}

fn pair(server: &Server, n: u32) -> Pair {
    let alice = server.user(&format!("+1555400{n:02}01"), "alice");
    let bob = server.user(&format!("+1555400{n:02}02"), "bob");
    let conv = server.direct(&alice, &bob);
    let (a, _) = server.ws_synced(&alice);
    let (b, _) = server.ws_synced(&bob);
    Pair {
        alice,
        bob,
        conv,
        a,
        b,
    }
}

/// The next `error` event on `ws`, checked for its shape and code.
fn expect_error(ws: &mut Ws, code: &str) -> Value {
    let e = ws.recv_type("error", WAIT).expect("an error event");
    assert_eq!(e["code"], code, "{e}");
    assert!(e["message"].is_string(), "{e}");
    e
}

/// The socket still answers: `ping` → `pong` echoing the ref.
fn answers_ping(ws: &mut Ws) {
    let pong = ws
        .call(json!({"type": "ping", "ref": "alive"}), WAIT)
        .expect("pong");
    assert_eq!(pong["type"], "pong");
    assert_eq!(pong["ref"], "alive");
}

/// Bob's messages still reach Alice's socket (when it is open) and history.
fn messages_flow(server: &Server, p: &mut Pair, alice_online: bool, id: &str) {
    let sent = send(&mut p.b, &p.conv, id, id);
    if alice_online {
        let got = next_message(&mut p.a);
        assert_eq!(got["seq"], sent["seq"]);
    }
    let h = server.history(&p.alice, &p.conv, "");
    let last = h["messages"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["body"]["text"], id);
}

fn send_event(conv: &str, id: &str) -> Value {
    json!({"type": "message.send", "conversation_id": conv, "client_msg_id": id, "body": {"text": id}})
}

#[test]
fn malformed_json_frame_is_bad_request_and_the_connection_stays_open() {
    let server = Server::start();
    let mut p = pair(&server, 1);
    for text in ["{not json", "", "[1,2,3]", "\"ping\"", "{\"type\":"] {
        p.a.send_text(text).unwrap();
        expect_error(&mut p.a, "bad_request");
        answers_ping(&mut p.a);
    }
    messages_flow(&server, &mut p, true, "after malformed");
}

#[test]
fn unknown_type_is_bad_request_echoing_ref_and_the_connection_stays_open() {
    let server = Server::start();
    let mut p = pair(&server, 2);
    p.a.send(&json!({"type": "message.teleport", "ref": "u1"}))
        .unwrap();
    let e = expect_error(&mut p.a, "bad_request");
    assert_eq!(e["ref"], "u1");
    p.a.send(&json!({"ref": 9, "conversation_id": p.conv}))
        .unwrap();
    let e = expect_error(&mut p.a, "bad_request");
    assert_eq!(e["ref"], 9, "no type at all: {e}");
    answers_ping(&mut p.a);
    messages_flow(&server, &mut p, true, "after unknown");
}

#[test]
fn missing_field_is_bad_request_echoing_ref_and_the_connection_stays_open() {
    let server = Server::start();
    let mut p = pair(&server, 3);
    let conv = p.conv.clone();
    let events = [
        json!({"type": "message.send", "conversation_id": conv, "client_msg_id": "x"}),
        json!({"type": "message.send", "conversation_id": conv, "body": {"text": "x"}}),
        json!({"type": "message.send", "client_msg_id": "x", "body": {"text": "x"}}),
        json!({"type": "message.ack", "conversation_id": conv}),
        json!({"type": "message.read", "seq": 1}),
        json!({"type": "typing", "conversation_id": conv}),
        json!({"type": "presence.subscribe"}),
    ];
    for (i, mut event) in events.into_iter().enumerate() {
        event["ref"] = json!(format!("m{i}"));
        p.a.send(&event).unwrap();
        let e = expect_error(&mut p.a, "bad_request");
        assert_eq!(e["ref"], format!("m{i}"), "{event} → {e}");
    }
    answers_ping(&mut p.a);
    // Nothing was stored or delivered by the broken sends.
    assert_no(&mut p.b, "message.new");
    assert_eq!(server.history(&p.bob, &conv, "")["messages"], json!([]));
    messages_flow(&server, &mut p, true, "after missing");
}

#[test]
fn ref_is_echoed_as_given_on_errors_pong_and_message_sent() {
    let server = Server::start();
    let mut p = pair(&server, 4);
    for reference in [json!("r-1"), json!(42), json!({"k": [1, 2]})] {
        let pong =
            p.a.call(json!({"type": "ping", "ref": reference}), WAIT)
                .unwrap();
        assert_eq!(
            (pong["type"].as_str(), &pong["ref"]),
            (Some("pong"), &reference)
        );
        let mut event = send_event(&p.conv, &format!("id-{reference}"));
        event["ref"] = reference.clone();
        let sent = p.a.call(event, WAIT).unwrap();
        assert_eq!(sent["type"], "message.sent");
        assert_eq!(sent["ref"], reference);
        let mut bad = send_event("c999999999", "x");
        bad["ref"] = reference.clone();
        p.a.send(&bad).unwrap();
        let e = expect_error(&mut p.a, "not_member");
        assert_eq!(e["ref"], reference);
    }
    // Without a ref, the answer carries none.
    p.a.send(&json!({"type": "ping"})).unwrap();
    let pong = p.a.recv_type("pong", WAIT).unwrap();
    assert!(
        matches!(pong.get("ref"), None | Some(Value::Null)),
        "{pong}"
    );
}

#[test]
fn send_to_a_conversation_one_is_not_in_is_not_member_and_stores_nothing() {
    let server = Server::start();
    let mut p = pair(&server, 5);
    send(&mut p.a, &p.conv, "real", "real");
    next_message(&mut p.b);
    let eve = server.user("+15554000599", "eve");
    let (mut e, _) = server.ws_synced(&eve);
    let mut event = send_event(&p.conv, "intruder");
    event["ref"] = json!("e1");
    e.send(&event).unwrap();
    let err = expect_error(&mut e, "not_member");
    assert_eq!(err["ref"], "e1");
    // Nothing stored, nothing delivered.
    let h = server.history(&p.alice, &p.conv, "");
    assert_eq!(seqs(&h["messages"]), [1], "{h}");
    assert_no(&mut p.b, "message.new");
    assert_no(&mut p.a, "message.new");
    // Eve's socket and the members' conversation keep working.
    answers_ping(&mut e);
    messages_flow(&server, &mut p, true, "after intruder");
    assert_eq!(
        seqs(&server.history(&p.alice, &p.conv, "")["messages"]),
        [1, 2]
    );
}

#[test]
fn send_to_a_conversation_id_that_does_not_parse_is_not_member() {
    let server = Server::start();
    let mut p = pair(&server, 6);
    for id in ["nonsense", "", "u1", "c", "c-1", "c99999999999999999999999"] {
        let mut event = send_event(id, "x");
        event["ref"] = json!(id);
        p.a.send(&event).unwrap();
        let e = expect_error(&mut p.a, "not_member");
        assert_eq!(e["ref"], id);
    }
    answers_ping(&mut p.a);
    messages_flow(&server, &mut p, true, "after unparsable");
}

#[test]
fn frame_over_128_kib_is_too_large_then_close_1009_and_others_are_served() {
    let server = Server::start();
    let mut p = pair(&server, 7);
    // Exactly 128 KiB is allowed.
    p.a.send_frame_of_size(128 * 1024).unwrap();
    p.a.recv_type("pong", WAIT)
        .expect("a 128 KiB frame is served");
    p.a.send_frame_of_size(128 * 1024 + 1).unwrap();
    expect_error(&mut p.a, "too_large");
    let closed = loop {
        match p.a.recv(WAIT) {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("no close within {WAIT:?}"),
            Err(e) => break e.close_code(),
        }
    };
    assert_eq!(closed, Some(1009));
    // Bob is still served, and Alice can come back.
    answers_ping(&mut p.b);
    messages_flow(&server, &mut p, false, "after too large");
    let (mut again, synced) = server.ws_synced(&p.alice);
    assert_eq!(synced.last().unwrap()["body"]["text"], "after too large");
    answers_ping(&mut again);
}

#[test]
fn sends_over_the_rate_are_rate_limited_with_retry_after_ms_and_not_stored() {
    let server = Server::start_with(&["--send-rate", "5", "--send-burst", "10"]);
    let mut p = pair(&server, 8);
    for i in 0..15 {
        let mut event = send_event(&p.conv, &format!("r{i}"));
        event["ref"] = json!(i);
        p.a.send(&event).unwrap();
    }
    let mut accepted = Vec::new();
    let mut limited = 0;
    for _ in 0..15 {
        let answer =
            p.a.recv_where(WAIT, "message.sent or error", |e| e.get("ref").is_some())
                .unwrap();
        match answer["type"].as_str() {
            Some("message.sent") => {
                accepted.push(answer["client_msg_id"].as_str().unwrap().to_string())
            }
            Some("error") => {
                assert_eq!(answer["code"], "rate_limited", "{answer}");
                assert!(
                    answer["retry_after_ms"].as_u64().is_some_and(|ms| ms > 0),
                    "{answer}"
                );
                limited += 1;
            }
            _ => panic!("unexpected {answer}"),
        }
    }
    assert!(
        limited > 0,
        "15 sends at once over a burst of 10 are limited"
    );
    assert!(
        accepted.len() >= 10,
        "the burst of 10 is accepted: {accepted:?}"
    );
    assert_eq!(accepted.len() + limited, 15);
    // Only the accepted ones are stored, gapless.
    let h = server.history(&p.alice, &p.conv, "");
    let mut stored: Vec<String> = h["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"]["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        seqs(&h["messages"]),
        (1..=accepted.len() as u64).collect::<Vec<_>>()
    );
    stored.sort();
    accepted.sort();
    assert_eq!(stored, accepted);
    answers_ping(&mut p.a);
    messages_flow(&server, &mut p, true, "after rate limit");
}

#[test]
fn auth_frame_answers_auth_ok_with_ref_then_sync_done() {
    let server = Server::start();
    let alice = server.login("+15554000901", "phone");
    let mut ws = Ws::connect(&server.http, None).unwrap();
    let ok = ws
        .call(
            json!({"type": "auth", "token": alice.token, "ref": "a1"}),
            WAIT,
        )
        .unwrap();
    assert_eq!(ok["type"], "auth.ok");
    assert_eq!(ok["ref"], "a1");
    assert_eq!(ok["user_id"], alice.user_id.as_str());
    assert_eq!(ok["device_id"], alice.device_id.as_str());
    ws.recv_type("sync.done", WAIT).unwrap();
    answers_ping(&mut ws);
}

fn expect_close(ws: &mut Ws, code: u16) {
    let closed = loop {
        match ws.recv(WAIT) {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("no close within {WAIT:?}"),
            Err(e) => break e,
        }
    };
    assert_eq!(closed.close_code(), Some(code), "{closed}");
}

#[test]
fn auth_frame_with_a_bad_token_is_unauthorized_then_close_4401() {
    let server = Server::start();
    let mut p = pair(&server, 10);
    let mut forged = p.alice.token.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == '0' { '1' } else { '0' });
    for token in [forged.as_str(), "garbage"] {
        let mut ws = Ws::connect(&server.http, None).unwrap();
        ws.send(&json!({"type": "auth", "token": token, "ref": "bad"}))
            .unwrap();
        let e = expect_error(&mut ws, "unauthorized");
        assert_eq!(e["ref"], "bad");
        expect_close(&mut ws, 4401);
    }
    // A first frame that is not `auth` fails the same way.
    let mut ws = Ws::connect(&server.http, None).unwrap();
    ws.send(&json!({"type": "ping"})).unwrap();
    expect_error(&mut ws, "unauthorized");
    expect_close(&mut ws, 4401);
    // A bad token in the upgrade header: refused, or error then 4401.
    match Ws::connect(&server.http, Some(&forged)) {
        Err(ClientError::Handshake { status, .. }) => assert_eq!(status, 401),
        Err(e) => panic!("unexpected {e}"),
        Ok(mut ws) => {
            expect_error(&mut ws, "unauthorized");
            expect_close(&mut ws, 4401);
        }
    }
    answers_ping(&mut p.a);
    messages_flow(&server, &mut p, true, "after bad auth");
}

#[test]
fn second_auth_after_auth_ok_is_bad_request_and_the_connection_stays_open() {
    let server = Server::start();
    let mut p = pair(&server, 11);
    let token = p.alice.token.clone();
    p.a.send(&json!({"type": "auth", "token": token, "ref": "again"}))
        .unwrap();
    let e = expect_error(&mut p.a, "bad_request");
    assert_eq!(e["ref"], "again");
    answers_ping(&mut p.a);
    messages_flow(&server, &mut p, true, "after second auth");
}

#[test]
fn reading_someone_elses_history_over_rest_is_404_not_found() {
    let server = Server::start();
    let mut p = pair(&server, 12);
    send(&mut p.a, &p.conv, "private", "private");
    let eve = server.user("+15554001299", "eve");
    let path = format!("/v1/conversations/{}/messages", p.conv);
    assert_error(
        &server.rest("GET", &path, Some(&eve.token), None),
        404,
        "not_found",
    );
    for query in ["?after=0", "?before=2", "?limit=1"] {
        let path = format!("/v1/conversations/{}/messages{query}", p.conv);
        assert_error(
            &server.rest("GET", &path, Some(&eve.token), None),
            404,
            "not_found",
        );
    }
    messages_flow(&server, &mut p, true, "after snooping");
}
