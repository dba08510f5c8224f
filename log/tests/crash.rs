//! Crash test: a child process appends under concurrent load and is killed
//! with SIGKILL at random moments. Before each kill it has reported, over a
//! pipe, every offset whose durability future resolved. After each kill the
//! log is reopened: every reported record is present and intact, offsets
//! are dense, and no partial record is visible.
//!
//! The child is this same test binary, started with `CHAT_LOG_CRASH_DIR`
//! set, running `crash_child`. The seed is printed; set `CHAT_LOG_CRASH_SEED`
//! to replay a run.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use chat_log::{Entry, Kind, Log, Offset, Term};
use common::*;

const KILLS: u64 = 60;
const CHILD_APPENDERS: u64 = 24;
const SEGMENT_BYTES: u64 = 256 * 1024;
const CHILD_READY_TIMEOUT: Duration = Duration::from_secs(20);

fn payload_len(seed: u64) -> usize {
    (seed.wrapping_mul(2654435761) % 3000) as usize
}

/// Not a test on its own: the body of the child process.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var("CHAT_LOG_CRASH_DIR") else {
        return;
    };
    let round: u64 = std::env::var("CHAT_LOG_CRASH_ROUND")
        .unwrap()
        .parse()
        .unwrap();
    run(move || async move {
        let log = Log::open(&dir, small_config(SEGMENT_BYTES)).await.unwrap();
        println!("ready");
        let mut tasks = Vec::new();
        for task in 0..CHILD_APPENDERS {
            let log = log.clone();
            tasks.push(glommio::spawn_local(async move {
                for i in 0.. {
                    let seed = (round << 40) | (task << 24) | i;
                    let bytes = payload(seed, payload_len(seed));
                    let entry = Entry {
                        kind: Kind(task as u8),
                        term: Term(round),
                        payload: &bytes,
                    };
                    let (offset, _) = log.append_durable(&[entry]).await.unwrap();
                    println!("A {} {seed}", offset.0);
                }
            }));
        }
        for task in tasks {
            task.await;
        }
    });
}

struct Child {
    process: std::process::Child,
    lines: mpsc::Receiver<String>,
}

fn start_child(dir: &Path, round: u64) -> Child {
    let mut process = Command::new(std::env::current_exe().unwrap())
        .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
        .env("CHAT_LOG_CRASH_DIR", dir)
        .env("CHAT_LOG_CRASH_ROUND", round.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = process.stdout.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        // Only whole lines count: a line cut by the kill was never reported.
        while reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
            if line.ends_with('\n') && tx.send(line.trim_end().to_string()).is_err() {
                break;
            }
            line.clear();
        }
    });
    Child { process, lines }
}

/// Adds the child's reports to `acked`; a reported offset never changes payload.
fn collect(lines: &mpsc::Receiver<String>, acked: &mut BTreeMap<u64, u64>) {
    for line in lines.try_iter() {
        let mut words = line.split(' ');
        if words.next() != Some("A") {
            continue;
        }
        let offset: u64 = words.next().unwrap().parse().unwrap();
        let seed: u64 = words.next().unwrap().parse().unwrap();
        if let Some(old) = acked.insert(offset, seed) {
            panic!(
                "offset {offset} acked twice: seeds {old} then {seed} (an acked record was lost)"
            );
        }
    }
}

/// Reopens the log and checks density of all records and the payload of
/// every acked record from `from_offset` on.
fn verify(dir: &Path, acked: &BTreeMap<u64, u64>, from_offset: u64) -> u64 {
    let dir: PathBuf = dir.to_owned();
    let acked: BTreeMap<u64, u64> = acked.range(from_offset..).map(|(k, v)| (*k, *v)).collect();
    run(move || async move {
        let log = Log::open(&dir, small_config(SEGMENT_BYTES)).await.unwrap();
        let records = read_all(&log).await;
        for (i, record) in records.iter().enumerate() {
            assert_eq!(record.offset, Offset(i as u64 + 1), "offsets are dense");
        }
        for (&offset, &seed) in &acked {
            let record = records.get(offset as usize - 1).unwrap_or_else(|| {
                panic!(
                    "acked offset {offset} missing: the log ends at {}",
                    records.len()
                )
            });
            assert_eq!(
                &record.payload[..],
                &payload(seed, payload_len(seed))[..],
                "offset {offset}"
            );
        }
        log.close().await.unwrap();
        records.len() as u64
    })
}

#[test]
fn acked_records_survive_sigkill() {
    if std::env::var("CHAT_LOG_CRASH_DIR").is_ok() {
        return;
    }
    let seed: u64 = std::env::var("CHAT_LOG_CRASH_SEED")
        .map(|s| s.parse().unwrap())
        .unwrap_or_else(|_| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    println!("crash test seed {seed} (CHAT_LOG_CRASH_SEED={seed} to replay)");
    let dir = tempfile::tempdir().unwrap();
    let mut acked = BTreeMap::new();
    let mut rng = seed | 1;
    for round in 1..=KILLS {
        let checked_from = if round % 10 == 0 {
            0
        } else {
            acked.keys().next_back().map_or(0, |o| o + 1)
        };
        let mut child = start_child(dir.path(), round);
        let started = Instant::now();
        loop {
            match child.lines.recv_timeout(CHILD_READY_TIMEOUT) {
                Ok(line) if line.ends_with("ready") => break,
                Ok(_) => continue,
                Err(_) => panic!("seed {seed}: child of round {round} never became ready"),
            }
        }
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(Duration::from_millis(5 + rng % 120));
        child.process.kill().unwrap(); // SIGKILL
        child.process.wait().unwrap();
        std::thread::sleep(Duration::from_millis(5));
        collect(&child.lines, &mut acked);
        let total = verify(dir.path(), &acked, checked_from);
        assert!(
            acked.keys().next_back().is_none_or(|&last| last <= total),
            "seed {seed}"
        );
        assert!(total >= acked.len() as u64);
        if round % 10 == 0 {
            println!(
                "round {round}: {} acked, {total} records in the log, round took {:?}",
                acked.len(),
                started.elapsed()
            );
        }
    }
    assert!(
        acked.len() > 1000,
        "seed {seed}: the child acked too little to mean anything"
    );
}
