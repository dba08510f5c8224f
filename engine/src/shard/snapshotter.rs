//! Snapshots in the background: a fuzzy capture (`machine/snapshot.rs`)
//! streamed to the log's snapshot file chunk by chunk, yielding to the
//! shard's other tasks between chunks. Writers never wait for it: the
//! write lock is not taken, and the state is borrowed only while one chunk
//! is encoded.
//!
//! Lives on: the shard's core. Installed only once the log is durable
//! through every record the snapshot holds (in cluster mode: committed),
//! and only if no rebuild happened meanwhile.

use std::rc::Rc;

use chat_log::{Offset, Term};
use tracing::{debug, warn};

use super::runner::{Health, Shard};
use crate::constants::{COMMIT_WAIT_MS, SNAPSHOT_CHUNK_BYTES};
use crate::machine::snapshot::Capture;
use crate::machine::state::Lsn;

impl Shard {
    /// Starts a snapshot once enough records were applied since the last.
    pub fn maybe_snapshot(self: &Rc<Self>) {
        let applied = self.applied();
        if self.snapshotting.get()
            || applied < self.snapshot_at.get() + self.config.snapshot_records
        {
            return;
        }
        self.snapshotting.set(true);
        let me = self.clone();
        glommio::spawn_local(async move {
            match me.snapshot().await {
                Ok(entities) => {
                    debug!(shard = me.id.0, entities, "snapshot installed");
                    me.snapshot_at.set(applied);
                }
                Err(e) => warn!(shard = me.id.0, error = %e, "snapshot failed (will retry later)"),
            }
            me.snapshotting.set(false);
        })
        .detach();
    }

    /// Captures and installs a snapshot; answers how many entities it holds.
    pub async fn snapshot(&self) -> Result<u64, String> {
        if self.health() != Health::Serving {
            return Err("the state is being rebuilt".into());
        }
        let generation = self.generation();
        // Cluster mode: only committed records may stand in a snapshot (a
        // leader applies its proposals before they commit).
        let clustered = self.cluster().is_some();
        let start = match clustered {
            true => self.committed(),
            false => self.log.last_offset(),
        };
        let mut capture = Capture::new(Lsn(start.0));
        let mut sink = self.log.begin_snapshot().await.map_err(|e| e.to_string())?;
        loop {
            let chunk = capture.next_chunk(&self.state(), SNAPSHOT_CHUNK_BYTES);
            let Some(chunk) = chunk else { break };
            if self.generation() != generation {
                sink.abort().await;
                return Err("the state was rebuilt during the capture".into());
            }
            if let Err(e) = sink.write_chunk(&chunk).await {
                sink.abort().await;
                return Err(e.to_string());
            }
            futures_lite::future::yield_now().await;
        }
        // Every record an entity holds must be on disk before the snapshot
        // can stand for them.
        let synced = self.log.sync().await;
        if clustered {
            let upto = Offset(capture.max_lsn().0.max(start.0));
            if self.wait_committed(upto, COMMIT_WAIT_MS).await.is_err() {
                sink.abort().await;
                return Err(format!("records through {} did not commit", upto.0));
            }
        }
        let durable = self.log.durable_offset();
        if synced.is_err() || durable.0 < capture.max_lsn().0 || self.generation() != generation {
            sink.abort().await;
            return Err(format!(
                "the log is not durable through {}",
                capture.max_lsn().0
            ));
        }
        sink.finish(Offset(start.0), Term(0))
            .await
            .map_err(|e| e.to_string())?;
        Ok(capture.entities())
    }
}
