//! The REST API of PROTOCOL.md "REST": auth (OTP), profile, devices, user
//! lookup, conversations, members and roles, history, receipts, tokens,
//! and the error shape of every failure.

mod common;

use std::time::Duration;

use chat_tools::client::{self, Ws};
use common::*;
use serde_json::{json, Value};

/// `POST /v1/auth/otp` for `phone`; answers the status and body.
fn request_otp(server: &Server, phone: &str) -> (u16, Value) {
    server.rest(
        "POST",
        "/v1/auth/otp",
        None,
        Some(&json!({ "phone": phone })),
    )
}

/// Asks for a code and reads it from the file sink (within the 1 s the
/// protocol promises).
fn otp_code(server: &Server, phone: &str) -> String {
    let offset = client::otp_file_len(&server.otp_file);
    let answer = request_otp(server, phone);
    assert_eq!(answer.0, 202, "{}", answer.1);
    client::wait_for_otp(&server.otp_file, phone, offset, Duration::from_secs(1))
        .expect("the code reaches the sink within 1 s")
}

fn verify(server: &Server, phone: &str, code: &str, device: &str) -> (u16, Value) {
    server.rest(
        "POST",
        "/v1/auth/verify",
        None,
        Some(&json!({"phone": phone, "code": code, "device_name": device})),
    )
}

/// A code of the same length that is not `code`.
fn wrong(code: &str) -> String {
    if code == "000000" { "111111" } else { "000000" }.to_string()
}

fn add_member(server: &Server, by: &client::Session, conv: &str, user: &str) -> (u16, Value) {
    server.rest(
        "POST",
        &format!("/v1/conversations/{conv}/members"),
        Some(&by.token),
        Some(&json!({ "user_id": user })),
    )
}

fn texts(history: &Value) -> Vec<String> {
    history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"]["text"].as_str().unwrap().to_string())
        .collect()
}

// ---------------------------------------------------------------------------
// Auth: OTP request and verify

#[test]
fn otp_request_answers_202_expires_in_300_and_writes_a_6_digit_code_to_the_file_sink() {
    let server = Server::start();
    let phone = "+15553000001";
    let offset = client::otp_file_len(&server.otp_file);
    let (status, body) = request_otp(&server, phone);
    assert_eq!(status, 202, "{body}");
    assert_eq!(body, json!({"expires_in": 300}));
    let code = client::wait_for_otp(&server.otp_file, phone, offset, Duration::from_secs(1))
        .expect("the code reaches the sink within 1 s");
    assert_eq!(code.len(), 6, "{code}");
    assert!(code.bytes().all(|b| b.is_ascii_digit()), "{code}");
    let (status, session) = verify(&server, phone, &code, "phone");
    assert_eq!(status, 200, "{session}");
}

#[test]
fn first_verify_creates_the_user_and_each_verify_links_a_new_device() {
    let server = Server::start();
    let phone = "+15553000011";
    let code = otp_code(&server, phone);
    let (status, first) = verify(&server, phone, &code, "phone");
    assert_eq!(status, 200, "{first}");
    for field in ["user_id", "device_id", "token"] {
        assert!(first[field].is_string(), "{field} in {first}");
    }
    let code = otp_code(&server, phone);
    let (status, second) = verify(&server, phone, &code, "laptop");
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["user_id"], first["user_id"], "same account");
    assert_ne!(second["device_id"], first["device_id"], "a new device");
    assert_ne!(second["token"], first["token"]);
    // Both tokens work, and the profile lists both devices.
    for session in [&first, &second] {
        let (status, me) = server.rest("GET", "/v1/me", session["token"].as_str(), None);
        assert_eq!(status, 200, "{me}");
        assert_eq!(me["user_id"], first["user_id"]);
        let devices = me["devices"].as_array().unwrap();
        assert_eq!(devices.len(), 2, "{me}");
    }
    // Another phone is another user.
    let code = otp_code(&server, "+15553000012");
    let (_, other) = verify(&server, "+15553000012", &code, "phone");
    assert_ne!(other["user_id"], first["user_id"]);
}

