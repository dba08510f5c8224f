//! One core's share of the cluster: the Raft driver of every group (shard)
//! on this core, the links to the peers, and the pump that turns the
//! driver's output into I/O: appends to the shards' logs (one batch for
//! all groups, the leader sending while its own fdatasync runs), messages
//! to peers, committed entries to the shards, and the fate of proposals,
//! read indexes and forwarded calls to whoever waits for them.
//!
//! Lives on: one per core (`LOCAL` names it for work that arrives from
//! another core). Groups are owned by the core `group % cores`.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::poll_fn;
use std::path::PathBuf;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use chat_replication::eraftpb::{Message, MessageType, Snapshot};
use chat_replication::{
    Apply, BatchId, Driver, Frame, GroupId, Membership, NodeId, Outcome, Outgoing, Output,
    ProposeError, Role, Token,
};
use futures_channel::oneshot;
use tracing::{error, warn};

use super::link::Link;
use super::raft_log::{Base, Stored};
use crate::constants::{RAFT_HELD_BYTES_MAX, RAFT_KEEP_ENTRIES_MAX};
use crate::shard::conn::CoreId;
use crate::shard::error::{unavailable, ShardResult};
use crate::shard::mesh::Mesh;
use crate::shard::storage::{LocalBoxFuture, LogResult};
use crate::shard::Shard;

thread_local! {
    static LOCAL: RefCell<Option<Rc<Replicator>>> = const { RefCell::new(None) };
}

/// Runs `f` with this core's replicator (work sent from another core).
pub fn with_local(f: impl FnOnce(&Rc<Replicator>)) {
    let r = LOCAL.with(|l| l.borrow().clone());
    match r {
        Some(r) => f(&r),
        None => warn!("cluster work on a core without a replicator: dropped"),
    }
}

/// What became of a proposal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    Committed(u64),
    /// Overwritten by another leader's entry, or unknown after a snapshot.
    Lost,
}

/// A forwarded call waiting for its answer: the node asked, and where the
/// answer goes.
type CallWait = (NodeId, oneshot::Sender<Vec<u8>>);
/// Where each proposal went, and the wait for its fate.
pub type Proposals = Vec<(u64, oneshot::Receiver<Fate>)>;

/// A read index waiting for its answer: asked of `leader` for `group`.
/// A leader change drops it (the one asked may have died with it), so
/// that the read asks the new leader at once.
struct ReadWait {
    group: GroupId,
    leader: Option<NodeId>,
    tx: oneshot::Sender<u64>,
}

/// A batch whose appends are on their way to disk.
struct InFlight {
    batch: BatchId,
    durable: Vec<LocalBoxFuture<'static, LogResult<()>>>,
}

pub struct Replicator {
    pub node: NodeId,
    pub core: CoreId,
    pub cores: u16,
    pub membership: Rc<Membership>,
    pub cluster_id: u64,
    dir: PathBuf,
    tick: Duration,
    driver: RefCell<Driver>,
    shards: RefCell<BTreeMap<GroupId, Rc<Shard>>>,
    links: RefCell<BTreeMap<NodeId, Rc<Link>>>,
    mesh: RefCell<Option<Rc<dyn Mesh>>>,
    fates: RefCell<HashMap<Token, oneshot::Sender<Fate>>>,
    reads: RefCell<HashMap<Token, ReadWait>>,
    calls: RefCell<HashMap<u64, CallWait>>,
    next: Cell<u64>,
    kicked: Cell<bool>,
    waker: RefCell<Option<Waker>>,
    in_flight: RefCell<VecDeque<InFlight>>,
    persist_waker: RefCell<Option<Waker>>,
    /// What each group's `shard-NNNN.raft` holds.
    stored: RefCell<BTreeMap<GroupId, Stored>>,
    /// Held while entries are appended to a log of this core: the pump's
    /// and a catch-up's appends never interleave.
    append_lock: glommio::sync::Semaphore,
    /// Catch-ups (log fetched up to a leader's compaction point) done.
    pub catch_ups: Cell<u64>,
    /// Inbound connections that never became a peer link (a failed TLS
    /// handshake, a hello from another cluster, silence).
    pub links_refused: Cell<u64>,
    /// Fault injection (tests): while set, every peer frame in or out is
    /// dropped, as if this node were cut off from the others.
    pub cut_off: Cell<bool>,
    /// Media files arriving from peers.
    pub blobs: crate::media::replica::Inbound,
}

