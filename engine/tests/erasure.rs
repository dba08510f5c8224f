//! The erasure compaction (PROTOCOL.md "Account deletion and retention"):
//! with `--compact-interval-seconds 1`, the bytes of a deleted message,
//! of an edited message's first body, of a message that vanished and of
//! a deleted account's message are gone from every file under the data
//! directory within 2·1 + 5 s; what must stay (a kept message, the latest
//! body) stays, and history and search read the same after a kill -9.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

#[test]
fn erased_bytes_leave_the_disk_within_the_deadline_and_what_stays_reads_the_same() {
    let mut server = Server::start_with(&["--compact-interval-seconds", "1"]);
    let tag = std::process::id();
    let mark = |what: &str| format!("zz{what}{tag}marker");
    let (deleted, first_body, vanished, erased) = (
        mark("deleted"),
        mark("firstbody"),
        mark("vanished"),
        mark("erased"),
    );
    let (kept, latest) = (mark("kept"), mark("latest"));
    let alice = server.user("+15550900001", "alice");
    let bob = server.user("+15550900002", "bob");
    let carol = server.user("+15550900003", "carol");
    let ab = server.direct(&alice, &bob);
    let bc = server.direct(&bob, &carol);
    let (mut a, _) = server.ws_synced(&alice);
    let (mut c, _) = server.ws_synced(&carol);
    let dir = server.data_dir();
    // Each marker is on disk once sent (durable at message.sent), before
    // whatever makes it go.
    let written = |m: &String| {
        let found = markers_on_disk(&dir, std::slice::from_ref(m));
        assert_eq!(found, std::slice::from_ref(m), "{m} written");
    };
    send(&mut a, &ab, "m1", &format!("this goes: {deleted}"));
    written(&deleted);
    call_ok(
        &mut a,
        json!({"type": "message.delete", "conversation_id": ab, "seq": 1}),
    );
    send(&mut a, &ab, "m2", &format!("typo {first_body}"));
    written(&first_body);
    let edit = json!({"type": "message.edit", "conversation_id": ab, "seq": 2, "body": {"text": format!("fixed {latest}")}});
    call_ok(&mut a, edit);
    let path = format!("/v1/conversations/{ab}");
    let on = json!({"disappearing_seconds": 2});
    assert_eq!(
        server.rest("PATCH", &path, Some(&alice.token), Some(&on)).0,
        204
    );
    send(&mut a, &ab, "m3", &format!("soon gone {vanished}"));
    written(&vanished);
    let off = json!({"disappearing_seconds": 0});
    assert_eq!(
        server
            .rest("PATCH", &path, Some(&alice.token), Some(&off))
            .0,
        204
    );
    send(&mut a, &ab, "m4", &format!("stays {kept}"));
    send(&mut c, &bc, "c1", &format!("carol's {erased}"));
    written(&erased);
    drop(c);
    assert_eq!(
        server.rest("DELETE", "/v1/me", Some(&carol.token), None).0,
        202
    );
    let t = Instant::now();

    let gone = [
        deleted.clone(),
        first_body.clone(),
        vanished.clone(),
        erased.clone(),
    ];
    // Within 2·N + 5 s of the last of them (the vanished one expires 2 s
    // after it was sent).
    let deadline = Duration::from_secs(2 + 5 + 2);
    while !markers_on_disk(&dir, &gone).is_empty() {
        assert!(
            t.elapsed() < deadline,
            "still on disk after {:?}: {:?}",
            t.elapsed(),
            markers_on_disk(&dir, &gone)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut stays = vec![kept.clone(), latest.clone()];
    stays.sort();
    assert_eq!(markers_on_disk(&dir, &stays), stays, "what must stay stays");

    let check = |server: &Server| {
        let h = server.history(&bob, &ab, "");
        let h = h["messages"].as_array().unwrap();
        assert_eq!(seqs(&Value::Array(h.clone())), [1, 2, 4], "seq 3 vanished");
        assert_eq!(h[0]["deleted"], true);
        assert_eq!(h[1]["body"]["text"], format!("fixed {latest}"));
        assert!(h[1]["edited"].is_u64());
        assert_eq!(h[2]["body"]["text"], format!("stays {kept}"));
        let g = server.history(&bob, &bc, "");
        assert_eq!(g["messages"][0]["deleted"], true, "{g}");
        let (st, found) = server.rest(
            "GET",
            &format!("/v1/search?q={latest}"),
            Some(&bob.token),
            None,
        );
        assert_eq!(
            (st, found["messages"][0]["seq"].as_u64()),
            (200, Some(2)),
            "{found}"
        );
        let (_, none) = server.rest(
            "GET",
            &format!("/v1/search?q={first_body}"),
            Some(&bob.token),
            None,
        );
        assert_eq!(none["messages"], json!([]));
    };
    check(&server);
    drop(a);
    server.kill9();
    server.restart();
    check(&server);
    assert!(markers_on_disk(&dir, &gone).is_empty());
}

#[test]
fn a_deleted_account_s_phone_names_tokens_and_uploads_leave_the_disk() {
    // One shard, a snapshot after its 6th record: it holds the account
    // (records 1-4: dana, 5-7: eve, 8: their conversation), and the
    // deletion's records (9, 10) do not reach the next one.
    let mut server = Server::start_with(&[
        "--compact-interval-seconds",
        "1",
        "--cores",
        "1",
        "--snapshot-records",
        "6",
    ]);
    let tag = std::process::id();
    let phone = format!("+1555{:07}", 1_000_000 + tag % 9_000_000);
    let (name, device, token) = (
        format!("zzname{tag}marker"),
        format!("zzdevice{tag}marker"),
        format!("zztoken{tag}marker"),
    );
    let (only_hers, shared) = (
        format!("zzmedia{tag}marker"),
        format!("zzshared{tag}marker"),
    );
    let markers = [
        phone.clone(),
        name.clone(),
        device.clone(),
        token.clone(),
        only_hers.clone(),
    ];
    let dana = server.login(&phone, &device);
    let patch = json!({ "name": name });
    let me = Some(dana.token.as_str());
    assert_eq!(server.rest("PATCH", "/v1/me", me, Some(&patch)).0, 200);
    let push = format!("/v1/devices/{}/push", dana.device_id);
    let body = json!({ "push_token": token });
    assert_eq!(server.rest("PUT", &push, me, Some(&body)).0, 204);
    let eve = server.user("+15550900011", "eve");
    server.direct(&eve, &dana);
    // Her upload goes with her; the same bytes uploaded by Eve stay.
    upload(&server, &dana, &only_hers);
    upload(&server, &dana, &shared);
    let eves = upload(&server, &eve, &shared);
    let dir = server.data_dir();
    wait_until("every detail on disk", || {
        (markers_on_disk(&dir, &markers).len() == markers.len()).then_some(())
    });
    let snapshots_hold = || {
        let mut found = Vec::new();
        for e in walk(&dir).into_iter().filter(|p| p.ends_with("snapshot")) {
            let bytes = std::fs::read(&e).unwrap_or_default();
            let text = String::from_utf8_lossy(&bytes);
            found.extend(
                markers
                    .iter()
                    .filter(|m| text.contains(m.as_str()))
                    .cloned(),
            );
        }
        found
    };
    wait_until("a snapshot holds the account", || {
        (!snapshots_hold().is_empty()).then_some(())
    });
    assert_eq!(server.rest("DELETE", "/v1/me", me, None).0, 202);
    let started = Instant::now();
    loop {
        let left = markers_on_disk(&dir, &markers);
        if left.is_empty() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(2 + 5),
            "still on disk: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("gone from disk {:?} after the deletion", started.elapsed());
    let kept = std::slice::from_ref(&shared);
    assert_eq!(markers_on_disk(&dir, kept), kept, "Eve's copy stays");
    let path = format!("/v1/media/{eves}");
    let r =
        chat_tools::client::request_full(&server.http, "GET", &path, Some(&eve.token), None, None)
            .unwrap();
    assert_eq!((r.status, r.body), (200, shared.clone().into_bytes()));
    // The log replays without them, from the new snapshot or from scratch.
    server.restart();
    let (status, _) = server.rest(
        "GET",
        &format!("/v1/users?phone={}", phone.replace('+', "%2B")),
        Some(&eve.token),
        None,
    );
    assert_eq!(status, 404);
    let again = server.user(&phone, "dana again");
    assert_ne!(
        again.user_id, dana.user_id,
        "the phone signs up as a new user"
    );
    assert_eq!(server.rest("GET", "/v1/me", me, None).0, 401);
}

/// Uploads `text` as a file; answers its media id.
fn upload(server: &Server, s: &chat_tools::client::Session, text: &str) -> String {
    let r = chat_tools::client::request_full(
        &server.http,
        "POST",
        "/v1/media",
        Some(&s.token),
        Some("text/plain"),
        Some(text.as_bytes()),
    )
    .unwrap();
    assert_eq!(r.status, 201);
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    v["media_id"].as_str().unwrap().to_string()
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