#[test]
fn wrong_code_is_401_and_a_used_code_is_401() {
    let server = Server::start();
    let phone = "+15553000021";
    let code = otp_code(&server, phone);
    assert_error(
        &verify(&server, phone, &wrong(&code), "x"),
        401,
        "unauthorized",
    );
    // The right code still works after one wrong try, exactly once.
    let (status, body) = verify(&server, phone, &code, "phone");
    assert_eq!(status, 200, "{body}");
    assert_error(&verify(&server, phone, &code, "again"), 401, "unauthorized");
    // A phone that never asked for a code.
    assert_error(
        &verify(&server, "+15553000022", "123456", "x"),
        401,
        "unauthorized",
    );
}

#[test]
fn sixth_try_on_one_code_is_429_rate_limited_with_retry_after_ms_even_when_right() {
    let server = Server::start();
    let phone = "+15553000031";
    let code = otp_code(&server, phone);
    for _ in 0..5 {
        assert_error(
            &verify(&server, phone, &wrong(&code), "x"),
            401,
            "unauthorized",
        );
    }
    let answer = verify(&server, phone, &code, "x");
    assert_error(&answer, 429, "rate_limited");
    assert!(
        answer.1["error"]["retry_after_ms"].as_u64().is_some(),
        "retry_after_ms: {}",
        answer.1
    );
}

#[test]
fn sixth_otp_request_for_one_phone_within_the_window_is_429_rate_limited() {
    let server = Server::start();
    let phone = "+15553000041";
    for i in 0..5 {
        let (status, body) = request_otp(&server, phone);
        assert_eq!(status, 202, "request {}: {body}", i + 1);
    }
    let answer = request_otp(&server, phone);
    assert_error(&answer, 429, "rate_limited");
    let retry = answer.1["error"]["retry_after_ms"].as_u64();
    assert!(retry.is_some_and(|ms| ms > 0), "{}", answer.1);
    // The limit is per phone: another phone is served.
    assert_eq!(request_otp(&server, "+15553000042").0, 202);
}

#[test]
fn non_e164_phone_is_400_bad_request() {
    let server = Server::start();
    let session = server.user("+15553000051", "alice");
    for phone in [
        "15551234567",
        "+1 555 123 4567",
        "+1555",
        "+0555123456",
        "phone",
        "",
    ] {
        assert_error(&request_otp(&server, phone), 400, "bad_request");
        assert_error(&verify(&server, phone, "123456", "x"), 400, "bad_request");
        let path = format!("/v1/users?phone={}", client::encode_query_value(phone));
        assert_error(
            &server.rest("GET", &path, Some(&session.token), None),
            400,
            "bad_request",
        );
    }
    assert_error(
        &server.rest("POST", "/v1/auth/otp", None, Some(&json!({}))),
        400,
        "bad_request",
    );
}

// ---------------------------------------------------------------------------
// Profile, devices, user lookup

#[test]
fn me_has_defaults_everyone_and_true_and_lists_devices() {
    let server = Server::start();
    let phone = "+15553000061";
    let alice = server.login(phone, "phone");
    let laptop = server.login(phone, "laptop");
    let (status, me) = server.rest("GET", "/v1/me", Some(&alice.token), None);
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["user_id"], alice.user_id.as_str());
    assert_eq!(me["phone"], phone);
    assert!(me.get("name").is_some(), "{me}");
    assert_eq!(me["last_seen_privacy"], "everyone");
    assert_eq!(me["read_receipts"], true);
    let devices = me["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 2, "{me}");
    let listed = |id: &str| devices.iter().any(|d| d["device_id"] == id);
    assert!(
        listed(&alice.device_id) && listed(&laptop.device_id),
        "{me}"
    );
}

#[test]
fn patch_me_changes_name_privacy_and_read_receipts_and_rejects_bad_values() {
    let server = Server::start();
    let alice = server.login("+15553000071", "phone");
    let (status, patched) = server.rest(
        "PATCH",
        "/v1/me",
        Some(&alice.token),
        Some(&json!({"name": "Alice", "last_seen_privacy": "contacts", "read_receipts": false})),
    );
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["name"], "Alice");
    let (_, me) = server.rest("GET", "/v1/me", Some(&alice.token), None);
    assert_eq!(me["name"], "Alice");
    assert_eq!(me["last_seen_privacy"], "contacts");
    assert_eq!(me["read_receipts"], false);
    for privacy in ["nobody", "everyone"] {
        let body = json!({ "last_seen_privacy": privacy });
        let (status, _) = server.rest("PATCH", "/v1/me", Some(&alice.token), Some(&body));
        assert_eq!(status, 200);
        let (_, me) = server.rest("GET", "/v1/me", Some(&alice.token), None);
        assert_eq!(me["last_seen_privacy"], privacy);
    }
    for bad in [
        json!({"last_seen_privacy": "friends"}),
        json!({"last_seen_privacy": 1}),
        json!({"read_receipts": "yes"}),
        json!({"name": 5}),
    ] {
        assert_error(
            &server.rest("PATCH", "/v1/me", Some(&alice.token), Some(&bad)),
            400,
            "bad_request",
        );
    }
    // Nothing of a rejected patch was applied.
    let (_, me) = server.rest("GET", "/v1/me", Some(&alice.token), None);
    assert_eq!(
        (
            me["name"].as_str(),
            me["last_seen_privacy"].as_str(),
            me["read_receipts"].as_bool()
        ),
        (Some("Alice"), Some("everyone"), Some(false))
    );
}

