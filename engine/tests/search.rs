//! `GET /v1/search` (PROTOCOL.md "Search"): every word, the last as a
//! prefix, case and punctuation aside; only the caller's conversations and
//! what it may see; edits, deletes, disappearing messages, erased senders
//! and ciphertext never match; paging with `before`; the refusals; and
//! the index rebuilt from the log after a kill -9.

mod common;

use chat_tools::client::Session;
use common::*;
use serde_json::json;

fn search(server: &Server, s: &Session, query: &str) -> Vec<(String, u64)> {
    let (status, v) = server.rest("GET", &format!("/v1/search?{query}"), Some(&s.token), None);
    assert_eq!(status, 200, "search {query}: {v}");
    v["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["conversation_id"].as_str().unwrap().to_owned(),
                m["seq"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn search_finds_current_text_the_caller_may_read_newest_first_and_across_a_kill_9() {
    let mut server = Server::start();
    let alice = server.user("+15550800001", "alice");
    let bob = server.user("+15550800002", "bob");
    let carol = server.user("+15550800003", "carol");
    let ab = server.direct(&alice, &bob);
    let bc = server.direct(&bob, &carol);
    let (mut a, _) = server.ws_synced(&alice);
    let (mut c, _) = server.ws_synced(&carol);
    send(&mut a, &ab, "m1", "Lunch at the Café, tomorrow?"); // 1
    send(&mut a, &ab, "m2", "café lunch again"); // 2
    send(&mut a, &ab, "m3", "dinner instead"); // 3
                                               // Results are ordered by ts, then seq: a distinct ts for the newest.
    std::thread::sleep(std::time::Duration::from_millis(10));
    send(&mut c, &bc, "m4", "lunch with carol"); // bc 1
    let cipher = json!({"type": "message.send", "conversation_id": ab, "client_msg_id": "m5",
        "body": {"ciphertext": "bHVuY2g="}});
    call_ok(&mut a, cipher); // 4: never indexed

    let hit = |conv: &str, seq: u64| (conv.to_owned(), seq);
    assert_eq!(
        search(&server, &bob, "q=LUNCH"),
        [hit(&bc, 1), hit(&ab, 2), hit(&ab, 1)]
    );
    assert_eq!(
        search(&server, &bob, "q=lunch%20caf"),
        [hit(&ab, 2), hit(&ab, 1)],
        "last word a prefix"
    );
    assert_eq!(
        search(&server, &bob, "q=lun%20cafe"),
        [],
        "only the last word is a prefix"
    );
    assert_eq!(
        search(&server, &alice, "q=lunch"),
        [hit(&ab, 2), hit(&ab, 1)],
        "only the caller's conversations"
    );
    assert_eq!(
        search(
            &server,
            &bob,
            &format!("q=lunch&conversation_id={ab}&limit=1")
        ),
        [hit(&ab, 2)]
    );
    assert_eq!(
        search(
            &server,
            &bob,
            &format!("q=lunch&conversation_id={ab}&before=2")
        ),
        [hit(&ab, 1)]
    );

    // An edit is found by its new text only; a deleted message never.
    call_ok(
        &mut a,
        json!({"type": "message.edit", "conversation_id": ab, "seq": 3, "body": {"text": "supper instead"}}),
    );
    call_ok(
        &mut a,
        json!({"type": "message.delete", "conversation_id": ab, "seq": 1}),
    );
    let check = |server: &Server| {
        assert_eq!(search(server, &bob, "q=supper"), [hit(&ab, 3)]);
        assert_eq!(search(server, &bob, "q=dinner"), []);
        assert_eq!(
            search(server, &bob, &format!("q=lunch&conversation_id={ab}")),
            [hit(&ab, 2)]
        );
        assert_eq!(search(server, &carol, "q=lunch"), [hit(&bc, 1)]);
    };
    check(&server);

    // The refusals.
    assert_error(
        &server.rest("GET", "/v1/search?q=", Some(&bob.token), None),
        400,
        "bad_request",
    );
    assert_error(
        &server.rest("GET", "/v1/search?q=%20!%3F", Some(&bob.token), None),
        400,
        "bad_request",
    );
    assert_error(
        &server.rest("GET", "/v1/search", Some(&bob.token), None),
        400,
        "bad_request",
    );
    assert_error(
        &server.rest("GET", "/v1/search?q=a&limit=51", Some(&bob.token), None),
        400,
        "bad_request",
    );
    assert_error(
        &server.rest("GET", "/v1/search?q=a&before=2", Some(&bob.token), None),
        400,
        "bad_request",
    );
    let other = format!("/v1/search?q=lunch&conversation_id={bc}");
    assert_error(
        &server.rest("GET", &other, Some(&alice.token), None),
        404,
        "not_found",
    );
    assert_error(
        &server.rest(
            "GET",
            "/v1/search?q=a&conversation_id=zz",
            Some(&bob.token),
            None,
        ),
        404,
        "not_found",
    );
    assert_error(
        &server.rest("GET", "/v1/search?q=lunch", None, None),
        401,
        "unauthorized",
    );

    // The index is built again from the log.
    drop((a, c));
    server.kill9();
    server.restart();
    check(&server);
    let (mut a, _) = server.ws_synced(&alice);
    send(&mut a, &ab, "m6", "lunch after the restart");
    assert_eq!(
        search(&server, &bob, &format!("q=lunch&conversation_id={ab}")),
        [hit(&ab, 5), hit(&ab, 2)]
    );
}

#[test]
fn disappearing_and_erased_messages_are_not_found() {
    let server = Server::start();
    let alice = server.user("+15550800011", "alice");
    let bob = server.user("+15550800012", "bob");
    let ab = server.direct(&alice, &bob);
    let (mut a, _) = server.ws_synced(&alice);
    let (mut b, _) = server.ws_synced(&bob);
    let patch = json!({"disappearing_seconds": 1});
    let path = format!("/v1/conversations/{ab}");
    assert_eq!(
        server
            .rest("PATCH", &path, Some(&alice.token), Some(&patch))
            .0,
        204
    );
    send(&mut a, &ab, "d1", "ephemeral marmalade");
    assert_eq!(
        search(&server, &bob, "q=marmalade").len(),
        1,
        "found while it lasts"
    );
    std::thread::sleep(std::time::Duration::from_millis(1300));
    assert_eq!(
        search(&server, &bob, "q=marmalade"),
        [],
        "gone once expired"
    );
    let off = json!({"disappearing_seconds": 0});
    assert_eq!(
        server
            .rest("PATCH", &path, Some(&alice.token), Some(&off))
            .0,
        204
    );
    send(&mut b, &ab, "b1", "bob says marmalade");
    send(&mut a, &ab, "a1", "alice says marmalade");
    assert_eq!(search(&server, &bob, "q=marmalade").len(), 2);
    assert_eq!(
        server.rest("DELETE", "/v1/me", Some(&alice.token), None).0,
        202
    );
    let found = search(&server, &bob, "q=marmalade");
    assert_eq!(
        found,
        [(ab.clone(), 2)],
        "a deleted account's messages are not found"
    );
}
