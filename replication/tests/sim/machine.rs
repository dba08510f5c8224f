//! The replicated state machine of the simulation: a hash chain over the
//! applied entries (index and data), so that two replicas at the same
//! applied index agree iff they applied the same entries in the same order.

use chat_replication::eraftpb::{Entry, Snapshot};

use crate::rng::mix;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Machine {
    pub applied: u64,
    pub hash: u64,
    /// Entries with data applied (the proposals; empty entries are raft's).
    pub count: u64,
}

impl Machine {
    pub fn apply(&mut self, e: &Entry) {
        assert_eq!(e.index, self.applied + 1, "applied out of order");
        self.applied = e.index;
        if !e.data.is_empty() {
            let data = u64::from_le_bytes(e.data[..8].try_into().expect("8-byte values"));
            self.hash = mix(mix(self.hash, e.index), data);
            self.count += 1;
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        [self.applied, self.hash, self.count]
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .collect()
    }

    pub fn restore(s: &Snapshot) -> Machine {
        let d = &s.data;
        if d.is_empty() {
            return Machine {
                applied: s.get_metadata().index,
                ..Machine::default()
            };
        }
        let w = |i: usize| {
            u64::from_le_bytes(d[i * 8..i * 8 + 8].try_into().expect("24-byte snapshot"))
        };
        let m = Machine {
            applied: w(0),
            hash: w(1),
            count: w(2),
        };
        assert_eq!(
            m.applied,
            s.get_metadata().index,
            "snapshot data and metadata disagree"
        );
        m
    }
}
