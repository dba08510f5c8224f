//! A whole node in one thread: `cores` real `Core`s, each with its shards
//! over `MemLog`s, joined by in-thread queues instead of glommio's rings,
//! sharing one manual clock. A crash keeps only what the logs made durable;
//! a restart recovers every shard from it, as `chatd` does from disk.
//!
//! Lives on: the simulation's thread (one glommio executor).

use std::cell::RefCell;
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

/// The inboxes of every core (one per core, FIFO); emptied by `stop`.
type Inboxes = Rc<RefCell<Vec<Rc<LocalSender<MeshMsg>>>>>;

/// Queues from every core to every core.
struct Queues(Inboxes);

impl Transport for Queues {
    fn send(&self, to: CoreId, msg: MeshMsg) -> LocalBoxFuture<'_, Result<(), Gone>> {
        let inbox = self.0.borrow().get(to.0 as usize).cloned();
        Box::pin(async move {
            match inbox {
                Some(inbox) => inbox.send(msg).await.map_err(|_| Gone),
                None => Err(Gone),
            }
        })
    }
}

pub struct SimNode {
    inboxes: Inboxes,
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
        let senders: Inboxes = Rc::new(RefCell::new(senders.into_iter().map(Rc::new).collect()));
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
            inboxes: senders,
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

    /// Ends the cores' mesh: their serving tasks finish and the node can be
    /// freed (only once nothing is in flight on it).
    pub fn stop(&self) {
        self.inboxes.borrow_mut().clear();
    }

    /// The process dies: every log keeps what was durable.
    pub fn crash(&self) -> Vec<MemLog> {
        self.logs.iter().map(MemLog::crash).collect()
    }
}
