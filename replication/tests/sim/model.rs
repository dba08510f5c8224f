//! The checker: what every replica must agree on, checked as the run goes.

use std::collections::BTreeMap;

use chat_replication::eraftpb::Entry;
use chat_replication::{GroupId, NodeId, Outcome, Token};

use crate::machine::Machine;

#[derive(Default)]
pub struct Model {
    /// (group, term) → the one leader of that term.
    leaders: BTreeMap<(GroupId, u64), NodeId>,
    /// (group, index) → (term, data) of the entry applied there anywhere.
    chain: BTreeMap<(GroupId, u64), (u64, Vec<u8>)>,
    /// (group, applied index) → the state machine's hash there.
    hashes: BTreeMap<(GroupId, u64), u64>,
    /// (group, index, term) → data of every entry written to any disk.
    written: BTreeMap<(GroupId, u64, u64), Vec<u8>>,
    /// Proposals made: token → (group, value).
    pub proposals: BTreeMap<Token, (GroupId, u64)>,
    /// Acknowledged: (group, index) → value.
    pub acked: BTreeMap<(GroupId, u64), u64>,
    pub counts: Counts,
}

#[derive(Default, Debug, Clone, Copy)]
pub struct Counts {
    pub proposed: u64,
    pub acked: u64,
    pub lost: u64,
    pub unknown: u64,
    pub refused: u64,
    pub applied: u64,
    pub snapshots_installed: u64,
    pub compactions: u64,
    pub crashes: u64,
    pub partitions: u64,
}

pub type Check = Result<(), String>;

impl Model {
    pub fn leader(&mut self, group: GroupId, term: u64, node: NodeId) -> Check {
        let was = *self.leaders.entry((group, term)).or_insert(node);
        if was != node {
            return Err(format!(
                "group {group} term {term}: leaders {was} and {node}"
            ));
        }
        Ok(())
    }

    /// Log matching: an (index, term) names one entry on every disk.
    pub fn written(&mut self, group: GroupId, e: &Entry) -> Check {
        let was = self
            .written
            .entry((group, e.index, e.term))
            .or_insert_with(|| e.data.to_vec());
        if *was != e.data.to_vec() {
            return Err(format!(
                "group {group}: two entries at index {} term {}",
                e.index, e.term
            ));
        }
        Ok(())
    }

    /// An entry applied on `node`: the same at that index everywhere, and
    /// the state after it the same everywhere.
    pub fn applied(&mut self, node: NodeId, group: GroupId, e: &Entry, m: &Machine) -> Check {
        self.counts.applied += 1;
        let was = self
            .chain
            .entry((group, e.index))
            .or_insert_with(|| (e.term, e.data.to_vec()));
        if *was != (e.term, e.data.to_vec()) {
            return Err(format!(
                "node {node} group {group}: applied a different entry at {} (state machine safety)",
                e.index
            ));
        }
        self.state(node, group, m)
    }

    pub fn state(&mut self, node: NodeId, group: GroupId, m: &Machine) -> Check {
        let was = *self.hashes.entry((group, m.applied)).or_insert(m.hash);
        if was != m.hash {
            return Err(format!(
                "node {node} group {group}: state differs at applied index {}",
                m.applied
            ));
        }
        Ok(())
    }

    pub fn outcome(&mut self, node: NodeId, o: Outcome) -> Check {
        match o {
            Outcome::Committed {
                group,
                token,
                index,
            } => {
                let (g, value) = self.proposals[&token];
                assert_eq!(g, group);
                let got = self.chain.get(&(group, index)).map(|(_, d)| d.clone());
                if got != Some(value.to_le_bytes().to_vec()) {
                    return Err(format!(
                        "node {node} acked token {} at {group}/{index} but another entry is there",
                        token.0
                    ));
                }
                self.acked.insert((group, index), value);
                self.counts.acked += 1;
            }
            Outcome::Lost { .. } => self.counts.lost += 1,
            Outcome::Unknown { .. } => self.counts.unknown += 1,
        }
        Ok(())
    }

    /// At the end: every replica applied every acknowledged entry, and all
    /// replicas of a group stand at the same state.
    pub fn settled(&self, group: GroupId, machines: &[(NodeId, Machine)]) -> Check {
        let last_acked = self
            .acked
            .range((group, 0)..=(group, u64::MAX))
            .next_back()
            .map(|(k, _)| k.1);
        for (node, m) in machines {
            if let Some(i) = last_acked.filter(|&i| m.applied < i) {
                return Err(format!(
                    "node {node} group {group}: applied {} < acknowledged {i}",
                    m.applied
                ));
            }
            if (m.applied, m.hash) != (machines[0].1.applied, machines[0].1.hash) {
                return Err(format!(
                    "group {group}: nodes {} and {node} differ after settling: {:?} vs {m:?}",
                    machines[0].0, machines[0].1
                ));
            }
        }
        for (&(g, index), value) in self.acked.range((group, 0)..=(group, u64::MAX)) {
            let there = self.chain.get(&(g, index)).map(|(_, d)| d.clone());
            if there != Some(value.to_le_bytes().to_vec()) {
                return Err(format!(
                    "group {group}: acknowledged value at {index} missing or changed"
                ));
            }
        }
        Ok(())
    }
}
