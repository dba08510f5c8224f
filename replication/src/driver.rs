//! `Driver`: every Raft group of one core, driven sans-IO.
//!
//! The shell feeds it ticks, peer messages and proposals, and takes its
//! `Output` with `collect`: messages to send now, one write batch for all
//! groups (one fdatasync covers them: batched fsyncs across the groups of
//! a core), committed entries to apply, and the fate of its proposals.
//! Once a batch is durable the shell reports it with `persisted` and
//! sends what was held for it (a follower's acknowledgements, votes).
//! Nothing here reads a clock, a socket or a file.
//!
//! Lives on one core; owns nothing shared.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use raft::eraftpb::{Message, MessageType, Snapshot};
use raft::{Config, RawNode, StateRole};

use crate::constants::*;
use crate::group::Group;
use crate::ids::{BatchId, GroupId, NodeId, Token};
use crate::outcome::{Apply, Outgoing, Output, Persist};
use crate::status::{DriverStats, GroupStatus};
use crate::store::{Boot, GroupStore};

/// Timing and seeding of a driver.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    pub election_ticks: usize,
    pub heartbeat_ticks: usize,
    /// Seeds the election timeouts (see `Group::pin_timeout`).
    pub seed: u64,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            election_ticks: ELECTION_TICKS_DEFAULT,
            heartbeat_ticks: HEARTBEAT_TICKS_DEFAULT,
            seed: 0,
        }
    }
}

/// Why a proposal was not taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProposeError {
    UnknownGroup,
    /// This replica does not lead; `leader` if it knows who does.
    NotLeader {
        leader: Option<NodeId>,
    },
    /// Over `PROPOSAL_SIZE_BYTES_MAX`.
    TooLarge,
    /// Raft dropped it (a leader transfer, or too much uncommitted).
    Dropped,
}

/// Why a peer message was not taken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StepError {
    UnknownGroup(GroupId),
    /// Addressed to another node.
    Misrouted {
        to: u64,
    },
    /// raft-rs refused it (a local message type, an unknown peer).
    Refused(String),
    /// The group is paused (its shell is catching up out of band): what
    /// would change its log waits.
    Paused,
}

/// Where a proposal went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Proposed {
    pub index: u64,
    pub term: u64,
}

/// A batch handed out and not yet reported durable.
struct Batch {
    id: BatchId,
    /// (group, its epoch, ready number, snapshot index if the ready held one).
    readies: Vec<(GroupId, u64, u64, Option<u64>)>,
    held: Vec<Outgoing>,
}

/// Every group of one core.
pub struct Driver {
    node: NodeId,
    settings: Settings,
    groups: BTreeMap<GroupId, Group>,
    /// Groups that neither tick nor take appends (`pause`).
    paused: BTreeSet<GroupId>,
    /// Outcomes of groups reset since the last collect.
    abandoned: Vec<crate::outcome::Outcome>,
    next_epoch: u64,
    in_flight: VecDeque<Batch>,
    next_batch: u64,
    ticks: u64,
    stats: DriverStats,
    logger: slog::Logger,
}

impl Driver {
    pub fn new(node: NodeId, settings: Settings) -> Driver {
        assert!(node.0 != 0, "node id 0 is reserved");
        Driver {
            node,
            settings,
            groups: BTreeMap::new(),
            paused: BTreeSet::new(),
            abandoned: Vec::new(),
            next_epoch: 1,
            in_flight: VecDeque::new(),
            next_batch: 1,
            ticks: 0,
            stats: DriverStats::default(),
            logger: crate::logger::logger(),
        }
    }

    pub fn node(&self) -> NodeId {
        self.node
    }

    /// Adds this node's replica of `group`, held by `replicas` (the
    /// placement's order: the preferred leader first), from durable state.
    pub fn add_group(
        &mut self,
        group: GroupId,
        replicas: &[NodeId],
        mut boot: Boot,
    ) -> Result<(), String> {
        assert!(
            !self.groups.contains_key(&group),
            "group {group} added twice"
        );
        if !replicas.contains(&self.node) {
            return Err(format!(
                "node {} holds no replica of group {group}",
                self.node
            ));
        }
        let mut voters: Vec<u64> = replicas.iter().map(|n| n.0).collect();
        voters.sort_unstable();
        let conf = boot.snapshot.mut_metadata().mut_conf_state();
        if conf.voters.is_empty() {
            conf.voters = voters.clone();
        }
        if conf.voters != voters {
            return Err(format!(
                "group {group}: stored voters {:?}, placement {voters:?}",
                conf.voters
            ));
        }
        let applied = boot.applied.max(boot.snapshot.get_metadata().index);
        let store = GroupStore::boot(boot);
        let config = self.config(applied.min(store.hard_state().commit));
        let raw = RawNode::new(&config, store.clone(), &self.logger).map_err(|e| e.to_string())?;
        let timeouts = (config.min_election_tick(), config.max_election_tick());
        let epoch = self.next_epoch;
        self.next_epoch += 1;
        let g = Group::new(
            group,
            raw,
            store,
            replicas.to_vec(),
            epoch,
            self.settings.seed,
            timeouts,
        );
        self.groups.insert(group, g);
        Ok(())
    }

