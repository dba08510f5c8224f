//! `taskset -c 1 target/release/compactbench [--chatd PATH] [--messages N]`:
//! the erasure compaction's rewrite rate, and a live conversation's
//! latency while it runs.
//!
//! Starts chatd pinned to CPU 0 (`--cores 1`, `--compact-interval-seconds
//! 30`), makes 100 direct conversations with disappearing messages (1 s)
//! and sends N messages (default 1,000,000, 4–16 words each) into them:
//! all vanish, so the next compaction rewrites nearly the whole log. Meanwhile one
//! live pair keeps sending 200 messages a second, one at a time, timing
//! each `message.send` → `message.sent`; the latencies are split into
//! those while the compaction ran (from the server's "log compacted"
//! line: when it ended and how long it took) and the others.

use std::time::{Duration, Instant};

use chat_benches::percentile;
use chat_benches::server::{start, Server};
use chat_tools::client::{self, Session, Ws};
use serde_json::json;

const CONVS: usize = 100;
const WINDOW: usize = 256;
const WAIT: Duration = Duration::from_secs(30);
const FLAGS: &[&str] = &[
    "--send-rate",
    "1000000",
    "--send-burst",
    "1000000",
    "--compact-interval-seconds",
    "30",
];

/// Sends `n` messages of ~70 bytes into `convs` from `ws`, `WINDOW` at a time.
fn load(ws: &mut Ws, convs: &[String], n: usize) {
    let words = [
        "lorem",
        "ipsum",
        "dolor",
        "sit",
        "amet",
        "consectetur",
        "adipiscing",
        "elit",
        "sed",
        "do",
    ];
    let mut sent = 0;
    while sent < n {
        let batch = WINDOW.min(n - sent);
        for i in 0..batch {
            let k = sent + i;
            let text: Vec<&str> = (0..4 + k % 13)
                .map(|j| words[(k * 7 + j * 3) % words.len()])
                .collect();
            let e = json!({"type": "message.send", "conversation_id": convs[k % convs.len()],
                "client_msg_id": format!("l{k}"), "body": {"text": text.join(" ")}});
            ws.send(&e).unwrap();
        }
        for _ in 0..batch {
            ws.recv_type("message.sent", WAIT).unwrap();
        }
        sent += batch;
    }
}

/// The loading sender's conversations (disappearing after 1 s) and the
/// live pair's conversation.
struct Setup {
    sender: Session,
    convs: Vec<String>,
    live: (Session, Session, String),
}

fn setup(server: &Server, otp: &std::path::Path) -> Setup {
    let login = |i: usize| -> Session {
        client::login(
            &server.http,
            &format!("+1555{:07}", 5_000_000 + i),
            "bench",
            otp,
        )
        .unwrap()
    };
    let sender = login(0);
    let (live_a, live_b) = (login(1), login(2));
    let create = |by: &Session, peer: &Session| -> String {
        let body = json!({"kind": "direct", "peer": peer.user_id});
        let path = "/v1/conversations";
        let (_, v) =
            client::request(&server.http, "POST", path, Some(&by.token), Some(&body)).unwrap();
        v["conversation_id"].as_str().unwrap().to_owned()
    };
    let mut convs = Vec::new();
    for i in 0..CONVS {
        let conv = create(&sender, &login(10 + i));
        let ttl = json!({"disappearing_seconds": 1});
        let path = format!("/v1/conversations/{conv}");
        let answer = client::request(
            &server.http,
            "PATCH",
            &path,
            Some(&sender.token),
            Some(&ttl),
        )
        .unwrap();
        assert_eq!(answer.0, 204);
        convs.push(conv);
    }
    let live = create(&live_a, &live_b);
    Setup {
        sender,
        convs,
        live: (live_a, live_b, live),
    }
}

/// The live pair sends one message at a time until the server logs a
/// compaction; answers (seconds since `started`, ms) per message and the
/// log line with when it was seen.
fn live_until_compacted(
    server: &Server,
    dir: &std::path::Path,
    s: &Setup,
    started: Instant,
) -> (Vec<(f64, f64)>, f64, String) {
    let (live_a, live_b, live) = &s.live;
    let (mut a, _) = Ws::connect_and_auth(&server.http, &live_a.token, WAIT).unwrap();
    let (mut b, _) = Ws::connect_and_auth(&server.http, &live_b.token, WAIT).unwrap();
    let mut samples = Vec::new();
    for i in 0.. {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no compaction within 120 s"
        );
        let t = Instant::now();
        let e = json!({"type": "message.send", "conversation_id": live, "client_msg_id": format!("live{i}"), "body": {"text": "ping"}});
        a.send(&e).unwrap();
        a.recv_type("message.sent", WAIT).unwrap();
        samples.push((
            started.elapsed().as_secs_f64(),
            t.elapsed().as_secs_f64() * 1e3,
        ));
        while let Ok(Some(_)) = b.recv(Duration::from_millis(0)) {}
        std::thread::sleep(Duration::from_millis(5));
        let err = std::fs::read_to_string(dir.join("err")).unwrap_or_default();
        if let Some(l) = err.lines().find(|l| l.contains("log compacted")) {
            return (samples, started.elapsed().as_secs_f64(), l.to_owned());
        }
    }
    unreachable!()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut chatd, mut n) = ("target/release/chatd".to_owned(), 1_000_000usize);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--chatd" => chatd = args.next().unwrap(),
            "--messages" => n = args.next().unwrap().parse().unwrap(),
            _ => panic!("usage: compactbench [--chatd PATH] [--messages N]"),
        }
    }
    let dir = std::env::temp_dir().join(format!("compactbench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut server = start(&chatd, &dir, FLAGS);
    let s = setup(&server, &dir.join("otp"));
    let started = Instant::now();
    let (mut ws, _) = Ws::connect_and_auth(&server.http, &s.sender.token, WAIT).unwrap();
    load(&mut ws, &s.convs, n);
    let loaded = started.elapsed().as_secs_f64();
    let (samples, ended, line) = live_until_compacted(&server, &dir, &s, started);
    let field = |k: &str| -> f64 {
        line.split(&format!("{k}="))
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .unwrap()
            .parse()
            .unwrap()
    };
    let (before, after, ms) = (field("before"), field("after"), field("ms"));
    let began = ended - ms / 1e3;
    let (mut during, mut other): (Vec<f64>, Vec<f64>) = (Vec::new(), Vec::new());
    for (at, lat) in samples {
        if at >= began - 0.05 && at <= ended {
            during.push(lat)
        } else {
            other.push(lat)
        }
    }
    println!("{n} messages loaded in {loaded:.1} s; compaction: {:.1} MB of segments rewritten to {:.1} MB in {ms:.0} ms ({:.0} MB/s read and written)",
        before / 1e6, after / 1e6, before / 1e3 / ms);
    println!("| live 1:1 send → sent | samples | p50 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|");
    for (name, v) in [("while compacting", &mut during), ("otherwise", &mut other)] {
        let len = v.len();
        let max = v.iter().cloned().fold(f64::NAN, f64::max);
        println!(
            "| {name} | {len} | {:.2} | {:.2} | {max:.2} |",
            percentile(v, 0.5),
            percentile(v, 0.99)
        );
    }
    let _ = server.child.kill();
    let _ = server.child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
