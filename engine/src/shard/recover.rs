//! Recovery: the state of a log is its snapshot (if any) plus the records
//! after it, replayed through `apply` with their effects dropped.
//!
//! Lives on: the shard's core (at startup, and in a rebuild after a failed
//! write). Replay dispatches on the record kind: chat records are applied,
//! other kinds (Raft's empty and configuration entries, later) pass by.

use chat_log::Offset;
use tracing::{debug, warn};

use super::storage::{LogStore, SnapshotSource};
use crate::machine::records::{self, KIND_CHAT};
use crate::machine::snapshot::Restore;
use crate::machine::state::{Lsn, Params, State};

/// The state `log` holds, and how many records were replayed.
pub async fn recover(log: &dyn LogStore, params: Params) -> Result<(State, u64), String> {
    let (state, replayed, _) = recover_through(log, params, Offset(u64::MAX)).await?;
    Ok((state, replayed))
}

/// The state of the records up to `upto` (cluster mode: the committed
/// ones; an uncommitted tail may still be replaced by the leader's).
pub async fn recover_through(
    log: &dyn LogStore,
    params: Params,
    upto: Offset,
) -> Result<(State, u64, Offset), String> {
    let (mut state, from) = match log.open_snapshot().await.map_err(|e| e.to_string())? {
        Some(mut source) => match restore(log, &mut *source, params).await {
            Ok(restored) => restored,
            // The log still holds every record: it alone is the state (a
            // snapshot of an older format after an upgrade, a damaged one).
            Err(e) if log.first_offset().0 <= 1 => {
                warn!(error = %e, "snapshot not used: replaying the whole log");
                (State::new(params), log.first_offset())
            }
            Err(e) => return Err(e),
        },
        None => (State::new(params), log.first_offset()),
    };
    let mut replayed = 0;
    let mut through = Offset(from.0 - 1);
    let mut reader = log.reader_from(from);
    while let Some(record) = reader.next().await {
        let record = record.map_err(|e| e.to_string())?;
        if record.offset > upto {
            break;
        }
        through = record.offset;
        if record.kind != KIND_CHAT {
            debug!(
                offset = record.offset.0,
                kind = record.kind.0,
                "not a chat record: passed by"
            );
            continue;
        }
        let rec = records::decode(&record.payload)
            .map_err(|e| format!("record {}: {e}", record.offset.0))?;
        let _ = crate::machine::apply::apply(&mut state, &rec, Lsn(record.offset.0));
        replayed += 1;
    }
    Ok((state, replayed, through))
}

/// The state `source` holds, and the first offset after it.
async fn restore(
    log: &dyn LogStore,
    source: &mut dyn SnapshotSource,
    params: Params,
) -> Result<(State, Offset), String> {
    let covered = source.offset();
    if covered > log.last_offset() {
        return Err(format!(
            "snapshot covers offset {} but the log ends at {}",
            covered.0,
            log.last_offset().0
        ));
    }
    let mut restore = Restore::new(params);
    while let Some(chunk) = source.next_chunk().await.map_err(|e| e.to_string())? {
        restore
            .add_chunk(&chunk)
            .map_err(|e| format!("snapshot: {e}"))?;
    }
    let state = restore.finish().map_err(|e| format!("snapshot: {e}"))?;
    Ok((state, Offset(covered.0 + 1)))
}

#[cfg(test)]
mod tests {
    use chat_log::{Entry, Term};

    use super::*;
    use crate::machine::ids::{Millis, UserId};
    use crate::machine::records::Rec;
    use crate::shard::memlog::{Flush, MemLog};

    const PARAMS: Params = Params {
        group_members_max: 8,
        fanout_on_read_members: 8,
        token_ttl_seconds: 1,
        edit_window_seconds: 1,
        key_fetches_per_minute: 1,
    };

    #[test]
    fn a_snapshot_it_cannot_read_is_passed_by_while_the_log_holds_every_record() {
        futures_lite::future::block_on(async {
            let log = MemLog::new(Flush::Auto);
            let rec = Rec::UserCreated {
                user: UserId(1),
                phone: "+15550000001".into(),
                ts: Millis(1),
            };
            let payload = records::encode(&rec);
            let entry = Entry {
                kind: KIND_CHAT,
                term: Term(0),
                payload: &payload,
            };
            log.append(&[entry]).await.unwrap();
            // An older build's snapshot: a format this build does not read.
            let mut sink = log.begin_snapshot().await.unwrap();
            sink.write_chunk(&[0xAB; 48]).await.unwrap();
            sink.finish(Offset(1), Term(0)).await.unwrap();
            let (state, replayed) = recover(&log, PARAMS).await.unwrap();
            assert_eq!((state.users.len(), replayed), (1, 1));
        });
    }
}