    /// Replaces this node's replica of `group` by one rebuilt from durable
    /// state (the shell wrote entries to the log out of band: a follower
    /// that fetched the committed log up to a leader's compaction point).
    /// Its proposals still waiting are lost; batches in flight for the old
    /// replica are not reported to the new one. Unpauses it.
    pub fn reset_group(&mut self, group: GroupId, boot: Boot) -> Result<(), String> {
        let mut old = self
            .groups
            .remove(&group)
            .ok_or_else(|| format!("reset of unknown group {group}"))?;
        old.abandon(&mut self.abandoned);
        self.stats.resets += 1;
        self.paused.remove(&group);
        self.add_group(group, &old.replicas, boot)
    }

    /// A paused group does not tick (never campaigns) and refuses appends,
    /// snapshots and leader transfers, so that its shell may write its log
    /// out of band; heartbeats and votes still step.
    pub fn pause(&mut self, group: GroupId, paused: bool) {
        if paused {
            self.paused.insert(group);
        } else {
            self.paused.remove(&group);
        }
    }

    pub fn is_paused(&self, group: GroupId) -> bool {
        self.paused.contains(&group)
    }

    fn config(&self, applied: u64) -> Config {
        Config {
            id: self.node.0,
            election_tick: self.settings.election_ticks,
            heartbeat_tick: self.settings.heartbeat_ticks,
            applied,
            max_size_per_msg: APPEND_SIZE_BYTES_MAX,
            max_inflight_msgs: APPENDS_IN_FLIGHT_MAX,
            check_quorum: true,
            pre_vote: true,
            max_uncommitted_size: UNCOMMITTED_SIZE_BYTES_MAX,
            max_committed_size_per_ready: COMMITTED_SIZE_PER_READY_BYTES_MAX,
            ..Config::default()
        }
    }

    /// One tick of every group; now and then, hands leadership to the
    /// preferred replica when it is caught up (leadership balance).
    pub fn tick(&mut self) {
        self.ticks += 1;
        let balance = self.ticks.is_multiple_of(BALANCE_INTERVAL_TICKS);
        for g in self.groups.values_mut() {
            if self.paused.contains(&g.id) {
                continue;
            }
            // Before the tick: a tick that ends an election timeout resets
            // every follower's `recent_active` (check quorum).
            if balance {
                balance_leader(g, self.node);
            }
            g.raw.tick();
            g.pin_timeout();
        }
    }

    /// A message from a peer for `group`.
    pub fn step(&mut self, group: GroupId, msg: Message) -> Result<(), StepError> {
        if msg.to != self.node.0 {
            return Err(StepError::Misrouted { to: msg.to });
        }
        let g = self
            .groups
            .get_mut(&group)
            .ok_or(StepError::UnknownGroup(group))?;
        let changes_log = matches!(
            msg.get_msg_type(),
            MessageType::MsgAppend | MessageType::MsgSnapshot | MessageType::MsgTimeoutNow
        );
        if changes_log && self.paused.contains(&group) {
            return Err(StepError::Paused);
        }
        let r = g
            .raw
            .step(msg)
            .map_err(|e| StepError::Refused(e.to_string()));
        g.pin_timeout();
        r
    }

