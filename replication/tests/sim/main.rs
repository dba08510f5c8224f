//! Deterministic simulation of replicated groups: raft-rs through our
//! `Driver` and `GroupStore`, on a simulated network, disk and clock.
//!
//! - CI size: `cargo test --release -p chat-replication --test sim`
//! - long run: `CHATD_RSIM_SEEDS=100000 cargo test --release -p chat-replication --test sim -- --nocapture`
//!   (or `replication/sim-long`)
//! - replay one: `CHATD_RSIM_SEED=1234 cargo test --release -p chat-replication --test sim -- --nocapture`
//!
//! Checked on every step: at most one leader per term; log matching (an
//! index and term name one entry on every disk); every replica applies the
//! same entry at an index and has the same state at the same applied
//! index; an acknowledged proposal is the entry at its index. At the end,
//! after healing: every group takes a new write, every replica applied
//! every acknowledged entry and all replicas stand at the same state.

mod disk;
mod machine;
mod model;
mod net;
mod rng;
mod world;

use world::{Params, World};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn replicated_groups_survive_faults() {
    let steps_ms = env("CHATD_RSIM_STEPS_MS", 3_000);
    let settle_ms = env("CHATD_RSIM_SETTLE_MS", 3_000);
    let seeds: Vec<u64> = match std::env::var("CHATD_RSIM_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        Some(seed) => vec![seed],
        None => {
            let first = env("CHATD_RSIM_FIRST_SEED", 1);
            (first..first + env("CHATD_RSIM_SEEDS", 2_000)).collect()
        }
    };
    let started = std::time::Instant::now();
    let mut total = model::Counts::default();
    let (mut sent, mut dropped) = (0, 0);
    for &seed in &seeds {
        let p = Params {
            steps_ms,
            settle_ms,
        };
        let run =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| World::new(seed).run(&p)));
        let run = run.unwrap_or_else(|panic| Err(format!("panicked: {}", panic_text(&panic))));
        let report = match run {
            Ok(r) => r,
            Err(e) => panic!(
                "replication simulation seed {seed} failed: {e}\nreplay: CHATD_RSIM_SEED={seed} \
                 CHATD_RSIM_STEPS_MS={steps_ms} cargo test --release -p chat-replication --test sim -- --nocapture"
            ),
        };
        add(&mut total, &report.counts);
        sent += report.sent;
        dropped += report.dropped;
    }
    println!(
        "{} seeds x {steps_ms} ms in {:.1} s: {total:?}, {sent} messages sent, {dropped} dropped",
        seeds.len(),
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn a_seed_replays_the_same() {
    let p = Params {
        steps_ms: 2_000,
        settle_ms: 2_000,
    };
    let a = World::new(77).run(&p).expect("seed 77 passes");
    let b = World::new(77).run(&p).expect("seed 77 passes");
    assert_eq!(a.digest, b.digest, "the same seed gave two histories");
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    let text = panic.downcast_ref::<String>().cloned();
    text.or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

fn add(t: &mut model::Counts, c: &model::Counts) {
    t.proposed += c.proposed;
    t.acked += c.acked;
    t.lost += c.lost;
    t.unknown += c.unknown;
    t.refused += c.refused;
    t.applied += c.applied;
    t.snapshots_installed += c.snapshots_installed;
    t.compactions += c.compactions;
    t.crashes += c.crashes;
    t.partitions += c.partitions;
}
