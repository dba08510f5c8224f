//! A full disk: sends fail with `unavailable`, nothing acknowledged is
//! lost, the server keeps serving reads, and writes work again once there
//! is room. Runs on a small tmpfs the test mounts (needs root; skipped with
//! a printed reason where mount fails).

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::*;
use serde_json::json;

/// A mounted tmpfs, unmounted on drop.
struct Mount {
    dir: PathBuf,
    _parent: tempfile::TempDir,
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

fn tmpfs(size: &str) -> Result<Mount, String> {
    let parent = tempfile::tempdir().map_err(|e| e.to_string())?;
    let dir = parent.path().join("mnt");
    std::fs::create_dir(&dir).map_err(|e| e.to_string())?;
    let out = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(&dir)
        .output()
        .map_err(|e| format!("mount: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "mount tmpfs: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(Mount {
        dir,
        _parent: parent,
    })
}

#[test]
fn full_disk_fails_sends_with_unavailable_keeps_acked_ones_and_recovers() {
    let mount = match tmpfs("24m") {
        Ok(m) => m,
        Err(e) => {
            eprintln!("skipped: {e}");
            return;
        }
    };
    let server = Server::start_in(
        mount.dir.join("data"),
        &["--send-rate", "100000", "--send-burst", "100000"],
    );
    let alice = server.user("+15554000001", "alice");
    let bob = server.user("+15554000002", "bob");
    let conv = server.direct(&alice, &bob);
    // Leave about 1 MiB free.
    let filler = mount.dir.join("filler");
    let free = {
        let out = Command::new("df")
            .arg("--output=avail")
            .arg("-B1")
            .arg(&mount.dir)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .unwrap()
            .trim()
            .parse::<u64>()
            .unwrap()
    };
    std::fs::write(&filler, vec![1u8; (free - 1024 * 1024) as usize]).unwrap();
    let (mut a, _) = server.ws_synced(&alice);
    let body = "x".repeat(60 * 1024);
    let mut acked = Vec::new();
    let mut refused = 0;
    for i in 0..200 {
        let e = json!({"type": "message.send", "conversation_id": conv, "client_msg_id": format!("f{i}"), "body": {"text": format!("{i} {body}")}});
        match a.call(e, WAIT) {
            Ok(sent) => acked.push((i, sent["seq"].as_u64().unwrap())),
            Err(chat_tools::client::ClientError::Remote { code, .. }) => {
                assert_eq!(code, "unavailable");
                refused += 1;
                if refused >= 3 {
                    break;
                }
            }
            Err(e) => panic!("unexpected: {e}"),
        }
    }
    assert!(refused > 0, "the disk filled up ({} acked)", acked.len());
    // Reads still work, and hold exactly what was acknowledged.
    let h = server.history(&bob, &conv, "?limit=100");
    let seqs: Vec<u64> = h["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect();
    let acked_seqs: Vec<u64> = acked.iter().map(|(_, s)| *s).collect();
    assert_eq!(
        seqs, acked_seqs,
        "history = the acknowledged messages, gapless"
    );
    // Room again: sends work and continue the sequence without a gap.
    std::fs::remove_file(&filler).unwrap();
    let mut next = None;
    for _ in 0..50 {
        let e = json!({"type": "message.send", "conversation_id": conv, "client_msg_id": "after", "body": {"text": "room again"}});
        match a.call(e, WAIT) {
            Ok(sent) => {
                next = Some(sent["seq"].as_u64().unwrap());
                break;
            }
            Err(chat_tools::client::ClientError::Remote { code, .. }) if code == "unavailable" => {
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            Err(e) => panic!("unexpected: {e}"),
        }
    }
    assert_eq!(next, Some(acked_seqs.len() as u64 + 1));
    let (mut b, synced) = server.ws_synced(&bob);
    assert_eq!(synced.len(), acked_seqs.len() + 1);
    b.send(&json!({"type": "ping"})).unwrap();
    b.recv_type("pong", WAIT).unwrap();
}
