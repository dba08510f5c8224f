//! Effects waiting for their records to become durable, released strictly
//! in log order by one drainer at a time.
//!
//! Lives on: the shard's core, inside `Shard`. Records are applied (and
//! their effects queued) in append order; durability futures wake in any
//! order, but a record durable means every earlier one is too. So each
//! writer releases up to its last offset, and whoever finds no drainer
//! drains; the others wait until their own effects were carried out
//! (backpressure on proposers).

use std::collections::VecDeque;
use std::task::Waker;

use chat_log::Offset;

use crate::machine::effects::Effect;

#[derive(Debug, Default)]
pub struct EffectQueue {
    pending: VecDeque<(Offset, Effect)>,
    /// Durable through here: effects up to it may go out.
    released: Offset,
    /// Carried out through here.
    done: Offset,
    draining: bool,
    waiters: Vec<Waker>,
}

impl EffectQueue {
    /// Queues the effects of the record at `offset` (offsets only grow).
    pub fn push(&mut self, offset: Offset, effects: Vec<Effect>) {
        if let Some((last, _)) = self.pending.back() {
            assert!(offset >= *last, "effects queue in log order");
        }
        assert!(offset > self.released, "a record applied after its release");
        self.pending
            .extend(effects.into_iter().map(|e| (offset, e)));
    }

    /// Records up to `upto` are durable. True when the caller must drain.
    pub fn release(&mut self, upto: Offset) -> bool {
        self.released = self.released.max(upto);
        if self.draining {
            return false;
        }
        self.draining = true;
        true
    }

    /// The next effect that may go out; `None` ends the drain.
    pub fn take_next(&mut self) -> Option<Effect> {
        match self.pending.front() {
            Some((offset, _)) if *offset <= self.released => {
                self.mark_done(Offset(offset.0 - 1));
                self.pending.pop_front().map(|(_, e)| e)
            }
            _ => {
                self.draining = false;
                self.mark_done(self.released);
                None
            }
        }
    }

    fn mark_done(&mut self, through: Offset) {
        if through > self.done {
            self.done = through;
            for w in self.waiters.drain(..) {
                w.wake();
            }
        }
    }

    /// Have the effects of records up to `offset` been carried out? If not,
    /// `waker` is woken when more are.
    pub fn done_through(&mut self, offset: Offset, waker: &Waker) -> bool {
        if self.done >= offset {
            return true;
        }
        self.waiters.push(waker.clone());
        false
    }

    /// A write failed: the log keeps records up to `durable` only; the
    /// effects of the dropped ones never go out.
    pub fn discard_after(&mut self, durable: Offset) {
        self.pending.retain(|(offset, _)| *offset <= durable);
    }

    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}
