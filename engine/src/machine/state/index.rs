//! Where each message of a conversation is in the log: seq → offset, in
//! about 4 bytes per message (the body stays in the log).
//!
//! Lives on: the conversation's home shard's core, inside `Conv`.
//!
//! Messages are grouped in blocks of up to `BLOCK_MESSAGES` consecutive
//! seqs; a block keeps its first seq and first offset (16 bytes), each
//! message the distance from that offset (4 bytes). A distance that does
//! not fit in 32 bits starts a new block, so any gap between messages works.

use rkyv::{Archive, Deserialize, Serialize};

use crate::machine::ids::Seq;

/// Messages per block at most.
pub const BLOCK_MESSAGES: u64 = 256;

#[derive(Archive, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct MessageIndex {
    /// (first seq, offset of that message), ascending in both.
    blocks: Vec<(u64, u64)>,
    /// `deltas[seq - 1]`: the offset minus its block's first offset.
    deltas: Vec<u32>,
}

impl MessageIndex {
    /// The last seq stored (0 when there is none).
    pub fn last_seq(&self) -> Seq {
        Seq(self.deltas.len() as u64)
    }

    /// Stores the next message (seq `last_seq + 1`) at `offset`.
    pub fn push(&mut self, offset: u64) {
        let seq = self.deltas.len() as u64 + 1;
        if let Some(&(first, base)) = self.blocks.last() {
            assert!(offset > base, "messages are stored in log order");
            let delta = offset - base;
            if seq - first < BLOCK_MESSAGES && delta <= u64::from(u32::MAX) {
                self.deltas.push(delta as u32);
                return;
            }
        }
        self.blocks.push((seq, offset));
        self.deltas.push(0);
    }

    /// The offset of message `seq`, if it exists.
    pub fn offset(&self, seq: Seq) -> Option<u64> {
        if seq.0 == 0 || seq.0 > self.deltas.len() as u64 {
            return None;
        }
        let block = self.blocks.partition_point(|(first, _)| *first <= seq.0) - 1;
        let base = self.blocks[block].1;
        Some(base + u64::from(self.deltas[seq.0 as usize - 1]))
    }

    /// Bytes of memory the index holds (for the figures in the docs).
    pub fn heap_bytes(&self) -> usize {
        self.blocks.capacity() * 16 + self.deltas.capacity() * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_round_trip_across_blocks_and_huge_gaps() {
        let mut index = MessageIndex::default();
        let mut offsets = Vec::new();
        let mut at = 5u64;
        for i in 0..2000u64 {
            at += if i % 700 == 3 { 1 << 33 } else { 1 + i % 7 };
            index.push(at);
            offsets.push(at);
        }
        assert_eq!(index.last_seq(), Seq(2000));
        for (i, o) in offsets.iter().enumerate() {
            assert_eq!(index.offset(Seq(i as u64 + 1)), Some(*o));
        }
        assert_eq!(index.offset(Seq(0)), None);
        assert_eq!(index.offset(Seq(2001)), None);
        assert!(index.heap_bytes() < 2000 * 5 + 64 * 16);
    }
}
