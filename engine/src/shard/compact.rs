//! The erasure compaction of a shard's log: the bodies of deleted,
//! vanished and erased messages, and the bodies that edits replaced, are
//! removed from the segment files (`machine/query/erasure.rs` says which;
//! chat-log rewrites each sealed segment). Run every
//! `--compact-interval-seconds` by the node.
//!
//! Lives on: the shard's core.
//!
//! Only durable (in a cluster: committed) state decides: a record is left
//! alone while the state holds records the log has not made durable or
//! the group has not committed (a failed write or a lost leadership could
//! still undo a delete, and a body must never go for a delete that did
//! not happen). What is left waits for the next run.

use tracing::{info, warn};

use super::runner::Shard;
use crate::machine::query::erasure::{erased, is_account_record};
use crate::machine::records::{self, KIND_CHAT};

/// What one run did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Compacted {
    pub segments_rewritten: u64,
    pub records_erased: u64,
    pub bytes_before: u64,
    pub bytes_after: u64,
}

impl Shard {
    /// Whether the state holds only what is durable (and committed).
    fn settled_state(&self) -> bool {
        let applied = self.appended_get();
        let committed = self.cluster.borrow().is_none() || self.committed() >= applied;
        committed && self.log.durable_offset() >= applied
    }

    /// One compaction run over every segment of the log.
    pub async fn compact(&self) -> Result<Compacted, String> {
        let started = std::time::Instant::now();
        let sealed = self
            .log
            .seal_for_compaction()
            .await
            .map_err(|e| format!("sealing the active segment: {e}"))?;
        let mut done = Compacted::default();
        for base in sealed {
            let now = self.clock.now();
            let mut scrub = |r: &chat_log::Record| -> Option<Vec<u8>> {
                if r.kind != KIND_CHAT || !self.settled_state() {
                    return None;
                }
                let rec = records::decode(&r.payload).ok()?;
                let after = erased(&self.state(), &rec, r.offset.0, now)?;
                if is_account_record(&rec) {
                    self.snapshot_owed.set(true);
                }
                Some(records::encode(&after).to_vec())
            };
            match self.log.rewrite_segment(base, &mut scrub).await {
                Ok(r) if r.changed > 0 => {
                    done.segments_rewritten += 1;
                    done.records_erased += r.changed;
                    done.bytes_before += r.bytes_before;
                    done.bytes_after += r.bytes_after;
                }
                Ok(_) => {}
                // The segment went meanwhile (a truncate in a cluster) or
                // changed: the next run sees what is there then.
                Err(e) => {
                    warn!(shard = self.id.0, base = base.0, error = %e, "segment not compacted")
                }
            }
        }
        if self.snapshot_owed.get() {
            self.replace_snapshot().await;
        }
        if done.records_erased > 0 {
            info!(
                shard = self.id.0,
                erased = done.records_erased,
                segments = done.segments_rewritten,
                before = done.bytes_before,
                after = done.bytes_after,
                ms = started.elapsed().as_millis() as u64,
                "log compacted"
            );
        }
        Ok(done)
    }

    /// A deleted account's phone and names left the log: the snapshot may
    /// still hold them (taken before the deletion), so a new one, taken
    /// now, replaces it. Retried by the next run if it fails.
    async fn replace_snapshot(&self) {
        while self.snapshotting.replace(true) {
            glommio::timer::sleep(std::time::Duration::from_millis(50)).await;
        }
        match self.snapshot().await {
            Ok(_) => self.snapshot_owed.set(false),
            Err(e) => {
                warn!(shard = self.id.0, error = %e, "snapshot after erasure failed (next run retries)")
            }
        }
        self.snapshotting.set(false);
    }
}
