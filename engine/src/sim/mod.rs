//! The deterministic simulation: one node's cores and shards in one
//! thread over in-memory logs, driven by a seeded generator with random
//! commands from several devices, failed writes, and crashes that keep
//! only what was durable; checked against a simple model (`check.rs`).
//!
//! Lives on: a test's thread (one glommio executor). The same seed makes
//! the same run: print it on failure, replay it with `CHATD_SIM_SEED`.
//!
//! # Layout
//! - `rng.rs`    the seeded generator
//! - `node.rs`   `SimNode`: real cores and shards over `MemLog`s and in-thread queues
//! - `outlet.rs` a simulated device's socket
//! - `world.rs`  users, devices, conversations, actions, the model of what was acked
//! - `check.rs`  the invariants, checked at each checkpoint

pub mod check;
pub mod node;
pub mod outlet;
pub mod rng;
pub mod world;

use std::rc::Rc;

use crate::config::{Config, Flags};
use crate::machine::cmd::add_member::AddMember;
use crate::machine::cmd::remove_member::RemoveMember;
use crate::machine::ids::{Millis, Seq};
use crate::machine::records::{ConvKind, Mark};
use crate::shard::clock::ManualClock;
use crate::shard::memlog::{Flush, MemLog};
use crate::shard::mesh::call;
use crate::shard::ops::conversations::{Add, Remove};
use crate::shard::ops::cursor::MoveCursor;
use node::SimNode;
use world::{drive, Tally, World};

/// One run's shape.
#[derive(Clone, Copy, Debug)]
pub struct SimConfig {
    pub seed: u64,
    pub steps: u32,
    pub cores: usize,
    pub shards: usize,
    pub users: usize,
}

fn config(sim: &SimConfig) -> Result<Config, String> {
    let flags = Flags {
        cores: Some(1),
        ..Flags::default()
    };
    let mut config = Config::resolve(flags)?;
    config.cores = sim.cores;
    config.shards = sim.shards;
    // Snapshots every few records: captures race the writes all the time.
    config.snapshot_records = 37;
    Ok(config)
}

/// Runs one seed to its end; the error names the broken invariant.
pub fn run(sim: SimConfig) -> Result<Tally, String> {
    run_all(vec![sim]).map(|t| t[0]).map_err(|(_, e)| e)
}

/// Runs seeds one after the other on one executor (a thread each would
/// cost more than the runs); the error names the seed and the invariant.
pub fn run_all(sims: Vec<SimConfig>) -> Result<Vec<Tally>, (u64, String)> {
    let handle = glommio::LocalExecutorBuilder::default()
        .name("chatd-sim")
        .spawn(move || async move {
            let mut tallies = Vec::with_capacity(sims.len());
            for sim in sims {
                tallies.push(run_inside(sim).await.map_err(|e| (sim.seed, e))?);
            }
            Ok(tallies)
        })
        .map_err(|e| (0, format!("executor: {e}")))?;
    handle
        .join()
        .map_err(|e| (0, format!("the simulation panicked: {e:?}")))?
}

async fn run_inside(sim: SimConfig) -> Result<Tally, String> {
    let config = config(&sim)?;
    let clock = Rc::new(ManualClock::new(Millis(1_800_000_000_000)));
    let logs = (0..sim.shards)
        .map(|_| MemLog::new(Flush::Manual))
        .collect();
    let node = SimNode::start(&config, logs, clock).await?;
    let mut world = World::new(sim.seed, config, node).await;
    for u in 0..sim.users {
        let devices = 1 + (u % 2);
        world.add_user(u, devices).await?;
    }
    world.add_conversations().await?;
    for step in 0..sim.steps {
        world
            .step()
            .await
            .map_err(|e| format!("step {step}: {e}"))?;
        world
            .absorb_replies()
            .map_err(|e| format!("step {step}: {e}"))?;
    }
    world
        .checkpoint()
        .await
        .map_err(|e| format!("final checkpoint: {e}"))?;
    // Nothing is in flight: free every incarnation of the node.
    world.node.stop();
    for old in &world.retired {
        old.stop();
    }
    Ok(world.tally)
}

