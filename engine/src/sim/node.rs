//! A whole node in one thread: `cores` real `Core`s, each with its shards
//! over `MemLog`s, joined by in-thread queues instead of glommio's rings,
//! sharing one manual clock. A crash keeps only what the logs made durable;
//! a restart recovers every shard from it, as `chatd` does from disk.
//!
//! Lives on: the simulation's thread (one glommio executor).

use std::rc::Rc;

use glommio::channels::local_channel::{self, LocalSender};

use crate::config::Config;
use crate::machine::ids::ShardId;
use crate::node::core::Core;
use crate::node::mesh::{Gone, MeshMsg, Transport};
use crate::shard::clock::ManualClock;
use crate::shard::conn::CoreId;
use crate::shard::memlog::MemLog;
use crate::shard::mesh::call;
use crate::shard::ops::membership::Announce;
use crate::shard::runner::{params, Shard};
use crate::shard::storage::LocalBoxFuture;

/// Queues from every core to every core (one inbox per core, FIFO).
struct Queues(Rc<Vec<LocalSender<MeshMsg>>>);

impl Transport for Queues {
    fn send(&self, to: CoreId, msg: MeshMsg) -> LocalBoxFuture<'_, Result<(), Gone>> {
        Box::pin(async move { self.0[to.0 as usize].send(msg).await.map_err(|_| Gone) })
    }
}

pub struct SimNode {
    pub cores: Vec<Rc<Core>>,
    pub logs: Vec<MemLog>,
    pub clock: Rc<ManualClock>,
}

impl SimNode {
    /// Starts a node on `logs` (one per shard): recover, announce, ready.
    pub async fn start(
        config: &Config,
        logs: Vec<MemLog>,
        clock: Rc<ManualClock>,
    ) -> Result<SimNode, String> {
        let (cores, shards) = (config.cores as u16, logs.len() as u16);
        let config = Rc::new(config.clone());
        let (senders, receivers): (Vec<_>, Vec<_>) = (0..cores)
            .map(|_| local_channel::new_bounded(crate::constants::MESH_RING_CAPACITY))
            .unzip();
        let senders = Rc::new(senders);
        let mut built = Vec::new();
        for (id, inbox) in receivers.into_iter().enumerate() {
            let mut local = vec![None; shards as usize];
            for s in (0..shards).filter(|s| s % cores == id as u16) {
                let log = logs[s as usize].clone();
                let (state, _) = crate::shard::recover::recover(&log, params(&config)).await?;
                let shard = Shard::new(
                    ShardId(s),
                    shards,
                    config.clone(),
                    Rc::new(log),
                    clock.clone(),
                    state,
                );
                local[s as usize] = Some(Rc::new(shard));
            }
            let core = Rc::new(Core::new(
                CoreId(id as u16),
                cores,
                config.clone(),
                local,
                Box::new(Queues(senders.clone())),
            ));
            let pump = core.clone();
            glommio::spawn_local(async move {
                while let Some(msg) = inbox.recv().await {
                    pump.on_mesh(msg).await;
                }
            })
            .detach();
            built.push(core);
        }
        for s in 0..shards {
            let core = &built[(s % cores) as usize];
            call(&core.mesh(), ShardId(s), Announce)
                .await
                .map_err(|e| format!("{e:?}"))?;
        }
        for core in &built {
            core.ready.set(true);
        }
        Ok(SimNode {
            cores: built,
            logs,
            clock,
        })
    }

    /// The core a shard lives on.
    pub fn core_of(&self, shard: ShardId) -> &Rc<Core> {
        &self.cores[(shard.0 as usize) % self.cores.len()]
    }

    pub fn flush_all(&self) {
        for log in &self.logs {
            log.flush();
        }
    }

    /// The process dies: every log keeps what was durable.
    pub fn crash(&self) -> Vec<MemLog> {
        self.logs.iter().map(MemLog::crash).collect()
    }
}
