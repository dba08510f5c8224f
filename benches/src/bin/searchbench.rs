//! `taskset -c 1 target/release/searchbench [--chatd PATH] [--messages N]`:
//! search over a real chatd holding N messages (default 1,000,000).
//!
//! Starts chatd pinned to CPU 0 (`--cores 1`, a fresh data directory,
//! send rate unlimited), logs in 100 senders and 100 receivers, makes the
//! 10,000 direct conversations between them, and sends N messages of 4–16
//! words drawn from a Zipf-distributed vocabulary of 30,000 made-up words
//! (seeded; receivers stay offline, so nothing fans out). Then it times
//! `GET /v1/search` as a receiver (one keep-alive-less HTTP request each,
//! as the harness's client does): one word in one conversation, two
//! words over all 100 of the receiver's conversations, and a 3-letter
//! prefix over them, the words taken from a random stored message. It
//! also restarts chatd to time the index's rebuild from the log, and
//! reads the index's memory from `/stats`. Prints a Markdown table.

use std::time::{Duration, Instant};

use chat_benches::percentile;
use chat_benches::server::{start, Server};
use chat_tools::client::{self, Endpoint, Session, Ws};
use serde_json::json;

const SIDE: usize = 100;
const VOCABULARY: usize = 30_000;
const QUERIES: usize = 1_500;
const WINDOW: usize = 256;
const WAIT: Duration = Duration::from_secs(30);
const SEARCH_FLAGS: &[&str] = &["--send-rate", "1000000", "--send-burst", "1000000"];

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

struct Words {
    words: Vec<String>,
    cumulative: Vec<f64>,
}

impl Words {
    fn new(rng: &mut Rng) -> Words {
        let words = (0..VOCABULARY)
            .map(|_| {
                (0..3 + rng.below(7))
                    .map(|_| (b'a' + rng.below(26) as u8) as char)
                    .collect()
            })
            .collect();
        let mut total = 0.0;
        let cumulative = (0..VOCABULARY)
            .map(|i| {
                total += 1.0 / (i as f64 + 1.0);
                total
            })
            .collect();
        Words { words, cumulative }
    }

    fn text(&self, rng: &mut Rng) -> String {
        let n = 4 + rng.below(13);
        let picked: Vec<&str> = (0..n)
            .map(|_| {
                let x = (rng.next() >> 11) as f64 / (1u64 << 53) as f64
                    * self.cumulative[VOCABULARY - 1];
                self.words[self
                    .cumulative
                    .partition_point(|c| *c < x)
                    .min(VOCABULARY - 1)]
                .as_str()
            })
            .collect();
        picked.join(" ")
    }
}

fn search_index_bytes(server: &Server) -> (u64, u64) {
    let ops = Endpoint::parse(&format!("http://{}", server.ops), None).unwrap();
    let (_, stats) = client::request(&ops, "GET", "/stats", None, None).unwrap();
    let cores = stats["cores"].as_array().unwrap();
    let sum = |k: &str| {
        cores
            .iter()
            .map(|c| c[k].as_u64().unwrap_or(0))
            .sum::<u64>()
    };
    (sum("search_docs"), sum("search_index_bytes"))
}

/// Sends each (conversation, text) on `ws`, `WINDOW` in flight.
fn send_all(ws: &mut Ws, batch: &[(String, String)]) {
    for (c, chunk) in batch.chunks(WINDOW).enumerate() {
        for (i, (conv, text)) in chunk.iter().enumerate() {
            let e = json!({"type": "message.send", "conversation_id": conv,
                "client_msg_id": format!("{c}.{i}"), "body": {"text": text}});
            ws.send(&e).unwrap();
        }
        for _ in chunk {
            let e = ws.recv_type("message.sent", WAIT).expect("message.sent");
            assert!(e["seq"].is_u64(), "{e}");
        }
    }
}

/// The senders, the receivers, and the conversation of each pair.
struct People {
    senders: Vec<Session>,
    receivers: Vec<Session>,
    convs: Vec<Vec<String>>, // [sender][receiver]
}

fn people(server: &Server, otp: &std::path::Path) -> People {
    let login = |i: usize| -> Session {
        let phone = format!("+1555{:07}", 3_000_000 + i);
        client::login(&server.http, &phone, "bench", otp).unwrap()
    };
    let senders: Vec<Session> = (0..SIDE).map(login).collect();
    let receivers: Vec<Session> = (SIDE..2 * SIDE).map(login).collect();
    let mut convs = vec![vec![String::new(); SIDE]; SIDE];
    for (s, sender) in senders.iter().enumerate() {
        for (r, receiver) in receivers.iter().enumerate() {
            let body = json!({"kind": "direct", "peer": receiver.user_id});
            let path = "/v1/conversations";
            let (st, v) =
                client::request(&server.http, "POST", path, Some(&sender.token), Some(&body))
                    .unwrap();
            assert!(st == 201 || st == 200, "{st} {v}");
            convs[s][r] = v["conversation_id"].as_str().unwrap().to_owned();
        }
    }
    People {
        senders,
        receivers,
        convs,
    }
}

