//! One core: its shards, its connections, and its end of the mesh.
//!
//! Lives on: exactly one core (one per glommio executor); never crosses.
//! Everything another core needs goes through `call`/`tell`/`push`, which
//! run locally when the target is this core and over the mesh otherwise.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use chat_net::protocol::ApiError;
use chat_net::ws::Outbox;
use futures_channel::oneshot;
use glommio::channels::channel_mesh::{Receivers, Senders};

use crate::config::Config;
use crate::gate::FifoGate;
use crate::ids::{home_shard, ConnId, ConnRef, ConvId, CoreId, DeviceId, Seq, ShardId, UserId};
use crate::ops::{MeshMsg, Op, Reply};
use crate::shard::Shard;
use crate::stats::{CoreStats, Latency};

/// Close code for a connection dropped because it fell behind.
pub const CLOSE_SLOW_CONSUMER: u16 = 4008;
/// Close code for a revoked device or a bad token.
pub const CLOSE_UNAUTHORIZED: u16 = 4401;

/// A live WebSocket on this core.
pub struct ConnEntry {
    pub outbox: Outbox,
    pub user: UserId,
    pub device: DeviceId,
    /// While the connection syncs, live messages wait here so that they
    /// reach the device after the older ones the sync sends.
    pub held: Option<Vec<Held>>,
    /// After sync: per conversation, the last seq the sync sent. A live
    /// push of a seq at or below it was already sent (it was durable when
    /// the sync read it, its fan-out still on the way): dropped, so a
    /// connection never gets one message twice.
    pub synced: HashMap<ConvId, Seq>,
}

impl ConnEntry {
    /// Did this connection's sync already send the message `tag` names?
    pub fn already_synced(&self, tag: Option<(ConvId, Seq)>) -> bool {
        tag.is_some_and(|(conv, seq)| self.synced.get(&conv).is_some_and(|s| seq <= *s))
    }
}

/// An event held back during sync.
pub struct Held {
    pub tag: Option<(ConvId, Seq)>,
    pub event: Arc<str>,
}

pub struct Core {
    pub id: CoreId,
    pub cores: u16,
    pub shards: u16,
    pub config: Rc<Config>,
    local: Vec<Option<Rc<Shard>>>,
    senders: Senders<MeshMsg>,
    /// One FIFO gate per peer: sends to a peer leave in the order they
    /// were asked for, even when its ring is full and senders wait.
    gates: Vec<FifoGate>,
    pending: RefCell<HashMap<u64, oneshot::Sender<Reply>>>,
    next_call: Cell<u64>,
    next_conn: Cell<u64>,
    pub conns: RefCell<HashMap<ConnId, ConnEntry>>,
    pub stats: RefCell<CoreStats>,
    /// Cores that finished their startup announcements.
    pub announced: Cell<u16>,
    pub ready: Cell<bool>,
    stats_waiters: RefCell<HashMap<u64, oneshot::Sender<CoreStats>>>,
}

impl Core {
    pub fn new(
        id: CoreId,
        cores: u16,
        shards: u16,
        config: Rc<Config>,
        local: Vec<Option<Rc<Shard>>>,
        senders: Senders<MeshMsg>,
    ) -> Core {
        assert_eq!(local.len(), shards as usize);
        Core {
            id,
            cores,
            shards,
            config,
            local,
            senders,
            gates: (0..cores).map(|_| FifoGate::new()).collect(),
            pending: RefCell::new(HashMap::new()),
            next_call: Cell::new(1),
            next_conn: Cell::new(1),
            conns: RefCell::new(HashMap::new()),
            stats: RefCell::new(CoreStats::new(id.0)),
            announced: Cell::new(0),
            ready: Cell::new(false),
            stats_waiters: RefCell::new(HashMap::new()),
        }
    }

    pub fn core_of(&self, shard: ShardId) -> CoreId {
        CoreId(shard.0 % self.cores)
    }

    pub fn shard_of(&self, id: u64) -> ShardId {
        home_shard(id, self.shards)
    }

    pub fn local_shards(&self) -> impl Iterator<Item = &Rc<Shard>> {
        self.local.iter().flatten()
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
        if self.senders.send_to(core.0 as usize, msg).await.is_err() {
            // Only at shutdown: the peer has gone.
            eprintln!("chatd: core {} could not reach core {}", self.id.0, core.0);
        }
    }

    /// Runs `op` on `shard` and waits for its answer.
    pub async fn call(self: &Rc<Self>, shard: ShardId, op: Op) -> Reply {
        let core = self.core_of(shard);
        if core == self.id {
            let target = self.local[shard.0 as usize].clone().expect("local shard");
            return target.exec(self, op).await;
        }
        let id = self.next_call.get();
        self.next_call.set(id + 1);
        let (tx, rx) = oneshot::channel();
        self.pending.borrow_mut().insert(id, tx);
        self.stats.borrow_mut().mesh_pending_calls += 1;
        self.mesh_send(
            core,
            MeshMsg::Call {
                id,
                from: self.id,
                shard,
                op,
            },
        )
        .await;
        let reply = rx.await.unwrap_or_else(|_| {
            Err(ApiError::new(
                chat_net::protocol::ErrorCode::Unavailable,
                "shutting down",
            ))
        });
        self.stats.borrow_mut().mesh_pending_calls -= 1;
        reply
    }

    /// Runs `op` on `shard` without waiting for an answer.
    pub async fn tell(self: &Rc<Self>, shard: ShardId, op: Op) {
        let core = self.core_of(shard);
        if core == self.id {
            let target = self.local[shard.0 as usize].clone().expect("local shard");
            let me = self.clone();
            glommio::spawn_local(async move {
                let _ = target.exec(&me, op).await;
            })
            .detach();
            return;
        }
        self.mesh_send(core, MeshMsg::Tell { shard, op }).await;
    }

