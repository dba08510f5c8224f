//! The `chat` terminal client against a real chatd: log in, open a direct
//! chat, send, reply, edit, delete, and read it back in history as a
//! person reads it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const CHAT: &str = env!("CARGO_BIN_EXE_chat");

fn chatd_path() -> PathBuf {
    // target/PROFILE/deps/chat_cli-HASH → target/PROFILE/chatd
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().unwrap().parent().unwrap().join("chatd");
    assert!(
        path.exists(),
        "{} is missing: build chat-engine",
        path.display()
    );
    path
}

struct Chatd(Child);

impl Drop for Chatd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A single chatd in `dir`; answers it and its `http://` address.
fn start(dir: &Path) -> (Chatd, String) {
    let mut child = Command::new(chatd_path())
        .args([
            "--cores",
            "1",
            "--listen",
            "127.0.0.1:0",
            "--ops-listen",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--otp-sink")
        .arg(format!("file:{}", dir.join("otp").display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("chatd starts");
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    assert!(line.starts_with("chatd ready"), "{line}");
    let http = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("http="));
    (Chatd(child), format!("http://{}", http.expect("http=")))
}

/// Runs `chat` with a profile file; answers stdout, panics on failure.
fn chat(server: &str, profile: &Path, args: &[&str]) -> String {
    let out = Command::new(CHAT)
        .arg("--server")
        .arg(server)
        .arg("--profile")
        .arg(profile)
        .args(args)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "chat {args:?}: {stdout}{stderr}");
    stdout
}

#[test]
fn a_person_sends_replies_edits_and_deletes_with_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let (_chatd, server) = start(dir.path());
    let otp = dir.path().join("otp");
    let otp = otp.to_str().unwrap();
    let (alice, bob) = (dir.path().join("alice.json"), dir.path().join("bob.json"));
    for (profile, phone, name) in [
        (&alice, "+15550400001", "alice"),
        (&bob, "+15550400002", "bob"),
    ] {
        let args = ["login", "--phone", phone, "--name", name, "--otp-file", otp];
        chat(&server, profile, &args);
    }
    let conv = chat(&server, &alice, &["direct", "--phone", "+15550400002"]);
    let conv = conv.trim();
    assert!(chat(&server, &alice, &["send", conv, "helo", "bob"]).starts_with("sent seq 1"));
    let reply = chat(
        &server,
        &bob,
        &["send", conv, "--reply-to", "1", "hi", "alice"],
    );
    assert!(reply.starts_with("sent seq 2"), "{reply}");
    chat(&server, &alice, &["send", conv, "oops"]);
    let edited = chat(&server, &alice, &["edit", conv, "1", "hello", "bob"]);
    assert!(edited.starts_with("edited #1"), "{edited}");
    assert!(chat(&server, &alice, &["delete", conv, "3"]).starts_with("deleted #3"));
    std::thread::sleep(Duration::from_millis(50));
    let history = chat(&server, &bob, &["history", conv]);
    let lines: Vec<&str> = history.lines().collect();
    assert_eq!(lines.len(), 3, "{history}");
    assert!(lines[0].ends_with(": hello bob (edited)"), "{history}");
    assert!(
        lines[1].ends_with("me: (reply to #1) hi alice"),
        "{history}"
    );
    assert!(lines[2].ends_with(": [deleted]"), "{history}");

    // Media: upload, send with it, download; then search.
    let file = dir.path().join("cat.png");
    std::fs::write(&file, b"\x89PNG not really a cat").unwrap();
    let up = chat(
        &server,
        &alice,
        &["--json", "upload", file.to_str().unwrap()],
    );
    let up: serde_json::Value = serde_json::from_str(&up).unwrap();
    let media = up["media_id"].as_str().unwrap();
    let sent = chat(
        &server,
        &alice,
        &["send", conv, "--media", media, "a", "cat"],
    );
    assert!(sent.starts_with("sent seq 4"), "{sent}");
    let out = dir.path().join("got.png");
    chat(
        &server,
        &bob,
        &["download", media, "--out", out.to_str().unwrap()],
    );
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&file).unwrap());
    let found = chat(&server, &bob, &["search", "ca"]);
    let want = format!(": a cat [media {media} image/png, 21 bytes]");
    assert!(found.trim_end().ends_with(&want), "{found}");
    let found = chat(&server, &bob, &["search", "--conversation", conv, "hello"]);
    assert!(
        found.trim_end().ends_with(": hello bob (edited)"),
        "{found}"
    );
}
