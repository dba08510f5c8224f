//! One seeded run: three nodes, each a `Driver` over a simulated disk,
//! talking over a simulated network, with crashes, torn writes,
//! partitions, drops, duplicates and reordering; then a settling phase
//! with the faults off, after which every replica must agree and hold
//! every acknowledged entry.

use std::collections::BTreeMap;

use chat_replication::eraftpb::{MessageType, Snapshot};
use chat_replication::{
    Apply, Driver, GroupId, Membership, NodeId, Outgoing, Output, ProposeError, Settings, Token,
};

use crate::disk::{Disk, Pending};
use crate::machine::Machine;
use crate::model::{Check, Counts, Model};
use crate::net::{Faults, Net};
use crate::rng::{mix, Rng};

const NODES: u64 = 3;
const GROUPS: u32 = 3;
const TICK_MS: u64 = 10;
const COMPACT_EVERY_ENTRIES: u64 = 40;

pub struct Params {
    pub steps_ms: u64,
    pub settle_ms: u64,
}

struct SimNode {
    driver: Driver,
    machines: BTreeMap<GroupId, Machine>,
}

pub struct World {
    seed: u64,
    rng: Rng,
    now: u64,
    faults: Faults,
    net: Net,
    disks: Vec<Disk>,
    nodes: Vec<Option<SimNode>>,
    down_until: Vec<u64>,
    membership: Membership,
    model: Model,
    next_token: u64,
}

/// What a finished run reports: its counts and a digest of its history.
pub struct Report {
    pub counts: Counts,
    pub digest: u64,
    pub sent: u64,
    pub dropped: u64,
}

impl World {
    pub fn new(seed: u64) -> World {
        let mut rng = Rng::new(seed);
        let members: Vec<_> = (1..=NODES)
            .map(|i| (NodeId(i), format!("sim{i}:1")))
            .collect();
        let membership = Membership::spread(&members, GROUPS, 3).expect("valid membership");
        let faults = Faults {
            drop_per_million: rng.below(100_000),
            dup_per_million: rng.below(50_000),
            delay_ms_max: 1 + rng.below(15),
        };
        let mut w = World {
            seed,
            rng,
            now: 0,
            faults,
            net: Net::default(),
            disks: (0..NODES).map(|_| Disk::default()).collect(),
            nodes: (0..NODES).map(|_| None).collect(),
            down_until: vec![0; NODES as usize],
            membership,
            model: Model::default(),
            next_token: 1,
        };
        for i in 0..NODES as usize {
            w.start(i).expect("a fresh node starts");
        }
        w
    }

    pub fn run(mut self, p: &Params) -> Result<Report, String> {
        for _ in 0..p.steps_ms {
            self.step(true)?;
        }
        self.settle(p.settle_ms)?;
        Ok(self.report())
    }

    fn start(&mut self, i: usize) -> Check {
        let node = NodeId(i as u64 + 1);
        let settings = Settings {
            election_ticks: 10,
            heartbeat_ticks: 2,
            seed: mix(self.seed, node.0),
        };
        let mut driver = Driver::new(node, settings);
        let mut machines = BTreeMap::new();
        for g in self.membership.groups_on(node) {
            let disk = self.disks[i].groups.entry(g).or_default();
            let m = Machine::restore(&disk.snapshot);
            driver.add_group(g, self.membership.replicas(g), disk.boot())?;
            self.model.state(node, g, &m)?;
            machines.insert(g, m);
        }
        self.nodes[i] = Some(SimNode { driver, machines });
        Ok(())
    }

    fn step(&mut self, faulty: bool) -> Check {
        self.now += 1;
        self.deliver();
        self.complete_writes();
        for i in 0..NODES as usize {
            if let Some(n) = self.nodes[i].as_mut() {
                if (self.now + i as u64 * 3).is_multiple_of(TICK_MS) {
                    n.driver.tick();
                }
            }
        }
        if faulty {
            self.clients();
            self.faults_step()?;
        }
        for i in 0..NODES as usize {
            self.pump(i)?;
        }
        self.check_leaders()
    }

    fn deliver(&mut self) {
        for m in self.net.due(self.now) {
            let i = (m.to.0 - 1) as usize;
            let snapshot = m.msg.get_msg_type() == MessageType::MsgSnapshot;
            if snapshot {
                let alive = self.nodes[i].is_some();
                if let Some(from) = self.nodes[(m.from.0 - 1) as usize].as_mut() {
                    from.driver.report_snapshot(m.group, m.to, alive);
                }
            }
            if let Some(n) = self.nodes[i].as_mut() {
                // A refused message (a stale peer, a local type) is dropped,
                // as the real link drops it.
                let _ = n.driver.step(m.group, m.msg);
            }
        }
    }

