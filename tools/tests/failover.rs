//! `loadgen failover` end to end: three real chatd nodes on loopback, 1:1
//! load spread over all three, node 1 killed -9 mid-run by loadgen and
//! started again by its `--restart-command`; the run must pass (nothing
//! acknowledged lost, no duplicate on a connection, order kept) and report
//! the kill and the unavailability window.
//!
//! chatd is the workspace's own binary (target/release/chatd, built beside
//! this test by `cargo test --workspace --release`).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use serde_json::Value;

const LOADGEN: &str = env!("CARGO_BIN_EXE_loadgen");

/// One node; killed when the test ends (and so is its restarted self,
/// whose pid the restart command leaves in `restarted.pid`).
struct Node {
    child: Child,
    lines: Receiver<String>,
    argv: Vec<String>,
    dir: PathBuf,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Ok(pid) = std::fs::read_to_string(self.dir.join("restarted.pid")) {
            let _ = Command::new("kill").args(["-9", pid.trim()]).status();
        }
    }
}

fn chatd_path() -> PathBuf {
    // target/release/deps/failover-HASH → target/release/chatd
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().unwrap().parent().unwrap().join("chatd");
    assert!(
        path.exists(),
        "{} is missing: build chat-engine",
        path.display()
    );
    path
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn spawn_node(id: usize, peers: &str, dir: &Path) -> Node {
    let http = free_port();
    let argv: Vec<String> = [
        chatd_path().display().to_string(),
        "--node-id".into(),
        id.to_string(),
        "--peers".into(),
        peers.into(),
        "--cores".into(),
        "1".into(),
        "--shards".into(),
        "3".into(),
        "--listen".into(),
        format!("127.0.0.1:{http}"),
        "--ops-listen".into(),
        "127.0.0.1:0".into(),
        "--data-dir".into(),
        dir.join("data").display().to_string(),
        "--otp-sink".into(),
        format!("file:{}", dir.join("otp").display()),
    ]
    .into();
    let mut child = Command::new(&argv[0])
        .args(&argv[1..])
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("chatd starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    Node {
        child,
        lines,
        argv,
        dir: dir.to_owned(),
    }
}

/// The `http=` address of the node's ready line (60 s at most).
fn await_ready(node: &Node) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = node.lines.recv_timeout(left).expect("ready within 60 s");
        if line.starts_with("chatd ready") {
            let http = line
                .split_whitespace()
                .find_map(|w| w.strip_prefix("http="));
            return http.expect("http= in the ready line").to_owned();
        }
    }
}

/// `sh -c` text that starts `node` again and notes its pid.
fn restart_command(node: &Node) -> String {
    let quoted: Vec<String> = node.argv.iter().map(|a| format!("'{a}'")).collect();
    format!(
        "cd '{}' && echo $$ > restarted.pid && exec {} >/dev/null 2>&1",
        node.dir.display(),
        quoted.join(" ")
    )
}

#[test]
fn a_failover_run_against_three_nodes_passes_and_reports_the_outage() {
    let root = tempfile::tempdir().unwrap();
    let peers: Vec<String> = (1..=3)
        .map(|i| format!("{i}=127.0.0.1:{}", free_port()))
        .collect();
    let peers = peers.join(",");
    let nodes: Vec<Node> = (1..=3)
        .map(|i| {
            let dir = root.path().join(format!("node{i}"));
            std::fs::create_dir_all(&dir).unwrap();
            spawn_node(i, &peers, &dir)
        })
        .collect();
    let urls: Vec<String> = nodes
        .iter()
        .map(|n| format!("http://{}", await_ready(n)))
        .collect();
    let otp = root.path().join("node1/otp").display().to_string();
    let pid = nodes[0].child.id().to_string();
    let restart = restart_command(&nodes[0]);
    let out = Command::new(LOADGEN)
        .args(["failover", "--url", &urls.join(","), "--otp-file", &otp])
        .args(["--users", "30", "--rate", "300", "--warmup", "0.5s"])
        .args([
            "--duration",
            "4s",
            "--kill-pid",
            &pid,
            "--kill-after",
            "1.5s",
        ])
        .args(["--restart-after", "1s", "--restart-command", &restart])
        .args(["--drain", "15s", "--quiet", "--hard-stop", "90s"])
        .output()
        .expect("loadgen runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let shown = format!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap();
    assert_eq!(out.status.code(), Some(0), "{shown}");
    assert_eq!(report["pass"], true, "{shown}");
    let v = &report["verdict"];
    assert!(v["confirmed"].as_u64().unwrap() > 1000, "{v}");
    assert_eq!(v["delivered"], v["deliveries_expected"], "{v}");
    let f = &report["failover"];
    let killed = f["killed_at_s"].as_f64().expect("the node was killed");
    assert!((1.4..3.0).contains(&killed), "{f}");
    assert!(f["restarted_at_s"].as_f64().unwrap() > killed, "{f}");
    // A third of the users sat on node 1: they reconnected elsewhere.
    assert!(f["reconnects"].as_u64().unwrap() >= 10, "{f}");
    assert!(f["unavailable_ms"].as_f64().is_some(), "{f}");
    assert_eq!(f["unrecovered"], 0, "{f}");
    assert!(stdout.contains("failover      node pid"), "{stdout}");
}
