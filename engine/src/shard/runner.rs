//! A shard: its log, the state the log makes, and the soft state beside
//! it; the write path of the I/O shell:
//!
//! command → decide (machine) → append (log) → apply (machine, effects
//! queued) → wait until durable → carry out the effects in log order →
//! reply.
//!
//! Lives on: core `shard % cores`, nowhere else. Writes are serialised by
//! the write lock from decide to apply, so the next decision sees every
//! record appended before it (seqs stay gapless under pipelining) while
//! the fsyncs of many writes overlap. Apply runs at append time: the state
//! is ahead of the disk by what is in flight. When a write fails, its
//! records and everything after them are gone from the log: their effects
//! are dropped and the state is rebuilt from the log (`rebuild`), reads
//! wait for that (`settled`) and notice it (`generation`).

use std::cell::{Cell, Ref, RefCell};
use std::collections::HashMap;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::Instant;

use chat_log::{Entry, Offset, Term};
use glommio::sync::Semaphore;
use tracing::{error, info, warn};

use super::cache::MessageCache;
use super::clock::Clock;
use super::effect_queue::EffectQueue;
use super::error::{unavailable, ShardError, ShardResult};
use super::mesh::Mesh;
use super::soft::Soft;
use super::storage::LogStore;
use crate::config::Config;
use crate::constants::{MESSAGE_CACHE_BYTES_MAX, REBUILD_RETRY_MS, REBUILD_WAIT_MS};
use crate::machine::cmd::Decision;
use crate::machine::ctx::Ctx;
use crate::machine::error::DomainError;
use crate::machine::ids::{ConvId, Seq, ShardId};
use crate::machine::records::{self, MessageRec, Rec, KIND_CHAT};
use crate::machine::state::{Lsn, Params, State};

/// Whether the state says what the log holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    Serving,
    /// A write failed; the state is being rebuilt from the log.
    Rebuilding,
    /// The log was closed (shutdown, or a simulated crash): nothing more.
    Closed,
}

pub struct Shard {
    pub id: ShardId,
    pub shards: u16,
    pub config: Rc<Config>,
    pub log: Rc<dyn LogStore>,
    pub clock: Rc<dyn Clock>,
    state: RefCell<State>,
    pub soft: RefCell<Soft>,
    pub cache: RefCell<MessageCache>,
    /// Candidates for search (a superset of what matches; `search.rs`).
    pub search: RefCell<crate::search::index::SearchIndex>,
    write_lock: Semaphore,
    effects: RefCell<EffectQueue>,
    health: Cell<Health>,
    /// The log's last offset as this state knows it: a log that ends
    /// elsewhere dropped records (a failed write) the state still holds.
    appended: Cell<Offset>,
    /// Bumped by every rebuild: a read that saw it change starts again.
    generation: Cell<u64>,
    settle_waiters: RefCell<Vec<Waker>>,
    /// Records applied since the process started (stats, snapshot pacing).
    applied: Cell<u64>,
    /// When each message in flight was received on its sender's core (for
    /// the send→delivered histogram; taken when it fans out).
    started: RefCell<HashMap<(ConvId, Seq), Instant>>,
    pub(super) snapshot_at: Cell<u64>,
    pub(super) snapshotting: Cell<bool>,
    /// The erasure compaction removed a deleted account's details from
    /// the log; the snapshot must be replaced too (`compact.rs`).
    pub(super) snapshot_owed: Cell<bool>,
    /// Cluster mode: this core's replicator; `None` on a single node.
    pub(super) cluster: RefCell<Option<Rc<crate::cluster::replicator::Replicator>>>,
    /// Cluster mode: applied and committed through here (`appended` may be
    /// ahead on a leader: what it proposed and applied, not yet committed).
    pub(super) committed: Cell<Offset>,
    /// Committed entries that came during a rebuild, applied after it.
    pub(super) apply_buffer: RefCell<Vec<chat_replication::eraftpb::Entry>>,
    pub(super) commit_waiters: RefCell<Vec<Waker>>,
    /// With `--push-gateway`: this shard's push sender (set at startup,
    /// once its users' pointers are known).
    push: RefCell<Option<Rc<crate::push::sender::Pusher>>>,
}

