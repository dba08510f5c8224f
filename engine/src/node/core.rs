//! One core: its shards, its connections, and its end of the mesh. It is
//! the shards' `Mesh`: operations for a shard of another core leave over
//! the ring to that core (in order, through a FIFO gate per peer), replies
//! come back the same way.
//!
//! Lives on: exactly one core (one per glommio executor); never crosses.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Instant;

use futures_channel::oneshot;
use tracing::warn;

use super::conns::{ConnEntry, Held};
use super::gate::FifoGate;
use super::mesh::{MeshMsg, Transport};
use super::stats::{CoreStats, Latency};
use crate::config::Config;
use crate::machine::ids::{ConvId, Seq, ShardId};
use crate::shard::conn::{ConnId, ConnRef, CoreId, CLOSE_SLOW_CONSUMER};
use crate::shard::mesh::{shard_of, Completion, Job, Mesh, Push};
use crate::shard::storage::LocalBoxFuture;
use crate::shard::Shard;

pub struct Core {
    pub id: CoreId,
    pub cores: u16,
    pub shards: u16,
    pub config: Rc<Config>,
    local: Vec<Option<Rc<Shard>>>,
    transport: Box<dyn Transport>,
    /// One FIFO gate per peer: sends to a peer leave in the order they
    /// were asked for, even when its ring is full and senders wait.
    gates: Vec<FifoGate>,
    next_conn: Cell<u64>,
    next_stats: Cell<u64>,
    pub conns: RefCell<HashMap<ConnId, ConnEntry>>,
    pub stats: RefCell<CoreStats>,
    /// Cores that finished their startup announcements.
    pub announced: Cell<u16>,
    pub ready: Cell<bool>,
    /// This core's handle on the node's media files.
    pub media: crate::media::store::Store,
    stats_waiters: RefCell<HashMap<u64, oneshot::Sender<CoreStats>>>,
}

impl Core {
    pub fn new(
        id: CoreId,
        cores: u16,
        config: Rc<Config>,
        local: Vec<Option<Rc<Shard>>>,
        transport: Box<dyn Transport>,
    ) -> Core {
        let media = crate::media::store::Store::new(&config.data_dir, id.0);
        Core {
            id,
            cores,
            shards: local.len() as u16,
            config,
            local,
            transport,
            gates: (0..cores).map(|_| FifoGate::new()).collect(),
            next_conn: Cell::new(1),
            next_stats: Cell::new(1),
            conns: RefCell::new(HashMap::new()),
            stats: RefCell::new(CoreStats::new(id.0)),
            announced: Cell::new(0),
            ready: Cell::new(false),
            media,
            stats_waiters: RefCell::new(HashMap::new()),
        }
    }

    pub fn core_of(&self, shard: ShardId) -> CoreId {
        CoreId(shard.0 % self.cores)
    }

    pub fn shard_of(&self, id: u64) -> ShardId {
        shard_of(self, id)
    }

    pub fn local_shards(&self) -> impl Iterator<Item = &Rc<Shard>> {
        self.local.iter().flatten()
    }

    /// A shard of this core (panics for a shard that lives elsewhere).
    pub fn local_shard(&self, shard: ShardId) -> Rc<Shard> {
        self.local[shard.0 as usize]
            .clone()
            .expect("the shard lives on this core")
    }

    /// This core as the shards' port to the node.
    pub fn mesh(self: &Rc<Self>) -> Rc<dyn Mesh> {
        self.clone()
    }

    pub fn new_conn_id(&self) -> ConnId {
        let id = self.next_conn.get();
        self.next_conn.set(id + 1);
        ConnId(id)
    }

    pub fn conn_ref(&self, conn: ConnId) -> ConnRef {
        ConnRef {
            core: self.id,
            conn,
        }
    }

