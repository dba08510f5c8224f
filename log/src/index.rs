//! Sparse offset → file position index of one segment.
//!
//! Lives on: the shard's core, inside its `Segment`. Never persisted: it is
//! rebuilt from the data on every open, so it can never disagree with it.

use crate::constants::INDEX_INTERVAL_BYTES;
use crate::types::Offset;

/// One entry per `INDEX_INTERVAL_BYTES` of data (and always the first record).
#[derive(Debug, Default, Clone)]
pub struct SparseIndex {
    entries: Vec<(Offset, u32)>,
}

impl SparseIndex {
    /// Notes that the record `offset` starts at `pos`. Calls come in
    /// ascending order of both.
    pub fn observe(&mut self, offset: Offset, pos: u32) {
        match self.entries.last() {
            None => self.entries.push((offset, pos)),
            Some(&(last_offset, last_pos)) => {
                assert!(offset > last_offset && pos > last_pos, "index out of order");
                if (pos - last_pos) as usize >= INDEX_INTERVAL_BYTES {
                    self.entries.push((offset, pos));
                }
            }
        }
    }

    /// The indexed record at or before `offset`: where to start scanning.
    pub fn floor(&self, offset: Offset) -> Option<(Offset, u32)> {
        let idx = self.entries.partition_point(|&(o, _)| o <= offset);
        idx.checked_sub(1).map(|i| self.entries[i])
    }

    /// Forgets every entry of an offset above `last`.
    pub fn truncate_after(&mut self, last: Offset) {
        let keep = self.entries.partition_point(|&(o, _)| o <= last);
        self.entries.truncate(keep);
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

/// The term of every offset, stored as runs: `(first offset of run, term)`.
///
/// Lives on: the shard's core. Terms change rarely, so this stays tiny and
/// `term_at` never touches the disk. Rebuilt from the data on open.
#[derive(Debug, Default, Clone)]
pub struct TermRuns {
    runs: Vec<(Offset, crate::types::Term)>,
}

impl TermRuns {
    /// Notes the term of the next offset (ascending calls).
    pub fn observe(&mut self, offset: Offset, term: crate::types::Term) {
        match self.runs.last() {
            Some(&(first, last_term)) => {
                assert!(offset > first);
                assert!(term >= last_term, "terms never go down in a log");
                if term != last_term {
                    self.runs.push((offset, term));
                }
            }
            None => self.runs.push((offset, term)),
        }
    }

    pub fn term_at(&self, offset: Offset) -> Option<crate::types::Term> {
        let idx = self.runs.partition_point(|&(o, _)| o <= offset);
        idx.checked_sub(1).map(|i| self.runs[i].1)
    }

    pub fn last_term(&self) -> Option<crate::types::Term> {
        self.runs.last().map(|r| r.1)
    }

    pub fn truncate_after(&mut self, last: Offset) {
        let keep = self.runs.partition_point(|&(o, _)| o <= last);
        self.runs.truncate(keep);
    }

    /// Forgets offsets below `first` (keeping the run that covers `first`).
    pub fn drop_before(&mut self, first: Offset) {
        let idx = self.runs.partition_point(|&(o, _)| o <= first);
        if idx > 1 {
            self.runs.drain(..idx - 1);
        }
    }

    pub fn clear(&mut self) {
        self.runs.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Term;

    #[test]
    fn index_is_sparse_and_floor_finds_the_entry_at_or_below() {
        let mut index = SparseIndex::default();
        let mut pos = 0u32;
        for offset in 1..=1000u64 {
            index.observe(Offset(offset), pos);
            pos += 128;
        }
        // 128 KB of data at one entry per 4 KiB.
        assert_eq!(index.len(), 1000 * 128 / INDEX_INTERVAL_BYTES + 1);
        assert_eq!(index.floor(Offset(0)), None);
        assert_eq!(index.floor(Offset(1)), Some((Offset(1), 0)));
        let (o, p) = index.floor(Offset(500)).unwrap();
        assert!(o <= Offset(500));
        assert!((500 - o.0) * 128 < INDEX_INTERVAL_BYTES as u64);
        assert_eq!(p as u64, (o.0 - 1) * 128);
        index.truncate_after(Offset(40));
        assert!(index.floor(Offset(1000)).unwrap().0 <= Offset(40));
    }

    #[test]
    fn term_runs_answer_every_offset() {
        let mut runs = TermRuns::default();
        for o in 1..=10u64 {
            runs.observe(
                Offset(o),
                Term(if o < 4 {
                    1
                } else if o < 8 {
                    2
                } else {
                    5
                }),
            );
        }
        assert_eq!(runs.term_at(Offset(0)), None);
        assert_eq!(runs.term_at(Offset(3)), Some(Term(1)));
        assert_eq!(runs.term_at(Offset(4)), Some(Term(2)));
        assert_eq!(runs.term_at(Offset(10)), Some(Term(5)));
        runs.truncate_after(Offset(5));
        assert_eq!(runs.last_term(), Some(Term(2)));
        runs.drop_before(Offset(5));
        assert_eq!(runs.term_at(Offset(5)), Some(Term(2)));
        runs.observe(Offset(6), Term(3));
        assert_eq!(runs.term_at(Offset(6)), Some(Term(3)));
    }
}
