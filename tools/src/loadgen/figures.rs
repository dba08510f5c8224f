//! The figures of a run: latency histograms and counters, mergeable across
//! workers and carried from a worker to the coordinator as JSON.
//!
//! Lives on: one worker executor (filled), the coordinator (merged).

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::constants::HISTOGRAM_MICROS_MAX;
use super::outage::{MergedOutages, OutageReport};
use super::verdict::Verdict;

pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HISTOGRAM_MICROS_MAX, 3).expect("valid bounds")
}

/// A histogram as (value, count) pairs: what crosses the process boundary.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Buckets(pub Vec<(u64, u64)>);

impl Buckets {
    pub fn of(h: &Histogram<u64>) -> Buckets {
        Buckets(
            h.iter_recorded()
                .map(|v| (v.value_iterated_to(), v.count_at_value()))
                .collect(),
        )
    }

    pub fn add_to(&self, h: &mut Histogram<u64>) {
        for (value, count) in &self.0 {
            h.saturating_record_n(*value, *count);
        }
    }
}

/// Counters a worker reports every second and at the end.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Counters {
    /// Connections that finished their handshake (auth, sync).
    pub connected: u64,
    pub connect_failed: u64,
    /// Messages written on the wire.
    pub sends: u64,
    /// Of those, intended inside the measured window.
    pub sends_measured: u64,
    /// Confirmations (send→sent) inside the measured window.
    pub confirmed_measured: u64,
    /// First copies received inside the measured window.
    pub received_measured: u64,
    /// Every copy received.
    pub received: u64,
    /// Sends that left later than intended by more than the lag bound.
    pub sends_late: u64,
    pub heartbeats: u64,
    /// Failover: scheduled sends skipped while the sender had no connection.
    pub sends_skipped: u64,
    /// Failover: messages of unknown outcome sent again (same id).
    pub resends: u64,
    /// Failover: connections opened again after a drop.
    pub reconnects: u64,
}

impl Counters {
    pub fn add(&mut self, o: &Counters) {
        self.connected += o.connected;
        self.connect_failed += o.connect_failed;
        self.sends += o.sends;
        self.sends_measured += o.sends_measured;
        self.confirmed_measured += o.confirmed_measured;
        self.received_measured += o.received_measured;
        self.received += o.received;
        self.sends_late += o.sends_late;
        self.heartbeats += o.heartbeats;
        self.sends_skipped += o.sends_skipped;
        self.resends += o.resends;
        self.reconnects += o.reconnects;
    }
}

/// Everything one worker measured.
///
/// Lives on: one worker executor; serialised to the coordinator at the end.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Report {
    pub counters: Counters,
    pub verdict: Verdict,
    pub send_to_sent: Buckets,
    pub send_to_receive: Buckets,
    /// TCP connect → handshake done (auth.ok / bound / upgraded).
    pub connect: Buckets,
    /// Error answers by code.
    pub errors: BTreeMap<String, u64>,
    /// Connections that ended before the run did, by reason.
    pub disconnects: BTreeMap<String, u64>,
    /// Connect failures by reason (first words of the error).
    pub connect_errors: BTreeMap<String, u64>,
    /// Server events we do not measure, by type.
    pub other_events: BTreeMap<String, u64>,
    /// Up to a few lines describing the first faults, for humans.
    pub samples: Vec<String>,
    /// Seconds the drain took (until settled or the drain timeout).
    pub drain_seconds: f64,
    /// Catch-up: seconds from the receivers' connect to every message in.
    pub catchup_seconds: f64,
    /// Failover: each sender's outages.
    #[serde(default)]
    pub outage: OutageReport,
}

/// Counters, histograms and counts by kind: what a worker fills while it
/// runs, and what the coordinator sums over the workers.
///
/// Lives on: one worker executor, or the coordinator.
pub struct Tally {
    pub counters: Counters,
    pub send_to_sent: Histogram<u64>,
    pub send_to_receive: Histogram<u64>,
    pub connect: Histogram<u64>,
    pub errors: BTreeMap<String, u64>,
    pub disconnects: BTreeMap<String, u64>,
    pub connect_errors: BTreeMap<String, u64>,
    pub other_events: BTreeMap<String, u64>,
}

impl Tally {
    pub fn new() -> Tally {
        Tally {
            counters: Counters::default(),
            send_to_sent: histogram(),
            send_to_receive: histogram(),
            connect: histogram(),
            errors: BTreeMap::new(),
            disconnects: BTreeMap::new(),
            connect_errors: BTreeMap::new(),
            other_events: BTreeMap::new(),
        }
    }

    fn add(&mut self, r: &Report) {
        self.counters.add(&r.counters);
        r.send_to_sent.add_to(&mut self.send_to_sent);
        r.send_to_receive.add_to(&mut self.send_to_receive);
        r.connect.add_to(&mut self.connect);
        for (mine, theirs) in [
            (&mut self.errors, &r.errors),
            (&mut self.disconnects, &r.disconnects),
            (&mut self.connect_errors, &r.connect_errors),
            (&mut self.other_events, &r.other_events),
        ] {
            add_counts(mine, theirs);
        }
    }
}

impl Default for Tally {
    fn default() -> Tally {
        Tally::new()
    }
}

/// The merged figures of every worker.
///
/// Lives on: the coordinator.
#[derive(Default)]
pub struct Merged {
    pub tally: Tally,
    pub verdict: Verdict,
    pub samples: Vec<String>,
    /// Seconds from `connect` to the last worker's "connected" (measured
    /// by the coordinator).
    pub connect_seconds: f64,
    pub drain_seconds: f64,
    pub catchup_seconds: f64,
    pub outages: MergedOutages,
}

impl Merged {
    pub fn add(&mut self, r: &Report) {
        self.outages.add(&r.outage);
        self.tally.add(r);
        self.verdict.add(&r.verdict);
        self.samples.extend(r.samples.iter().cloned());
        self.drain_seconds = self.drain_seconds.max(r.drain_seconds);
        self.catchup_seconds = self.catchup_seconds.max(r.catchup_seconds);
    }
}

pub fn add_counts(mine: &mut BTreeMap<String, u64>, theirs: &BTreeMap<String, u64>) {
    for (k, v) in theirs {
        *mine.entry(k.clone()).or_insert(0) += v;
    }
}

pub fn bump(map: &mut BTreeMap<String, u64>, key: &str) {
    if let Some(v) = map.get_mut(key) {
        *v += 1;
    } else {
        map.insert(key.to_owned(), 1);
    }
}

/// count, p50/p90/p99/p999/max in µs.
pub fn quantiles(h: &Histogram<u64>) -> Value {
    if h.is_empty() {
        return json!({"count": 0});
    }
    json!({
        "count": h.len(),
        "p50_us": h.value_at_quantile(0.50),
        "p90_us": h.value_at_quantile(0.90),
        "p99_us": h.value_at_quantile(0.99),
        "p999_us": h.value_at_quantile(0.999),
        "max_us": h.max(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_carry_a_histogram_across() {
        let mut h = histogram();
        for v in [1u64, 5, 5, 900, 12_000, 3_000_000] {
            h.record(v).unwrap();
        }
        let text = serde_json::to_string(&Buckets::of(&h)).unwrap();
        let back: Buckets = serde_json::from_str(&text).unwrap();
        let mut g = histogram();
        back.add_to(&mut g);
        assert_eq!(g.len(), h.len());
        for q in [0.1, 0.5, 0.9, 0.99, 1.0] {
            assert_eq!(g.value_at_quantile(q), h.value_at_quantile(q));
        }
    }
}
