//! The cluster's membership in the data directory (`CLUSTER`): written
//! when the directory is created, checked at every later start. A start
//! with other members or another shard count is refused (exit 2).
//!
//! Lives on: the main thread, before the cores start.

use std::path::Path;

use chat_replication::{Membership, NodeId};

use crate::config::ClusterConfig;

/// Replicas of each shard (fewer when the cluster has fewer nodes).
pub const REPLICATION_FACTOR: usize = 3;

/// The membership this node serves: the stored one, after checking that
/// the flags name the same cluster; or, in a new directory, the one the
/// flags make (stored durably before anything else).
pub fn establish(dir: &Path, cluster: &ClusterConfig, shards: u16) -> Result<Membership, String> {
    let nodes: Vec<(NodeId, String)> = cluster
        .peers
        .iter()
        .map(|(id, addr)| (NodeId(*id), addr.clone()))
        .collect();
    let rf = REPLICATION_FACTOR.min(nodes.len());
    let given = Membership::spread(&nodes, shards as u32, rf).map_err(|e| e.to_string())?;
    let path = dir.join("CLUSTER");
    let stored = match std::fs::read_to_string(&path) {
        Ok(text) => Membership::decode(&text).map_err(|e| format!("{}: {e}", path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            write_durably(dir, "CLUSTER", &given.encode())?;
            return Ok(given);
        }
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    stored.check_same(&given).map_err(|e| e.to_string())?;
    Ok(stored)
}

/// Writes `name` in `dir` atomically: temp file, fsync, rename, fsync dir.
pub fn write_durably(dir: &Path, name: &str, text: &str) -> Result<(), String> {
    let tmp = dir.join(format!("{name}.tmp"));
    std::fs::write(&tmp, text).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(|e| e.to_string())?;
    std::fs::rename(&tmp, dir.join(name)).map_err(|e| e.to_string())?;
    std::fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| e.to_string())
}

/// A number that names the cluster (its members and shards): peers with
/// another cluster's number are refused at their hello. FNV-1a of the
/// stored text (stable across builds).
pub fn cluster_id(m: &Membership) -> u64 {
    m.encode().bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}