#[test]
fn user_lookup_by_url_encoded_phone_answers_id_and_name_and_unknown_is_404() {
    let server = Server::start();
    let alice = server.user("+15553000081", "alice");
    let bob = server.user("+15553000082", "bob");
    let (status, found) = server.rest(
        "GET",
        "/v1/users?phone=%2B15553000082",
        Some(&alice.token),
        None,
    );
    assert_eq!(status, 200, "{found}");
    assert_eq!(found, json!({"user_id": bob.user_id, "name": "bob"}));
    assert_error(
        &server.rest(
            "GET",
            "/v1/users?phone=%2B15553000089",
            Some(&alice.token),
            None,
        ),
        404,
        "not_found",
    );
}

#[test]
fn deleting_a_device_answers_204_revokes_its_token_and_closes_its_socket_with_4401() {
    let server = Server::start();
    let phone = "+15553000091";
    let alice = server.user(phone, "alice");
    let laptop = server.login(phone, "laptop");
    let (mut laptop_ws, _) = server.ws_synced(&laptop);
    let (status, body) = server.rest(
        "DELETE",
        &format!("/v1/devices/{}", laptop.device_id),
        Some(&alice.token),
        None,
    );
    assert_eq!(status, 204, "{body}");
    assert_error(
        &server.rest("GET", "/v1/me", Some(&laptop.token), None),
        401,
        "unauthorized",
    );
    let closed = loop {
        match laptop_ws.recv(WAIT) {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the revoked device's socket stays open"),
            Err(e) => break e.close_code(),
        }
    };
    assert_eq!(closed, Some(4401));
    // The revoked token cannot open a new socket either.
    match Ws::connect(&server.http, Some(&laptop.token)) {
        Err(client::ClientError::Handshake { status, .. }) => assert_eq!(status, 401),
        Err(e) => panic!("unexpected {e}"),
        Ok(mut ws) => {
            let e = ws.recv_type("error", WAIT).expect("error");
            assert_eq!(e["code"], "unauthorized");
            let closed = ws.recv(WAIT).expect_err("closed");
            assert_eq!(closed.close_code(), Some(4401));
        }
    }
    // The other device is untouched; the profile lists only it.
    let (status, me) = server.rest("GET", "/v1/me", Some(&alice.token), None);
    assert_eq!(status, 200);
    let devices = me["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 1, "{me}");
    assert_eq!(devices[0]["device_id"], alice.device_id.as_str());
}

// ---------------------------------------------------------------------------
// Conversations

#[test]
fn direct_conversation_is_201_then_200_with_the_same_id_from_either_side() {
    let server = Server::start();
    let alice = server.user("+15553000101", "alice");
    let bob = server.user("+15553000102", "bob");
    let create = |by: &client::Session, peer: &client::Session| {
        server.rest(
            "POST",
            "/v1/conversations",
            Some(&by.token),
            Some(&json!({"kind": "direct", "peer": peer.user_id})),
        )
    };
    let (status, first) = create(&alice, &bob);
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["kind"], "direct");
    assert!(first.get("name").is_some(), "{first}");
    let mut members: Vec<&str> = first["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            assert!(m["role"].is_string(), "{m}");
            m["user_id"].as_str().unwrap()
        })
        .collect();
    members.sort_unstable();
    let mut expected = vec![alice.user_id.as_str(), bob.user_id.as_str()];
    expected.sort_unstable();
    assert_eq!(members, expected);
    let (status, again) = create(&alice, &bob);
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["conversation_id"], first["conversation_id"]);
    let (status, reverse) = create(&bob, &alice);
    assert_eq!(status, 200, "{reverse}");
    assert_eq!(reverse["conversation_id"], first["conversation_id"]);
}

