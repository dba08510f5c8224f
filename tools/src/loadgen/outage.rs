//! Failover: how long each sender could not get a message through.
//!
//! Sans-IO. A user's outage opens at the intended time of its first send
//! that failed (skipped while it had no connection, left without an answer
//! when its connection dropped, answered `unavailable`) or stalled
//! (confirmed later than `--stall`), and closes at the next confirmation of
//! one of its sends. The run's unavailability window goes from the first
//! outage's start to the last outage's end, over every worker.
//!
//! Lives on: one worker executor (filled); merged by the coordinator.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::figures::{histogram, Buckets};

/// The outages of one worker's users.
///
/// Lives on: one worker executor.
pub struct Outages {
    stall_us: u64,
    /// Per user: the start of its open outage (µs, worker clock).
    open: Vec<Option<u64>>,
    /// Closed outages, µs each.
    windows: Histogram<u64>,
    first_start_us: Option<u64>,
    last_end_us: Option<u64>,
}

/// What crosses to the coordinator: times in µs since the Unix epoch.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct OutageReport {
    pub windows: Buckets,
    pub first_start_unix_us: Option<u64>,
    pub last_end_unix_us: Option<u64>,
    /// Users whose outage had not closed when the run ended.
    pub unrecovered: u64,
}

impl Outages {
    pub fn new(users: usize, stall_us: u64) -> Outages {
        assert!(stall_us > 0);
        Outages {
            stall_us,
            open: vec![None; users],
            windows: histogram(),
            first_start_us: None,
            last_end_us: None,
        }
    }

    /// A send of user `u` meant for `intended_us` failed.
    pub fn failed(&mut self, u: usize, intended_us: u64) {
        let open = &mut self.open[u];
        *open = Some(open.map_or(intended_us, |s| s.min(intended_us)));
    }

    /// A send of user `u` meant for `intended_us` was confirmed at `now_us`.
    pub fn confirmed(&mut self, u: usize, intended_us: u64, now_us: u64) {
        let stalled = now_us.saturating_sub(intended_us) > self.stall_us;
        let start = match (self.open[u].take(), stalled) {
            (Some(s), _) => s.min(intended_us),
            (None, true) => intended_us,
            (None, false) => return,
        };
        self.windows
            .saturating_record(now_us.saturating_sub(start).max(1));
        self.first_start_us = Some(self.first_start_us.map_or(start, |f| f.min(start)));
        self.last_end_us = Some(self.last_end_us.map_or(now_us, |l| l.max(now_us)));
    }

    /// The report, with worker-clock times turned into Unix time.
    pub fn report(&self, to_unix: impl Fn(u64) -> u64) -> OutageReport {
        OutageReport {
            windows: Buckets::of(&self.windows),
            first_start_unix_us: self.first_start_us.map(&to_unix),
            last_end_unix_us: self.last_end_us.map(&to_unix),
            unrecovered: self.open.iter().filter(|o| o.is_some()).count() as u64,
        }
    }
}

/// Every worker's outages together.
///
/// Lives on: the coordinator.
pub struct MergedOutages {
    pub windows: Histogram<u64>,
    pub first_start_unix_us: Option<u64>,
    pub last_end_unix_us: Option<u64>,
    pub unrecovered: u64,
}

impl Default for MergedOutages {
    fn default() -> MergedOutages {
        MergedOutages {
            windows: histogram(),
            first_start_unix_us: None,
            last_end_unix_us: None,
            unrecovered: 0,
        }
    }
}

impl MergedOutages {
    pub fn add(&mut self, r: &OutageReport) {
        r.windows.add_to(&mut self.windows);
        self.first_start_unix_us = min_of(self.first_start_unix_us, r.first_start_unix_us);
        self.last_end_unix_us = self.last_end_unix_us.max(r.last_end_unix_us);
        self.unrecovered += r.unrecovered;
    }

    /// First failed send to last recovery, µs.
    pub fn window_us(&self) -> Option<u64> {
        Some(
            self.last_end_unix_us?
                .saturating_sub(self.first_start_unix_us?),
        )
    }
}

fn min_of(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_runs_from_the_first_failure_to_the_next_confirmation() {
        let mut o = Outages::new(2, 500_000);
        o.confirmed(0, 1_000, 2_000); // quick: no outage
        o.failed(0, 10_000);
        o.failed(0, 20_000);
        o.confirmed(0, 30_000, 900_000);
        // A stall alone is an outage from its intended time.
        o.confirmed(1, 100_000, 700_000);
        o.failed(1, 800_000);
        let r = o.report(|t| t + 1_000_000_000);
        let mut m = MergedOutages::default();
        m.add(&r);
        assert_eq!(m.windows.len(), 2);
        assert_eq!(m.first_start_unix_us, Some(1_000_010_000));
        assert_eq!(m.last_end_unix_us, Some(1_000_900_000));
        assert_eq!(m.window_us(), Some(890_000));
        assert_eq!(m.unrecovered, 1);
    }

    #[test]
    fn no_failure_no_window() {
        let mut o = Outages::new(1, 500_000);
        o.confirmed(0, 0, 400_000);
        let mut m = MergedOutages::default();
        m.add(&o.report(|t| t));
        assert_eq!(
            (m.windows.len(), m.window_us(), m.unrecovered),
            (0, None, 0)
        );
    }
}