    fn complete_writes(&mut self) {
        for i in 0..NODES as usize {
            let Some(n) = self.nodes[i].as_mut() else {
                continue;
            };
            for batch in self.disks[i].complete(self.now) {
                for o in n.driver.persisted(batch) {
                    send(&mut self.net, &mut self.rng, &self.faults, self.now, n, o);
                }
            }
        }
    }

    /// Clients propose to a random node's group, following a leader hint once.
    fn clients(&mut self) {
        if !self.rng.chance(300_000) {
            return;
        }
        let g = GroupId(self.rng.below(GROUPS as u64) as u32);
        let i = self.rng.below(NODES) as usize;
        self.propose(i, g);
    }

    fn propose(&mut self, i: usize, g: GroupId) -> bool {
        let value = self.rng.next();
        let token = Token(self.next_token);
        let Some(n) = self.nodes[i].as_mut() else {
            return false;
        };
        match n.driver.propose(g, value.to_le_bytes().to_vec(), token) {
            Ok(_) => {
                self.next_token += 1;
                self.model.proposals.insert(token, (g, value));
                self.model.counts.proposed += 1;
                true
            }
            Err(ProposeError::NotLeader { leader: Some(l) }) if l.0 != i as u64 + 1 => {
                self.propose((l.0 - 1) as usize, g)
            }
            Err(_) => {
                self.model.counts.refused += 1;
                false
            }
        }
    }

    fn faults_step(&mut self) -> Check {
        for i in 0..NODES as usize {
            if self.nodes[i].is_some() && self.rng.chance(400) {
                self.nodes[i] = None;
                self.disks[i].crash(&mut self.rng);
                self.down_until[i] = self.now + 20 + self.rng.below(600);
                self.model.counts.crashes += 1;
            } else if self.nodes[i].is_none() && self.now >= self.down_until[i] {
                self.start(i)?;
            }
        }
        if self.rng.chance(700) {
            self.partition();
        }
        Ok(())
    }

    fn partition(&mut self) {
        let a = NodeId(1 + self.rng.below(NODES));
        let b = NodeId(1 + (a.0 + self.rng.below(NODES - 1)) % NODES);
        match self.rng.below(3) {
            0 => self.net.cuts.clear(),
            1 => {
                for other in (1..=NODES).map(NodeId).filter(|&o| o != a) {
                    self.net.cuts.insert((a, other));
                    self.net.cuts.insert((other, a));
                }
            }
            _ => {
                self.net.cuts.insert((a, b));
            }
        }
        self.model.counts.partitions += 1;
    }

    fn pump(&mut self, i: usize) -> Check {
        for _ in 0..16 {
            let Some(n) = self.nodes[i].as_mut() else {
                return Ok(());
            };
            if !n.driver.has_ready() {
                break;
            }
            let out = n.driver.collect();
            self.handle(i, out)?;
        }
        self.maybe_compact(i);
        Ok(())
    }

    fn handle(&mut self, i: usize, out: Output) -> Check {
        let node = NodeId(i as u64 + 1);
        let n = self.nodes[i].as_mut().expect("a live node");
        for o in out.send {
            send(&mut self.net, &mut self.rng, &self.faults, self.now, n, o);
        }
        for p in &out.persist {
            for e in &p.entries {
                self.model.written(p.group, e)?;
            }
        }
        if let Some(batch) = out.batch {
            let prev = self.disks[i].queue.back().map_or(0, |p| p.done_at);
            let done_at = prev.max(self.now + self.rng.below(4));
            self.disks[i].queue.push_back(Pending {
                batch,
                done_at,
                writes: out.persist,
            });
        } else {
            assert!(out.persist.is_empty(), "writes without a batch");
        }
        let n = self.nodes[i].as_mut().expect("a live node");
        for a in out.apply {
            apply(node, n, a, &mut self.model)?;
        }
        for o in out.outcomes {
            self.model.outcome(node, o)?;
        }
        Ok(())
    }

