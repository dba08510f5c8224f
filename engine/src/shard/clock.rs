//! Time for the shell: the wall clock in production, a hand-moved clock in
//! the simulation. The machine never reads either: the shell puts the time
//! into `Ctx` and the machine into records.
//!
//! Lives on: each core has its own handle.

use std::cell::Cell;

use crate::machine::ids::Millis;

pub trait Clock {
    fn now(&self) -> Millis;
}

/// Milliseconds since the Unix epoch.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Millis {
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970");
        Millis(since.as_millis() as u64)
    }
}

/// A clock that moves only when told.
#[derive(Default)]
pub struct ManualClock(Cell<u64>);

impl ManualClock {
    pub fn new(at: Millis) -> ManualClock {
        ManualClock(Cell::new(at.0))
    }

    pub fn advance(&self, ms: u64) {
        self.0.set(self.0.get() + ms);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Millis {
        Millis(self.0.get())
    }
}
