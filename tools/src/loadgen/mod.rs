//! loadgen: the load harness. One coordinator process starts worker
//! processes (each under the 20,000-open-files limit of a process), spreads
//! connections over them and over source addresses, ramps connections at a
//! set rate, runs a scenario against chatd, an XMPP server or an echo server,
//! and ends every run with a verdict: latency, rates, errors by code, and a
//! check that every message arrived exactly once, in order.
//!
//! # Files
//! - `config.rs`       the command line (scenario, target, rates, bounds)
//! - `constants.rs`    every limit, units last
//! - `world.rs`        users, conversations, which worker owns which
//! - `setup.rs`        accounts and conversations before connecting (REST)
//! - `transport.rs`    TCP from a chosen source address, TLS, WebSocket
//! - `target.rs`       what each target speaks; message bodies and ids
//! - `xmpp.rs`         XMPP stanzas: builders and a small parser (sans I/O)
//! - `xmpp_session.rs` XMPP login, rooms, frames for the session
//! - `session.rs`      one user's connection: handshake, writer, reader
//! - `load.rs`         the scenarios: connect ramp, schedules, storm, drain
//! - `verdict.rs`      the ledger: loss, duplicates, order
//! - `outage.rs`       failover: each sender's outage, the unavailability window
//! - `failover.rs`     failover: kill -9 the chosen node, start it again
//! - `figures.rs`      histograms and counters, merged across workers
//! - `worker.rs`       a worker process and its phases
//! - `coordinator.rs`  the coordinator process: workers, phases, progress
//! - `report.rs`       summary, JSON report, pass/fail

pub mod config;
pub mod constants;
pub mod coordinator;
pub mod failover;
pub mod figures;
pub mod load;
pub mod outage;
pub mod report;
pub mod session;
pub mod setup;
pub mod target;
pub mod transport;
pub mod verdict;
pub mod worker;
pub mod world;
pub mod xmpp;
pub mod xmpp_session;

use clap::Parser;

use config::Config;
use world::Slice;

/// `loadgen`'s main: the coordinator, or a worker when `LOADGEN_WORKER` is set.
pub fn main() -> i32 {
    let config = Config::parse();
    let Ok(slot) = std::env::var("LOADGEN_WORKER") else {
        return coordinator::main(config);
    };
    let parsed = slot
        .split_once('/')
        .and_then(|(i, n)| Some((i.parse().ok()?, n.parse().ok()?)));
    let Some((index, count)) = parsed.filter(|(i, n): &(usize, usize)| i < n) else {
        eprintln!("loadgen: bad LOADGEN_WORKER {slot:?}");
        return 2;
    };
    let run = std::env::var("LOADGEN_RUN").unwrap_or_default();
    let phone_base = std::env::var("LOADGEN_PHONE_BASE")
        .ok()
        .and_then(|b| b.parse().ok())
        .unwrap_or(0);
    match worker::main(config, Slice { index, count }, run, phone_base) {
        Ok(()) => 0,
        Err(e) => {
            worker::say(serde_json::json!({ "error": e }));
            eprintln!("loadgen worker {index}: {e}");
            2
        }
    }
}
