//! The ops port: health, readiness, stats as JSON and Prometheus text.

mod common;

use chat_tools::client;
use common::*;

#[test]
fn ops_port_reports_health_readiness_and_per_core_stats() {
    let server = Server::start();
    assert_eq!(server.ops_get("/healthz").0, 200);
    let (status, ready) = server.ops_get("/readyz");
    assert_eq!((status, ready["status"].as_str()), (200, Some("ready")));
    let alice = server.user("+15556000001", "alice");
    let bob = server.user("+15556000002", "bob");
    let conv = server.direct(&alice, &bob);
    let (mut a, _) = server.ws_synced(&alice);
    let (mut b, _) = server.ws_synced(&bob);
    for i in 0..5 {
        send(&mut a, &conv, &format!("o{i}"), "ops");
        next_message(&mut b);
    }
    let (status, stats) = server.ops_get("/stats");
    assert_eq!(status, 200, "{stats}");
    assert_eq!(stats["connections"], 2, "{stats}");
    let cores = stats["cores"].as_array().unwrap();
    assert!(!cores.is_empty());
    let sum = |f: &dyn Fn(&serde_json::Value) -> u64| cores.iter().map(f).sum::<u64>();
    assert_eq!(
        sum(&|c| c["events_in"]["message.send"].as_u64().unwrap_or(0)),
        5
    );
    assert!(sum(&|c| c["fsyncs"].as_u64().unwrap()) > 0);
    assert!(sum(&|c| c["bytes_written"].as_u64().unwrap()) > 0);
    let latency = &stats["latency"];
    assert_eq!(latency["send_to_sent"]["count"], 5, "{latency}");
    assert_eq!(latency["send_to_delivered"]["count"], 5, "{latency}");
    for q in ["p50_us", "p99_us", "p999_us"] {
        assert!(latency["send_to_sent"][q].as_u64().unwrap() > 0);
    }
    assert!(stats["rss_bytes"].as_u64().unwrap() > 0);
    let (status, body) =
        client::request_raw(&server.ops, "GET", "/metrics", None, None, None).unwrap();
    assert_eq!(status, 200);
    let text = String::from_utf8(body).unwrap();
    for needle in [
        "# TYPE chatd_connections gauge",
        "chatd_events_in_total{core=",
        "chatd_fsyncs_total{core=",
        "chatd_mesh_in_flight ",
        "chatd_send_to_sent_seconds{core=\"0\",quantile=\"0.99\"}",
        "chatd_fsync_seconds_count{core=",
    ] {
        assert!(text.contains(needle), "/metrics lacks {needle}:\n{text}");
    }
    promtool_check(&text);
    assert_eq!(server.ops_get("/nope").0, 404);
}

/// `promtool check metrics` (Debian's `prometheus`; `.ci/run` installs
/// it) finds no error and no lint problem in `/metrics` after traffic.
fn promtool_check(text: &str) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = child.expect("promtool runs (apt-get install prometheus; .ci/run does)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool: {said}\n{text}"
    );
}
