//! The media sweep: a file under `media/blobs` that no account of any
//! shard holds as an upload any more (its uploaders deleted their
//! accounts, or an upload died before its record) is nobody's to read,
//! and is removed.
//!
//! Mark and sweep, node-wide: list the files older than the grace period,
//! ask every shard which of them its accounts hold (`HeldMedia`, after the
//! shard caught up with what is committed), remove the rest if still as
//! old. The grace covers an upload between its file's rename and its
//! record (and, in a cluster, a copy that arrived ahead of its record):
//! a file written again by a new upload of the same bytes is new again.
//! A node that removed a file a later record names fetches it from a
//! peer, as for a copy it missed.
//!
//! Lives on: core 0, after its shards' compaction.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tracing::info;

use crate::machine::ids::ShardId;
use crate::machine::state::{hex, unhex};
use crate::shard::mesh::{call, Mesh};
use crate::shard::ops::media::HeldMedia;

/// What one sweep did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Swept {
    pub files: u64,
    pub bytes: u64,
}

/// One sweep of `data_dir/media/blobs` over every shard's uploads.
pub async fn sweep(mesh: &Rc<dyn Mesh>, data_dir: &Path, grace: Duration) -> Result<Swept, String> {
    let old = old_files(&data_dir.join("media").join("blobs"), grace)?;
    if old.is_empty() {
        return Ok(Swept::default());
    }
    let candidates: Arc<HashSet<[u8; 32]>> = Arc::new(old.iter().map(|(sha, _)| *sha).collect());
    let mut held = HashSet::new();
    for shard in 0..mesh.shards() {
        let op = HeldMedia {
            candidates: candidates.clone(),
        };
        // A shard that cannot answer keeps every file: nothing goes.
        let some = call(mesh, ShardId(shard), op)
            .await
            .map_err(|e| format!("shard {shard}: {e:?}"))?;
        held.extend(some);
    }
    let mut swept = Swept::default();
    for (sha, path) in old.iter().filter(|(sha, _)| !held.contains(sha)) {
        let Ok(meta) = std::fs::metadata(path) else {
            continue;
        };
        if !older_than(&meta, grace) {
            continue; // uploaded again meanwhile
        }
        if std::fs::remove_file(path).is_ok() {
            swept.files += 1;
            swept.bytes += meta.len();
            tracing::debug!(sha256 = %hex(sha), "media file removed");
        }
    }
    if swept.files > 0 {
        info!(
            files = swept.files,
            bytes = swept.bytes,
            "media nobody holds removed"
        );
    }
    Ok(swept)
}

fn older_than(meta: &std::fs::Metadata, grace: Duration) -> bool {
    let modified = meta.modified().unwrap_or_else(|_| SystemTime::now());
    SystemTime::now()
        .duration_since(modified)
        .is_ok_and(|age| age >= grace)
}

/// The content files under `blobs` (`XX/HEX64`) older than `grace`.
fn old_files(blobs: &Path, grace: Duration) -> Result<Vec<([u8; 32], PathBuf)>, String> {
    let io = |p: &Path, e: std::io::Error| format!("{}: {e}", p.display());
    let mut out = Vec::new();
    let dirs = match std::fs::read_dir(blobs) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io(blobs, e)),
    };
    for dir in dirs.flatten().filter(|d| d.path().is_dir()) {
        let files = std::fs::read_dir(dir.path()).map_err(|e| io(&dir.path(), e))?;
        for f in files.flatten() {
            let Some(sha) = unhex(&f.file_name().to_string_lossy()) else {
                continue;
            };
            if f.metadata()
                .is_ok_and(|m| m.is_file() && older_than(&m, grace))
            {
                out.push((sha, f.path()));
            }
        }
    }
    Ok(out)
}