impl World {
    /// One random action.
    async fn step(&mut self) -> Result<(), String> {
        self.node.clock.advance(self.rng.below(300));
        match self.rng.below(100) {
            0..=44 => self.send(),
            45..=59 => self.cursor(),
            60..=66 => self.connect(),
            67..=70 => self.disconnect().await,
            71..=80 => self.node.flush_all(),
            81..=84 => futures_lite::future::yield_now().await,
            85..=88 => self.membership().await?,
            89..=91 => self.fail_flush(),
            92..=93 => self.crash_and_restart().await?,
            94..=96 => self.checkpoint().await?,
            _ => self.node.clock.advance(5_000),
        }
        Ok(())
    }

    /// A device acks or reads up to some seq (maybe past the end).
    fn cursor(&mut self) {
        let d = self.rng.below(self.devices.len() as u64) as usize;
        let c = self.rng.below(self.convs.len() as u64) as usize;
        let caller = self.devices[d].caller;
        let conv = self.convs[c].conv;
        let last = self
            .model
            .acked
            .range((conv, Seq(0))..=(conv, Seq(u64::MAX)))
            .count() as u64;
        let mark = if self.rng.chance(50) {
            Mark::Delivered
        } else {
            Mark::Read
        };
        let op = MoveCursor {
            user: caller.user,
            device: caller.device,
            conv,
            mark,
            seq: Seq(self.rng.below(last + 3)),
        };
        let core = self.node.cores[d % self.node.cores.len()].clone();
        let in_flight = self.in_flight.clone();
        in_flight.set(in_flight.get() + 1);
        glommio::spawn_local(async move {
            let _ = call(&core.mesh(), core.shard_of(caller.user.0), op).await;
            in_flight.set(in_flight.get() - 1);
        })
        .detach();
    }

    /// The admin of a group adds or removes someone. Done at a quiet
    /// moment and awaited, so that the model knows who is a member when a
    /// send is decided.
    async fn membership(&mut self) -> Result<(), String> {
        self.checkpoint().await?;
        let groups: Vec<usize> = (0..self.convs.len())
            .filter(|i| self.convs[*i].kind == ConvKind::Group)
            .collect();
        let g = *self.rng.pick(&groups);
        let (conv, admin) = (self.convs[g].conv, self.convs[g].admin);
        let users = self.users();
        let user = *self.rng.pick(&users);
        if user == admin {
            return Ok(());
        }
        let mesh = self
            .node
            .core_of(self.node.cores[0].shard_of(conv.0))
            .mesh();
        let home = self.node.cores[0].shard_of(conv.0);
        let adding = !self.convs[g].members.contains(&user);
        let reply = if adding {
            let op = Add(AddMember {
                conv,
                by: admin,
                user,
            });
            drive(&self.node, async move { call(&mesh, home, op).await }).await
        } else {
            let op = Remove(RemoveMember {
                conv,
                by: admin,
                user,
            });
            drive(&self.node, async move { call(&mesh, home, op).await }).await
        };
        match reply {
            Ok(()) if adding => self.convs[g].members.insert(user),
            Ok(()) => self.convs[g].members.remove(&user),
            // Not written (a failed write is being recovered from).
            Err(crate::shard::error::ShardError::Unavailable(_)) => false,
            Err(e) => return Err(format!("membership change refused: {e:?}")),
        };
        // The homes learn of it through effects: let them land.
        self.checkpoint().await
    }

    /// The next flush of one shard's log fails (a full disk, EIO).
    fn fail_flush(&mut self) {
        let s = self.rng.below(self.node.logs.len() as u64) as usize;
        self.node.logs[s].fail_next_flush();
        self.tally.failed_flushes += 1;
    }

    /// The process dies mid-flight; a new one recovers from what was
    /// durable. Connections are gone; the checks then see the recovered
    /// state.
    async fn crash_and_restart(&mut self) -> Result<(), String> {
        let logs = self.node.crash();
        self.conns.clear();
        self.tally.crashes += 1;
        let clock = self.node.clock.clone();
        let node = SimNode::start(&self.config, logs, clock).await?;
        // The dead incarnation keeps serving its tasks in flight (their
        // replies tell the model what was acknowledged) until the run ends.
        let dead = std::mem::replace(&mut self.node, node);
        self.retired.push(dead);
        self.checkpoint().await?;
        self.outlets.clear();
        Ok(())
    }
}