    /// Snapshot a group's state machine and drop its log before it, once
    /// enough was applied and nothing is waiting on the disk.
    fn maybe_compact(&mut self, i: usize) {
        let Some(n) = self.nodes[i].as_mut() else {
            return;
        };
        if !self.disks[i].queue.is_empty() {
            return;
        }
        for (&g, m) in &n.machines {
            let disk = self.disks[i].groups.entry(g).or_default();
            if m.applied < disk.snapshot.get_metadata().index + COMPACT_EVERY_ENTRIES {
                continue;
            }
            let store = n.driver.store(g).expect("known group");
            let mut snap = Snapshot {
                data: m.encode().into(),
                ..Snapshot::default()
            };
            let meta = snap.mut_metadata();
            meta.index = m.applied;
            meta.term = store.term_of(m.applied).expect("applied entry held");
            meta.set_conf_state(store.conf_state());
            disk.compact(snap.clone());
            n.driver.compact(g, snap);
            self.model.counts.compactions += 1;
        }
    }

    fn check_leaders(&mut self) -> Check {
        for n in self.nodes.iter().flatten() {
            for g in n.driver.groups() {
                let s = n.driver.status(g).expect("known group");
                if s.role == chat_replication::Role::Leader {
                    self.model.leader(g, s.term, n.driver.node())?;
                }
            }
        }
        Ok(())
    }

    /// Faults off, every node up, links healed: each group must take a new
    /// write and every replica must reach the same state.
    fn settle(&mut self, settle_ms: u64) -> Check {
        self.net.cuts.clear();
        self.faults = Faults {
            drop_per_million: 0,
            dup_per_million: 0,
            delay_ms_max: 3,
        };
        for i in 0..NODES as usize {
            if self.nodes[i].is_none() {
                self.start(i)?;
            }
        }
        let before = self.model.acked.clone();
        let mut last_try = BTreeMap::new();
        for _ in 0..settle_ms {
            self.step(false)?;
            for g in (0..GROUPS).map(GroupId) {
                let acked_new = self
                    .model
                    .acked
                    .range((g, 0)..)
                    .any(|(k, _)| k.0 == g && !before.contains_key(k));
                if !acked_new && self.now >= last_try.get(&g).copied().unwrap_or(0) + 100 {
                    last_try.insert(g, self.now);
                    let i = self.rng.below(NODES) as usize;
                    self.propose(i, g);
                }
            }
        }
        for g in (0..GROUPS).map(GroupId) {
            if !self
                .model
                .acked
                .keys()
                .any(|k| k.0 == g && !before.contains_key(k))
            {
                return Err(format!(
                    "group {g}: no write committed within {settle_ms} ms of healing"
                ));
            }
            let machines: Vec<_> = self
                .nodes
                .iter()
                .flatten()
                .map(|n| (n.driver.node(), n.machines[&g]))
                .collect();
            self.model.settled(g, &machines)?;
        }
        Ok(())
    }

    fn report(&self) -> Report {
        let mut digest = self.seed;
        for n in self.nodes.iter().flatten() {
            for m in n.machines.values() {
                digest = mix(mix(digest, m.applied), m.hash);
            }
        }
        let c = self.model.counts;
        for v in [
            c.proposed,
            c.acked,
            c.lost,
            c.unknown,
            c.applied,
            c.compactions,
            self.net.sent,
            self.net.dropped,
        ] {
            digest = mix(digest, v);
        }
        Report {
            counts: c,
            digest,
            sent: self.net.sent,
            dropped: self.net.dropped,
        }
    }
}

/// Sends one message; a snapshot the network lost is reported failed.
fn send(net: &mut Net, rng: &mut Rng, faults: &Faults, now: u64, n: &mut SimNode, o: Outgoing) {
    let snapshot = o.msg.get_msg_type() == MessageType::MsgSnapshot;
    let (to, group) = (o.to, o.group);
    if !net.send(rng, faults, now, n.driver.node(), o) && snapshot {
        n.driver.report_snapshot(group, to, false);
    }
}

fn apply(node: NodeId, n: &mut SimNode, a: Apply, model: &mut Model) -> Check {
    match a {
        Apply::Entries { group, entries } => {
            let m = n.machines.get_mut(&group).expect("known group");
            for e in &entries {
                m.apply(e);
                model.applied(node, group, e, m)?;
            }
        }
        Apply::Snapshot { group, snapshot } => {
            let m = Machine::restore(&snapshot);
            model.state(node, group, &m)?;
            model.counts.snapshots_installed += 1;
            n.machines.insert(group, m);
        }
    }
    Ok(())
}