#[test]
fn direct_conversation_with_an_unknown_user_is_404_and_with_oneself_is_400() {
    let server = Server::start();
    let alice = server.user("+15553000111", "alice");
    let create = |peer: &str| {
        server.rest(
            "POST",
            "/v1/conversations",
            Some(&alice.token),
            Some(&json!({"kind": "direct", "peer": peer})),
        )
    };
    assert_error(&create("u987654321"), 404, "not_found");
    assert_error(&create(&alice.user_id), 400, "bad_request");
    assert_error(
        &server.rest(
            "POST",
            "/v1/conversations",
            Some(&alice.token),
            Some(&json!({"kind": "channel"})),
        ),
        400,
        "bad_request",
    );
}

#[test]
fn group_is_201_with_the_caller_as_admin_and_members_listed_with_roles() {
    let server = Server::start();
    let alice = server.user("+15553000121", "alice");
    let bob = server.user("+15553000122", "bob");
    let carol = server.user("+15553000123", "carol");
    let (status, group) = server.rest(
        "POST",
        "/v1/conversations",
        Some(&alice.token),
        Some(&json!({"kind": "group", "name": "team", "members": [bob.user_id, carol.user_id]})),
    );
    assert_eq!(status, 201, "{group}");
    assert!(group["conversation_id"].is_string());
    assert_eq!(group["kind"], "group");
    assert_eq!(group["name"], "team");
    let members = group["members"].as_array().unwrap();
    assert_eq!(members.len(), 3, "{group}");
    let role = |user: &str| {
        members
            .iter()
            .find(|m| m["user_id"] == user)
            .unwrap_or_else(|| panic!("{user} listed in {group}"))["role"]
            .clone()
    };
    assert_eq!(role(&alice.user_id), "admin");
    assert_eq!(role(&bob.user_id), "member");
    assert_eq!(role(&carol.user_id), "member");
    // A second group of the same people is a new conversation.
    let again = server.group(&alice, "team", &[&bob, &carol]);
    assert_ne!(group["conversation_id"], again.as_str());
}

#[test]
fn group_member_cap_is_409_conflict_on_create_and_on_add() {
    let server = Server::start_with(&["--group-members-max", "3"]);
    let alice = server.user("+15553000131", "alice");
    let bob = server.user("+15553000132", "bob");
    let carol = server.user("+15553000133", "carol");
    let dave = server.user("+15553000134", "dave");
    // Alice + 3 = 4 members: one past the cap.
    let ids = [&bob.user_id, &carol.user_id, &dave.user_id];
    let answer = server.rest(
        "POST",
        "/v1/conversations",
        Some(&alice.token),
        Some(&json!({"kind": "group", "name": "big", "members": ids})),
    );
    assert_error(&answer, 409, "conflict");
    // Exactly at the cap is fine; one more is not.
    let conv = server.group(&alice, "full", &[&bob, &carol]);
    assert_error(
        &add_member(&server, &alice, &conv, &dave.user_id),
        409,
        "conflict",
    );
    assert_error(
        &server.rest(
            "GET",
            &format!("/v1/conversations/{conv}/messages"),
            Some(&dave.token),
            None,
        ),
        404,
        "not_found",
    );
}

