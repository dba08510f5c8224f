//! Disappearing messages (PROTOCOL.md `PATCH /v1/conversations/{id}` and
//! "Account deletion and retention"): who may set it, the event, the
//! setting in the list, and that each message keeps the setting it was
//! sent under and vanishes from history and sync once older, also after a
//! restart.

mod common;

use std::time::Duration;

use chat_tools::client::Session;
use common::*;
use serde_json::{json, Value};

fn patch(server: &Server, s: &Session, conv: &str, body: Value) -> (u16, Value) {
    server.rest(
        "PATCH",
        &format!("/v1/conversations/{conv}"),
        Some(&s.token),
        Some(&body),
    )
}

fn setting(server: &Server, s: &Session, conv: &str) -> u64 {
    let (_, v) = server.rest("GET", "/v1/conversations", Some(&s.token), None);
    let row = v["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["conversation_id"] == conv);
    row.unwrap_or_else(|| panic!("{conv} not listed: {v}"))["disappearing_seconds"]
        .as_u64()
        .unwrap()
}

#[test]
fn messages_keep_the_setting_they_were_sent_under_and_vanish_once_older() {
    let mut server = Server::start();
    let alice = server.login("+15550600001", "phone");
    let bob = server.login("+15550600002", "phone");
    let conv = server.direct(&alice, &bob);
    let (mut a, _) = server.ws_synced(&alice);
    let (mut b, _) = server.ws_synced(&bob);
    assert_eq!(setting(&server, &bob, &conv), 0, "off by default");
    send(&mut a, &conv, "d0", "before: stays");
    next_message(&mut b);
    // Either member of a direct chat may set it; both hear of it.
    assert_eq!(
        patch(&server, &bob, &conv, json!({"disappearing_seconds": 1})).0,
        204
    );
    for ws in [&mut a, &mut b] {
        let e = ws.recv_type("conversation.updated", WAIT).unwrap();
        assert_eq!(
            (
                e["conversation_id"].as_str(),
                e["disappearing_seconds"].as_u64()
            ),
            (Some(conv.as_str()), Some(1))
        );
    }
    assert_eq!(setting(&server, &alice, &conv), 1);
    send(&mut a, &conv, "d1", "gone in a second");
    next_message(&mut b);
    assert_eq!(
        patch(&server, &alice, &conv, json!({"disappearing_seconds": 0})).0,
        204
    );
    send(&mut a, &conv, "d2", "after: stays");
    drop(b);
    assert_eq!(
        seqs(&server.history(&alice, &conv, "")["messages"]),
        vec![1, 2, 3]
    );
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(
        seqs(&server.history(&alice, &conv, "")["messages"]),
        vec![1, 3]
    );
    server.restart();
    assert_eq!(
        seqs(&server.history(&bob, &conv, "")["messages"]),
        vec![1, 3]
    );
    assert_eq!(setting(&server, &bob, &conv), 0);
    // Bob had acked nothing: his sync brings what is left.
    let (_b, synced) = server.ws_synced(&bob);
    let got: Vec<u64> = synced.iter().map(|m| m["seq"].as_u64().unwrap()).collect();
    assert_eq!(got, vec![1, 3]);
}

#[test]
fn in_a_group_only_admins_set_it_and_bad_values_are_refused() {
    let server = Server::start();
    let admin = server.login("+15550600011", "phone");
    let member = server.login("+15550600012", "phone");
    let outsider = server.login("+15550600013", "phone");
    let conv = server.group(&admin, "g", &[&member]);
    assert_error(
        &patch(&server, &member, &conv, json!({"disappearing_seconds": 60})),
        403,
        "forbidden",
    );
    assert_error(
        &patch(
            &server,
            &outsider,
            &conv,
            json!({"disappearing_seconds": 60}),
        ),
        404,
        "not_found",
    );
    for bad in [
        json!({}),
        json!({"disappearing_seconds": -1}),
        json!({"disappearing_seconds": "60"}),
        json!({"disappearing_seconds": 100_000_000}),
    ] {
        assert_error(&patch(&server, &admin, &conv, bad), 400, "bad_request");
    }
    assert_eq!(
        patch(&server, &admin, &conv, json!({"disappearing_seconds": 60})).0,
        204
    );
    assert_eq!(setting(&server, &member, &conv), 60);
}
