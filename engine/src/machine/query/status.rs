//! Group `message.status`: for each sender of a message in a range, the
//! counts of its latest one there.

use std::collections::BTreeMap;

use crate::constants::STATUS_SCAN_MESSAGES_MAX;
use crate::machine::ids::{ConvId, Seq, UserId};
use crate::machine::state::State;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status {
    pub sender: UserId,
    pub seq: Seq,
    pub delivered: usize,
    pub read: usize,
}

/// Looks at `lo..=hi` (at most the last `STATUS_SCAN_MESSAGES_MAX`).
pub fn statuses(state: &State, conv: ConvId, lo: Seq, hi: Seq) -> Vec<Status> {
    let Some(c) = state.convs.get(&conv) else {
        return Vec::new();
    };
    let hi = hi.min(c.last_seq());
    let lo = lo
        .max(Seq(hi.0.saturating_sub(STATUS_SCAN_MESSAGES_MAX)))
        .max(Seq(1));
    let mut latest: BTreeMap<UserId, Seq> = BTreeMap::new();
    for seq in (lo.0..=hi.0).rev() {
        if let Some(sender) = c.senders.get(Seq(seq)) {
            latest.entry(sender).or_insert(Seq(seq));
        }
    }
    latest
        .into_iter()
        .map(|(sender, seq)| {
            let others = c.members.iter().filter(|(u, _)| **u != sender);
            let delivered = others
                .clone()
                .filter(|(_, m)| m.delivered.seq() >= seq)
                .count();
            let read = others.filter(|(_, m)| m.read.seq() >= seq).count();
            Status {
                sender,
                seq,
                delivered,
                read,
            }
        })
        .collect()
}
