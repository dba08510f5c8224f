//! A node's simulated disk: per group the durable snapshot, entries and
//! hard state, and the writes not yet fdatasync'ed, which a crash loses,
//! except for a prefix that may have reached the platter (the last one
//! possibly torn: a prefix of its entries).

use std::collections::{BTreeMap, VecDeque};

use chat_replication::eraftpb::{Entry, HardState, Snapshot};
use chat_replication::{BatchId, Boot, GroupId, Persist};

use crate::rng::Rng;

#[derive(Clone, Default)]
pub struct GroupDisk {
    pub snapshot: Snapshot,
    pub entries: Vec<Entry>,
    pub hard_state: HardState,
}

impl GroupDisk {
    fn write(&mut self, p: &Persist, keep_entries: usize, keep_hs: bool) {
        if let Some(s) = &p.snapshot {
            self.snapshot = s.clone();
            self.entries.clear();
        }
        if let Some(first) = p.entries.first() {
            let base = self.snapshot.get_metadata().index;
            assert!(
                first.index > base,
                "entries at {} inside the snapshot at {base}",
                first.index
            );
            let at = (first.index - base - 1) as usize;
            assert!(at <= self.entries.len(), "a write leaves a gap");
            self.entries.truncate(at);
            self.entries
                .extend_from_slice(&p.entries[..keep_entries.min(p.entries.len())]);
        }
        if keep_hs {
            if let Some(hs) = &p.hard_state {
                self.hard_state = hs.clone();
            }
        }
    }

    /// The shell stored a snapshot of its state machine: drop entries up to it.
    pub fn compact(&mut self, snapshot: Snapshot) {
        let base = self.snapshot.get_metadata().index;
        let index = snapshot.get_metadata().index;
        assert!(index > base);
        let drop = ((index - base) as usize).min(self.entries.len());
        self.entries.drain(..drop);
        self.snapshot = snapshot;
    }

    pub fn boot(&self) -> Boot {
        Boot {
            hard_state: self.hard_state.clone(),
            snapshot: self.snapshot.clone(),
            entries: self.entries.clone(),
            applied: 0,
        }
    }
}

/// Writes handed to the disk, completing in order.
pub struct Pending {
    pub batch: BatchId,
    pub done_at: u64,
    pub writes: Vec<Persist>,
}

#[derive(Default)]
pub struct Disk {
    pub groups: BTreeMap<GroupId, GroupDisk>,
    pub queue: VecDeque<Pending>,
}

impl Disk {
    /// Completes the writes due by `now`, in order; returns their batches.
    pub fn complete(&mut self, now: u64) -> Vec<BatchId> {
        let mut done = Vec::new();
        while self.queue.front().is_some_and(|p| p.done_at <= now) {
            let p = self.queue.pop_front().expect("front exists");
            for w in &p.writes {
                self.groups
                    .entry(w.group)
                    .or_default()
                    .write(w, usize::MAX, true);
            }
            done.push(p.batch);
        }
        done
    }

    /// A crash: what was not fdatasync'ed is lost, but a prefix of the
    /// queued writes may have landed, the last of them torn.
    pub fn crash(&mut self, rng: &mut Rng) {
        let mut cut = false;
        for p in std::mem::take(&mut self.queue) {
            for w in &p.writes {
                if cut {
                    let keep_hs = rng.chance(300_000);
                    self.groups.entry(w.group).or_default().write(
                        &Persist {
                            snapshot: None,
                            entries: Vec::new(),
                            ..w.clone()
                        },
                        0,
                        keep_hs,
                    );
                    continue;
                }
                let lands = rng.chance(500_000);
                let keep = if lands {
                    w.entries.len()
                } else {
                    rng.below(w.entries.len() as u64 + 1) as usize
                };
                if !lands && w.snapshot.is_some() {
                    cut = true;
                    continue;
                }
                self.groups.entry(w.group).or_default().write(
                    w,
                    keep,
                    lands || rng.chance(300_000),
                );
                cut = !lands;
            }
        }
    }
}
