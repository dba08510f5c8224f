//! `taskset -c 1 target/release/keybench [--chatd PATH] [--callers N]`:
//! one-time prekey fetches per second (`GET /v1/keys/{user}`), each a
//! durable log record on the target's home shard before it is answered.
//!
//! Starts chatd pinned to CPU 0 (`--cores 1`, rate limit lifted), has 50
//! users upload 1,000 one-time prekeys each, then CALLERS threads (default
//! 16) fetch round-robin until every prekey is handed out, one HTTP
//! request per fetch. Checks that no prekey is handed out twice and that
//! the 50,001st fetch of a user finds none left. Prints fetches/s, p50 and
//! p99.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chat_benches::percentile;
use chat_benches::server::start;
use chat_tools::client::{self, Endpoint, Session};
use serde_json::json;

const TARGETS: usize = 50;
const PREKEYS: usize = 1_000;
const PER_PUT: usize = 100;
const KEY: &str = "AAECAwQFBgcICQoLDA0ODw==";

/// Each target uploads `PREKEYS` one-time prekeys (and the other keys).
fn upload(http: &Endpoint, targets: &[Session]) {
    for (t, s) in targets.iter().enumerate() {
        for put in 0..PREKEYS / PER_PUT {
            let keys: Vec<_> = (0..PER_PUT)
                .map(|i| json!({"key_id": put * PER_PUT + i + 1, "public_key": KEY}))
                .collect();
            let body = json!({"identity_key": KEY, "one_time_prekeys": keys,
                "signed_prekey": {"key_id": t + 1, "public_key": KEY, "signature": KEY}});
            let (st, v) =
                client::request(http, "PUT", "/v1/keys", Some(&s.token), Some(&body)).unwrap();
            assert_eq!(st, 204, "{v}");
        }
    }
}

/// Every caller fetches round-robin until all prekeys are out; answers
/// each fetch's latency (ms). Panics on a prekey handed out twice.
fn fetch_all(http: &Endpoint, ids: &Arc<Vec<String>>, callers: Vec<Session>) -> Vec<f64> {
    let next = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(Mutex::new(HashSet::new()));
    let total = TARGETS * PREKEYS;
    let threads: Vec<_> = callers
        .into_iter()
        .map(|caller| {
            let (ids, next, seen, http) = (ids.clone(), next.clone(), seen.clone(), http.clone());
            std::thread::spawn(move || {
                let mut times = Vec::new();
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= total {
                        return times;
                    }
                    let user = &ids[n % TARGETS];
                    let started = Instant::now();
                    let path = format!("/v1/keys/{user}");
                    let (st, v) =
                        client::request(&http, "GET", &path, Some(&caller.token), None).unwrap();
                    times.push(started.elapsed().as_secs_f64() * 1e3);
                    assert_eq!(st, 200, "{v}");
                    let id = v["devices"][0]["one_time_prekey"]["key_id"]
                        .as_u64()
                        .expect("a prekey left");
                    assert!(
                        seen.lock().unwrap().insert((user.clone(), id)),
                        "prekey {id} of {user} handed out twice"
                    );
                }
            })
        })
        .collect();
    let times: Vec<f64> = threads
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    assert_eq!(seen.lock().unwrap().len(), total);
    times
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut chatd, mut callers) = ("target/release/chatd".to_owned(), 16usize);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--chatd" => chatd = args.next().unwrap(),
            "--callers" => callers = args.next().unwrap().parse().unwrap(),
            _ => panic!("usage: keybench [--chatd PATH] [--callers N]"),
        }
    }
    let dir = std::env::temp_dir().join(format!("keybench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut server = start(&chatd, &dir, &["--key-fetches-per-minute", "100000000"]);
    let otp = dir.join("otp");
    let login = |i: usize| -> Session {
        let phone = format!("+1555{:07}", 4_000_000 + i);
        client::login(&server.http, &phone, "bench", &otp).unwrap()
    };
    let targets: Vec<Session> = (0..TARGETS).map(login).collect();
    upload(&server.http, &targets);
    let callers_s: Vec<Session> = (0..callers).map(|i| login(TARGETS + i)).collect();
    let ids: Arc<Vec<String>> = Arc::new(targets.iter().map(|s| s.user_id.clone()).collect());
    let t = Instant::now();
    let mut times = fetch_all(&server.http, &ids, callers_s);
    let secs = t.elapsed().as_secs_f64();
    let path = format!("/v1/keys/{}", ids[0]);
    let (st, v) =
        client::request(&server.http, "GET", &path, Some(&targets[1].token), None).unwrap();
    assert_eq!(st, 200);
    assert!(
        v["devices"][0]["one_time_prekey"].is_null(),
        "all handed out: {v}"
    );
    let total = TARGETS * PREKEYS;
    println!(
        "{total} one-time prekeys fetched by {callers} callers in {secs:.2} s: {:.0} fetches/s, p50 {:.2} ms, p99 {:.2} ms; none twice",
        total as f64 / secs,
        percentile(&mut times, 0.5),
        percentile(&mut times, 0.99)
    );
    let _ = server.child.kill();
    let _ = server.child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