    async fn mesh_send(&self, core: CoreId, msg: MeshMsg) {
        assert_ne!(core, self.id, "local traffic never uses the mesh");
        self.stats.borrow_mut().mesh_sent += 1;
        let _gate = self.gates[core.0 as usize].enter().await;
        if self.transport.send(core, msg).await.is_err() {
            // Only at shutdown: the peer has gone.
            warn!(core = self.id.0, peer = core.0, "peer core gone");
        }
    }

    /// Queues `push` on this core's connections; a full queue drops the
    /// connection (it catches up when it reconnects).
    pub fn push_local(&self, push: &Push) {
        let mut slow = Vec::new();
        let mut sent = 0;
        {
            let mut table = self.conns.borrow_mut();
            for conn in &push.conns {
                let Some(entry) = table.get_mut(conn) else {
                    continue;
                };
                if entry.already_synced(push.tag) {
                    continue;
                }
                if let Some(held) = &mut entry.held {
                    if held.len() >= self.config.outbox_frames_max {
                        slow.push(*conn);
                    } else {
                        held.push(Held {
                            tag: push.tag,
                            event: push.event.clone(),
                        });
                    }
                    continue;
                }
                match entry.outlet.try_send(push.event.to_string()) {
                    Ok(()) => sent += 1,
                    Err(_) => slow.push(*conn),
                }
            }
        }
        self.count_push(push.tag, push.started, sent, slow.len());
        for conn in slow {
            self.close_local(
                conn,
                CLOSE_SLOW_CONSUMER,
                "slow consumer: reconnect to catch up",
            );
        }
    }

    fn count_push(
        &self,
        tag: Option<(ConvId, Seq)>,
        started: Option<Instant>,
        sent: u64,
        slow: usize,
    ) {
        let mut stats = self.stats.borrow_mut();
        if tag.is_some() {
            stats.event_out("message.new", sent);
            if let Some(t) = started {
                for _ in 0..sent {
                    stats.record(Latency::SendToDelivered, t.elapsed());
                }
            }
        } else {
            stats.event_out("notification", sent);
        }
        stats.slow_consumers_dropped += slow as u64;
    }

    pub fn close_local(&self, conn: ConnId, code: u16, reason: &str) {
        if let Some(entry) = self.conns.borrow().get(&conn) {
            entry.outlet.close(code, reason);
        }
    }

    /// Serves one message from a peer's ring (called in arrival order).
    pub async fn on_mesh(self: &Rc<Self>, msg: MeshMsg) {
        self.stats.borrow_mut().mesh_received += 1;
        match msg {
            MeshMsg::Run { shard, job } => {
                let target = self.local[shard.0 as usize]
                    .clone()
                    .expect("an operation routed to its shard's core");
                glommio::spawn_local(job(target, self.mesh())).detach();
            }
            MeshMsg::Complete(done) => done(),
            MeshMsg::Push(push) => self.push_local(&push),
            MeshMsg::Close { conn, code, reason } => self.close_local(conn, code, reason),
            MeshMsg::Announced => self.announced.set(self.announced.get() + 1),
            MeshMsg::StatsRequest { id, from } => {
                let stats = Box::new(self.snapshot_stats());
                self.mesh_send(from, MeshMsg::StatsReply { id, stats })
                    .await;
            }
            MeshMsg::StatsReply { id, stats } => {
                if let Some(tx) = self.stats_waiters.borrow_mut().remove(&id) {
                    let _ = tx.send(*stats);
                }
            }
        }
    }

    /// Tells every other core that this one has announced.
    pub async fn broadcast_announced(self: &Rc<Self>) {
        for core in (0..self.cores).filter(|c| *c != self.id.0) {
            self.mesh_send(CoreId(core), MeshMsg::Announced).await;
        }
        self.announced.set(self.announced.get() + 1);
    }