    /// Proposes `data` to `group`; the outcome comes out of a later
    /// `collect` with `token`.
    pub fn propose(
        &mut self,
        group: GroupId,
        data: Vec<u8>,
        token: Token,
    ) -> Result<Proposed, ProposeError> {
        if data.len() > PROPOSAL_SIZE_BYTES_MAX {
            return Err(ProposeError::TooLarge);
        }
        let g = self
            .groups
            .get_mut(&group)
            .ok_or(ProposeError::UnknownGroup)?;
        if g.raw.raft.state != StateRole::Leader {
            let leader = Some(g.raw.raft.leader_id).filter(|&l| l != 0).map(NodeId);
            return Err(ProposeError::NotLeader { leader });
        }
        let before = g.raw.raft.raft_log.last_index();
        if g.raw.propose(Vec::new(), data).is_err() {
            self.stats.proposals_dropped += 1;
            return Err(ProposeError::Dropped);
        }
        let (index, term) = (g.raw.raft.raft_log.last_index(), g.raw.raft.term);
        assert_eq!(index, before + 1, "a proposal is one entry");
        g.track(index, term, token);
        Ok(Proposed { index, term })
    }

    /// Asks for a read index of `group` (linearizable reads on any
    /// replica): it comes out of a later `collect` as a `ReadDone` with
    /// `token` once this replica learned the leader's commit index as of
    /// now, confirmed by a quorum. Without a leader raft-rs drops the
    /// request: the caller bounds its wait.
    pub fn read_index(&mut self, group: GroupId, token: Token) -> Result<(), ProposeError> {
        let g = self
            .groups
            .get_mut(&group)
            .ok_or(ProposeError::UnknownGroup)?;
        if g.raw.raft.leader_id == 0 {
            return Err(ProposeError::NotLeader { leader: None });
        }
        g.raw.read_index(token.0.to_le_bytes().to_vec());
        Ok(())
    }

    /// Whether `collect` has anything to hand out.
    pub fn has_ready(&self) -> bool {
        !self.abandoned.is_empty() || self.groups.values().any(|g| g.raw.has_ready())
    }

    /// Takes every group's ready work as one output.
    pub fn collect(&mut self) -> Output {
        let mut out = Output::default();
        out.outcomes.append(&mut self.abandoned);
        let mut batch = Batch {
            id: BatchId(self.next_batch),
            readies: Vec::new(),
            held: Vec::new(),
        };
        for g in self.groups.values_mut() {
            collect_group(g, &mut out, &mut batch, &mut self.stats);
        }
        if batch.readies.is_empty() {
            return out;
        }
        if out.persist.is_empty() && self.in_flight.is_empty() {
            out.send.append(&mut self.finish(batch));
            return out;
        }
        self.next_batch += 1;
        out.batch = Some(batch.id);
        self.in_flight.push_back(batch);
        out
    }

    /// The batch's writes are durable (and every earlier batch's): returns
    /// the messages that waited for them.
    pub fn persisted(&mut self, id: BatchId) -> Vec<Outgoing> {
        let batch = self
            .in_flight
            .pop_front()
            .expect("persisted with no batch in flight");
        assert_eq!(batch.id, id, "batches are reported in order");
        self.finish(batch)
    }

    fn finish(&mut self, batch: Batch) -> Vec<Outgoing> {
        for (group, epoch, number, snapshot) in batch.readies {
            let g = self.groups.get_mut(&group).expect("a batch's group stays");
            if g.epoch != epoch {
                continue; // made by a replica since reset
            }
            g.raw.on_persist_ready(number);
            if let Some(index) = snapshot.filter(|&i| i > g.raw.raft.raft_log.applied) {
                g.raw.advance_apply_to(index);
            }
        }
        batch.held
    }

    /// The shell stored `snapshot` of its state machine (at an applied
    /// index): the log before it may go.
    pub fn compact(&mut self, group: GroupId, snapshot: Snapshot) {
        let g = self
            .groups
            .get_mut(&group)
            .expect("compact of a known group");
        assert!(
            snapshot.get_metadata().index <= g.raw.raft.raft_log.applied,
            "snapshot past applied"
        );
        g.store.compact(snapshot);
    }

    /// A peer could not be reached: raft-rs probes it instead of streaming.
    pub fn report_unreachable(&mut self, node: NodeId) {
        for g in self.groups.values_mut() {
            g.raw.report_unreachable(node.0);
        }
    }

    /// The snapshot sent to `node` for `group` arrived, or failed.
    pub fn report_snapshot(&mut self, group: GroupId, node: NodeId, delivered: bool) {
        if let Some(g) = self.groups.get_mut(&group) {
            let status = if delivered {
                raft::SnapshotStatus::Finish
            } else {
                raft::SnapshotStatus::Failure
            };
            g.raw.report_snapshot(node.0, status);
        }
    }

    /// Starts an election in `group` now (tests, operators).
    pub fn campaign(&mut self, group: GroupId) {
        if let Some(g) = self.groups.get_mut(&group) {
            let _ = g.raw.campaign();
        }
    }