/// Sends `n` messages; answers (sender, receiver, text) of each.
fn load(server: &Server, p: &People, n: usize, rng: &mut Rng) -> Vec<(usize, usize, String)> {
    let words = Words::new(rng);
    let mut stored = Vec::with_capacity(n);
    let per_sender = n / SIDE;
    for (s, sender) in p.senders.iter().enumerate() {
        let (mut ws, _) = Ws::connect_and_auth(&server.http, &sender.token, WAIT).unwrap();
        let batch: Vec<(String, String)> = (0..per_sender)
            .map(|_| {
                let r = rng.below(SIDE);
                let text = words.text(rng);
                stored.push((s, r, text.clone()));
                (p.convs[s][r].clone(), text)
            })
            .collect();
        send_all(&mut ws, &batch);
    }
    stored
}

type Kind = (&'static str, fn(&str, &str, &str) -> String);
const KINDS: [Kind; 3] = [
    ("1 word, conversation_id", |a, _, conv| {
        format!("q={a}&conversation_id={conv}")
    }),
    ("2 words, the receiver's 100 conversations", |a, b, _| {
        format!("q={a}%20{b}")
    }),
    (
        "3-letter prefix, the receiver's 100 conversations",
        |a, _, _| format!("q={}", &a[..3]),
    ),
];

/// Times each kind of query, words from random stored messages.
fn measure(server: &Server, p: &People, stored: &[(usize, usize, String)], rng: &mut Rng) {
    println!("| query | p50 ms | p99 ms | mean results |");
    println!("|---|---|---|---|");
    for (name, make) in KINDS {
        let mut times = Vec::new();
        let mut results = 0usize;
        for _ in 0..QUERIES / 3 {
            let (s, r, text) = &stored[rng.below(stored.len())];
            let ws: Vec<&str> = text.split(' ').collect();
            let (a, b) = (ws[rng.below(ws.len())], ws[rng.below(ws.len())]);
            let path = format!("/v1/search?{}", make(a, b, &p.convs[*s][*r]));
            let token = Some(p.receivers[*r].token.as_str());
            let t = Instant::now();
            let (st, v) = client::request(&server.http, "GET", &path, token, None).unwrap();
            times.push(t.elapsed().as_secs_f64() * 1e3);
            assert_eq!(st, 200, "{path}: {v}");
            let found = v["messages"].as_array().unwrap();
            assert!(!found.is_empty(), "{path} found nothing");
            results += found.len();
        }
        let mean = results as f64 / times.len() as f64;
        let (p50, p99) = (percentile(&mut times, 0.5), percentile(&mut times, 0.99));
        println!("| {name} | {p50:.2} | {p99:.2} | {mean:.1} |");
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut chatd, mut n) = ("target/release/chatd".to_owned(), 1_000_000usize);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--chatd" => chatd = args.next().unwrap(),
            "--messages" => n = args.next().unwrap().parse().unwrap(),
            _ => panic!("usage: searchbench [--chatd PATH] [--messages N]"),
        }
    }
    let dir = std::env::temp_dir().join(format!("searchbench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut server = start(&chatd, &dir, SEARCH_FLAGS);
    let p = people(&server, &dir.join("otp"));
    let mut rng = Rng(0x5eed_1234_abcd);
    let t = Instant::now();
    let stored = load(&server, &p, n, &mut rng);
    let load_s = t.elapsed().as_secs_f64();
    let (docs, bytes) = search_index_bytes(&server);
    let per = bytes as f64 / stored.len() as f64;
    println!(
        "messages {} stored in {load_s:.1} s; index: {docs} documents, {per:.1} bytes per message",
        stored.len()
    );
    measure(&server, &p, &stored, &mut rng);
    unsafe { libc::kill(server.child.id() as i32, libc::SIGTERM) };
    let _ = server.child.wait();
    let t = Instant::now();
    server = start(&chatd, &dir, SEARCH_FLAGS);
    let restart = t.elapsed().as_secs_f64();
    let err = std::fs::read_to_string(dir.join("err")).unwrap_or_default();
    let built: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("search index built"))
        .filter_map(|l| l.split("ms=").nth(1))
        .collect();
    println!(
        "restart to ready: {restart:.2} s, of which building the index from the log: {built:?} ms"
    );
    let _ = server.child.kill();
    let _ = server.child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
