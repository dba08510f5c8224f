//! A follower behind its leader's compaction point catches up by fetching
//! the committed log itself.
//!
//! raft-rs sends such a follower a snapshot. Ours holds only the leader's
//! compaction point (index, term): the log keeps every record on disk
//! (they are the message bodies history reads), so "the state up to the
//! compaction point" is simply the committed log up to it. The follower
//! pauses its replica of the group (no ticks, no appends: nothing else
//! writes its log), fetches the records after what it applied from the
//! sender in chunks of about `CATCH_UP_CHUNK_BYTES`, writes each chunk at
//! its offsets (an entry it holds with the same term is the same entry;
//! from the first that differs, its own tail goes), fdatasyncs it and
//! applies it like any committed entry (the next chunk is fetched
//! meanwhile). Then it stores a compaction point
//! of its own where it stopped and restarts the replica from disk
//! (`Driver::reset_group`): raft-rs sees a log that starts there, and the
//! leader, which counted the snapshot as delivered when it sent it,
//! probes and streams from there on.
//!
//! Resumable: every chunk is durable and applied once written, and the
//! compaction point is stored every `CATCH_UP_STORE_EVERY_CHUNKS` chunks;
//! a fetch that fails (the sender died, the link dropped) or a restart
//! resumes from what this replica holds at the next snapshot.
//!
//! Lives on: the core of the group.

use std::rc::Rc;

use chat_log::Offset;
use chat_replication::eraftpb::{Entry, Message};
use chat_replication::{GroupId, NodeId};
use tracing::{info, warn};

use super::forward::{decode_answer, encode_forward, Answer, AnyReply, Forward, LogRecord, Work};
use super::raft_log::{self, Base, Stored};
use super::replicator::Replicator;
use crate::constants::{CATCH_UP_CHUNK_BYTES, CATCH_UP_STORE_EVERY_CHUNKS};
use crate::shard::error::{unavailable, ShardResult};
use crate::shard::runner::Health;
use crate::shard::Shard;

/// Bytes a record counts for in a chunk besides its payload.
const RECORD_OVERHEAD_BYTES: usize = 32;

/// A snapshot from `msg.from` for `group`: start catching up to its index
/// unless a catch-up runs already (it goes on to the newest index asked).
pub fn on_snapshot(r: &Rc<Replicator>, group: GroupId, msg: &Message) {
    let Some(shard) = r.shard(group) else { return };
    let target = msg.get_snapshot().get_metadata().index;
    let from = NodeId(msg.from);
    if r.driver().is_paused(group) || target <= shard.committed().0 {
        return;
    }
    r.driver().pause(group, true);
    info!(
        shard = shard.id.0,
        from = from.0,
        target,
        "behind the leader's compaction point: fetching its log"
    );
    let r = r.clone();
    glommio::spawn_local(async move {
        let before = shard.committed().0;
        let fetched = fetch_through(&r, &shard, from, target).await;
        if let Err(e) = &fetched {
            warn!(shard = shard.id.0, error = %e, "catch-up stopped (resumes at the next snapshot)");
        }
        if let Err(e) = restart_replica(&r, &shard, before).await {
            super::replicator::fatal(&e);
        }
        if fetched.is_ok() {
            r.catch_ups.set(r.catch_ups.get() + 1);
            info!(shard = shard.id.0, through = shard.committed().0, "caught up");
        }
    })
    .detach();
}

/// Fetches, writes and applies the committed records up to `target`,
/// fetching the next chunk while the current one is written and applied.
async fn fetch_through(
    r: &Rc<Replicator>,
    shard: &Rc<Shard>,
    from: NodeId,
    target: u64,
) -> Result<(), String> {
    shard
        .settled_locally()
        .await
        .map_err(|e| format!("{e:?}"))?;
    let mut next = shard.committed().0 + 1;
    if next > target {
        return Ok(());
    }
    let mut records = fetch(r, shard, from, next, target).await?;
    let mut chunks = 0u64;
    loop {
        check_chunk(&records, next, target)?;
        if shard.appended_get() != shard.committed() || shard.health() != Health::Serving {
            return Err("the replica holds entries past its commit index".into());
        }
        let last = records.last().expect("checked: not empty").index;
        let entries: Vec<Entry> = records
            .into_iter()
            .map(|rec| {
                raft_log::entry_of(rec.index, rec.term, chat_log::Kind(rec.kind), rec.payload)
            })
            .collect();
        let ahead = async {
            if last < target {
                Some(fetch(r, shard, from, last + 1, target).await)
            } else {
                None
            }
        };
        let write = async {
            write_chunk(r, shard, &entries).await?;
            shard.apply_committed(&r.mesh_handle(), &entries);
            Ok::<(), String>(())
        };
        let (fetched, written) = futures_lite::future::zip(ahead, write).await;
        written?;
        chunks += 1;
        if chunks.is_multiple_of(CATCH_UP_STORE_EVERY_CHUNKS) {
            store_base(r, shard).await?;
        }
        match fetched {
            None => return Ok(()),
            Some(f) => records = f?,
        }
        next = last + 1;
    }
}

