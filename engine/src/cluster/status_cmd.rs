//! `chatd cluster-status --ops A,B,C`: asks each node's ops port for its
//! `/stats` and prints one table, a row per (node, shard); a node that
//! does not answer gets a row that says so.
//!
//! Lives on: the main thread of the `chatd cluster-status` process.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use serde_json::Value;

const TIMEOUT_MS: u64 = 3000;
const RESPONSE_BYTES_MAX: u64 = 4 * 1024 * 1024;

/// Prints the table; answers false when a node could not be read.
pub fn run(ops: &[String]) -> bool {
    println!(
        "{:<6} {:<22} {:>5} {:<13} {:>6} {:>6} {:>10} {:>10}  lag",
        "node", "ops", "shard", "role", "term", "leader", "commit", "applied"
    );
    let mut all_ok = true;
    for addr in ops {
        match fetch(addr) {
            Ok(stats) => print_node(addr, &stats),
            Err(e) => {
                all_ok = false;
                println!("{:<6} {addr:<22} unreachable: {e}", "?");
            }
        }
    }
    all_ok
}

fn print_node(addr: &str, stats: &Value) {
    let node = stats["raft_node"]
        .as_u64()
        .map_or("-".into(), |n| n.to_string());
    let Some(shards) = stats["shards"].as_array() else {
        println!("{node:<6} {addr:<22} (a single node: no replication)");
        return;
    };
    for s in shards {
        let lag: Vec<String> = s["follower_lag"]
            .as_object()
            .map(|m| m.iter().map(|(k, v)| format!("{k}:{v}")).collect())
            .unwrap_or_default();
        let num = |k: &str| s[k].as_u64().map_or("-".into(), |n| n.to_string());
        println!(
            "{node:<6} {addr:<22} {:>5} {:<13} {:>6} {:>6} {:>10} {:>10}  {}",
            num("shard"),
            s["role"].as_str().unwrap_or("?"),
            num("term"),
            num("leader"),
            num("commit_index"),
            num("applied_index"),
            lag.join(" ")
        );
    }
}

fn fetch(addr: &str) -> Result<Value, String> {
    let sock = addr
        .to_socket_addrs()
        .map_err(|e| e.to_string())?
        .next()
        .ok_or("no address")?;
    let t = Duration::from_millis(TIMEOUT_MS);
    let mut s = TcpStream::connect_timeout(&sock, t).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(t)).map_err(|e| e.to_string())?;
    write!(
        s,
        "GET /stats HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    s.take(RESPONSE_BYTES_MAX)
        .read_to_end(&mut buf)
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no HTTP answer")?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(head.lines().next().unwrap_or("").to_string());
    }
    serde_json::from_str(body).map_err(|e| format!("not JSON: {e}"))
}
