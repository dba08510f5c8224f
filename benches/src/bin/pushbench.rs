//! `taskset -c 1 target/release/pushbench [--chatd PATH] [--users N] [--rounds R]`:
//! push notifications to a loopback gateway, and what they cost the
//! sends, against the same run without a gateway.
//!
//! Starts chatd pinned to CPU 0 (`--cores 1`) twice: without and with
//! `--push-gateway` (a gateway in this process, a thread per connection,
//! keep-alive).
//! USERS (default 1,000) recipients each set a push token and stay
//! offline; one sender sends ROUNDS (default 5) rounds of one message to
//! each of them over a WebSocket, 64 in flight (with the gateway, a round
//! starts once the previous one was notified). Prints the sends per
//! second of both runs and their ratio, the notifications per second,
//! and the time from each message's send to its notification's arrival
//! (p50, p99). Checks that every message got exactly one notification.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chat_benches::percentile;
use chat_benches::server::start;
use chat_tools::client::{self, Endpoint, Session, Ws};
use serde_json::{json, Value};

const WINDOW: usize = 64;
const WAIT: Duration = Duration::from_secs(30);

type Arrivals = Arc<Mutex<HashMap<(String, u64), Instant>>>;

/// A gateway on an ephemeral port: records when each (conversation, seq)
/// arrived, answers `200 {}`.
fn gateway() -> (String, Arrivals) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/push", l.local_addr().unwrap());
    let arrivals: Arrivals = Arc::default();
    let a = arrivals.clone();
    std::thread::spawn(move || {
        for conn in l.incoming().map_while(Result::ok) {
            let a = a.clone();
            std::thread::spawn(move || {
                let mut r = BufReader::new(conn.try_clone().unwrap());
                let mut conn = conn;
                while let Some(key) = one_request(&mut r) {
                    let fresh = a.lock().unwrap().insert(key, Instant::now()).is_none();
                    assert!(fresh, "a notification twice");
                    let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
                    if conn.write_all(ok).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, arrivals)
}

/// Reads one request (keep-alive: the next may follow on the same
/// connection); answers its (conversation, seq), `None` at the end.
fn one_request(r: &mut BufReader<std::net::TcpStream>) -> Option<(String, u64)> {
    let mut length = 0;
    let mut first = true;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return None;
        }
        if line == "\r\n" && !first {
            break;
        }
        first = false;
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; length];
    r.read_exact(&mut body).ok()?;
    let v: Value = serde_json::from_slice(&body).unwrap();
    let n = &v["notification"];
    let conv = n["conversation_id"].as_str().unwrap().to_string();
    Some((conv, n["seq"].as_u64().unwrap()))
}

/// The sender and USERS offline recipients with tokens, one direct
/// conversation each.
fn setup(http: &Endpoint, otp: &std::path::Path, users: usize) -> (Session, Vec<String>) {
    let login =
        |i: usize| client::login(http, &format!("+1555{:07}", 5_000_000 + i), "b", otp).unwrap();
    let sender = login(0);
    let mut convs = Vec::new();
    for i in 1..=users {
        let s = login(i);
        let path = format!("/v1/devices/{}/push", s.device_id);
        let (st, v) = client::request(
            http,
            "PUT",
            &path,
            Some(&s.token),
            Some(&json!({"push_token": format!("t{i}")})),
        )
        .unwrap();
        assert_eq!(st, 204, "{v}");
        let body = json!({"kind": "direct", "peer": s.user_id});
        let (st, v) = client::request(
            http,
            "POST",
            "/v1/conversations",
            Some(&sender.token),
            Some(&body),
        )
        .unwrap();
        assert!(st == 201 || st == 200, "{v}");
        convs.push(v["conversation_id"].as_str().unwrap().to_string());
    }
    (sender, convs)
}

/// Sends one message to each conversation per round, WINDOW in flight;
/// with a gateway, waits for the round's notifications before the next
/// (else a newer message would rightly replace a pending one). Answers
/// the send time of each (conversation, seq) and the sends per second
/// over the sending phases.
fn send_all(
    ws: &mut Ws,
    convs: &[String],
    rounds: usize,
    arrivals: Option<&Arrivals>,
) -> (HashMap<(String, u64), Instant>, f64) {
    let mut done = HashMap::new();
    let mut sending = Duration::ZERO;
    for round in 0..rounds {
        let started = Instant::now();
        send_round(ws, convs, round, &mut done);
        sending += started.elapsed();
        if let Some(a) = arrivals {
            let deadline = Instant::now() + WAIT;
            while a.lock().unwrap().len() < done.len() {
                assert!(Instant::now() < deadline, "notifications missing");
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
    let rate = done.len() as f64 / sending.as_secs_f64();
    (done, rate)
}

fn send_round(
    ws: &mut Ws,
    convs: &[String],
    round: usize,
    done: &mut HashMap<(String, u64), Instant>,
) {
    let mut sent_at: HashMap<String, Instant> = HashMap::new();
    let (mut next, mut acked) = (0, 0);
    while acked < convs.len() {
        while next < convs.len() && next - acked < WINDOW {
            let id = format!("m{round}-{next}");
            ws.send(&json!({"type": "message.send", "conversation_id": convs[next], "client_msg_id": id, "body": {"text": "hi"}})).unwrap();
            sent_at.insert(id, Instant::now());
            next += 1;
        }
        let e = ws.recv_type("message.sent", WAIT).unwrap();
        let id = e["client_msg_id"].as_str().unwrap();
        let conv = e["conversation_id"].as_str().unwrap().to_string();
        done.insert((conv, e["seq"].as_u64().unwrap()), sent_at[id]);
        acked += 1;
    }
}

fn run(
    chatd: &str,
    users: usize,
    rounds: usize,
    gateway: Option<(&str, &Arrivals)>,
) -> (f64, HashMap<(String, u64), Instant>) {
    let dir = std::env::temp_dir().join(format!(
        "pushbench-{}-{}",
        std::process::id(),
        gateway.is_some()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let flags: Vec<&str> = gateway
        .map(|g| vec!["--push-gateway", g.0])
        .unwrap_or_default();
    let mut flags = flags;
    flags.extend(["--send-rate", "1000000", "--send-burst", "1000000"]);
    let mut server = start(chatd, &dir, &flags);
    let (sender, convs) = setup(&server.http, &dir.join("otp"), users);
    let mut ws = Ws::connect(&server.http, Some(&sender.token)).unwrap();
    ws.recv_type("auth.ok", WAIT).unwrap();
    let (sent, rate) = send_all(&mut ws, &convs, rounds, gateway.map(|g| g.1));
    if gateway.is_some() {
        std::thread::sleep(Duration::from_secs(1));
    }
    let _ = server.child.kill();
    let _ = server.child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    (rate, sent)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut chatd, mut users, mut rounds) = ("target/release/chatd".to_owned(), 1_000, 5);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--chatd" => chatd = args.next().unwrap(),
            "--users" => users = args.next().unwrap().parse().unwrap(),
            "--rounds" => rounds = args.next().unwrap().parse().unwrap(),
            _ => panic!("usage: pushbench [--chatd PATH] [--users N] [--rounds R]"),
        }
    }
    let (plain, _) = run(&chatd, users, rounds, None);
    let (url, arrivals) = gateway();
    let (pushed, sent) = run(&chatd, users, rounds, Some((&url, &arrivals)));
    let arrivals = arrivals.lock().unwrap();
    assert_eq!(arrivals.len(), sent.len(), "one notification per message");
    let mut ms: Vec<f64> = sent
        .iter()
        .map(|(k, at)| arrivals[k].duration_since(*at).as_secs_f64() * 1e3)
        .collect();
    // Each round's notifications over that round's first send to its
    // last arrival.
    let mut busy = Duration::ZERO;
    for round in 1..=rounds as u64 {
        let first = sent
            .iter()
            .filter(|(k, _)| k.1 == round)
            .map(|(_, t)| *t)
            .min()
            .unwrap();
        let last = arrivals
            .iter()
            .filter(|(k, _)| k.1 == round)
            .map(|(_, t)| *t)
            .max()
            .unwrap();
        busy += last.duration_since(first);
    }
    let per_s = arrivals.len() as f64 / busy.as_secs_f64();
    println!(
        "{} messages to {users} offline recipients with tokens: sends {plain:.0}/s without a gateway, {pushed:.0}/s with (ratio {:.2}; 64 in flight); {per_s:.0} notifications/s; send → notification p50 {:.2} ms, p99 {:.2} ms; each message notified once",
        sent.len(),
        pushed / plain,
        percentile(&mut ms, 0.5),
        percentile(&mut ms, 0.99)
    );
}
