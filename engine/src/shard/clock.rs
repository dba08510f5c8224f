//! Time for the shell: the wall clock and glommio's timers in production,
//! a hand-moved clock in the simulation (its timers fire when the
//! simulation moves it, so a run does not depend on how fast it goes). The
//! machine reads neither: the shell puts the time into `Ctx`.
//!
//! Lives on: each core has its own handle.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::task::{Poll, Waker};
use std::time::Duration;

use super::storage::LocalBoxFuture;
use crate::machine::ids::Millis;

pub trait Clock {
    fn now(&self) -> Millis;
    /// Resolves once `ms` milliseconds of this clock have passed.
    fn sleep(&self, ms: u64) -> LocalBoxFuture<'_, ()>;
}

/// Milliseconds since the Unix epoch; glommio's timers.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Millis {
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970");
        Millis(since.as_millis() as u64)
    }

    fn sleep(&self, ms: u64) -> LocalBoxFuture<'_, ()> {
        Box::pin(glommio::timer::sleep(Duration::from_millis(ms)))
    }
}

/// A clock that moves only when told; sleepers wake when it passes their
/// deadline.
#[derive(Default)]
pub struct ManualClock {
    now: Cell<u64>,
    sleepers: RefCell<Vec<Waker>>,
}

impl ManualClock {
    pub fn new(at: Millis) -> ManualClock {
        ManualClock {
            now: Cell::new(at.0),
            sleepers: RefCell::new(Vec::new()),
        }
    }

    pub fn advance(&self, ms: u64) {
        self.now.set(self.now.get() + ms);
        for w in self.sleepers.borrow_mut().drain(..) {
            w.wake();
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Millis {
        Millis(self.now.get())
    }

    fn sleep(&self, ms: u64) -> LocalBoxFuture<'_, ()> {
        let deadline = self.now.get() + ms;
        Box::pin(poll_fn(move |cx| {
            if self.now.get() >= deadline {
                return Poll::Ready(());
            }
            self.sleepers.borrow_mut().push(cx.waker().clone());
            Poll::Pending
        }))
    }
}