    pub fn groups(&self) -> impl Iterator<Item = GroupId> + '_ {
        self.groups.keys().copied()
    }

    /// The leader of `group` as this replica knows it.
    pub fn leader(&self, group: GroupId) -> Option<NodeId> {
        let g = self.groups.get(&group)?;
        Some(g.raw.raft.leader_id).filter(|&l| l != 0).map(NodeId)
    }

    pub fn status(&self, group: GroupId) -> Option<GroupStatus> {
        self.groups.get(&group).map(GroupStatus::of)
    }

    pub fn stats(&self) -> DriverStats {
        self.stats
    }

    /// The store of `group` (read-only use: tests, catch-up reads).
    pub fn store(&self, group: GroupId) -> Option<&GroupStore> {
        self.groups.get(&group).map(|g| &g.store)
    }
}

/// One group's ready, split into the output and the batch.
fn collect_group(g: &mut Group, out: &mut Output, batch: &mut Batch, stats: &mut DriverStats) {
    g.take_overwritten(&mut out.outcomes);
    if !g.raw.has_ready() {
        return;
    }
    let mut rd = g.raw.ready();
    if rd.ss().is_some_and(|ss| ss.raft_state == StateRole::Leader) {
        stats.leaderships += 1;
    }
    let id = g.id;
    let to_out = move |m: Message| Outgoing {
        group: id,
        to: NodeId(m.to),
        msg: m,
    };
    let msgs = rd.take_messages();
    stats.snapshots_sent += msgs
        .iter()
        .filter(|m| m.get_msg_type() == MessageType::MsgSnapshot)
        .count() as u64;
    out.send.extend(msgs.into_iter().map(to_out));
    out.reads.extend(read_dones(id, rd.take_read_states()));
    let mut persist = Persist {
        group: g.id,
        must_sync: rd.must_sync(),
        ..Persist::default()
    };
    let mut snap_index = None;
    if !rd.snapshot().is_empty() {
        let snapshot = rd.snapshot().clone();
        g.store.install(&snapshot);
        g.resolve_unknown(snapshot.get_metadata().index, &mut out.outcomes);
        snap_index = Some(snapshot.get_metadata().index);
        out.apply.push(Apply::Snapshot {
            group: g.id,
            snapshot: snapshot.clone(),
        });
        persist.snapshot = Some(snapshot);
    }
    persist.entries = rd.take_entries();
    g.store.append(&persist.entries);
    if let Some(hs) = rd.hs() {
        g.store.set_hard_state(hs.clone());
        persist.hard_state = Some(hs.clone());
    }
    let committed = rd.take_committed_entries();
    for e in &committed {
        g.resolve(e, &mut out.outcomes);
    }
    batch
        .held
        .extend(rd.take_persisted_messages().into_iter().map(to_out));
    batch.readies.push((g.id, g.epoch, rd.number(), snap_index));
    g.raw.advance_append_async(rd);
    if let Some(last) = committed.last() {
        g.raw.advance_apply_to(last.index);
        out.apply.push(Apply::Entries {
            group: g.id,
            entries: committed,
        });
    }
    if persist.snapshot.is_some() || !persist.entries.is_empty() || persist.hard_state.is_some() {
        out.persist.push(persist);
    }
}

/// Hands leadership of `g` to its preferred replica when this node leads
/// in its place and the preferred one has every entry.
fn balance_leader(g: &mut Group, me: NodeId) {
    let preferred = g.preferred();
    if !g.is_leader() || preferred == me || g.pending() > 0 {
        return;
    }
    let last = g.raw.raft.raft_log.last_index();
    let ready = g
        .raw
        .raft
        .prs()
        .get(preferred.0)
        .is_some_and(|p| p.matched == last && p.recent_active);
    if ready {
        g.raw.transfer_leader(preferred.0);
    }
}

/// The read indexes this replica asked for, out of raft-rs' read states.
fn read_dones(
    group: GroupId,
    states: Vec<raft::ReadState>,
) -> impl Iterator<Item = crate::outcome::ReadDone> {
    states.into_iter().filter_map(move |rs| {
        // Only our own requests carry a context, always 8 bytes.
        let token = <[u8; 8]>::try_from(&rs.request_ctx[..]).ok()?;
        Some(crate::outcome::ReadDone {
            group,
            token: Token(u64::from_le_bytes(token)),
            index: rs.index,
        })
    })
}
