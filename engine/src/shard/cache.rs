//! Recent messages kept in memory, so that a device catching up (and the
//! history of recent messages) is served without a disk read per message.
//!
//! Lives on: the conversation's home shard's core. Bounded by bytes;
//! the oldest insertions go first (what syncing devices ask for is mostly
//! what was written last).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::machine::ids::{ConvId, Seq};
use crate::machine::records::MessageRec;

pub use crate::constants::MESSAGE_CACHE_BYTES_MAX;
/// What one entry costs beyond its strings (map slots, Rc, order).
const ENTRY_OVERHEAD_BYTES: usize = 160;

#[derive(Debug, Default)]
pub struct MessageCache {
    map: HashMap<(ConvId, Seq), Arc<MessageRec>>,
    order: VecDeque<(ConvId, Seq)>,
    bytes: usize,
    budget: usize,
}

fn cost(m: &MessageRec) -> usize {
    ENTRY_OVERHEAD_BYTES
        + m.body.len()
        + m.client_msg_id.len()
        + m.media.as_ref().map_or(0, String::len)
}

impl MessageCache {
    pub fn new(budget: usize) -> MessageCache {
        MessageCache {
            budget,
            ..MessageCache::default()
        }
    }

    pub fn get(&self, conv: ConvId, seq: Seq) -> Option<Arc<MessageRec>> {
        self.map.get(&(conv, seq)).cloned()
    }

    pub fn insert(&mut self, m: Arc<MessageRec>) {
        let c = cost(&m);
        if c > self.budget {
            return;
        }
        while self.bytes + c > self.budget {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some(gone) = self.map.remove(&old) {
                self.bytes -= cost(&gone);
            }
        }
        let key = (m.conv, m.seq);
        if let Some(prev) = self.map.insert(key, m) {
            self.bytes -= cost(&prev);
        } else {
            self.order.push_back(key);
        }
        self.bytes += c;
        debug_assert!(self.bytes <= self.budget);
    }

    /// Forgets everything (the state was rebuilt from the log).
    pub fn clear(&mut self) {
        self.map.clear();
        self.order.clear();
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::ids::{DeviceId, Millis, UserId};
    use crate::machine::records::BodyKind;

    fn msg(seq: u64, len: usize) -> Arc<MessageRec> {
        Arc::new(MessageRec {
            conv: ConvId(1),
            seq: Seq(seq),
            sender: UserId(1),
            device: DeviceId(1),
            client_msg_id: String::new(),
            ts: Millis(0),
            body_kind: BodyKind::Text,
            body: "x".repeat(len),
            media: None,
            reply_to: None,
        })
    }

    #[test]
    fn stays_within_budget_dropping_the_oldest() {
        let mut cache = MessageCache::new(3 * (ENTRY_OVERHEAD_BYTES + 100));
        for seq in 1..=5 {
            cache.insert(msg(seq, 100));
        }
        assert!(cache.get(ConvId(1), Seq(2)).is_none());
        assert!(cache.get(ConvId(1), Seq(3)).is_some());
        assert!(cache.get(ConvId(1), Seq(5)).is_some());
        assert!(cache.bytes <= cache.budget);
        cache.insert(msg(6, 10_000));
        assert!(
            cache.get(ConvId(1), Seq(6)).is_none(),
            "too big for the cache"
        );
    }
}
