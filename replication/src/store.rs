//! `GroupStore`: what raft-rs reads of one group's log, held in memory.
//!
//! raft-rs' `Storage` is synchronous and must show an entry as soon as it
//! is handed to the shell for writing (`advance_append_async`), so the
//! store keeps the entries from the last compaction point to the end, the
//! hard state, the configuration and the latest snapshot. The shell writes
//! the same things durably (chat-log: one record per entry at offset =
//! index, with the entry's term; the hard state beside it) and rebuilds a
//! store from them at startup (`Boot`). Memory is bounded by compaction:
//! the shell snapshots its state machine and calls `compact`.
//!
//! Lives on the core of its group; `Rc<RefCell<_>>` because raft-rs owns
//! one handle and the driver another, on the same thread.

use std::cell::RefCell;
use std::rc::Rc;

use raft::eraftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use raft::{GetEntriesContext, RaftState, StorageError};

/// What a group starts from: read back from the shell's durable state.
#[derive(Clone, Debug, Default)]
pub struct Boot {
    /// Term, vote, commit as last persisted (commit may lag; never ahead of
    /// what is durable: `GroupStore::boot` clamps it).
    pub hard_state: HardState,
    /// The latest durable snapshot; its metadata holds the configuration.
    /// Empty (index 0) for a new group.
    pub snapshot: Snapshot,
    /// The durable entries after the snapshot, dense and in order.
    pub entries: Vec<Entry>,
    /// How far the shell's state machine already applied (it replayed
    /// these itself); raised to the snapshot's index, capped at commit.
    pub applied: u64,
}

#[derive(Debug, Default)]
struct Core {
    hard_state: HardState,
    /// Index and term of the compaction point (the snapshot's), and the
    /// configuration as of the last entry.
    meta: SnapshotMetadata,
    snapshot: Snapshot,
    entries: Vec<Entry>,
    /// Bytes of entry data held (the shell compacts on it too).
    bytes: u64,
}

fn data_bytes(entries: &[Entry]) -> u64 {
    entries.iter().map(|e| e.data.len() as u64).sum()
}

/// The raft-rs view of one group's log. Cheap to clone (one `Rc`).
#[derive(Clone, Debug, Default)]
pub struct GroupStore {
    core: Rc<RefCell<Core>>,
}

impl GroupStore {
    /// A store for a brand-new group whose voters are `voters`.
    pub fn fresh(voters: Vec<u64>) -> GroupStore {
        let mut snapshot = Snapshot::default();
        snapshot.mut_metadata().mut_conf_state().voters = voters;
        GroupStore::boot(Boot {
            snapshot,
            ..Boot::default()
        })
    }

    /// A store rebuilt from durable state. Panics on entries that are not
    /// dense after the snapshot: the shell checked them when it read them.
    pub fn boot(boot: Boot) -> GroupStore {
        let meta = boot.snapshot.get_metadata().clone();
        for (expected, e) in (meta.index + 1..).zip(boot.entries.iter()) {
            assert_eq!(
                e.index, expected,
                "boot entries not dense after the snapshot"
            );
            assert!(e.term >= meta.term, "entry term below the snapshot's");
        }
        let last = meta.index + boot.entries.len() as u64;
        let mut hard_state = boot.hard_state;
        hard_state.commit = hard_state.commit.clamp(meta.index, last);
        let core = Core {
            hard_state,
            meta,
            snapshot: boot.snapshot,
            bytes: data_bytes(&boot.entries),
            entries: boot.entries,
        };
        GroupStore {
            core: Rc::new(RefCell::new(core)),
        }
    }

    /// Appends entries, first dropping any conflicting suffix from the
    /// first new index on (a follower overwritten by a new leader).
    pub fn append(&self, entries: &[Entry]) {
        let Some(first) = entries.first() else { return };
        let mut core = self.core.borrow_mut();
        let base = core.meta.index;
        let last = base + core.entries.len() as u64;
        assert!(
            first.index > base,
            "append at {} inside the snapshot at {base}",
            first.index
        );
        assert!(
            first.index <= last + 1,
            "append at {} leaves a gap after {last}",
            first.index
        );
        let cut = core.entries.split_off((first.index - base - 1) as usize);
        core.bytes -= data_bytes(&cut);
        core.bytes += data_bytes(entries);
        core.entries.extend_from_slice(entries);
    }

    /// Records the hard state to persist.
    pub fn set_hard_state(&self, hs: HardState) {
        self.core.borrow_mut().hard_state = hs;
    }

    /// Installs a snapshot received from the leader: the log restarts after it.
    pub fn install(&self, snapshot: &Snapshot) {
        let mut core = self.core.borrow_mut();
        let meta = snapshot.get_metadata().clone();
        assert!(
            meta.index >= core.meta.index,
            "snapshot at {} behind {}",
            meta.index,
            core.meta.index
        );
        core.hard_state.commit = core.hard_state.commit.max(meta.index);
        if core.hard_state.term < meta.term {
            core.hard_state.term = meta.term;
        }
        core.entries.clear();
        core.bytes = 0;
        core.meta = meta;
        core.snapshot = snapshot.clone();
    }

