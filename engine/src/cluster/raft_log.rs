//! A shard's Raft log is its chat-log: the entry at index `i` is the
//! record at offset `i`, with the entry's term. A chat record's payload is
//! the entry's data; the leader's empty entry and configuration entries
//! get kinds of their own (replay passes them by). The hard state (term,
//! vote, commit) and the compaction point (`Base`) live beside the log in
//! `shard-NNNN.raft`, rewritten atomically when the term or vote changes
//! and at each compaction.
//!
//! Compaction drops entries from Raft's view (memory), not from the disk:
//! the log also holds every message body that history reads, so its
//! segments go only by retention. A restarted replica hands raft-rs the
//! entries after the compaction point; a follower behind a leader's
//! compaction point fetches the committed records up to it
//! (`catch_up.rs`).
//!
//! Lives on: the shard's core.

use std::path::{Path, PathBuf};

use chat_log::{Entry as LogEntry, Kind, Offset, Term};
use chat_replication::eraftpb::{Entry, EntryType, HardState};
use chat_replication::Boot;

use crate::machine::records::KIND_CHAT;
use crate::shard::storage::{LocalBoxFuture, LogResult, LogStore};

/// Raft's empty entry (a new leader's first).
pub const KIND_RAFT_EMPTY: Kind = Kind(2);
/// A configuration change entry.
pub const KIND_RAFT_CONF: Kind = Kind(3);

fn hard_state_name(shard: u16) -> String {
    format!("shard-{shard:04}.raft")
}

/// Where Raft's view of the log starts: the last entry compacted away
/// (committed and applied) and its term. Zeros: nothing compacted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Base {
    pub index: u64,
    pub term: u64,
}

/// What `shard-NNNN.raft` holds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stored {
    pub hard_state: HardState,
    pub base: Base,
}

/// The stored state; zeros for a new shard. The file is
/// `term vote commit [base_index base_term]`.
pub fn read_hard_state(dir: &Path, shard: u16) -> Result<Stored, String> {
    let path: PathBuf = dir.join(hard_state_name(shard));
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Stored::default()),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let bad = || format!("{}: not a hard state", path.display());
    let nums: Vec<u64> = text
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .map_err(|_| bad())?;
    let (term, vote, commit, base) = match nums[..] {
        [t, v, c] => (t, v, c, Base::default()),
        [t, v, c, index, term] => (t, v, c, Base { index, term }),
        _ => return Err(bad()),
    };
    if base.index > commit || base.term > term {
        return Err(format!(
            "{}: compaction point past the commit",
            path.display()
        ));
    }
    let hard_state = HardState {
        term,
        vote,
        commit,
        ..HardState::default()
    };
    Ok(Stored { hard_state, base })
}

pub async fn write_hard_state(dir: &Path, shard: u16, stored: &Stored) -> LogResult<()> {
    let (hs, b) = (&stored.hard_state, stored.base);
    assert!(b.index <= hs.commit, "compaction point past the commit");
    let text = format!(
        "{} {} {} {} {}\n",
        hs.term, hs.vote, hs.commit, b.index, b.term
    );
    chat_log::write_atomic(dir, &hard_state_name(shard), text.as_bytes()).await
}

/// The records after the compaction point as Raft entries, with the
/// stored hard state: what raft-rs starts from.
pub async fn read_boot(log: &dyn LogStore, stored: &Stored, applied: u64) -> Result<Boot, String> {
    let base = stored.base;
    if log.first_offset().0 > base.index + 1 {
        return Err(format!(
            "the log starts at {} but Raft needs it from {}",
            log.first_offset().0,
            base.index + 1
        ));
    }
    if log.last_offset().0 < base.index {
        return Err(format!(
            "the log ends at {} before its compaction point {}",
            log.last_offset().0,
            base.index
        ));
    }
    let mut entries = Vec::new();
    let mut reader = log.reader_from(Offset(base.index + 1));
    while let Some(record) = reader.next().await {
        let r = record.map_err(|e| e.to_string())?;
        entries.push(entry_of(r.offset.0, r.term.0, r.kind, r.payload.to_vec()));
    }
    let mut snapshot = chat_replication::eraftpb::Snapshot::default();
    snapshot.mut_metadata().index = base.index;
    snapshot.mut_metadata().term = base.term;
    Ok(Boot {
        hard_state: stored.hard_state.clone(),
        snapshot,
        entries,
        applied,
    })
}

