//! `DELETE /v1/me` (PROTOCOL.md "Account deletion and retention"): every
//! token 401, sockets closed with 4401, keys gone, every group left, the
//! phone unknown to lookups and free to sign up again as a new user, the
//! user's messages shown deleted; all of it across a kill -9.

mod common;

use chat_tools::client::Ws;
use common::*;
use serde_json::{json, Value};

fn closed_with(ws: &mut Ws) -> Option<u16> {
    loop {
        match ws.recv(WAIT) {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the socket stays open"),
            Err(e) => break e.close_code(),
        }
    }
}

fn history_of(server: &Server, s: &chat_tools::client::Session, conv: &str) -> Vec<Value> {
    server.history(s, conv, "")["messages"]
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn a_deleted_account_is_gone_everywhere_and_its_phone_signs_up_anew() {
    let mut server = Server::start();
    let phone = "+15550700001";
    let alice = server.user(phone, "alice");
    let laptop = server.login(phone, "laptop");
    let bob = server.user("+15550700002", "bob");
    let carol = server.user("+15550700003", "carol");
    let direct = server.direct(&alice, &bob);
    let group = server.group(&alice, "g", &[&bob, &carol]);
    let (mut a, _) = server.ws_synced(&alice);
    let (mut l, _) = server.ws_synced(&laptop);
    send(&mut a, &direct, "a1", "from alice");
    let (mut b, _) = server.ws_synced(&bob);
    send(&mut b, &direct, "b1", "from bob");
    send(&mut a, &group, "a2", "alice in the group");
    let key = "AAECAwQFBgc=";
    let keys = json!({"identity_key": key, "signed_prekey": {"key_id": 1, "public_key": key, "signature": key}});
    assert_eq!(
        server
            .rest("PUT", "/v1/keys", Some(&alice.token), Some(&keys))
            .0,
        204
    );

    let (status, body) = server.rest("DELETE", "/v1/me", Some(&alice.token), None);
    assert_eq!(status, 202, "{body}");
    assert_eq!(closed_with(&mut a), Some(4401));
    assert_eq!(closed_with(&mut l), Some(4401));
    for token in [&alice.token, &laptop.token] {
        assert_error(
            &server.rest("GET", "/v1/me", Some(token), None),
            401,
            "unauthorized",
        );
    }
    let lookup = format!("/v1/users?phone={}", phone.replace('+', "%2B"));
    assert_error(
        &server.rest("GET", &lookup, Some(&bob.token), None),
        404,
        "not_found",
    );
    let keys_path = format!("/v1/keys/{}", alice.user_id);
    assert_error(
        &server.rest("GET", &keys_path, Some(&bob.token), None),
        404,
        "not_found",
    );

    let check = |server: &Server| {
        let h = history_of(server, &bob, &direct);
        assert_eq!(h.len(), 2);
        assert_eq!(h[0]["deleted"], true, "{}", h[0]);
        assert!(h[0].get("body").is_none(), "{}", h[0]);
        assert_eq!(
            h[1]["body"]["text"], "from bob",
            "the others' messages stay"
        );
        let g = history_of(server, &carol, &group);
        assert_eq!(g[0]["deleted"], true, "{}", g[0]);
        // Alice left the group; bob, the longest-standing, is its admin now.
        let path = format!("/v1/conversations/{group}/members/{}", carol.user_id);
        let role = json!({"role": "admin"});
        let (status, v) = server.rest("PATCH", &path, Some(&bob.token), Some(&role));
        assert_eq!(status, 204, "bob may set roles: {v}");
        let body = json!({"kind": "direct", "peer": alice.user_id});
        assert_error(
            &server.rest("POST", "/v1/conversations", Some(&bob.token), Some(&body)),
            404,
            "not_found",
        );
    };
    check(&server);

    // The phone signs up again: a new user, in none of the old chats.
    let again = server.user(phone, "alice again");
    assert_ne!(again.user_id, alice.user_id);
    let (status, found) = server.rest("GET", &lookup, Some(&bob.token), None);
    assert_eq!(status, 200);
    assert_eq!(found["user_id"], again.user_id.as_str());
    let (status, list) = server.rest("GET", "/v1/conversations", Some(&again.token), None);
    assert_eq!(status, 200);
    assert_eq!(list["conversations"], json!([]), "{list}");

    drop(b);
    server.kill9();
    server.restart();
    check(&server);
    let (_, found) = server.rest("GET", &lookup, Some(&bob.token), None);
    assert_eq!(
        found["user_id"],
        again.user_id.as_str(),
        "after a restart too"
    );
    assert_error(
        &server.rest("GET", "/v1/me", Some(&alice.token), None),
        401,
        "unauthorized",
    );
}
