//! A shard's Raft log is its chat-log: the entry at index `i` is the
//! record at offset `i`, with the entry's term. A chat record's payload is
//! the entry's data; the leader's empty entry and configuration entries
//! get kinds of their own (replay passes them by). The hard state (term,
//! vote, commit) lives beside the log in `shard-NNNN.raft`, rewritten
//! atomically when the term or vote changes.
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

/// The hard state as stored; zeros for a new shard.
pub fn read_hard_state(dir: &Path, shard: u16) -> Result<HardState, String> {
    let path: PathBuf = dir.join(hard_state_name(shard));
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HardState::default()),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let nums: Vec<u64> = text
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .map_err(|_| format!("{}: not a hard state", path.display()))?;
    let [term, vote, commit] = nums[..] else {
        return Err(format!("{}: not a hard state", path.display()));
    };
    Ok(HardState {
        term,
        vote,
        commit,
        ..HardState::default()
    })
}

pub async fn write_hard_state(dir: &Path, shard: u16, hs: &HardState) -> LogResult<()> {
    let text = format!("{} {} {}\n", hs.term, hs.vote, hs.commit);
    chat_log::write_atomic(dir, &hard_state_name(shard), text.as_bytes()).await
}

/// Every record of the log as Raft entries (cluster mode keeps the whole
/// log: nothing is compacted yet), with the stored hard state.
pub async fn read_boot(log: &dyn LogStore, hs: HardState, applied: u64) -> Result<Boot, String> {
    if log.first_offset() != Offset(1) {
        return Err("cluster mode needs the shard's whole log (its start was dropped)".into());
    }
    let mut entries = Vec::new();
    let mut reader = log.reader_from(Offset(1));
    while let Some(record) = reader.next().await {
        let r = record.map_err(|e| e.to_string())?;
        let entry_type = if r.kind == KIND_RAFT_CONF {
            EntryType::EntryConfChange
        } else {
            EntryType::EntryNormal
        };
        let data = if r.kind == KIND_RAFT_EMPTY {
            Vec::new()
        } else {
            r.payload.to_vec()
        };
        entries.push(Entry {
            entry_type,
            index: r.offset.0,
            term: r.term.0,
            data: data.into(),
            ..Entry::default()
        });
    }
    Ok(Boot {
        hard_state: hs,
        entries,
        applied,
        ..Boot::default()
    })
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
pub async fn append(
    log: &dyn LogStore,
    entries: &[Entry],
) -> LogResult<LocalBoxFuture<'static, LogResult<()>>> {
    let first = entries.first().expect("append of no entries").index;
    if first <= log.last_offset().0 {
        log.truncate_after(Offset(first - 1)).await?;
    }
    let items: Vec<LogEntry<'_>> = entries
        .iter()
        .map(|e| LogEntry {
            kind: kind_of(e),
            term: Term(e.term),
            payload: &e.data,
        })
        .collect();
    let appended = log.append(&items).await?;
    assert_eq!(appended.first.0, first, "entry index is log offset");
    Ok(appended.durable)
}