/// A record as a Raft entry.
pub fn entry_of(index: u64, term: u64, kind: Kind, payload: Vec<u8>) -> Entry {
    let entry_type = if kind == KIND_RAFT_CONF {
        EntryType::EntryConfChange
    } else {
        EntryType::EntryNormal
    };
    let data = if kind == KIND_RAFT_EMPTY {
        Vec::new()
    } else {
        payload
    };
    Entry {
        entry_type,
        index,
        term,
        data: data.into(),
        ..Entry::default()
    }
}

/// The chat-log kind of an entry.
pub fn kind_of(e: &Entry) -> Kind {
    match e.get_entry_type() {
        EntryType::EntryNormal if e.data.is_empty() => KIND_RAFT_EMPTY,
        EntryType::EntryNormal => KIND_CHAT,
        _ => KIND_RAFT_CONF,
    }
}

/// Writes `entries` at their indices: a conflicting suffix goes first.
/// Resolves once they are appended; the future it answers, once durable.
/// Entries over one log batch (a Ready for a follower far behind holds up
/// to 32 full appends) go as several appends, in order.
pub async fn append(
    log: &dyn LogStore,
    entries: &[Entry],
) -> LogResult<LocalBoxFuture<'static, LogResult<()>>> {
    let first = entries.first().expect("append of no entries").index;
    if first <= log.last_offset().0 {
        log.truncate_after(Offset(first - 1)).await?;
    }
    let mut durables = Vec::new();
    let mut next = first;
    for batch in log_batches(entries) {
        let items: Vec<LogEntry<'_>> = batch
            .iter()
            .map(|e| LogEntry {
                kind: kind_of(e),
                term: Term(e.term),
                payload: &e.data,
            })
            .collect();
        let appended = log.append(&items).await?;
        assert_eq!(appended.first.0, next, "entry index is log offset");
        next += batch.len() as u64;
        durables.push(appended.durable);
    }
    if durables.len() == 1 {
        // The usual case: one batch, its own future.
        return Ok(durables.pop().expect("one"));
    }
    Ok(Box::pin(async move {
        for d in durables {
            d.await?;
        }
        Ok(())
    }))
}

/// `entries` cut into runs that each fit one chat-log batch.
fn log_batches(entries: &[Entry]) -> impl Iterator<Item = &[Entry]> {
    use chat_log::constants::{BATCH_RECORDS_MAX, BATCH_SIZE_BYTES_MAX};
    let mut rest = entries;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut bytes = 0usize;
        let mut n = 0usize;
        for e in rest {
            let framed = chat_log::record::frame_len(e.data.len());
            if n > 0 && (bytes + framed > BATCH_SIZE_BYTES_MAX || n == BATCH_RECORDS_MAX) {
                break;
            }
            bytes += framed;
            n += 1;
        }
        let (run, tail) = rest.split_at(n);
        rest = tail;
        Some(run)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ready_of_many_full_appends_is_cut_into_log_batches() {
        let entries: Vec<Entry> = (1..=40u64)
            .map(|i| Entry {
                index: i,
                data: vec![1u8; 1024 * 1024 - 100].into(),
                ..Entry::default()
            })
            .collect();
        let runs: Vec<&[Entry]> = log_batches(&entries).collect();
        assert!(runs.len() >= 10, "{} runs", runs.len());
        let mut next = 1;
        for run in runs {
            let bytes: usize = run
                .iter()
                .map(|e| 32 + e.data.len().next_multiple_of(16))
                .sum();
            assert!(bytes <= chat_log::constants::BATCH_SIZE_BYTES_MAX);
            for e in run {
                assert_eq!(e.index, next);
                next += 1;
            }
        }
        assert_eq!(next, 41);
        let small: Vec<Entry> = (1..=20_000u64)
            .map(|i| Entry {
                index: i,
                ..Entry::default()
            })
            .collect();
        let counts: Vec<usize> = log_batches(&small).map(<[Entry]>::len).collect();
        assert_eq!(
            counts,
            [chat_log::constants::BATCH_RECORDS_MAX, 20_000 - 16 * 1024]
        );
    }
}