    /// Sends `event` to connections of `core`.
    pub async fn push(
        self: &Rc<Self>,
        core: CoreId,
        conns: Vec<ConnId>,
        event: Arc<str>,
        tag: Option<(ConvId, Seq)>,
        started: Option<Instant>,
    ) {
        if core == self.id {
            self.push_local(&conns, &event, tag, started);
            return;
        }
        self.mesh_send(
            core,
            MeshMsg::Push {
                conns,
                event,
                tag,
                started,
            },
        )
        .await;
    }

    /// Queues `event` on local connections; a full queue drops the
    /// connection (it catches up when it reconnects).
    pub fn push_local(
        &self,
        conns: &[ConnId],
        event: &Arc<str>,
        tag: Option<(ConvId, Seq)>,
        started: Option<Instant>,
    ) {
        let mut slow = Vec::new();
        let mut sent = 0;
        {
            let mut table = self.conns.borrow_mut();
            for conn in conns {
                let Some(entry) = table.get_mut(conn) else {
                    continue;
                };
                if entry.already_synced(tag) {
                    continue;
                }
                if let Some(held) = &mut entry.held {
                    if held.len() >= self.config.outbox_frames_max {
                        slow.push(*conn);
                    } else {
                        held.push(Held {
                            tag,
                            event: event.clone(),
                        });
                    }
                    continue;
                }
                match entry.outbox.try_send(event.to_string()) {
                    Ok(()) => sent += 1,
                    Err(_) => slow.push(*conn),
                }
            }
        }
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
        stats.slow_consumers_dropped += slow.len() as u64;
        drop(stats);
        for conn in slow {
            self.close_local(
                conn,
                CLOSE_SLOW_CONSUMER,
                "slow consumer: reconnect to catch up",
            );
        }
    }

    pub async fn close(self: &Rc<Self>, conn: ConnRef, code: u16, reason: &'static str) {
        if conn.core == self.id {
            self.close_local(conn.conn, code, reason);
        } else {
            self.mesh_send(
                conn.core,
                MeshMsg::Close {
                    conn: conn.conn,
                    code,
                    reason,
                },
            )
            .await;
        }
    }

    pub fn close_local(&self, conn: ConnId, code: u16, reason: &str) {
        if let Some(entry) = self.conns.borrow().get(&conn) {
            entry.outbox.close(code, reason);
        }
    }

    /// Every core's stats, this one's included (for the ops port).
    pub async fn all_stats(self: &Rc<Self>) -> Vec<CoreStats> {
        let mut out = vec![self.snapshot_stats()];
        for core in 0..self.cores {
            if core == self.id.0 {
                continue;
            }
            let id = self.next_call.get();
            self.next_call.set(id + 1);
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

    /// Moves the logs' fsync latencies into this core's histogram
    /// (called each second and before stats are read).
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

    /// This core's stats, with the logs' counters folded in.
    pub fn snapshot_stats(&self) -> CoreStats {
        let (fsyncs, bytes) = self.drain_log_latencies();
        let mut stats = self.stats.borrow().clone();
        stats.connections = self.conns.borrow().len() as u64;
        stats.outbox_queued = self
            .conns
            .borrow()
            .values()
            .map(|c| c.outbox.queued() as u64)
            .sum();
        stats.fsyncs = fsyncs;
        stats.bytes_written = bytes;
        stats.records_applied = self.local_shards().map(|s| s.state.borrow().applied).sum();
        stats
    }

    /// Serves the mesh: one task per peer, in arrival order per ring.
    pub fn serve_mesh(self: &Rc<Self>, mut receivers: Receivers<MeshMsg>) {
        for (peer, rx) in receivers.streams() {
            let me = self.clone();
            glommio::spawn_local(async move {
                while let Some(msg) = rx.recv().await {
                    me.stats.borrow_mut().mesh_received += 1;
                    me.on_mesh(msg).await;
                }
                let _ = peer;
            })
            .detach();
        }
    }

    async fn on_mesh(self: &Rc<Self>, msg: MeshMsg) {
        match msg {
            MeshMsg::Call {
                id,
                from,
                shard,
                op,
            } => {
                let me = self.clone();
                glommio::spawn_local(async move {
                    let target = me.local[shard.0 as usize]
                        .clone()
                        .expect("call routed to its shard's core");
                    let reply = target.exec(&me, op).await;
                    me.mesh_send(from, MeshMsg::Reply { id, reply }).await;
                })
                .detach();
            }
            MeshMsg::Tell { shard, op } => {
                let target = self.local[shard.0 as usize]
                    .clone()
                    .expect("tell routed to its shard's core");
                let me = self.clone();
                glommio::spawn_local(async move {
                    let _ = target.exec(&me, op).await;
                })
                .detach();
            }
            MeshMsg::Reply { id, reply } => {
                if let Some(tx) = self.pending.borrow_mut().remove(&id) {
                    let _ = tx.send(reply);
                }
            }
            MeshMsg::Push {
                conns,
                event,
                tag,
                started,
            } => self.push_local(&conns, &event, tag, started),
            MeshMsg::Close { conn, code, reason } => self.close_local(conn, code, reason),
            MeshMsg::Announced { .. } => self.announced.set(self.announced.get() + 1),
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
        for core in 0..self.cores {
            if core != self.id.0 {
                self.mesh_send(CoreId(core), MeshMsg::Announced { from: self.id })
                    .await;
            }
        }
        self.announced.set(self.announced.get() + 1);
    }
}
