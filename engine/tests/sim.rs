//! The deterministic simulation (`chat_engine::sim`): seeded runs of one
//! node's shards with random commands from several devices, failed writes
//! and crashes, checked against a model. Every failure prints its seed.
//!
//! - CI size: `cargo test --release -p chat-engine --test sim`
//! - longer: `CHATD_SIM_SEEDS=2000 CHATD_SIM_STEPS=1500 cargo test --release -p chat-engine --test sim -- --nocapture`
//! - replay one: `CHATD_SIM_SEED=1234 ...`

use chat_engine::sim::{run, run_all, SimConfig};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn seeded_runs_keep_every_invariant() {
    let steps = env("CHATD_SIM_STEPS", 500) as u32;
    let seeds: Vec<u64> = match std::env::var("CHATD_SIM_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        Some(seed) => vec![seed],
        None => {
            let first = env("CHATD_SIM_FIRST_SEED", 1);
            (first..first + env("CHATD_SIM_SEEDS", 200)).collect()
        }
    };
    let sims: Vec<SimConfig> = seeds
        .iter()
        .map(|seed| {
            // Vary the shape with the seed: 1 to 3 cores, 1 or 2 more shards.
            let cores = 1 + (*seed % 3) as usize;
            let shards = cores + (*seed / 3 % 2) as usize;
            SimConfig {
                seed: *seed,
                steps,
                cores,
                shards,
                users: 5,
            }
        })
        .collect();
    let tallies = match run_all(sims.clone()) {
        Ok(t) => t,
        Err((seed, e)) => {
            let s = sims.iter().find(|s| s.seed == seed);
            panic!("simulation seed {seed} ({s:?}) failed: {e}\nreplay: CHATD_SIM_SEED={seed} CHATD_SIM_STEPS={steps} cargo test --release -p chat-engine --test sim");
        }
    };
    let mut totals = chat_engine::sim::world::Tally::default();
    for t in &tallies {
        totals.sends += t.sends;
        totals.acked += t.acked;
        totals.refused += t.refused;
        totals.unavailable += t.unavailable;
        totals.resends += t.resends;
        totals.crashes += t.crashes;
        totals.failed_flushes += t.failed_flushes;
        totals.checkpoints += t.checkpoints;
        totals.syncs_checked += t.syncs_checked;
        totals.live_frames += t.live_frames;
    }
    println!("{} seeds x {steps} steps: {totals:?}", seeds.len());
    assert!(
        totals.acked > 0 && totals.crashes > 0 && totals.checkpoints > 0,
        "the runs exercised nothing: {totals:?}"
    );
    // The same seed makes the same run.
    let again = run(sims[0]).expect("the first seed passed once");
    assert_eq!(
        format!("{again:?}"),
        format!("{:?}", tallies[0]),
        "seed {} is not deterministic",
        sims[0].seed
    );
}
