//! The simulated network: messages in flight with a delivery time (random
//! delays reorder them), drops, duplicates, and directed cuts (a
//! symmetric partition is two cuts).

use std::collections::BTreeSet;

use chat_replication::eraftpb::Message;
use chat_replication::{GroupId, NodeId, Outgoing};

use crate::rng::Rng;

pub struct InFlight {
    pub at: u64,
    pub from: NodeId,
    pub to: NodeId,
    pub group: GroupId,
    pub msg: Message,
}

pub struct Faults {
    pub drop_per_million: u64,
    pub dup_per_million: u64,
    pub delay_ms_max: u64,
}

#[derive(Default)]
pub struct Net {
    pub flying: Vec<InFlight>,
    /// Directed cuts: (from, to) pairs that lose every message.
    pub cuts: BTreeSet<(NodeId, NodeId)>,
    pub sent: u64,
    pub dropped: u64,
    pub duplicated: u64,
}

impl Net {
    /// Queues a message; false when it was lost (the real link learns of a
    /// lost snapshot from its stream failing, and reports it).
    pub fn send(
        &mut self,
        rng: &mut Rng,
        faults: &Faults,
        now: u64,
        from: NodeId,
        o: Outgoing,
    ) -> bool {
        let Outgoing { group, to, msg } = o;
        self.sent += 1;
        if self.cuts.contains(&(from, to)) || rng.chance(faults.drop_per_million) {
            self.dropped += 1;
            return false;
        }
        let copies = if rng.chance(faults.dup_per_million) {
            2
        } else {
            1
        };
        self.duplicated += copies - 1;
        for _ in 0..copies {
            let at = now + 1 + rng.below(faults.delay_ms_max);
            self.flying.push(InFlight {
                at,
                from,
                to,
                group,
                msg: msg.clone(),
            });
        }
        true
    }

    /// The messages due by `now`, in delivery-time order (ties by send order).
    pub fn due(&mut self, now: u64) -> Vec<InFlight> {
        let (due, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.flying)
            .into_iter()
            .partition(|m| m.at <= now);
        self.flying = rest;
        let mut due = due;
        due.sort_by_key(|m| m.at);
        due
    }
}
