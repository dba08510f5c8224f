//! The cluster's membership and placement: which nodes exist, where they
//! listen for peers, and which nodes hold each group's replicas. Data, not
//! code: nothing else may assume that every node holds every group.
//!
//! Fixed when a data directory is created and stored beside it as text;
//! a start with a different member list or shard count is refused.
//! A plain value, built once at startup and copied to every core.

use std::collections::BTreeMap;
use std::fmt;

use crate::constants::{NODES_MAX, REPLICAS_MAX};
use crate::ids::{GroupId, NodeId};

const HEADER: &str = "chatd-cluster 1";

/// Members, shard count and placement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Membership {
    nodes: BTreeMap<NodeId, String>,
    shards: u32,
    placement: BTreeMap<GroupId, Vec<NodeId>>,
}

/// Why a membership is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MembershipError {
    /// No members, a node id 0, too many members, or a duplicate.
    Members(String),
    /// Replication factor 0 or above the member count.
    Factor(usize),
    /// The stored text does not parse.
    Parse { line: usize, why: String },
    /// A start with different members or shards than the data directory.
    Mismatch { stored: String, given: String },
}

impl fmt::Display for MembershipError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MembershipError::Members(why) => write!(f, "bad member list: {why}"),
            MembershipError::Factor(rf) => {
                write!(f, "replication factor {rf} does not fit the members")
            }
            MembershipError::Parse { line, why } => write!(f, "cluster file line {line}: {why}"),
            MembershipError::Mismatch { stored, given } => write!(
                f,
                "this data directory belongs to cluster [{stored}], not [{given}]; \
                 use the original --peers and shard count, or a new --data-dir"
            ),
        }
    }
}

impl std::error::Error for MembershipError {}

impl Membership {
    /// Members with each group on `rf` consecutive nodes (by id order),
    /// starting at node `k % n` for group `k`: with 3 nodes and rf 3, every
    /// node holds every group, and group `k` prefers node `k % 3` as leader.
    pub fn spread(
        nodes: &[(NodeId, String)],
        shards: u32,
        rf: usize,
    ) -> Result<Membership, MembershipError> {
        let map = check_members(nodes)?;
        if rf == 0 || rf > map.len() || rf > REPLICAS_MAX {
            return Err(MembershipError::Factor(rf));
        }
        let ids: Vec<NodeId> = map.keys().copied().collect();
        let placement = (0..shards)
            .map(|k| {
                let start = k as usize % ids.len();
                let replicas = (0..rf).map(|i| ids[(start + i) % ids.len()]).collect();
                (GroupId(k), replicas)
            })
            .collect();
        Ok(Membership {
            nodes: map,
            shards,
            placement,
        })
    }

    /// The member ids in order.
    pub fn nodes(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.nodes.keys().copied()
    }

    /// Where `node` listens for its peers.
    pub fn address(&self, node: NodeId) -> Option<&str> {
        self.nodes.get(&node).map(String::as_str)
    }

    /// The number of shards (groups).
    pub fn shards(&self) -> u32 {
        self.shards
    }

    /// The replicas of `group`, the preferred leader first.
    pub fn replicas(&self, group: GroupId) -> &[NodeId] {
        self.placement.get(&group).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The groups `node` holds a replica of.
    pub fn groups_on(&self, node: NodeId) -> Vec<GroupId> {
        let holds = |(g, r): (&GroupId, &Vec<NodeId>)| r.contains(&node).then_some(*g);
        self.placement.iter().filter_map(holds).collect()
    }

    /// The text stored in the data directory.
    pub fn encode(&self) -> String {
        let mut out = format!("{HEADER}\nshards {}\n", self.shards);
        for (id, addr) in &self.nodes {
            out.push_str(&format!("node {id} {addr}\n"));
        }
        for (g, replicas) in &self.placement {
            let list: Vec<String> = replicas.iter().map(|n| n.to_string()).collect();
            out.push_str(&format!("place {g} {}\n", list.join(" ")));
        }
        out
    }

    /// Parses what `encode` wrote; every line checked.
    pub fn decode(text: &str) -> Result<Membership, MembershipError> {
        let mut lines = text.lines().enumerate();
        let bad = |line: usize, why: &str| MembershipError::Parse {
            line: line + 1,
            why: why.to_string(),
        };
        match lines.next() {
            Some((_, HEADER)) => {}
            _ => return Err(bad(0, "not a chatd cluster file")),
        }
        let mut shards = None;
        let mut nodes = Vec::new();
        let mut placement = BTreeMap::new();
        for (i, line) in lines {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                [] => {}
                ["shards", n] => {
                    shards = Some(n.parse::<u32>().map_err(|_| bad(i, "bad shard count"))?)
                }
                ["node", id, addr] => nodes.push((
                    parse_node(id).ok_or_else(|| bad(i, "bad node id"))?,
                    addr.to_string(),
                )),
                ["place", g, rest @ ..] => {
                    let g = GroupId(g.parse().map_err(|_| bad(i, "bad group"))?);
                    let replicas: Option<Vec<NodeId>> =
                        rest.iter().map(|s| parse_node(s)).collect();
                    placement.insert(g, replicas.ok_or_else(|| bad(i, "bad replica"))?);
                }
                _ => return Err(bad(i, "unknown line")),
            }
        }
        let shards = shards.ok_or_else(|| bad(0, "no shard count"))?;
        let nodes = check_members(&nodes)?;
        let m = Membership {
            nodes,
            shards,
            placement,
        };
        m.check_placement().map_err(|why| bad(0, &why))?;
        Ok(m)
    }