pub fn params(config: &Config) -> Params {
    Params {
        group_members_max: config.group_members_max,
        fanout_on_read_members: config.fanout_on_read_members,
        token_ttl_seconds: config.token_ttl_seconds,
        edit_window_seconds: config.edit_window_seconds,
        key_fetches_per_minute: config.key_fetches_per_minute,
    }
}

impl Shard {
    /// A shard over `log`, whose state was recovered from it.
    pub fn new(
        id: ShardId,
        shards: u16,
        config: Rc<Config>,
        log: Rc<dyn LogStore>,
        clock: Rc<dyn Clock>,
        state: State,
    ) -> Shard {
        let last = log.last_offset();
        Shard {
            id,
            shards,
            config,
            log,
            clock,
            state: RefCell::new(state),
            soft: RefCell::new(Soft::default()),
            cache: RefCell::new(MessageCache::new(MESSAGE_CACHE_BYTES_MAX)),
            search: RefCell::default(),
            write_lock: Semaphore::new(1),
            effects: RefCell::new(EffectQueue::default()),
            health: Cell::new(Health::Serving),
            appended: Cell::new(last),
            generation: Cell::new(0),
            settle_waiters: RefCell::new(Vec::new()),
            applied: Cell::new(0),
            started: RefCell::new(HashMap::new()),
            snapshot_at: Cell::new(0),
            snapshotting: Cell::new(false),
            snapshot_owed: Cell::new(false),
            cluster: RefCell::new(None),
            committed: Cell::new(last),
            apply_buffer: RefCell::new(Vec::new()),
            commit_waiters: RefCell::new(Vec::new()),
            push: RefCell::new(None),
        }
    }

    /// The durable state (plus what is in flight). Never hold it across an await.
    pub fn pusher(&self) -> Option<Rc<crate::push::sender::Pusher>> {
        self.push.borrow().clone()
    }

    pub fn set_pusher(&self, pusher: Rc<crate::push::sender::Pusher>) {
        *self.push.borrow_mut() = Some(pusher);
    }

