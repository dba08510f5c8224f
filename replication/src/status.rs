//! What the ops endpoint shows of a group and of a driver. Plain values.

use raft::StateRole;

use crate::group::Group;
use crate::ids::NodeId;

/// A replica's role in its group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Follower,
    PreCandidate,
    Candidate,
    Leader,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Follower => "follower",
            Role::PreCandidate => "pre_candidate",
            Role::Candidate => "candidate",
            Role::Leader => "leader",
        }
    }
}

/// One group as this replica sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupStatus {
    pub role: Role,
    pub term: u64,
    pub leader: Option<NodeId>,
    pub commit: u64,
    pub applied: u64,
    pub last_index: u64,
    pub first_index: u64,
    /// On a leader: each follower and the last index it holds.
    pub followers: Vec<(NodeId, u64)>,
    /// Proposals made here and not yet resolved.
    pub pending: usize,
}

impl GroupStatus {
    pub(crate) fn of(g: &Group) -> GroupStatus {
        let r = &g.raw.raft;
        let role = match r.state {
            StateRole::Follower => Role::Follower,
            StateRole::PreCandidate => Role::PreCandidate,
            StateRole::Candidate => Role::Candidate,
            StateRole::Leader => Role::Leader,
        };
        let mut followers = Vec::new();
        if role == Role::Leader {
            for (id, p) in r.prs().iter() {
                if *id != r.id {
                    followers.push((NodeId(*id), p.matched));
                }
            }
            followers.sort();
        }
        GroupStatus {
            role,
            term: r.term,
            leader: Some(r.leader_id).filter(|&l| l != 0).map(NodeId),
            commit: r.raft_log.committed,
            applied: r.raft_log.applied,
            last_index: r.raft_log.last_index(),
            first_index: g.store.first(),
            followers,
            pending: g.pending(),
        }
    }
}

/// Counters of one driver since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DriverStats {
    /// Times a group on this driver became leader.
    pub leaderships: u64,
    /// Proposals raft refused while leading.
    pub proposals_dropped: u64,
    /// Snapshots (compaction points) sent to followers behind them.
    pub snapshots_sent: u64,
    /// Times a group was rebuilt from durable state (`reset_group`).
    pub resets: u64,
}