impl Replicator {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        node: NodeId,
        core: CoreId,
        cores: u16,
        membership: Rc<Membership>,
        cluster_id: u64,
        dir: PathBuf,
        tick: Duration,
        driver: Driver,
    ) -> Rc<Replicator> {
        let r = Rc::new(Replicator {
            node,
            core,
            cores,
            membership,
            cluster_id,
            tick,
            driver: RefCell::new(driver),
            shards: RefCell::new(BTreeMap::new()),
            links: RefCell::new(BTreeMap::new()),
            mesh: RefCell::new(None),
            fates: RefCell::new(HashMap::new()),
            reads: RefCell::new(HashMap::new()),
            calls: RefCell::new(HashMap::new()),
            next: Cell::new(1),
            kicked: Cell::new(false),
            waker: RefCell::new(None),
            in_flight: RefCell::new(VecDeque::new()),
            persist_waker: RefCell::new(None),
            stored: RefCell::new(BTreeMap::new()),
            catch_ups: Cell::new(0),
            links_refused: Cell::new(0),
            append_lock: glommio::sync::Semaphore::new(1),
            cut_off: Cell::new(false),
            blobs: crate::media::replica::Inbound::new(&dir, core.0),
            dir,
        });
        LOCAL.with(|l| *l.borrow_mut() = Some(r.clone()));
        r
    }

    pub fn driver(&self) -> std::cell::RefMut<'_, Driver> {
        self.driver.borrow_mut()
    }

    /// Adds this core's replica of `shard` (its group was added to the
    /// driver already, from `stored`).
    pub fn add_shard(&self, shard: Rc<Shard>, stored: Stored) {
        let g = GroupId(shard.id.0 as u32);
        self.stored.borrow_mut().insert(g, stored);
        self.shards.borrow_mut().insert(g, shard);
    }

    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// The group's stored state as last written.
    pub fn stored(&self, group: GroupId) -> Stored {
        self.stored
            .borrow()
            .get(&group)
            .cloned()
            .unwrap_or_default()
    }

    /// Writes the group's hard state and compaction point durably.
    pub async fn store(&self, group: GroupId, stored: Stored) -> Result<(), String> {
        let shard = group.0 as u16;
        super::raft_log::write_hard_state(&self.dir, shard, &stored)
            .await
            .map_err(|e| format!("shard {shard}: hard state: {e}"))?;
        self.stored.borrow_mut().insert(group, stored);
        Ok(())
    }

    pub fn set_mesh(&self, mesh: Rc<dyn Mesh>) {
        *self.mesh.borrow_mut() = Some(mesh);
    }

    fn mesh(&self) -> Rc<dyn Mesh> {
        self.mesh.borrow().clone().expect("mesh set before serving")
    }

    pub fn mesh_handle(&self) -> Rc<dyn Mesh> {
        self.mesh()
    }

    pub fn add_link(&self, link: Rc<Link>) {
        self.links.borrow_mut().insert(link.to, link);
    }

    pub fn links(&self) -> Vec<Rc<Link>> {
        self.links.borrow().values().cloned().collect()
    }

    fn token(&self) -> Token {
        let n = self.next.get();
        self.next.set(n + 1);
        Token(n)
    }

    /// Something for the pump to do.
    pub fn kick(&self) {
        self.kicked.set(true);
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }

    pub fn core_of(&self, group: GroupId) -> CoreId {
        CoreId((group.0 % self.cores as u32) as u16)
    }

    /// Whether this replica leads `group`, and the index its log ends at.
    pub fn lead_state(&self, group: GroupId) -> (Role, Option<NodeId>, u64) {
        match self.driver.borrow().status(group) {
            Some(s) => (s.role, s.leader, s.last_index),
            None => (Role::Follower, None, 0),
        }
    }

    /// Proposes each payload; answers where they went and the waits for
    /// their fates. Stops at the first refusal (`Err` with what was taken).
    pub fn propose_all(
        &self,
        group: GroupId,
        payloads: Vec<Vec<u8>>,
    ) -> Result<Proposals, (ProposeError, usize)> {
        let mut out = Vec::with_capacity(payloads.len());
        let mut driver = self.driver.borrow_mut();
        for p in payloads {
            let token = self.token();
            match driver.propose(group, p, token) {
                Ok(proposed) => {
                    let (tx, rx) = oneshot::channel();
                    self.fates.borrow_mut().insert(token, tx);
                    out.push((proposed.index, rx));
                }
                Err(e) => return Err((e, out.len())),
            }
        }
        drop(driver);
        self.kick();
        Ok(out)
    }

    /// A read index of `group`: reads that began before the call may be
    /// served once the shard applied through it. While there is no
    /// leader (an election), or the one asked died, it asks again, within
    /// `LEADER_WAIT_MS` in all.
    pub async fn read_index(&self, group: GroupId) -> ShardResult<u64> {
        let started = Instant::now();
        let limit = Duration::from_millis(crate::constants::LEADER_WAIT_MS);
        loop {
            if let Some(index) = self.read_index_once(group).await {
                return Ok(index);
            }
            if started.elapsed() >= limit {
                return Err(unavailable("no leader answered the read index"));
            }
            glommio::timer::sleep(Duration::from_millis(crate::constants::LEADER_POLL_MS)).await;
        }
    }

    async fn read_index_once(&self, group: GroupId) -> Option<u64> {
        let token = self.token();
        let (tx, rx) = oneshot::channel();
        let leader = self.lead_state(group).1;
        self.driver.borrow_mut().read_index(group, token).ok()?;
        let wait = ReadWait { group, leader, tx };
        self.reads.borrow_mut().insert(token, wait);
        self.kick();
        let wait = async { rx.await.ok() };
        let give_up = async {
            glommio::timer::sleep(Duration::from_millis(crate::constants::READ_INDEX_TRY_MS)).await;
            None
        };
        let r = futures_lite::future::or(wait, give_up).await;
        self.reads.borrow_mut().remove(&token);
        r
    }

    /// Sends `body` to `group`'s leader on `node`; waits for its answer.
    pub async fn call(&self, node: NodeId, group: GroupId, body: Vec<u8>) -> ShardResult<Vec<u8>> {
        let id = ((self.core.0 as u64) << 48) | self.token().0;
        let link = self
            .links
            .borrow()
            .get(&node)
            .cloned()
            .ok_or_else(|| unavailable("no link to the leader"))?;
        if self.cut_off.get() {
            return Err(unavailable("the leader's node is unreachable"));
        }
        let (tx, rx) = oneshot::channel();
        self.calls.borrow_mut().insert(id, (node, tx));
        if !link.send(&Frame::Call { id, group, body }) {
            self.calls.borrow_mut().remove(&id);
            return Err(unavailable("the leader's node is unreachable"));
        }
        let wait = async { rx.await.map_err(|_| unavailable("call dropped")) };
        let give_up = async {
            glommio::timer::sleep(Duration::from_millis(crate::constants::FORWARD_WAIT_MS)).await;
            Err(unavailable("the leader did not answer in time"))
        };
        let r = futures_lite::future::or(wait, give_up).await;
        self.calls.borrow_mut().remove(&id);
        r
    }

    /// The answer to a call this core made.
    pub fn answered(&self, id: u64, body: Vec<u8>) {
        if let Some((_, tx)) = self.calls.borrow_mut().remove(&id) {
            let _ = tx.send(body);
        }
    }

    /// The link to `node` went down: its calls will not be answered (they
    /// fail now, `unavailable`), and raft probes it instead of streaming.
    pub fn link_down(&self, node: NodeId) {
        self.calls.borrow_mut().retain(|_, (to, _)| *to != node);
        self.driver.borrow_mut().report_unreachable(node);
    }

    /// Sends an answer back to `node`.
    pub fn answer(&self, node: NodeId, id: u64, body: Vec<u8>) {
        if self.cut_off.get() {
            return;
        }
        if let Some(link) = self.links.borrow().get(&node) {
            link.send(&Frame::Answer { id, body });
        }
    }

    /// A raft message for a group of this core. A snapshot is a leader's
    /// compaction point: this replica fetches the log up to it instead
    /// (`catch_up.rs`).
    pub fn step(self: &Rc<Self>, group: GroupId, msg: chat_replication::eraftpb::Message) {
        if msg.get_msg_type() == MessageType::MsgSnapshot {
            super::catch_up::on_snapshot(self, group, &msg);
            return;
        }
        match self.driver.borrow_mut().step(group, msg) {
            Ok(()) | Err(chat_replication::StepError::Paused) => {}
            Err(e) => warn!(group = group.0, error = ?e, "peer message refused"),
        }
        self.kick();
    }

    pub fn shard(&self, group: GroupId) -> Option<Rc<Shard>> {
        self.shards.borrow().get(&group).cloned()
    }

    /// Frames from a peer (any core): raft messages and calls go to the
    /// core of their group, answers to the core that called.
    pub fn on_frame(self: &Rc<Self>, from: NodeId, frame: Frame) {
        if self.cut_off.get() {
            return;
        }
        match frame {
            Frame::Raft(msgs) => {
                let mut by_core: BTreeMap<CoreId, Vec<_>> = BTreeMap::new();
                for (g, m) in msgs {
                    by_core.entry(self.core_of(g)).or_default().push((g, m));
                }
                for (core, msgs) in by_core {
                    self.on_core(core, move |r| {
                        for (g, m) in msgs {
                            r.step(g, m);
                        }
                    });
                }
            }
            Frame::Call { id, group, body } => {
                self.on_core(self.core_of(group), move |r| {
                    super::serve::serve_call(r.clone(), from, id, group, body)
                });
            }
            Frame::Answer { id, body } => {
                let core = CoreId((id >> 48) as u16);
                self.on_core(core, move |r| r.answered(id, body));
            }
            Frame::Hello { .. } => {}
        }
    }

    fn on_core(self: &Rc<Self>, core: CoreId, f: impl FnOnce(&Rc<Replicator>) + Send + 'static) {
        if core == self.core {
            f(self);
            return;
        }
        let mesh = self.mesh();
        glommio::spawn_local(async move {
            mesh.complete_on(core, Box::new(move || with_local(f)))
                .await;
        })
        .detach();
    }

    /// The pump: ticks, collects, and carries out the driver's output.
    pub async fn pump(self: Rc<Self>) {
        let mut next_tick = Instant::now() + self.tick;
        loop {
            let now = Instant::now();
            if now >= next_tick {
                self.driver.borrow_mut().tick();
                next_tick = now + self.tick;
            }
            let out = self.driver.borrow_mut().collect();
            if !out.is_empty() {
                self.handle(out).await;
                continue;
            }
            let wait = poll_fn(|cx| {
                if self.kicked.replace(false) {
                    Poll::Ready(())
                } else {
                    *self.waker.borrow_mut() = Some(cx.waker().clone());
                    Poll::Pending
                }
            });
            let left = next_tick.saturating_duration_since(Instant::now());
            futures_lite::future::or(wait, glommio::timer::sleep(left)).await;
        }
    }

    async fn handle(self: &Rc<Self>, out: Output) {
        self.check_roles();
        self.send(out.send);
        let mut durable = Vec::new();
        for p in out.persist {
            match self.persist(p).await {
                Ok(Some(d)) => durable.push(d),
                Ok(None) => {}
                Err(e) => fatal(&e),
            }
        }
        if let Some(batch) = out.batch {
            self.in_flight
                .borrow_mut()
                .push_back(InFlight { batch, durable });
            if let Some(w) = self.persist_waker.borrow_mut().take() {
                w.wake();
            }
        }
        let mesh = self.mesh();
        for a in out.apply {
            match a {
                Apply::Entries { group, entries } => {
                    if let Some(s) = self.shard(group) {
                        s.apply_committed(&mesh, &entries);
                        if let Err(e) = self.maybe_compact(&s).await {
                            fatal(&e);
                        }
                    }
                }
                Apply::Snapshot { group, .. } => fatal(&format!(
                    "group {group}: snapshot install is not served yet"
                )),
            }
        }
        self.settle(out.outcomes, out.reads);
    }

    fn settle(&self, outcomes: Vec<Outcome>, reads: Vec<chat_replication::ReadDone>) {
        let mut fates = self.fates.borrow_mut();
        for o in outcomes {
            let (token, fate) = match o {
                Outcome::Committed { token, index, .. } => (token, Fate::Committed(index)),
                Outcome::Lost { token, .. } | Outcome::Unknown { token, .. } => (token, Fate::Lost),
            };
            if let Some(tx) = fates.remove(&token) {
                let _ = tx.send(fate);
            }
        }
        let mut waits = self.reads.borrow_mut();
        for r in reads {
            if let Some(w) = waits.remove(&r.token) {
                let _ = w.tx.send(r.index);
            }
        }
    }

    /// A replica that applied past the commit index and no longer leads
    /// holds entries another leader may replace: it rebuilds.
    fn check_roles(&self) {
        self.drop_stale_reads();
        let shards: Vec<_> = self
            .shards
            .borrow()
            .iter()
            .map(|(g, s)| (*g, s.clone()))
            .collect();
        for (g, s) in shards {
            let (role, _, _) = self.lead_state(g);
            if role != Role::Leader {
                s.demoted();
            }
        }
    }

    /// Read indexes asked of a leader that no longer leads are dropped:
    /// their callers ask again (of the new leader) instead of waiting out
    /// `READ_INDEX_TRY_MS` for an answer that will not come.
    fn drop_stale_reads(&self) {
        let driver = self.driver.borrow();
        let leader = |g: GroupId| driver.status(g).and_then(|s| s.leader);
        self.reads
            .borrow_mut()
            .retain(|_, w| leader(w.group) == w.leader);
    }

    fn send(&self, msgs: Vec<Outgoing>) {
        if self.cut_off.get() {
            return;
        }
        let mut by_node: BTreeMap<NodeId, Vec<_>> = BTreeMap::new();
        for m in msgs {
            by_node.entry(m.to).or_default().push((m.group, m.msg));
        }
        let links = self.links.borrow();
        for (node, msgs) in by_node {
            let Some(link) = links.get(&node) else {
                continue;
            };
            for batch in chat_replication::raft_batches(msgs) {
                self.send_batch(link, node, batch);
            }
        }
    }

    /// One frame of raft messages to `node`; a frame the link cannot take
    /// makes the node unreachable for raft (it probes again).
    fn send_batch(&self, link: &Link, node: NodeId, msgs: Vec<(GroupId, Message)>) {
        let groups: Vec<GroupId> = msgs.iter().map(|(g, _)| *g).collect();
        let snapshots: Vec<GroupId> = msgs
            .iter()
            .filter(|(_, m)| m.get_msg_type() == MessageType::MsgSnapshot)
            .map(|(g, _)| *g)
            .collect();
        let sent = link.send(&Frame::Raft(msgs));
        let mut d = self.driver.borrow_mut();
        if !sent {
            d.report_unreachable(node);
            for g in groups {
                d.report_snapshot(g, node, false);
            }
            return;
        }
        // A snapshot names the compaction point only; the follower fetches
        // the log itself, so it is delivered once sent: the leader probes
        // from after it (one append per heartbeat).
        for g in snapshots {
            d.report_snapshot(g, node, true);
        }
    }

    async fn persist(
        &self,
        p: chat_replication::Persist,
    ) -> Result<Option<LocalBoxFuture<'static, LogResult<()>>>, String> {
        let shard = self
            .shard(p.group)
            .ok_or_else(|| format!("persist for unknown group {}", p.group))?;
        if p.snapshot.is_some() {
            return Err(format!(
                "group {}: snapshot install is not served yet",
                p.group
            ));
        }
        if let Some(hs) = &p.hard_state {
            let mut stored = self.stored(p.group);
            let old = &stored.hard_state;
            if old.term != hs.term || old.vote != hs.vote {
                stored.hard_state = hs.clone();
                self.store(p.group, stored).await?;
            }
        }
        if p.entries.is_empty() {
            return Ok(None);
        }
        let durable = self.append(&shard, &p.entries).await?;
        Ok(Some(durable))
    }

    /// Appends entries to `shard`'s log at their indices (a conflicting
    /// suffix goes first); answers the wait for their durability.
    pub async fn append(
        &self,
        shard: &Shard,
        entries: &[chat_replication::eraftpb::Entry],
    ) -> Result<LocalBoxFuture<'static, LogResult<()>>, String> {
        let _permit = self
            .append_lock
            .acquire_permit(1)
            .await
            .map_err(|e| e.to_string())?;
        super::raft_log::append(&*shard.log, entries)
            .await
            .map_err(|e| format!("shard {}: append: {e}", shard.id.0))
    }

    /// The persister: reports batches durable, in order, and sends the
    /// messages that waited for them (a follower's acks).
    pub async fn persister(self: Rc<Self>) {
        loop {
            let next = poll_fn(|cx| match self.in_flight.borrow_mut().pop_front() {
                Some(b) => Poll::Ready(b),
                None => {
                    *self.persist_waker.borrow_mut() = Some(cx.waker().clone());
                    Poll::Pending
                }
            })
            .await;
            for d in next.durable {
                if let Err(e) = d.await {
                    fatal(&format!("a Raft append did not become durable: {e}"));
                }
            }
            let held = self.driver.borrow_mut().persisted(next.batch);
            self.send(held);
            self.kick();
        }
    }

    /// Stores the hard states as they are now (shutdown: the commit index
    /// saves replay work at the next start).
    pub async fn save_hard_states(&self) {
        let shards: Vec<_> = self.shards.borrow().values().cloned().collect();
        for s in shards {
            let g = GroupId(s.id.0 as u32);
            let hs = self.driver.borrow().store(g).map(|st| st.hard_state());
            if let Some(hs) = hs {
                let mut stored = self.stored(g);
                stored.hard_state = hs;
                let _ = self.store(g, stored).await;
            }
        }
    }

    /// Drops applied entries from Raft's view once more than twice the
    /// compaction interval are held (or too many bytes), keeping the last
    /// interval for followers a little behind. The compaction point is
    /// stored first: a restart hands raft-rs only what follows it.
    async fn maybe_compact(&self, shard: &Shard) -> Result<(), String> {
        let g = shard.group();
        let keep = shard.config.snapshot_records.min(RAFT_KEEP_ENTRIES_MAX);
        let (base, bytes, term_of, conf, hs) = {
            let d = self.driver.borrow();
            let Some(st) = d.store(g) else { return Ok(()) };
            let applied = shard.committed().0;
            let target = if st.held_bytes() > RAFT_HELD_BYTES_MAX {
                applied
            } else {
                applied.saturating_sub(keep)
            };
            (
                st.base().0,
                st.held_bytes(),
                st.term_of(target).map(|t| (target, t)),
                st.conf_state(),
                st.hard_state(),
            )
        };
        let Some((index, term)) = term_of.filter(|(i, _)| *i > base) else {
            return Ok(());
        };
        if index < base + keep && bytes <= RAFT_HELD_BYTES_MAX {
            return Ok(());
        }
        let stored = Stored {
            hard_state: hs,
            base: Base { index, term },
        };
        self.store(g, stored).await?;
        let mut snapshot = Snapshot::default();
        snapshot.mut_metadata().index = index;
        snapshot.mut_metadata().term = term;
        *snapshot.mut_metadata().mut_conf_state() = conf;
        self.driver.borrow_mut().compact(g, snapshot);
        Ok(())
    }

    /// Whether every group of this core knows a leader.
    pub fn all_led(&self) -> bool {
        let d = self.driver.borrow();
        let groups: Vec<GroupId> = d.groups().collect();
        groups.into_iter().all(|g| d.leader(g).is_some())
    }
}

/// The node cannot keep Raft's promises (a write to its own disk failed):
/// it stops; the others go on, and it catches up when restarted.
pub(crate) fn fatal(why: &str) -> ! {
    error!("{why}: stopping this node");
    std::process::exit(1);
}
