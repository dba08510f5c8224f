//! Per-core counters and latency histograms, and their rendering as
//! Prometheus text and JSON for the ops port.
//!
//! Lives on: each core has its own `CoreStats` (no sharing). The core that
//! serves `/metrics` or `/stats` asks every other core for a copy over the
//! mesh and renders them side by side.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{json, Value};

/// Histograms cover 1 µs to 60 s with 3 significant digits.
const HISTOGRAM_MICROS_MAX: u64 = 60_000_000;

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HISTOGRAM_MICROS_MAX, 3).expect("valid bounds")
}

/// The latency histograms we keep, by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Latency {
    /// `message.send` received → `message.sent` queued to the sender.
    SendToSent,
    /// `message.send` received → `message.new` queued to an online device.
    SendToDelivered,
    /// One fdatasync of a shard's log.
    Fsync,
}

impl Latency {
    pub const ALL: [Latency; 3] = [
        Latency::SendToSent,
        Latency::SendToDelivered,
        Latency::Fsync,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Latency::SendToSent => "send_to_sent",
            Latency::SendToDelivered => "send_to_delivered",
            Latency::Fsync => "fsync",
        }
    }
}

/// One core's figures.
#[derive(Clone, Debug)]
pub struct CoreStats {
    pub core: u16,
    pub connections: u64,
    pub connections_rejected: u64,
    pub slow_consumers_dropped: u64,
    pub events_in: BTreeMap<&'static str, u64>,
    pub events_out: BTreeMap<&'static str, u64>,
    pub mesh_sent: u64,
    pub mesh_received: u64,
    /// Calls to other cores waiting for their answer now.
    pub mesh_pending_calls: u64,
    /// Frames waiting in the connections' outbound queues now.
    pub outbox_queued: u64,
    pub fsyncs: u64,
    pub bytes_written: u64,
    pub records_applied: u64,
    /// Effects of appended records waiting for durability now.
    pub effects_pending: u64,
    /// Search: documents indexed, and the index's memory (estimated).
    pub search_docs: u64,
    pub search_index_bytes: u64,
    /// Push notifications: waiting now, and what became of them.
    pub push_pending: u64,
    pub push: crate::push::outbox::Counts,
    pub latencies: BTreeMap<Latency, Histogram<u64>>,
    /// Cluster mode: this core's replicas.
    pub raft: Option<super::replica_stats::RaftStats>,
}

impl CoreStats {
    pub fn new(core: u16) -> CoreStats {
        CoreStats {
            core,
            connections: 0,
            connections_rejected: 0,
            slow_consumers_dropped: 0,
            events_in: BTreeMap::new(),
            events_out: BTreeMap::new(),
            mesh_sent: 0,
            mesh_received: 0,
            mesh_pending_calls: 0,
            outbox_queued: 0,
            fsyncs: 0,
            bytes_written: 0,
            records_applied: 0,
            effects_pending: 0,
            search_docs: 0,
            search_index_bytes: 0,
            push_pending: 0,
            push: Default::default(),
            latencies: Latency::ALL.iter().map(|l| (*l, histogram())).collect(),
            raft: None,
        }
    }

    pub fn event_in(&mut self, ty: &'static str) {
        *self.events_in.entry(ty).or_default() += 1;
    }

    pub fn event_out(&mut self, ty: &'static str, n: u64) {
        *self.events_out.entry(ty).or_default() += n;
    }

    pub fn record(&mut self, latency: Latency, elapsed: Duration) {
        self.record_micros(latency, elapsed.as_micros() as u64);
    }

    pub fn record_micros(&mut self, latency: Latency, micros: u64) {
        let h = self
            .latencies
            .get_mut(&latency)
            .expect("every latency has a histogram");
        h.saturating_record(micros.clamp(1, HISTOGRAM_MICROS_MAX));
    }
}

fn quantiles(h: &Histogram<u64>) -> Value {
    json!({
        "count": h.len(),
        "p50_us": h.value_at_quantile(0.50),
        "p99_us": h.value_at_quantile(0.99),
        "p999_us": h.value_at_quantile(0.999),
        "max_us": h.max(),
    })
}

fn merged(all: &[CoreStats], latency: Latency) -> Histogram<u64> {
    let mut h = histogram();
    for c in all {
        h.add(&c.latencies[&latency]).expect("same bounds");
    }
    h
}