async fn fetch(
    r: &Replicator,
    shard: &Shard,
    node: NodeId,
    from: u64,
    upto: u64,
) -> Result<Vec<LogRecord>, String> {
    let body = encode_forward(&Forward {
        shard: shard.id.0,
        work: Work::FetchLog { from, upto },
    });
    let bytes = r
        .call(node, shard.group(), body)
        .await
        .map_err(|e| format!("fetch from node {}: {e:?}", node.0))?;
    match decode_answer(&bytes)? {
        Answer::Done {
            reply: AnyReply::Records(records),
            ..
        } => Ok(records),
        Answer::Done { .. } => Err("the peer answered a fetch with something else".into()),
        Answer::Refused(e) => Err(format!("node {} refused the fetch: {e:?}", node.0)),
    }
}

/// A peer's chunk is untrusted: dense from `next`, within `target`.
fn check_chunk(records: &[LogRecord], next: u64, target: u64) -> Result<(), String> {
    if records.is_empty() {
        return Err(format!("the peer sent no record at {next}"));
    }
    for (expected, rec) in (next..).zip(records) {
        if rec.index != expected || rec.index > target {
            return Err(format!(
                "the peer sent record {} where {expected} (≤ {target}) belongs",
                rec.index
            ));
        }
    }
    Ok(())
}

/// Writes a chunk at its offsets and waits until it is durable. Entries
/// held with the same term are the same entries (Raft's log matching);
/// from the first that differs, the log's own tail is replaced.
async fn write_chunk(r: &Replicator, shard: &Shard, entries: &[Entry]) -> Result<(), String> {
    let log = &*shard.log;
    let differs = entries.iter().position(|e| {
        e.index > log.last_offset().0 || log.term_at(Offset(e.index)).map(|t| t.0) != Some(e.term)
    });
    let Some(at) = differs else { return Ok(()) };
    let durable = r.append(shard, &entries[at..]).await?;
    durable
        .await
        .map_err(|e| format!("shard {}: fdatasync: {e}", shard.id.0))
}

/// Stores the compaction point at what the replica applied.
async fn store_base(r: &Replicator, shard: &Shard) -> Result<Base, String> {
    let g = shard.group();
    let index = shard.committed().0;
    let mut stored = r.stored(g);
    if index <= stored.base.index {
        return Ok(stored.base);
    }
    let term = shard
        .log
        .term_at(Offset(index))
        .ok_or_else(|| format!("shard {}: no record at {index}", shard.id.0))?;
    let hs = r.driver().store(g).map(|s| s.hard_state());
    if let Some(hs) = hs {
        stored.hard_state = hs;
    }
    stored.hard_state.commit = stored.hard_state.commit.max(index);
    stored.base = Base {
        index,
        term: term.0,
    };
    r.store(g, stored.clone()).await?;
    Ok(stored.base)
}

/// Rebuilds the group's replica from disk when the fetch wrote anything,
/// else just resumes it.
async fn restart_replica(r: &Rc<Replicator>, shard: &Rc<Shard>, before: u64) -> Result<(), String> {
    let g = shard.group();
    if shard.committed().0 == before {
        r.driver().pause(g, false);
        return Ok(());
    }
    store_base(r, shard).await?;
    let stored: Stored = r.stored(g);
    let boot = raft_log::read_boot(&*shard.log, &stored, shard.committed().0).await?;
    r.driver()
        .reset_group(g, boot)
        .map_err(|e| format!("shard {}: {e}", shard.id.0))?;
    r.kick();
    Ok(())
}

/// A peer fetching our committed records from `from` through `upto`.
pub async fn serve_fetch(shard: &Shard, from: u64, upto: u64) -> ShardResult<AnyReply> {
    if from == 0 || upto < from || upto > shard.committed().0 {
        return Err(unavailable(format!(
            "cannot serve records {from}..={upto}: committed through {}",
            shard.committed().0
        )));
    }
    if Offset(from) < shard.log.first_offset() {
        return Err(unavailable(format!(
            "record {from} is no longer in the log"
        )));
    }
    let mut reader = shard.log.reader_from(Offset(from));
    let (mut out, mut bytes) = (Vec::new(), 0usize);
    while bytes < CATCH_UP_CHUNK_BYTES {
        let Some(record) = reader.next().await else {
            break;
        };
        let rec = record.map_err(unavailable)?;
        if rec.offset.0 > upto {
            break;
        }
        bytes += rec.payload.len() + RECORD_OVERHEAD_BYTES;
        out.push(LogRecord {
            index: rec.offset.0,
            term: rec.term.0,
            kind: rec.kind.0,
            payload: rec.payload.to_vec(),
        });
    }
    Ok(AnyReply::Records(out))
}