    /// Refuses a start whose members or shard count differ from the stored.
    pub fn check_same(&self, given: &Membership) -> Result<(), MembershipError> {
        if self.nodes == given.nodes && self.shards == given.shards {
            return Ok(());
        }
        Err(MembershipError::Mismatch {
            stored: self.summary(),
            given: given.summary(),
        })
    }

    fn summary(&self) -> String {
        let nodes: Vec<String> = self.nodes.iter().map(|(i, a)| format!("{i}={a}")).collect();
        format!("{} shards={}", nodes.join(","), self.shards)
    }

    fn check_placement(&self) -> Result<(), String> {
        for k in 0..self.shards {
            let replicas = self
                .placement
                .get(&GroupId(k))
                .ok_or(format!("group {k} not placed"))?;
            let mut seen = replicas.clone();
            seen.sort();
            seen.dedup();
            let known = replicas.iter().all(|n| self.nodes.contains_key(n));
            if replicas.is_empty()
                || seen.len() != replicas.len()
                || !known
                || replicas.len() > REPLICAS_MAX
            {
                return Err(format!("group {k} has bad replicas"));
            }
        }
        if self.placement.len() != self.shards as usize {
            return Err("groups placed beyond the shard count".into());
        }
        Ok(())
    }
}

fn parse_node(s: &str) -> Option<NodeId> {
    s.parse::<u64>().ok().filter(|&n| n != 0).map(NodeId)
}

fn check_members(nodes: &[(NodeId, String)]) -> Result<BTreeMap<NodeId, String>, MembershipError> {
    if nodes.is_empty() || nodes.len() > NODES_MAX {
        return Err(MembershipError::Members(format!(
            "{} members (1 to {NODES_MAX})",
            nodes.len()
        )));
    }
    let mut map = BTreeMap::new();
    for (id, addr) in nodes {
        if id.0 == 0 || addr.is_empty() || addr.contains(char::is_whitespace) {
            return Err(MembershipError::Members(format!("bad member {id}={addr}")));
        }
        if map.insert(*id, addr.clone()).is_some() {
            return Err(MembershipError::Members(format!("node {id} listed twice")));
        }
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three() -> Vec<(NodeId, String)> {
        (1..=3)
            .map(|i| (NodeId(i), format!("127.0.0.1:{}", 7000 + i)))
            .collect()
    }

    #[test]
    fn three_nodes_hold_every_group_and_leaders_rotate() {
        let m = Membership::spread(&three(), 4, 3).unwrap();
        for k in 0..4 {
            assert_eq!(m.replicas(GroupId(k)).len(), 3);
            assert_eq!(m.replicas(GroupId(k))[0], NodeId(k as u64 % 3 + 1));
        }
        assert_eq!(m.groups_on(NodeId(2)).len(), 4);
    }

    #[test]
    fn five_nodes_place_each_group_on_three() {
        let nodes: Vec<_> = (1..=5).map(|i| (NodeId(i), format!("h{i}:1"))).collect();
        let m = Membership::spread(&nodes, 10, 3).unwrap();
        let held: usize = (1..=5).map(|i| m.groups_on(NodeId(i)).len()).sum();
        assert_eq!(held, 30);
        assert!(m.groups_on(NodeId(1)).len() < 10);
    }

    #[test]
    fn encode_decode_round_trip_and_mismatch_refused() {
        let m = Membership::spread(&three(), 2, 3).unwrap();
        let back = Membership::decode(&m.encode()).unwrap();
        assert_eq!(back, m);
        let mut other = three();
        other[2].1 = "127.0.0.1:9999".into();
        let o = Membership::spread(&other, 2, 3).unwrap();
        let e = m.check_same(&o).unwrap_err();
        assert!(e.to_string().contains("127.0.0.1:9999"), "{e}");
        assert!(m
            .check_same(&Membership::spread(&three(), 3, 3).unwrap())
            .is_err());
    }

    #[test]
    fn bad_inputs_are_refused() {
        assert!(Membership::spread(&[], 1, 1).is_err());
        assert!(Membership::spread(&[(NodeId(0), "a:1".into())], 1, 1).is_err());
        assert!(Membership::spread(&three(), 1, 4).is_err());
        let dup = vec![(NodeId(1), "a:1".into()), (NodeId(1), "b:1".into())];
        assert!(Membership::spread(&dup, 1, 1).is_err());
        let text = Membership::spread(&three(), 2, 3).unwrap().encode();
        assert!(Membership::decode(&text.replace("place 1 2 3 1", "place 1 2 2 1")).is_err());
        assert!(Membership::decode(&text.replace("shards 2", "shards 3")).is_err());
        assert!(Membership::decode("garbage").is_err());
    }
}
