//! The end of a run: the human summary, the JSON report (last line on
//! stdout, and `--json FILE`), and the verdict that sets the exit code.
//!
//! Lives on: the coordinator.

use hdrhistogram::Histogram;
use serde_json::{json, Value};

use super::config::{Config, Scenario};
use super::failover::Events;
use super::figures::{quantiles, Merged};
use super::world::Layout;

/// The server's resident memory around the connect phase.
pub struct Memory {
    pub rss_before: Option<u64>,
    pub rss_connected: Option<u64>,
    pub connections: u64,
}

impl Memory {
    pub fn bytes_per_connection(&self) -> Option<f64> {
        let (a, b) = (self.rss_before?, self.rss_connected?);
        (self.connections > 0).then(|| (b as f64 - a as f64) / self.connections as f64)
    }
}

/// What the coordinator knows beyond the merged figures.
pub struct RunInfo {
    pub run: String,
    pub workers: usize,
    pub layout: Layout,
    pub setup_seconds: f64,
    /// When sending started, µs since the Unix epoch.
    pub start_unix: u64,
    /// Failover: what the kill thread did.
    pub failover: Option<Events>,
    pub memory: Memory,
}

/// The server's RSS in bytes: /proc/PID/status with `--server-pid`, else
/// chatd's /stats `rss_bytes` with `--ops`.
pub fn server_rss(config: &Config) -> Option<u64> {
    if let Some(pid) = config.server_pid {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        return Some(kb * 1024);
    }
    let ops = config.ops.as_deref()?;
    let ep = crate::client::Endpoint::parse(ops, None).ok()?;
    let (status, body) = crate::client::request(&ep, "GET", "/stats", None, None).ok()?;
    (status == 200)
        .then(|| body["rss_bytes"].as_u64())
        .flatten()
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn latency_line(name: &str, h: &Histogram<u64>) -> String {
    if h.is_empty() {
        return format!("  {name:<14} (none)");
    }
    format!(
        "  {name:<14} p50 {:>8.2} ms  p90 {:>8.2} ms  p99 {:>8.2} ms  p999 {:>8.2} ms  max {:>8.2} ms  (n={})",
        ms(h.value_at_quantile(0.50)),
        ms(h.value_at_quantile(0.90)),
        ms(h.value_at_quantile(0.99)),
        ms(h.value_at_quantile(0.999)),
        ms(h.max()),
        h.len()
    )
}

/// Why the run fails (empty: it passes).
fn failures(info: &RunInfo, m: &Merged) -> Vec<String> {
    let v = &m.verdict;
    let mut out = Vec::new();
    if v.faults() > 0 {
        out.push(format!(
            "{} faults: {} lost, {} duplicated, {} reordered, {} unexpected, {} seq mismatches, {} unanswered",
            v.faults(), v.lost, v.duplicated, v.reordered, v.unexpected, v.seq_mismatch, v.unanswered
        ));
    }
    if m.tally.counters.connect_failed > 0 {
        out.push(format!(
            "{} connections failed: {:?}",
            m.tally.counters.connect_failed, m.tally.connect_errors
        ));
    }
    if let Some(events) = &info.failover {
        out.extend(failover_failures(events, m));
        return out;
    }
    let dropped: u64 = m.tally.disconnects.values().sum();
    if dropped > 0 {
        out.push(format!(
            "{dropped} connections dropped by the server: {:?}",
            m.tally.disconnects
        ));
    }
    out
}

/// A failover run drops connections on purpose; it fails when the kill did
/// not happen or a sender never got a message through again.
fn failover_failures(events: &Events, m: &Merged) -> Vec<String> {
    let mut out: Vec<String> = events.errors.clone();
    if events.killed_unix_us.is_none() && out.is_empty() {
        out.push(format!("node {} was not killed", events.pid));
    }
    if m.outages.unrecovered > 0 {
        out.push(format!(
            "{} senders never got a message through again after their outage",
            m.outages.unrecovered
        ));
    }
    out
}

/// The failover part of the JSON report: seconds from the start of sending.
fn failover_json(info: &RunInfo, m: &Merged) -> Value {
    let Some(events) = &info.failover else {
        return Value::Null;
    };
    let at = |t: Option<u64>| t.map(|t| (t as f64 - info.start_unix as f64) / 1e6);
    let o = &m.outages;
    json!({
        "killed_pid": events.pid,
        "killed_at_s": at(events.killed_unix_us),
        "restarted_at_s": at(events.restarted_unix_us),
        "first_failure_at_s": at(o.first_start_unix_us),
        "last_recovery_at_s": at(o.last_end_unix_us),
        "unavailable_ms": o.window_us().map(|w| w as f64 / 1000.0),
        "senders_affected": o.windows.len(),
        "per_sender_outage": quantiles(&o.windows),
        "unrecovered": o.unrecovered,
        "reconnects": m.tally.counters.reconnects,
        "sends_skipped": m.tally.counters.sends_skipped,
        "resends": m.tally.counters.resends,
        "errors": events.errors,
    })
}

/// Prints the summary and the JSON report; answers whether the run passed.
pub fn finish(config: &Config, info: &RunInfo, m: &Merged) -> bool {
    let failures = failures(info, m);
    let pass = failures.is_empty();
    let report = json_report(config, info, m, &failures);
    print_summary(config, info, m, &failures);
    if let Some(path) = &config.json {
        if let Err(e) = std::fs::write(path, serde_json::to_vec_pretty(&report).unwrap_or_default())
        {
            eprintln!("loadgen: writing {}: {e}", path.display());
        }
    }
    println!("{report}");
    pass
}

fn rates(config: &Config, m: &Merged) -> (f64, f64, f64) {
    let s = config.duration.as_secs_f64().max(1e-9);
    let c = &m.tally.counters;
    (
        c.sends_measured as f64 / s,
        c.confirmed_measured as f64 / s,
        c.received_measured as f64 / s,
    )
}

fn json_report(config: &Config, info: &RunInfo, m: &Merged, failures: &[String]) -> Value {
    let (sent, confirmed, received) = rates(config, m);
    let c = &m.tally.counters;
    json!({
        "loadgen": env!("CARGO_PKG_VERSION"),
        "scenario": format!("{:?}", config.scenario).to_lowercase(),
        "target": format!("{:?}", config.target).to_lowercase(),
        "url": config.url,
        "run": info.run,
        "workers": info.workers,
        "users": info.layout.users(),
        "conversation_size": info.layout.size,
        "conversations": info.layout.conversations,
        "senders_per_conversation": match config.senders_per_conversation {
            0 => info.layout.size,
            n => n.min(info.layout.size),
        },
        "mode": if config.rate > 0.0 { "open" } else { "closed" },
        "rate_target": (config.rate > 0.0).then_some(config.rate),
        "window": (config.rate == 0.0).then_some(config.window),
        "duration_s": config.duration.as_secs_f64(),
        "warmup_s": config.warmup.as_secs_f64(),
        "body_bytes": config.body_bytes,
        "setup_s": info.setup_seconds,
        "connect": {
            "connections": c.connected,
            "failed": c.connect_failed,
            "seconds": m.connect_seconds,
            "per_second": info.memory.connections as f64 / m.connect_seconds.max(1e-9),
            "handshake": quantiles(&m.tally.connect),
            "errors": m.tally.connect_errors,
        },
        "reconnects": c.connected.saturating_sub(info.memory.connections),
        "sends": c.sends,
        "sends_late": c.sends_late,
        "sent_per_s": sent,
        "confirmed_per_s": confirmed,
        "received_per_s": received,
        "heartbeats": c.heartbeats,
        "send_to_sent": quantiles(&m.tally.send_to_sent),
        "send_to_receive": quantiles(&m.tally.send_to_receive),
        "errors": m.tally.errors,
        "disconnects": m.tally.disconnects,
        "other_events": m.tally.other_events,
        "verdict": m.verdict,
        "faults": m.verdict.faults(),
        "drain_s": m.drain_seconds,
        "catchup_s": (config.scenario == Scenario::Catchup).then_some(m.catchup_seconds),
        "failover": failover_json(info, m),
        "server_memory": {
            "rss_before": info.memory.rss_before,
            "rss_connected": info.memory.rss_connected,
            "bytes_per_connection": info.memory.bytes_per_connection(),
        },
        "per_message": config.target.per_message(),
        "samples": m.samples,
        "pass": failures.is_empty(),
        "failures": failures,
    })
}

fn print_load(config: &Config, m: &Merged) {
    let (sent, confirmed, received) = rates(config, m);
    let c = &m.tally.counters;
    let mode = if config.rate > 0.0 {
        format!("open loop, target {:.0} msg/s", config.rate)
    } else {
        format!("closed loop, window {} per sender", config.window)
    };
    println!(
        "  load          {mode}: sent {sent:.0}/s, confirmed {confirmed:.0}/s, received {received:.0}/s (copies) over {:.1} s after {:.1} s warm-up; {} sends, {} left >10 ms late",
        config.duration.as_secs_f64(), config.warmup.as_secs_f64(), c.sends, c.sends_late
    );
    println!("{}", latency_line("send->sent", &m.tally.send_to_sent));
    println!(
        "{}",
        latency_line("send->receive", &m.tally.send_to_receive)
    );
}

fn print_failover(info: &RunInfo, events: &Events, m: &Merged) {
    let at = |t: Option<u64>| match t {
        Some(t) => format!("{:.2} s", (t as f64 - info.start_unix as f64) / 1e6),
        None => "never".to_owned(),
    };
    let o = &m.outages;
    let c = &m.tally.counters;
    println!(
        "  failover      node pid {} killed at {}, restarted at {}; first failed send at {}, last recovery at {}: unavailable {}",
        events.pid,
        at(events.killed_unix_us),
        at(events.restarted_unix_us),
        at(o.first_start_unix_us),
        at(o.last_end_unix_us),
        o.window_us().map_or("(no failure seen)".to_owned(), |w| format!("{:.0} ms", w as f64 / 1000.0)),
    );
    println!(
        "{}  ({} senders; {} never recovered)",
        latency_line("sender outage", &o.windows),
        o.windows.len(),
        o.unrecovered
    );
    println!(
        "  reconnects    {} after drops, {} sends skipped while away, {} resent (same id)",
        c.reconnects, c.sends_skipped, c.resends
    );
}

fn print_summary(config: &Config, info: &RunInfo, m: &Merged, failures: &[String]) {
    let c = &m.tally.counters;
    let l = &info.layout;
    println!(
        "loadgen {:?} -> {:?} {} (run {}): {} users in {} conversations of {}, {} worker process(es), setup {:.1} s",
        config.scenario, config.target, config.url, info.run, l.users(), l.conversations, l.size, info.workers, info.setup_seconds
    );
    println!(
        "  connect       {} up in {:.2} s ({:.0}/s), {} failed",
        info.memory.connections,
        m.connect_seconds,
        info.memory.connections as f64 / m.connect_seconds.max(1e-9),
        c.connect_failed
    );
    if !m.tally.connect_errors.is_empty() {
        println!(
            "  connect errors (retried up to 3 times) {:?}",
            m.tally.connect_errors
        );
    }
    println!("{}", latency_line("handshake", &m.tally.connect));
    if config.scenario != Scenario::Idle {
        print_load(config, m);
    }
    if config.scenario == Scenario::Catchup {
        let per_s = m.verdict.delivered as f64 / m.catchup_seconds.max(1e-9);
        println!("  catch-up      {:.2} s for every receiver to connect and sync ({per_s:.0} messages/s)", m.catchup_seconds);
    }
    if let Some(events) = &info.failover {
        print_failover(info, events, m);
    }
    if config.scenario == Scenario::Storm {
        let reconnects = c.connected.saturating_sub(info.memory.connections);
        let seconds = (config.warmup + config.duration).as_secs_f64();
        println!(
            "  storm         {reconnects} reconnects with sync ({:.0}/s), {} failed",
            reconnects as f64 / seconds,
            c.connect_failed
        );
    }
    let memory = info.memory.bytes_per_connection();
    if let Some(b) = memory.filter(|_| config.scenario == Scenario::Idle) {
        println!(
            "  server memory {:.1} MB before connect, {:.1} MB connected: {b:.0} B per connection",
            info.memory.rss_before.unwrap_or(0) as f64 / 1e6,
            info.memory.rss_connected.unwrap_or(0) as f64 / 1e6
        );
    }
    println!(
        "  events        errors {:?}; dropped {:?}; other {:?}",
        m.tally.errors, m.tally.disconnects, m.tally.other_events
    );
    let v = &m.verdict;
    println!(
        "  verdict       {}: {} messages, {} confirmed, {} refused; {} of {} deliveries made; {} lost, {} duplicated, {} reordered, {} unexpected, {} seq mismatches, {} unanswered ({} redelivered after reconnect, {} of unknown outcome); drain {:.2} s",
        if failures.is_empty() { "PASS" } else { "FAIL" },
        v.messages, v.confirmed, v.refused, v.delivered, v.deliveries_expected, v.lost, v.duplicated,
        v.reordered, v.unexpected, v.seq_mismatch, v.unanswered, v.redelivered, v.unknown_outcome, m.drain_seconds
    );
    for f in failures {
        println!("  FAILED: {f}");
    }
    for s in &m.samples {
        println!("  {s}");
    }
    println!("  per message   {}", config.target.per_message());
}