    /// Every core's stats, this one's included (for the ops port).
    pub async fn all_stats(self: &Rc<Self>) -> Vec<CoreStats> {
        let mut out = vec![self.snapshot_stats()];
        for core in (0..self.cores).filter(|c| *c != self.id.0) {
            let id = self.next_stats.get();
            self.next_stats.set(id + 1);
            let (tx, rx) = oneshot::channel();
            self.stats_waiters.borrow_mut().insert(id, tx);
            self.mesh_send(CoreId(core), MeshMsg::StatsRequest { id, from: self.id })
                .await;
            if let Ok(s) = rx.await {
                out.push(s);
            }
        }
        out.sort_by_key(|s| s.core);
        out
    }

    /// Moves the logs' fsync latencies into this core's histogram (each
    /// second and before stats are read); answers the logs' fsyncs and
    /// bytes written so far.
    pub fn drain_log_latencies(&self) -> (u64, u64) {
        let (mut fsyncs, mut bytes) = (0, 0);
        for shard in self.local_shards() {
            let io = shard.log.take_io_stats();
            let mut stats = self.stats.borrow_mut();
            for us in io.fsync_micros {
                stats.record_micros(Latency::Fsync, u64::from(us));
            }
            fsyncs += io.fsyncs;
            bytes += io.bytes_written;
        }
        (fsyncs, bytes)
    }

    /// This core's stats, with the logs' and connections' figures folded in.
    pub fn snapshot_stats(&self) -> CoreStats {
        let (fsyncs, bytes) = self.drain_log_latencies();
        let mut stats = self.stats.borrow().clone();
        (stats.fsyncs, stats.bytes_written) = (fsyncs, bytes);
        let conns = self.conns.borrow();
        stats.connections = conns.len() as u64;
        stats.outbox_queued = conns.values().map(|c| c.outlet.queued() as u64).sum();
        stats.records_applied = self.local_shards().map(|s| s.applied()).sum();
        stats.effects_pending = self
            .local_shards()
            .map(|s| s.effects_pending() as u64)
            .sum();
        for shard in self.local_shards() {
            let search = shard.search.borrow();
            stats.search_docs += search.docs();
            stats.search_index_bytes += search.heap_bytes() as u64;
            if let Some(p) = shard.pusher() {
                stats.push_pending += p.pending() as u64;
                stats.push.add(&p.counts());
            }
        }
        stats.raft = super::replica_stats::gather(self.local_shards());
        stats
    }
}

impl Mesh for Core {
    fn core(&self) -> CoreId {
        self.id
    }

    fn shards(&self) -> u16 {
        self.shards
    }

    fn local(&self, shard: ShardId) -> Option<Rc<Shard>> {
        self.local.get(shard.0 as usize).cloned().flatten()
    }

    fn run_remote(&self, shard: ShardId, job: Job) -> LocalBoxFuture<'_, ()> {
        Box::pin(self.mesh_send(self.core_of(shard), MeshMsg::Run { shard, job }))
    }

    fn complete_on(&self, core: CoreId, done: Completion) -> LocalBoxFuture<'_, ()> {
        if core == self.id {
            done();
            return Box::pin(std::future::ready(()));
        }
        Box::pin(self.mesh_send(core, MeshMsg::Complete(done)))
    }

    fn push(&self, core: CoreId, push: Push) -> LocalBoxFuture<'_, ()> {
        if core == self.id {
            self.push_local(&push);
            return Box::pin(std::future::ready(()));
        }
        Box::pin(self.mesh_send(core, MeshMsg::Push(push)))
    }

    fn close(&self, conn: ConnRef, code: u16, reason: &'static str) -> LocalBoxFuture<'_, ()> {
        if conn.core == self.id {
            self.close_local(conn.conn, code, reason);
            return Box::pin(std::future::ready(()));
        }
        let msg = MeshMsg::Close {
            conn: conn.conn,
            code,
            reason,
        };
        Box::pin(self.mesh_send(conn.core, msg))
    }

    fn calls_pending(&self, delta: i64) {
        let mut stats = self.stats.borrow_mut();
        stats.mesh_pending_calls = stats.mesh_pending_calls.saturating_add_signed(delta);
    }
}