/// `/stats`: per core and totals, p50/p99/p999 per histogram.
pub fn render_json(all: &[CoreStats], ready: bool, rss_bytes: Option<u64>) -> Value {
    let cores: Vec<Value> = all
        .iter()
        .map(|c| {
            let lat: serde_json::Map<String, Value> = c
                .latencies
                .iter()
                .map(|(l, h)| (l.name().to_string(), quantiles(h)))
                .collect();
            json!({
                "core": c.core,
                "connections": c.connections,
                "connections_rejected": c.connections_rejected,
                "slow_consumers_dropped": c.slow_consumers_dropped,
                "events_in": c.events_in,
                "events_out": c.events_out,
                "mesh_sent": c.mesh_sent,
                "mesh_received": c.mesh_received,
                "mesh_pending_calls": c.mesh_pending_calls,
                "outbox_queued": c.outbox_queued,
                "fsyncs": c.fsyncs,
                "bytes_written": c.bytes_written,
                "records_applied": c.records_applied,
                "effects_pending": c.effects_pending,
                "search_docs": c.search_docs,
                "search_index_bytes": c.search_index_bytes,
                "push": {
                    "pending": c.push_pending,
                    "queued": c.push.queued,
                    "collapsed": c.push.collapsed,
                    "sent": c.push.taken,
                    "moot": c.push.moot,
                    "failed": c.push.failed,
                    "dropped": c.push.dropped,
                    "expired": c.push.expired,
                },
                "latency": lat,
            })
        })
        .collect();
    let latency: serde_json::Map<String, Value> = Latency::ALL
        .iter()
        .map(|l| (l.name().to_string(), quantiles(&merged(all, *l))))
        .collect();
    let mut out = json!({
        "ready": ready,
        "rss_bytes": rss_bytes,
        "connections": all.iter().map(|c| c.connections).sum::<u64>(),
        "mesh_in_flight": mesh_in_flight(all),
        "cores": cores,
        "latency": latency,
    });
    if let Some(Value::Object(raft)) =
        super::replica_stats::render_json(all.iter().filter_map(|c| c.raft.as_ref()))
    {
        let map = out.as_object_mut().expect("an object");
        for (k, v) in raft {
            let key = if k == "shards" {
                k
            } else {
                format!("raft_{k}")
            };
            map.insert(key, v);
        }
    }
    out
}

/// The per-core counters and gauges of `/metrics`: name, help, type, value.
type Figure = (
    &'static str,
    &'static str,
    &'static str,
    fn(&CoreStats) -> u64,
);

const FIGURES: &[Figure] = &[
    ("connections", "Open client connections.", "gauge", |c| {
        c.connections
    }),
    (
        "connections_rejected_total",
        "Connections refused at the per-core cap.",
        "counter",
        |c| c.connections_rejected,
    ),
    (
        "slow_consumers_dropped_total",
        "Connections closed because their outbound queue was full.",
        "counter",
        |c| c.slow_consumers_dropped,
    ),
    (
        "mesh_sent_total",
        "Messages sent to other cores.",
        "counter",
        |c| c.mesh_sent,
    ),
    (
        "mesh_received_total",
        "Messages received from other cores.",
        "counter",
        |c| c.mesh_received,
    ),
    (
        "mesh_pending_calls",
        "Calls to other cores awaiting an answer.",
        "gauge",
        |c| c.mesh_pending_calls,
    ),
    (
        "outbox_queued",
        "Frames queued to connections' sockets.",
        "gauge",
        |c| c.outbox_queued,
    ),
    (
        "fsyncs_total",
        "fdatasync calls of the shard logs.",
        "counter",
        |c| c.fsyncs,
    ),
    (
        "log_bytes_written_total",
        "Bytes written to the shard logs.",
        "counter",
        |c| c.bytes_written,
    ),
    (
        "effects_pending",
        "Effects of appended records waiting for them to become durable.",
        "gauge",
        |c| c.effects_pending,
    ),
    (
        "search_documents",
        "Message texts in the search indexes of this core's shards.",
        "gauge",
        |c| c.search_docs,
    ),
    (
        "search_index_bytes",
        "Memory of the search indexes of this core's shards (estimated).",
        "gauge",
        |c| c.search_index_bytes,
    ),
    (
        "push_pending",
        "Push notifications waiting for the gateway (one per user and conversation).",
        "gauge",
        |c| c.push_pending,
    ),
    (
        "push_sent_total",
        "Push notifications the gateway took (2xx).",
        "counter",
        |c| c.push.taken,
    ),
    (
        "push_collapsed_total",
        "Messages that joined a pending notification of their conversation.",
        "counter",
        |c| c.push.collapsed,
    ),
    (
        "push_failed_total",
        "Gateway calls that failed (retried with backoff).",
        "counter",
        |c| c.push.failed,
    ),
    (
        "push_dropped_total",
        "Push notifications dropped because the outbox was full.",
        "counter",
        |c| c.push.dropped,
    ),
    (
        "push_expired_total",
        "Push notifications given up an hour after their message.",
        "counter",
        |c| c.push.expired,
    ),
    (
        "push_moot_total",
        "Push notifications not sent: the devices connected or got the message first.",
        "counter",
        |c| c.push.moot,
    ),
];

