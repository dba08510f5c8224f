//! Durability futures: an append's future resolves once its last record is
//! on disk, or fails with the I/O error of its batch.
//!
//! Lives on: the shard's core. A failed batch rolls the next offset back, so
//! offsets can be given out again; each such event closes a "generation",
//! and a future remembers the generation it was born in.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use crate::error::{LogError, Result};
use crate::types::Offset;

/// How a generation ended: everything up to `durable` was on disk; offsets
/// after it failed with `error` (`None`: truncated by the caller).
struct Ended {
    durable: Offset,
    error: Option<LogError>,
}

#[derive(Default)]
pub struct Durability {
    /// Last offset known to be on disk in the current generation.
    pub durable: Offset,
    generation: u64,
    ended: BTreeMap<u64, Ended>,
    waiters: Vec<Waker>,
}

impl Durability {
    pub fn new(durable: Offset) -> Durability {
        Durability {
            durable,
            ..Durability::default()
        }
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn advance(&mut self, durable: Offset) {
        assert!(durable >= self.durable, "durability never goes back");
        self.durable = durable;
        self.wake();
    }

    /// Ends the current generation: offsets after `durable` will never be
    /// durable under it (`error` says why; `None` for a truncation).
    pub fn end_generation(&mut self, durable: Offset, error: Option<LogError>) {
        self.ended.insert(
            self.generation,
            Ended {
                durable: self.durable.max(durable),
                error,
            },
        );
        self.generation += 1;
        self.durable = durable;
        self.wake();
    }

    fn wake(&mut self) {
        for waker in self.waiters.drain(..) {
            waker.wake();
        }
    }

    /// The outcome for `last` born in `generation`, if known.
    pub fn check(&self, generation: u64, last: Offset) -> Option<Result<()>> {
        if generation == self.generation {
            return (self.durable >= last).then_some(Ok(()));
        }
        let ended = self.ended.get(&generation).expect("generation ended");
        if last <= ended.durable {
            return Some(Ok(()));
        }
        Some(Err(ended.error.clone().unwrap_or_else(|| {
            LogError::Invalid(format!("offset {last} was truncated"))
        })))
    }

    pub fn register(&mut self, waker: &Waker) {
        // Drained on every change, so each pending future sits here once.
        self.waiters.push(waker.clone());
    }
}

/// Resolves when offsets up to `last` are durable.
pub struct DurableFuture {
    pub(crate) shared: std::rc::Rc<crate::log::Shared>,
    pub(crate) generation: u64,
    pub(crate) last: Offset,
}

impl Future for DurableFuture {
    type Output = Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let mut state = self.shared.state.borrow_mut();
        match state.durability.check(self.generation, self.last) {
            Some(outcome) => Poll::Ready(outcome),
            None if state.closed => Poll::Ready(Err(LogError::Closed)),
            None => {
                state.durability.register(cx.waker());
                Poll::Pending
            }
        }
    }
}
