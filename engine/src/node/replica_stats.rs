//! Cluster mode's figures: each replica's role, term, leader, commit and
//! applied index, and (on a leader) how far each follower is behind; per
//! core, elections won and proposals raft dropped. In `/stats` under
//! `"shards"` and `"raft"`, in `/metrics` as `chatd_raft_*`.
//!
//! Lives on: gathered on each core, rendered on core 0.

use std::fmt::Write as _;

use serde_json::{json, Value};

use crate::shard::Shard;

/// One replica as its core sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaStats {
    pub shard: u16,
    pub role: &'static str,
    pub term: u64,
    pub leader: Option<u64>,
    pub commit_index: u64,
    pub applied_index: u64,
    pub last_index: u64,
    /// The first index Raft still holds (the one after the compaction point).
    pub first_index: u64,
    /// On a leader: (follower, entries it lacks).
    pub lag: Vec<(u64, u64)>,
}

/// One core's cluster counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RaftStats {
    pub node: u64,
    pub leaderships: u64,
    pub proposals_dropped: u64,
    pub peer_frames_dropped: u64,
    pub snapshots_sent: u64,
    pub catch_ups: u64,
    pub links_refused: u64,
    /// Outbound links of this core to its peers: connected, and in all.
    pub links_up: u64,
    pub links: u64,
    pub replicas: Vec<ReplicaStats>,
}

/// The figures of this core's replicas (`None` on a single node).
pub fn gather<'a>(shards: impl Iterator<Item = &'a std::rc::Rc<Shard>>) -> Option<RaftStats> {
    let mut out: Option<RaftStats> = None;
    for shard in shards {
        let Some(r) = shard.cluster() else { continue };
        let stats = out.get_or_insert_with(|| {
            let d = r.driver().stats();
            RaftStats {
                node: r.node.0,
                leaderships: d.leaderships,
                proposals_dropped: d.proposals_dropped,
                peer_frames_dropped: r.links().iter().map(|l| l.dropped.get()).sum(),
                snapshots_sent: d.snapshots_sent,
                catch_ups: r.catch_ups.get(),
                links_refused: r.links_refused.get(),
                links_up: r.links().iter().filter(|l| l.is_up()).count() as u64,
                links: r.links().len() as u64,
                replicas: Vec::new(),
            }
        });
        let Some(s) = r.driver().status(shard.group()) else {
            continue;
        };
        stats.replicas.push(ReplicaStats {
            shard: shard.id.0,
            role: s.role.as_str(),
            term: s.term,
            leader: s.leader.map(|n| n.0),
            commit_index: s.commit,
            applied_index: shard.committed().0,
            last_index: s.last_index,
            first_index: s.first_index,
            lag: s
                .followers
                .iter()
                .map(|(n, m)| (n.0, s.last_index.saturating_sub(*m)))
                .collect(),
        });
    }
    out
}

/// `/stats`: every replica, ordered by shard, and the counters summed.
pub fn render_json<'a>(all: impl Iterator<Item = &'a RaftStats>) -> Option<Value> {
    let mut replicas = Vec::new();
    let (mut leaderships, mut dropped, mut frames, mut node) = (0, 0, 0, None);
    let (mut snapshots, mut catch_ups, mut refused) = (0, 0, 0);
    let (mut links_up, mut links) = (0, 0);
    for s in all {
        node = Some(s.node);
        leaderships += s.leaderships;
        dropped += s.proposals_dropped;
        frames += s.peer_frames_dropped;
        snapshots += s.snapshots_sent;
        catch_ups += s.catch_ups;
        refused += s.links_refused;
        links_up += s.links_up;
        links += s.links;
        replicas.extend(s.replicas.iter().cloned());
    }
    let node = node?;
    replicas.sort_by_key(|r| r.shard);
    let shards: Vec<Value> = replicas
        .iter()
        .map(|r| {
            let lag: serde_json::Map<String, Value> = r
                .lag
                .iter()
                .map(|(n, l)| (n.to_string(), json!(l)))
                .collect();
            json!({
                "shard": r.shard,
                "role": r.role,
                "term": r.term,
                "leader": r.leader,
                "commit_index": r.commit_index,
                "applied_index": r.applied_index,
                "last_index": r.last_index,
                "first_index": r.first_index,
                "follower_lag": lag,
            })
        })
        .collect();
    Some(json!({
        "shards": shards,
        "node": node,
        "elections_won": leaderships,
        "proposals_dropped": dropped,
        "peer_frames_dropped": frames,
        "snapshots_sent": snapshots,
        "catch_ups": catch_ups,
        "peer_links_refused": refused,
        "peer_links_up": links_up,
        "peer_links": links,
    }))
}