/// `/metrics`: Prometheus text format, histograms as summaries (seconds).
pub fn render_prometheus(all: &[CoreStats], rss_bytes: Option<u64>) -> String {
    let mut out = String::new();
    for (name, help, kind, value) in FIGURES {
        let _ = writeln!(
            out,
            "# HELP chatd_{name} {help}\n# TYPE chatd_{name} {kind}"
        );
        for c in all {
            let _ = writeln!(out, "chatd_{name}{{core=\"{}\"}} {}", c.core, value(c));
        }
    }
    render_events(&mut out, all);
    render_latencies(&mut out, all);
    super::replica_stats::render_prometheus(&mut out, all.iter().filter_map(|c| c.raft.as_ref()));
    let _ = writeln!(
        out,
        "# HELP chatd_mesh_in_flight Messages on the mesh rings now (sent, not yet received; approximate).\n# TYPE chatd_mesh_in_flight gauge\nchatd_mesh_in_flight {}",
        mesh_in_flight(all)
    );
    if let Some(rss) = rss_bytes {
        let _ = writeln!(out, "# HELP chatd_resident_memory_bytes Resident set size.\n# TYPE chatd_resident_memory_bytes gauge\nchatd_resident_memory_bytes {rss}");
    }
    out
}

fn render_events(out: &mut String, all: &[CoreStats]) {
    for (name, inbound) in [("events_in_total", true), ("events_out_total", false)] {
        let _ = writeln!(
            out,
            "# HELP chatd_{name} WebSocket events by type.\n# TYPE chatd_{name} counter"
        );
        for c in all {
            let map = if inbound { &c.events_in } else { &c.events_out };
            for (ty, n) in map {
                let _ = writeln!(out, "chatd_{name}{{core=\"{}\",type=\"{ty}\"}} {n}", c.core);
            }
        }
    }
}

fn render_latencies(out: &mut String, all: &[CoreStats]) {
    for l in Latency::ALL {
        let name = format!("{}_seconds", l.name());
        let _ = writeln!(
            out,
            "# HELP chatd_{name} Latency of {}.\n# TYPE chatd_{name} summary",
            l.name()
        );
        for c in all {
            let h = &c.latencies[&l];
            for q in [0.5, 0.99, 0.999] {
                let v = h.value_at_quantile(q) as f64 / 1e6;
                let _ = writeln!(
                    out,
                    "chatd_{name}{{core=\"{}\",quantile=\"{q}\"}} {v}",
                    c.core
                );
            }
            let sum = h.mean() * h.len() as f64 / 1e6;
            let _ = writeln!(out, "chatd_{name}_sum{{core=\"{}\"}} {sum}", c.core);
            let _ = writeln!(out, "chatd_{name}_count{{core=\"{}\"}} {}", c.core, h.len());
        }
    }
}

/// Messages sent over the mesh and not yet taken off a ring, over all
/// cores (the cores' counters are read a moment apart: approximate).
fn mesh_in_flight(all: &[CoreStats]) -> u64 {
    let sent: u64 = all.iter().map(|c| c.mesh_sent).sum();
    let received: u64 = all.iter().map(|c| c.mesh_received).sum();
    sent.saturating_sub(received)
}

/// The process's resident set size, from /proc/self/statm.
pub fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}
