//! A chatd process for a benchmark: pinned, on ephemeral loopback ports.
//!
//! Lives on: the benchmark's main thread.

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use chat_tools::client::Endpoint;

/// A chatd process and where it listens.
pub struct Server {
    pub child: Child,
    pub http: Endpoint,
    /// The ops port's HOST:PORT.
    pub ops: String,
}

/// Starts `chatd` pinned to CPU 0 (`--cores 1`) on ephemeral loopback
/// ports with its data in `dir/data`, OTP codes in `dir/otp`, stdout in
/// `dir/out` and its log in `dir/err`, plus `flags`; waits until ready.
pub fn start(chatd: &str, dir: &Path, flags: &[&str]) -> Server {
    let log = dir.join("out");
    let child = Command::new("taskset")
        .args([
            "-c",
            "0",
            chatd,
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
        .args(flags)
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(dir.join("err")).unwrap())
        .spawn()
        .expect("start chatd");
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(rest) = text.split("chatd ready http=").nth(1) {
            let line = rest.lines().next().unwrap();
            let http = line
                .split_whitespace()
                .next()
                .unwrap()
                .trim_start_matches("http://");
            let ops = line
                .split("ops=")
                .nth(1)
                .unwrap()
                .split_whitespace()
                .next()
                .unwrap();
            let http = Endpoint::parse(&format!("http://{http}"), None).unwrap();
            return Server {
                child,
                http,
                ops: ops.trim_start_matches("http://").to_owned(),
            };
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut child = child;
    let _ = child.kill();
    let _ = child.wait();
    panic!("chatd was not ready within 120 s");
}