    pub fn state(&self) -> Ref<'_, State> {
        self.state.borrow()
    }

    pub fn ctx(&self) -> Ctx {
        Ctx {
            now: self.clock.now(),
            shard: self.id,
            shards: self.shards,
        }
    }

    pub fn applied(&self) -> u64 {
        self.applied.get()
    }

    pub fn health(&self) -> Health {
        self.health.get()
    }

    pub fn generation(&self) -> u64 {
        self.generation.get()
    }

    pub fn note_started(&self, conv: ConvId, seq: Seq, at: Instant) {
        self.started.borrow_mut().insert((conv, seq), at);
    }

    pub fn take_started(&self, conv: ConvId, seq: Seq) -> Option<Instant> {
        self.started.borrow_mut().remove(&(conv, seq))
    }

    pub fn effects_pending(&self) -> usize {
        self.effects.borrow().len()
    }

    /// Decides with `decide`, appends and applies what it decided, waits
    /// until durable and until the effects went out; then the reply.
    pub async fn write<R>(
        self: &Rc<Self>,
        mesh: &Rc<dyn Mesh>,
        decide: impl FnOnce(&State, &Ctx) -> Result<Decision<R>, DomainError>,
    ) -> ShardResult<R> {
        let permit = self
            .write_lock
            .acquire_permit(1)
            .await
            .map_err(unavailable)?;
        match self.health.get() {
            Health::Serving => {}
            Health::Rebuilding => return Err(unavailable("recovering from a failed write")),
            Health::Closed => return Err(unavailable("shutting down")),
        }
        let cluster = self.cluster();
        if let Some(r) = &cluster {
            if !self.leads_ready(r) {
                return Err(unavailable("this replica does not lead the shard"));
            }
        } else if self.log.last_offset() != self.appended.get() {
            // A failed write dropped records whose futures nobody polled
            // yet: the state is ahead of the log. Never decide on it.
            self.failed(&chat_log::LogError::Invalid(
                "the log dropped appended records".into(),
            ));
            return Err(unavailable("recovering from a failed write"));
        }
        let ctx = self.ctx();
        let Decision { recs, reply } = decide(&self.state.borrow(), &ctx)?;
        if recs.is_empty() {
            return Ok(reply);
        }
        if let Some(r) = cluster {
            return self.write_replicated(&r, mesh, recs, reply, permit).await;
        }
        let encoded: Vec<_> = recs.iter().map(records::encode).collect();
        let entries: Vec<Entry<'_>> = encoded
            .iter()
            .map(|p| Entry {
                kind: KIND_CHAT,
                term: Term(0),
                payload: p,
            })
            .collect();
        let appended = self.log.append(&entries).await.map_err(unavailable)?;
        self.apply_appended(&recs, appended.first);
        drop(permit);
        self.maybe_snapshot();
        if let Err(e) = appended.durable.await {
            self.failed(&e);
            return Err(unavailable(e));
        }
        self.release(mesh, appended.last).await;
        Ok(reply)
    }

    /// The last offset applied to the state.
    pub fn appended_get(&self) -> Offset {
        self.appended.get()
    }

    pub(super) fn appended_set(&self, at: Offset) {
        self.appended.set(at);
    }

    /// Applies one committed record another replica proposed.
    pub(super) fn apply_one(&self, rec: &Rec, at: Offset) {
        let out = crate::machine::apply::apply(&mut self.state.borrow_mut(), rec, Lsn(at.0));
        self.index_record(rec);
        self.effects.borrow_mut().push(at, out);
        self.applied.set(self.applied.get() + 1);
    }

    pub(super) fn discard_effects_after(&self, at: Offset) {
        self.effects.borrow_mut().discard_after(at);
    }

    pub(super) fn apply_appended(&self, recs: &[Rec], first: Offset) {
        assert_eq!(
            first.0,
            self.appended.get().0 + 1,
            "appends follow the state's end"
        );
        self.appended.set(Offset(first.0 + recs.len() as u64 - 1));
        let mut state = self.state.borrow_mut();
        let mut effects = self.effects.borrow_mut();
        for (i, rec) in recs.iter().enumerate() {
            let at = Offset(first.0 + i as u64);
            let out = crate::machine::apply::apply(&mut state, rec, Lsn(at.0));
            effects.push(at, out);
            self.index_record(rec);
        }
        self.applied.set(self.applied.get() + recs.len() as u64);
    }

    /// Records up to `upto` are durable: carry out their effects (or wait
    /// while the drainer does).
    pub(super) async fn release(self: &Rc<Self>, mesh: &Rc<dyn Mesh>, upto: Offset) {
        let must_drain = self.effects.borrow_mut().release(upto);
        if must_drain {
            loop {
                let next = self.effects.borrow_mut().take_next();
                let Some(effect) = next else { break };
                super::effects::carry_out(self, mesh, effect).await;
            }
            return;
        }
        poll_fn(|cx| {
            if self.effects.borrow_mut().done_through(upto, cx.waker()) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
    }

    /// A write did not become durable: the log dropped it (and everything
    /// queued after it). Drop their effects and rebuild the state from the
    /// log, so that it again says exactly what is on disk.
    fn failed(self: &Rc<Self>, cause: &chat_log::LogError) {
        self.effects
            .borrow_mut()
            .discard_after(self.log.durable_offset());
        if matches!(cause, chat_log::LogError::Closed) {
            self.health.set(Health::Closed);
            self.wake_settle_waiters();
            return;
        }
        if self.health.get() != Health::Serving {
            return;
        }
        warn!(shard = self.id.0, %cause, "write failed, rebuilding state from the log");
        self.start_rebuild();
    }

    /// Marks the state stale and rebuilds it from the log in the background.
    pub(super) fn start_rebuild(self: &Rc<Self>) {
        if self.health.get() != Health::Serving {
            return;
        }
        self.health.set(Health::Rebuilding);
        // A snapshot being captured must not stand for this state.
        self.generation.set(self.generation.get() + 1);
        let me = self.clone();
        glommio::spawn_local(async move {
            while me.health.get() == Health::Rebuilding {
                if me.log.is_closed() {
                    me.health.set(Health::Closed);
                    me.wake_settle_waiters();
                    return;
                }
                if me.rebuild().await {
                    me.apply_buffered();
                } else if !me.log.is_closed() {
                    me.clock.sleep(REBUILD_RETRY_MS).await;
                }
            }
        })
        .detach();
    }

    /// Rebuilds the durable state from the log; true when it worked.
    pub async fn rebuild(&self) -> bool {
        let Ok(_permit) = self.write_lock.acquire_permit(1).await else {
            return false;
        };
        let clustered = self.cluster.borrow().is_some();
        let upto = if clustered {
            self.committed.get()
        } else {
            Offset(u64::MAX)
        };
        match super::recover::recover_through(&*self.log, params(&self.config), upto).await {
            Ok((state, _, through)) => {
                *self.state.borrow_mut() = state;
                self.appended.set(if clustered {
                    through.max(upto)
                } else {
                    self.log.last_offset()
                });
                self.cache.borrow_mut().clear();
                self.started.borrow_mut().clear();
                self.generation.set(self.generation.get() + 1);
                self.health.set(Health::Serving);
                self.wake_settle_waiters();
                info!(shard = self.id.0, "state rebuilt from the log");
                true
            }
            Err(e) => {
                error!(shard = self.id.0, error = %e, "rebuild failed (will retry)");
                false
            }
        }
    }

    pub(super) fn wake_settle_waiters(&self) {
        for w in self.settle_waiters.borrow_mut().drain(..) {
            w.wake();
        }
        for w in self.commit_waiters.borrow_mut().drain(..) {
            w.wake();
        }
    }

    /// Waits (bounded) until no rebuild is pending: after a failed write the
    /// state may hold records the log dropped, and reads must not see them.
    pub async fn settled_locally(&self) -> ShardResult<()> {
        let wait = poll_fn(|cx| match self.health.get() {
            Health::Serving => Poll::Ready(Ok(())),
            Health::Closed => Poll::Ready(Err(unavailable("shutting down"))),
            Health::Rebuilding => {
                self.settle_waiters.borrow_mut().push(cx.waker().clone());
                Poll::Pending
            }
        });
        let give_up = async {
            self.clock.sleep(REBUILD_WAIT_MS).await;
            Err(unavailable("recovering from a failed write"))
        };
        futures_lite::future::or(wait, give_up).await
    }

    /// A stored message: from the cache, else from the log (a message not
    /// yet durable is read once it is).
    pub async fn read_message(
        &self,
        conv: ConvId,
        seq: Seq,
    ) -> ShardResult<std::sync::Arc<MessageRec>> {
        if let Some(m) = self.cache.borrow().get(conv, seq) {
            return Ok(m);
        }
        let offset = self
            .state
            .borrow()
            .convs
            .get(&conv)
            .and_then(|c| c.index.offset(seq))
            .ok_or(DomainError::NoMessage { conv, seq })?;
        let record = self.log.read(Offset(offset)).await.map_err(unavailable)?;
        if record.kind != KIND_CHAT {
            return Err(unavailable(format!("offset {offset} holds no chat record")));
        }
        match records::decode(&record.payload).map_err(unavailable)? {
            Rec::Message(m) if (m.conv, m.seq) == (conv, seq) => Ok(std::sync::Arc::new(m)),
            other => {
                // The index and the log disagree: never answer with it.
                error!(
                    shard = self.id.0,
                    offset,
                    ?other,
                    "index names another record"
                );
                Err(ShardError::Unavailable(format!(
                    "offset {offset} does not hold {conv}/{}",
                    seq.0
                )))
            }
        }
    }
}