    /// Drops the entries up to the snapshot's index, which the shell made
    /// of its state machine at that applied index and stored durably.
    pub fn compact(&self, snapshot: Snapshot) {
        let mut core = self.core.borrow_mut();
        let index = snapshot.get_metadata().index;
        let base = core.meta.index;
        if index <= base {
            return;
        }
        let last = base + core.entries.len() as u64;
        assert!(
            index <= last && index <= core.hard_state.commit,
            "compact past commit"
        );
        let keep = core.entries.split_off((index - base) as usize);
        assert_eq!(
            core.entries.last().map(|e| e.term),
            Some(snapshot.get_metadata().term)
        );
        core.bytes -= data_bytes(&core.entries);
        core.entries = keep;
        core.meta = snapshot.get_metadata().clone();
        core.snapshot = snapshot;
    }

    /// The conf state as of the compaction point (the driver does not
    /// change membership yet, so it holds for the whole log).
    pub fn conf_state(&self) -> ConfState {
        self.core.borrow().meta.get_conf_state().clone()
    }

    /// The hard state as last set.
    pub fn hard_state(&self) -> HardState {
        self.core.borrow().hard_state.clone()
    }

    /// Bytes of entry data held in memory.
    pub fn held_bytes(&self) -> u64 {
        self.core.borrow().bytes
    }

    /// Index and term of the compaction point (0, 0 for a new group).
    pub fn base(&self) -> (u64, u64) {
        let core = self.core.borrow();
        (core.meta.index, core.meta.term)
    }

    /// Index of the first entry still held.
    pub fn first(&self) -> u64 {
        self.core.borrow().meta.index + 1
    }

    /// Index of the last entry (the snapshot's when none).
    pub fn last(&self) -> u64 {
        let core = self.core.borrow();
        core.meta.index + core.entries.len() as u64
    }

    /// The term of an entry held, or of the compaction point.
    pub fn term_of(&self, index: u64) -> Option<u64> {
        raft::Storage::term(self, index).ok()
    }

    /// A copy of the entries in `[low, high)` that are held.
    pub fn slice(&self, low: u64, high: u64) -> Vec<Entry> {
        let core = self.core.borrow();
        let base = core.meta.index;
        let lo = low.max(base + 1);
        let hi = high.min(base + core.entries.len() as u64 + 1);
        if lo >= hi {
            return Vec::new();
        }
        core.entries[(lo - base - 1) as usize..(hi - base - 1) as usize].to_vec()
    }
}

impl raft::Storage for GroupStore {
    fn initial_state(&self) -> raft::Result<RaftState> {
        let core = self.core.borrow();
        Ok(RaftState::new(
            core.hard_state.clone(),
            core.meta.get_conf_state().clone(),
        ))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        let core = self.core.borrow();
        let base = core.meta.index;
        if low <= base {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        let last = base + core.entries.len() as u64;
        if high > last + 1 {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let mut out = core.entries[(low - base - 1) as usize..(high - base - 1) as usize].to_vec();
        raft::util::limit_size(&mut out, max_size.into());
        Ok(out)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        let core = self.core.borrow();
        let base = core.meta.index;
        if idx == base {
            return Ok(core.meta.term);
        }
        if idx < base {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        match core.entries.get((idx - base - 1) as usize) {
            Some(e) => Ok(e.term),
            None => Err(raft::Error::Store(StorageError::Unavailable)),
        }
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.first())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last())
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        let core = self.core.borrow();
        if core.snapshot.get_metadata().index < request_index
            || core.snapshot.get_metadata().index == 0
        {
            return Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        Ok(core.snapshot.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::Storage;

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            data: vec![index as u8].into(),
            ..Entry::default()
        }
    }

    #[test]
    fn append_overwrites_a_conflicting_suffix() {
        let s = GroupStore::fresh(vec![1, 2, 3]);
        s.append(&[entry(1, 1), entry(2, 1), entry(3, 1)]);
        s.append(&[entry(2, 2)]);
        assert_eq!(s.last(), 2);
        assert_eq!(s.term(2).unwrap(), 2);
        assert!(s.term(3).is_err());
    }

    #[test]
    fn compact_keeps_the_tail_and_serves_the_snapshot() {
        let s = GroupStore::fresh(vec![1]);
        s.append(&(1..=5).map(|i| entry(i, 1)).collect::<Vec<_>>());
        s.set_hard_state(HardState {
            term: 1,
            vote: 1,
            commit: 4,
            ..HardState::default()
        });
        let mut snap = Snapshot::default();
        snap.mut_metadata().index = 3;
        snap.mut_metadata().term = 1;
        assert_eq!(s.held_bytes(), 5);
        s.compact(snap);
        assert_eq!(s.first(), 4);
        assert_eq!(s.held_bytes(), 2);
        assert_eq!(s.base(), (3, 1));
        assert!(matches!(
            s.entries(3, 5, None, GetEntriesContext::empty(false)),
            Err(raft::Error::Store(StorageError::Compacted))
        ));
        assert_eq!(
            s.entries(4, 6, None, GetEntriesContext::empty(false))
                .unwrap()
                .len(),
            2
        );
        assert_eq!(s.term(3).unwrap(), 1);
        assert_eq!(s.snapshot(2, 2).unwrap().get_metadata().index, 3);
        assert!(s.snapshot(4, 2).is_err());
    }

    #[test]
    fn boot_clamps_a_commit_ahead_of_the_durable_log() {
        let hard_state = HardState {
            term: 2,
            vote: 1,
            commit: 9,
            ..HardState::default()
        };
        let s = GroupStore::boot(Boot {
            hard_state,
            entries: vec![entry(1, 1), entry(2, 2)],
            ..Boot::default()
        });
        assert_eq!(s.initial_state().unwrap().hard_state.commit, 2);
    }
}