/// A per-replica gauge: name, help, how to read it.
type Gauge = (&'static str, &'static str, fn(&ReplicaStats) -> u64);

/// `/metrics`: the same as gauges and counters.
pub fn render_prometheus<'a>(out: &mut String, all: impl Iterator<Item = &'a RaftStats>) {
    let all: Vec<&RaftStats> = all.collect();
    if all.is_empty() {
        return;
    }
    let gauges: [Gauge; 6] = [
        ("raft_term", "Raft term of the replica.", |r| r.term),
        (
            "raft_leader",
            "Node id of the leader this replica knows (0: none).",
            |r| r.leader.unwrap_or(0),
        ),
        (
            "raft_is_leader",
            "1 when this replica leads its shard.",
            |r| (r.role == "leader") as u64,
        ),
        ("raft_commit_index", "Highest index known committed.", |r| {
            r.commit_index
        }),
        (
            "raft_applied_index",
            "Highest index applied to the chat state.",
            |r| r.applied_index,
        ),
        (
            "raft_first_index",
            "First index Raft holds in memory (after the compaction point).",
            |r| r.first_index,
        ),
    ];
    for (name, help, value) in gauges {
        let _ = writeln!(out, "# HELP chatd_{name} {help}\n# TYPE chatd_{name} gauge");
        for r in all.iter().flat_map(|s| s.replicas.iter()) {
            let _ = writeln!(out, "chatd_{name}{{shard=\"{}\"}} {}", r.shard, value(r));
        }
    }
    let _ = writeln!(
        out,
        "# HELP chatd_raft_follower_lag_entries Entries a follower lacks (on the leader).\n# TYPE chatd_raft_follower_lag_entries gauge"
    );
    for r in all.iter().flat_map(|s| s.replicas.iter()) {
        for (n, lag) in &r.lag {
            let _ = writeln!(
                out,
                "chatd_raft_follower_lag_entries{{shard=\"{}\",follower=\"{n}\"}} {lag}",
                r.shard
            );
        }
    }
    render_counters(out, &all);
}

/// The per-node counters, summed over the cores.
fn render_counters(out: &mut String, all: &[&RaftStats]) {
    let counters: [(&str, &str, u64); 6] = [
        (
            "raft_elections_won_total",
            "Times a replica on this node became leader.",
            all.iter().map(|s| s.leaderships).sum(),
        ),
        (
            "raft_proposals_dropped_total",
            "Proposals raft refused while leading.",
            all.iter().map(|s| s.proposals_dropped).sum(),
        ),
        (
            "raft_peer_frames_dropped_total",
            "Frames to peers dropped (link down or queue full).",
            all.iter().map(|s| s.peer_frames_dropped).sum(),
        ),
        (
            "raft_snapshots_sent_total",
            "Compaction points sent to followers behind them.",
            all.iter().map(|s| s.snapshots_sent).sum(),
        ),
        (
            "raft_catch_ups_total",
            "Times a replica here fetched the log up to a leader's compaction point.",
            all.iter().map(|s| s.catch_ups).sum(),
        ),
        (
            "raft_peer_links_refused_total",
            "Inbound peer connections refused (TLS handshake, hello, silence).",
            all.iter().map(|s| s.links_refused).sum(),
        ),
    ];
    for (name, help, v) in counters {
        let _ = writeln!(
            out,
            "# HELP chatd_{name} {help}\n# TYPE chatd_{name} counter\nchatd_{name} {v}"
        );
    }
    let up: u64 = all.iter().map(|s| s.links_up).sum();
    let links: u64 = all.iter().map(|s| s.links).sum();
    let _ = writeln!(
        out,
        "# HELP chatd_raft_peer_links_up Outbound peer links (one per core and peer) connected now.\n\
         # TYPE chatd_raft_peer_links_up gauge\nchatd_raft_peer_links_up {up}\n\
         # HELP chatd_raft_peer_links Outbound peer links (one per core and peer).\n\
         # TYPE chatd_raft_peer_links gauge\nchatd_raft_peer_links {links}"
    );
}
