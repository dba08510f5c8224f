//! One Raft group on this node: raft-rs' `RawNode` over a `GroupStore`,
//! the proposals this replica made and waits to see committed, and the
//! deterministic election timeouts. Lives on the core of its shard.

use std::collections::BTreeMap;

use raft::eraftpb::Entry;
use raft::{RawNode, StateRole};

use crate::ids::{GroupId, NodeId, Token};
use crate::outcome::Outcome;
use crate::store::GroupStore;

/// A proposal waiting for the entry at its index to commit.
#[derive(Clone, Copy, Debug)]
struct Pending {
    term: u64,
    token: Token,
}

/// One group's replica on this node.
pub struct Group {
    pub(crate) id: GroupId,
    pub(crate) raw: RawNode<GroupStore>,
    pub(crate) store: GroupStore,
    /// The placement's replicas, the preferred leader first (leadership
    /// balance).
    pub(crate) replicas: Vec<NodeId>,
    /// Which incarnation of the group this is (`Driver::reset_group`
    /// starts a new one): a batch made by an older one is not reported
    /// to this one.
    pub(crate) epoch: u64,
    pending: BTreeMap<u64, Pending>,
    overwritten: Vec<Outcome>,
    seed: u64,
    /// raft-rs' election timeout range in ticks, `[lo, hi)`.
    timeouts: (usize, usize),
}

impl Group {
    pub(crate) fn new(
        id: GroupId,
        raw: RawNode<GroupStore>,
        store: GroupStore,
        replicas: Vec<NodeId>,
        epoch: u64,
        seed: u64,
        timeouts: (usize, usize),
    ) -> Group {
        let pending = BTreeMap::new();
        let mut g = Group {
            id,
            raw,
            store,
            replicas,
            epoch,
            pending,
            overwritten: Vec::new(),
            seed,
            timeouts,
        };
        g.pin_timeout();
        g
    }

    /// Remembers a proposal accepted at `index` in `term`. Proposals made
    /// here earlier at `index` or after (in an older term, before this
    /// replica lost and regained leadership) were truncated away by it.
    pub(crate) fn track(&mut self, index: u64, term: u64, token: Token) {
        for (_, p) in self.pending.split_off(&index) {
            assert!(
                p.term < term,
                "two proposals at index {index} in term {term}"
            );
            self.overwritten.push(Outcome::Lost {
                group: self.id,
                token: p.token,
            });
        }
        self.pending.insert(index, Pending { term, token });
    }

    /// Outcomes decided outside `collect` (by `track`), handed out by it.
    pub(crate) fn take_overwritten(&mut self, out: &mut Vec<Outcome>) {
        out.append(&mut self.overwritten);
    }

    /// Resolves the proposals at or below the committed `entry`: the one at
    /// its index committed iff its term matches; an earlier one left
    /// unresolved was overwritten (its index committed another entry).
    pub(crate) fn resolve(&mut self, entry: &Entry, out: &mut Vec<Outcome>) {
        while let Some((&index, &p)) = self.pending.first_key_value() {
            if index > entry.index {
                break;
            }
            self.pending.remove(&index);
            let committed = index == entry.index && p.term == entry.term;
            out.push(match committed {
                true => Outcome::Committed {
                    group: self.id,
                    token: p.token,
                    index,
                },
                false => Outcome::Lost {
                    group: self.id,
                    token: p.token,
                },
            });
        }
    }

    /// A snapshot replaced the log up to `index`: proposals there cannot be
    /// told apart any more.
    pub(crate) fn resolve_unknown(&mut self, index: u64, out: &mut Vec<Outcome>) {
        while let Some((&i, &p)) = self.pending.first_key_value() {
            if i > index {
                break;
            }
            self.pending.remove(&i);
            out.push(Outcome::Unknown {
                group: self.id,
                token: p.token,
            });
        }
    }

    /// The group is being replaced: none of its proposals will be told.
    pub(crate) fn abandon(&mut self, out: &mut Vec<Outcome>) {
        out.append(&mut self.overwritten);
        for (_, p) in std::mem::take(&mut self.pending) {
            out.push(Outcome::Lost {
                group: self.id,
                token: p.token,
            });
        }
    }

    pub(crate) fn preferred(&self) -> NodeId {
        self.replicas[0]
    }

    pub(crate) fn pending(&self) -> usize {
        self.pending.len()
    }

    pub(crate) fn is_leader(&self) -> bool {
        self.raw.raft.state == StateRole::Leader
    }

    /// raft-rs draws election timeouts from the thread's RNG; a seeded
    /// simulation must not depend on it. After anything that may have
    /// reset the timeout, it is set to a value derived from the seed, this
    /// group, this node and the raft state, so that a run replays exactly.
    pub(crate) fn pin_timeout(&mut self) {
        let r = &mut self.raw.raft;
        if r.election_elapsed != 0 {
            return;
        }
        let (lo, hi) = self.timeouts;
        let key = [
            self.seed,
            self.id.0 as u64,
            r.id,
            r.term,
            r.state as u64,
            r.leader_id,
            r.vote,
        ];
        let want = lo + (mix(&key) % (hi - lo) as u64) as usize;
        if r.randomized_election_timeout() != want {
            r.set_randomized_election_timeout(want);
        }
    }
}

/// SplitMix64 over the words: a stable hash with no dependency.
fn mix(words: &[u64]) -> u64 {
    let mut h = 0x9E37_79B9_7F4A_7C15u64;
    for &w in words {
        h ^= w;
        h = h.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = h;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        h = z ^ (z >> 31);
    }
    h
}