#[test]
fn member_added_by_admin_sees_only_messages_after_joining_in_history_and_sync() {
    let server = Server::start();
    let alice = server.user("+15553000141", "alice");
    let bob = server.user("+15553000142", "bob");
    let carol = server.user("+15553000143", "carol");
    let conv = server.group(&alice, "team", &[&bob]);
    let (mut a, _) = server.ws_synced(&alice);
    send(&mut a, &conv, "b1", "before 1");
    send(&mut a, &conv, "b2", "before 2");
    let (status, body) = add_member(&server, &alice, &conv, &carol.user_id);
    assert_eq!(status, 204, "{body}");
    send(&mut a, &conv, "a1", "after 1");
    let h = server.history(&carol, &conv, "");
    assert_eq!(texts(&h), ["after 1"], "{h}");
    assert_eq!(h["has_more"], false, "{h}");
    let older = server.history(&carol, &conv, "?before=3");
    assert!(texts(&older).is_empty(), "{older}");
    let (mut c, synced) = server.ws_synced(&carol);
    let synced_texts: Vec<&str> = synced
        .iter()
        .map(|m| m["body"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(synced_texts, ["after 1"]);
    // And live from now on.
    send(&mut a, &conv, "a2", "after 2");
    assert_eq!(next_message(&mut c)["body"]["text"], "after 2");
    // Bob, there from the start, has everything.
    assert_eq!(
        server.history(&bob, &conv, "")["messages"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
}

#[test]
fn adding_someone_who_already_is_a_member_is_204() {
    let server = Server::start();
    let alice = server.user("+15553000151", "alice");
    let bob = server.user("+15553000152", "bob");
    let conv = server.group(&alice, "team", &[&bob]);
    let (status, body) = add_member(&server, &alice, &conv, &bob.user_id);
    assert_eq!(status, 204, "{body}");
    assert_eq!(server.history(&bob, &conv, "")["messages"], json!([]));
}

#[test]
fn adding_a_member_by_a_non_admin_is_403_forbidden() {
    let server = Server::start();
    let alice = server.user("+15553000161", "alice");
    let bob = server.user("+15553000162", "bob");
    let dave = server.user("+15553000163", "dave");
    let conv = server.group(&alice, "team", &[&bob]);
    assert_error(
        &add_member(&server, &bob, &conv, &dave.user_id),
        403,
        "forbidden",
    );
    assert_error(
        &server.rest(
            "GET",
            &format!("/v1/conversations/{conv}/messages"),
            Some(&dave.token),
            None,
        ),
        404,
        "not_found",
    );
}

#[test]
fn admin_removes_a_member_and_a_member_leaves_both_204_and_they_lose_access() {
    let server = Server::start();
    let alice = server.user("+15553000171", "alice");
    let bob = server.user("+15553000172", "bob");
    let carol = server.user("+15553000173", "carol");
    let conv = server.group(&alice, "team", &[&bob, &carol]);
    let remove = |by: &client::Session, who: &client::Session| {
        server.rest(
            "DELETE",
            &format!("/v1/conversations/{conv}/members/{}", who.user_id),
            Some(&by.token),
            None,
        )
    };
    // A plain member cannot remove another.
    assert_error(&remove(&carol, &bob), 403, "forbidden");
    let (status, body) = remove(&alice, &bob);
    assert_eq!(status, 204, "{body}");
    let (status, body) = remove(&carol, &carol);
    assert_eq!(status, 204, "{body}");
    for gone in [&bob, &carol] {
        assert_error(
            &server.rest(
                "GET",
                &format!("/v1/conversations/{conv}/messages"),
                Some(&gone.token),
                None,
            ),
            404,
            "not_found",
        );
    }
    // Sending to it is refused for them; Alice still can.
    let (mut b, _) = server.ws_synced(&bob);
    let refused = b.call(
        json!({"type": "message.send", "conversation_id": conv, "client_msg_id": "x", "body": {"text": "hi"}}),
        WAIT,
    );
    match refused {
        Err(client::ClientError::Remote { code, .. }) => assert_eq!(code, "not_member"),
        other => panic!("expected not_member, got {other:?}"),
    }
    let (mut a, _) = server.ws_synced(&alice);
    send(&mut a, &conv, "a1", "still here");
    assert_eq!(texts(&server.history(&alice, &conv, "")), ["still here"]);
}

#[test]
fn promoting_a_member_to_admin_is_204_and_lets_them_add_members() {
    let server = Server::start();
    let alice = server.user("+15553000181", "alice");
    let bob = server.user("+15553000182", "bob");
    let dave = server.user("+15553000183", "dave");
    let conv = server.group(&alice, "team", &[&bob]);
    let set_role = |by: &client::Session, who: &client::Session, role: &str| {
        server.rest(
            "PATCH",
            &format!("/v1/conversations/{conv}/members/{}", who.user_id),
            Some(&by.token),
            Some(&json!({ "role": role })),
        )
    };
    assert_error(&set_role(&bob, &bob, "admin"), 403, "forbidden");
    assert_error(&set_role(&alice, &bob, "owner"), 400, "bad_request");
    assert_error(
        &add_member(&server, &bob, &conv, &dave.user_id),
        403,
        "forbidden",
    );
    let (status, body) = set_role(&alice, &bob, "admin");
    assert_eq!(status, 204, "{body}");
    let (status, body) = add_member(&server, &bob, &conv, &dave.user_id);
    assert_eq!(status, 204, "{body}");
    assert_eq!(server.history(&dave, &conv, "")["messages"], json!([]));
}

#[test]
fn non_member_gets_404_not_found_for_history_receipts_and_adding_members() {
    let server = Server::start();
    let alice = server.user("+15553000191", "alice");
    let bob = server.user("+15553000192", "bob");
    let eve = server.user("+15553000193", "eve");
    let group = server.group(&alice, "team", &[&bob]);
    let direct = server.direct(&alice, &bob);
    let (mut a, _) = server.ws_synced(&alice);
    send(&mut a, &group, "g1", "secret");
    send(&mut a, &direct, "d1", "secret");
    for conv in [&group, &direct] {
        let history = format!("/v1/conversations/{conv}/messages");
        let receipts = format!("/v1/conversations/{conv}/messages/1/receipts");
        assert_error(
            &server.rest("GET", &history, Some(&eve.token), None),
            404,
            "not_found",
        );
        assert_error(
            &server.rest("GET", &receipts, Some(&eve.token), None),
            404,
            "not_found",
        );
        assert_error(
            &add_member(&server, &eve, conv, &eve.user_id),
            404,
            "not_found",
        );
    }
    // The same answer as for a conversation that does not exist.
    let missing = "/v1/conversations/c999999999/messages";
    assert_error(
        &server.rest("GET", missing, Some(&eve.token), None),
        404,
        "not_found",
    );
    // Eve did not get in.
    assert_eq!(
        server.history(&alice, &group, "")["messages"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn conversation_list_is_latest_activity_first_with_unread_counts_that_drop_after_read() {
    let server = Server::start();
    let alice = server.user("+15553000201", "alice");
    let bob = server.user("+15553000202", "bob");
    let carol = server.user("+15553000203", "carol");
    let with_bob = server.direct(&bob, &alice);
    let with_carol = server.direct(&carol, &alice);
    let group = server.group(&bob, "team", &[&alice, &carol]);
    let (mut b, _) = server.ws_synced(&bob);
    let (mut c, _) = server.ws_synced(&carol);
    send(&mut b, &with_bob, "1", "one");
    send(&mut b, &with_bob, "2", "two");
    std::thread::sleep(Duration::from_millis(5));
    send(&mut b, &group, "3", "three");
    send(&mut c, &group, "4", "four");
    send(&mut c, &group, "5", "five");
    std::thread::sleep(Duration::from_millis(5));
    send(&mut c, &with_carol, "6", "six");
    let list = || {
        let (status, v) = server.rest("GET", "/v1/conversations", Some(&alice.token), None);
        assert_eq!(status, 200, "{v}");
        v["conversations"].as_array().unwrap().clone()
    };
    let rows = list();
    let order: Vec<&str> = rows
        .iter()
        .map(|r| r["conversation_id"].as_str().unwrap())
        .collect();
    assert_eq!(order, [&with_carol, &group, &with_bob]);
    let ts: Vec<u64> = rows
        .iter()
        .map(|r| r["last_ts"].as_u64().unwrap())
        .collect();
    assert!(ts.windows(2).all(|w| w[0] >= w[1]), "{ts:?}");
    let row = |rows: &[Value], id: &str| {
        rows.iter()
            .find(|r| r["conversation_id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(row(&rows, &with_carol)["kind"], "direct");
    assert_eq!(row(&rows, &group)["kind"], "group");
    assert_eq!(row(&rows, &group)["name"], "team");
    let counts = |rows: &[Value]| {
        [&with_carol, &group, &with_bob].map(|id| {
            let r = row(rows, id);
            (
                r["last_seq"].as_u64().unwrap(),
                r["unread"].as_u64().unwrap(),
            )
        })
    };
    assert_eq!(counts(&rows), [(1, 1), (3, 3), (2, 2)]);
    // Reads lower the counts.
    let (mut a, _) = server.ws_synced(&alice);
    a.send(&json!({"type": "message.read", "conversation_id": with_bob, "seq": 2}))
        .unwrap();
    a.send(&json!({"type": "message.read", "conversation_id": group, "seq": 1}))
        .unwrap();
    wait_until("unread counts drop after message.read", || {
        (counts(&list()) == [(1, 1), (3, 2), (2, 0)]).then_some(())
    });
    // New activity moves a conversation to the top.
    send(&mut b, &with_bob, "7", "seven");
    let rows = list();
    assert_eq!(rows[0]["conversation_id"], with_bob.as_str());
    assert_eq!(row(&rows, &with_bob)["unread"], 1);
}

#[test]
fn history_pages_default_to_the_latest_50_ascending_with_before_after_and_has_more() {
    let server = Server::start();
    let alice = server.user("+15553000211", "alice");
    let bob = server.user("+15553000212", "bob");
    let conv = server.direct(&alice, &bob);
    let (mut a, _) = server.ws_synced(&alice);
    send_many(&mut a, &conv, "m", 120);
    let page = |query: &str| {
        let h = server.history(&bob, &conv, query);
        (
            seqs(&h["messages"]),
            h["has_more"].as_bool().expect("has_more"),
        )
    };
    let range = |a: u64, b: u64| (a..=b).collect::<Vec<u64>>();
    assert_eq!(page(""), (range(71, 120), true));
    assert_eq!(page("?limit=100"), (range(21, 120), true));
    // before: the N just below SEQ; has_more says whether older ones exist.
    assert_eq!(page("?before=71"), (range(21, 70), true));
    assert_eq!(page("?before=21&limit=100"), (range(1, 20), false));
    assert_eq!(page("?before=51"), (range(1, 50), false));
    assert_eq!(page("?before=1"), (vec![], false));
    // after: the N just above SEQ; has_more says whether newer ones exist.
    assert_eq!(page("?after=0&limit=100"), (range(1, 100), true));
    assert_eq!(page("?after=100&limit=100"), (range(101, 120), false));
    assert_eq!(page("?after=69"), (range(70, 119), true));
    assert_eq!(page("?after=70"), (range(71, 120), false));
    assert_eq!(page("?after=120"), (vec![], false));
    assert_eq!(page("?after=10&limit=5"), (range(11, 15), true));
    // The limit is at most 100.
    let path = format!("/v1/conversations/{conv}/messages?limit=101");
    assert_error(
        &server.rest("GET", &path, Some(&bob.token), None),
        400,
        "bad_request",
    );
    // Each message is a full message object.
    let h = server.history(&bob, &conv, "?after=0&limit=1");
    let m = &h["messages"][0];
    assert_eq!(m["conversation_id"], conv.as_str());
    assert_eq!(m["seq"], 1);
    assert!(m["message_id"].is_string(), "{m}");
    assert_eq!(m["sender_id"], alice.user_id.as_str());
    assert_eq!(m["sender_device"], alice.device_id.as_str());
    assert!(
        m["ts"].as_u64().is_some_and(|ts| ts > 1_600_000_000_000),
        "ts in ms: {m}"
    );
    assert_eq!(m["body"], json!({"text": "m 1"}));
}

#[test]
fn receipts_list_who_got_and_read_a_message_with_user_and_ts() {
    let server = Server::start();
    let alice = server.user("+15553000221", "alice");
    let bob = server.user("+15553000222", "bob");
    let carol = server.user("+15553000223", "carol");
    let conv = server.group(&alice, "team", &[&bob, &carol]);
    let (mut a, _) = server.ws_synced(&alice);
    let (mut b, _) = server.ws_synced(&bob);
    let (mut c, _) = server.ws_synced(&carol);
    send(&mut a, &conv, "1", "one");
    next_message(&mut b);
    next_message(&mut c);
    b.send(&json!({"type": "message.ack", "conversation_id": conv, "seq": 1}))
        .unwrap();
    b.send(&json!({"type": "message.read", "conversation_id": conv, "seq": 1}))
        .unwrap();
    c.send(&json!({"type": "message.ack", "conversation_id": conv, "seq": 1}))
        .unwrap();
    let path = format!("/v1/conversations/{conv}/messages/1/receipts");
    let users = |list: &Value| {
        let mut ids: Vec<String> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                assert!(
                    r["ts"].as_u64().is_some_and(|ts| ts > 1_600_000_000_000),
                    "{r}"
                );
                r["user_id"].as_str().unwrap().to_string()
            })
            .collect();
        ids.sort();
        ids
    };
    let mut both = vec![bob.user_id.clone(), carol.user_id.clone()];
    both.sort();
    let receipts = wait_until("both deliveries and one read are listed", || {
        let (status, r) = server.rest("GET", &path, Some(&alice.token), None);
        assert_eq!(status, 200, "{r}");
        (users(&r["delivered"]) == both && users(&r["read"]) == [bob.user_id.clone()]).then_some(r)
    });
    assert!(receipts.get("delivered").is_some() && receipts.get("read").is_some());
    // Any member may ask.
    let (status, _) = server.rest("GET", &path, Some(&carol.token), None);
    assert_eq!(status, 200);
}

// ---------------------------------------------------------------------------
// Tokens

#[test]
fn expired_token_is_401_on_rest_and_websocket() {
    let server = Server::start_with(&["--token-ttl-seconds", "1"]);
    let alice = server.login("+15553000231", "phone");
    let (status, _) = server.rest("GET", "/v1/me", Some(&alice.token), None);
    assert_eq!(status, 200);
    std::thread::sleep(Duration::from_millis(1500));
    assert_error(
        &server.rest("GET", "/v1/me", Some(&alice.token), None),
        401,
        "unauthorized",
    );
    let mut ws = Ws::connect(&server.http, None).expect("connects");
    match ws.auth(&alice.token, WAIT) {
        Err(client::ClientError::Remote { code, .. }) => assert_eq!(code, "unauthorized"),
        other => panic!("expected unauthorized, got {other:?}"),
    }
}

#[test]
fn forged_garbage_and_missing_tokens_are_401() {
    let server = Server::start();
    let alice = server.login("+15553000241", "phone");
    // Change one hex digit of the secret (the token's last character).
    let mut forged = alice.token.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == '0' { '1' } else { '0' });
    assert_ne!(forged, alice.token);
    for token in [
        Some(forged.as_str()),
        Some("garbage"),
        Some("u1.d1.zz"),
        None,
    ] {
        assert_error(
            &server.rest("GET", "/v1/me", token, None),
            401,
            "unauthorized",
        );
        assert_error(
            &server.rest("GET", "/v1/conversations", token, None),
            401,
            "unauthorized",
        );
    }
    let (status, _) = server.rest("GET", "/v1/me", Some(&alice.token), None);
    assert_eq!(status, 200, "the real token still works");
}

// ---------------------------------------------------------------------------
// Routes and bodies

#[test]
fn unknown_route_is_404_not_found() {
    let server = Server::start();
    let alice = server.login("+15553000251", "phone");
    for (method, path) in [
        ("GET", "/v1/nope"),
        ("GET", "/v2/me"),
        ("POST", "/v1/me"),
        ("GET", "/"),
    ] {
        assert_error(
            &server.rest(method, path, Some(&alice.token), None),
            404,
            "not_found",
        );
    }
}

#[test]
fn malformed_json_body_is_400_bad_request() {
    let server = Server::start();
    let alice = server.login("+15553000261", "phone");
    for (method, path, token) in [
        ("POST", "/v1/auth/otp", None),
        ("POST", "/v1/auth/verify", None),
        ("PATCH", "/v1/me", Some(alice.token.as_str())),
        ("POST", "/v1/conversations", Some(alice.token.as_str())),
    ] {
        for body in [&b"{not json"[..], b"[1,2]", b""] {
            let (status, raw) = client::request_raw(
                &server.http,
                method,
                path,
                token,
                Some("application/json"),
                Some(body),
            )
            .expect("request");
            let value: Value = serde_json::from_slice(&raw).expect("a JSON error body");
            assert_error(&(status, value), 400, "bad_request");
        }
    }
}

#[test]
fn body_over_1_mib_is_413_too_large() {
    let server = Server::start();
    let alice = server.login("+15553000271", "phone");
    let mut body = br#"{"name":""#.to_vec();
    body.resize(1024 * 1024 + 1 - 2, b'x');
    body.extend_from_slice(br#""}"#);
    assert_eq!(body.len(), 1024 * 1024 + 1);
    let (status, raw) = client::request_raw(
        &server.http,
        "PATCH",
        "/v1/me",
        Some(&alice.token),
        Some("application/json"),
        Some(&body),
    )
    .expect("request");
    let value: Value = serde_json::from_slice(&raw).expect("a JSON error body");
    assert_error(&(status, value), 413, "too_large");
    // The server goes on serving.
    let (status, _) = server.rest("GET", "/v1/me", Some(&alice.token), None);
    assert_eq!(status, 200);
}
