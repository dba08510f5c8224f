//! The coordinator: starts the worker processes (this same binary with
//! `LOADGEN_WORKER=i/n`), moves them through setup → connect → start in
//! lock step, reads the server's memory between the phases, shows a live
//! progress line, merges their reports and kills whatever outlives
//! `--hard-stop`.
//!
//! Lives on: the main thread of the `loadgen` process; one reader thread per
//! worker forwards its stdout lines.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::config::Config;
use super::constants::{PROGRESS_INTERVAL, WORKER_EXIT_GRACE};
use super::failover;
use super::figures::{Counters, Merged, Report};
use super::report::{self, Memory, RunInfo};
use super::worker::unix_micros;
use super::world::Layout;

/// A worker's line, or its end.
enum Line {
    Json(usize, Value),
    Ended(usize),
}

struct Workers {
    children: Vec<Child>,
    stdins: Vec<ChildStdin>,
    lines: mpsc::Receiver<Line>,
    deadline: Instant,
}

impl Workers {
    fn tell(&mut self, what: &str) -> Result<(), String> {
        for (i, stdin) in self.stdins.iter_mut().enumerate() {
            writeln!(stdin, "{what}")
                .and_then(|_| stdin.flush())
                .map_err(|e| format!("worker {i}: {e}"))?;
        }
        Ok(())
    }

    /// Waits until every worker said `{"phase": phase}`; answers the lines.
    fn await_phase(&mut self, phase: &str) -> Result<Vec<Value>, String> {
        let mut got: Vec<Option<Value>> = vec![None; self.children.len()];
        while got.iter().any(Option::is_none) {
            match self.next()? {
                Line::Json(i, v) if v["phase"] == phase => got[i] = Some(v),
                Line::Json(i, v) if v.get("error").is_some() => {
                    return Err(format!(
                        "worker {i}: {}",
                        v["error"].as_str().unwrap_or("?")
                    ))
                }
                Line::Json(..) => {}
                Line::Ended(i) => {
                    return Err(format!(
                        "worker {i} exited before `{phase}` (see its stderr above)"
                    ))
                }
            }
        }
        Ok(got.into_iter().map(|v| v.expect("all in")).collect())
    }

    fn next(&self) -> Result<Line, String> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        self.lines
            .recv_timeout(left)
            .map_err(|_| "--hard-stop reached: the run was cut off".to_owned())
    }

    fn kill(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn spawn_workers(
    config: &Config,
    count: usize,
    run: &str,
    phone_base: u64,
) -> Result<Workers, String> {
    let exe = std::env::current_exe().map_err(|e| format!("own path: {e}"))?;
    let (tx, rx) = mpsc::channel();
    let mut children = Vec::new();
    let mut stdins = Vec::new();
    for i in 0..count {
        let mut child = Command::new(&exe)
            .args(std::env::args_os().skip(1))
            .env("LOADGEN_WORKER", format!("{i}/{count}"))
            .env("LOADGEN_RUN", run)
            .env("LOADGEN_PHONE_BASE", phone_base.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start worker {i}: {e}"))?;
        stdins.push(child.stdin.take().expect("piped"));
        let stdout = child.stdout.take().expect("piped");
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                match serde_json::from_str::<Value>(&line) {
                    Ok(v) => {
                        let _ = tx.send(Line::Json(i, v));
                    }
                    Err(_) => eprintln!("worker {i}: {line}"),
                }
            }
            let _ = tx.send(Line::Ended(i));
        });
        children.push(child);
    }
    Ok(Workers {
        children,
        stdins,
        lines: rx,
        deadline: Instant::now() + config.hard_stop,
    })
}

/// Runs the whole thing; answers the process exit code (0 pass, 1 faults,
/// 2 could not run).
pub fn main(config: Config) -> i32 {
    let started = Instant::now();
    match coordinate(&config, started) {
        Ok(pass) => i32::from(!pass),
        Err(e) => {
            eprintln!("loadgen: {e}");
            2
        }
    }
}

fn coordinate(config: &Config, started: Instant) -> Result<bool, String> {
    config.validate()?;
    config.servers()?;
    let layout = Layout::of(config);
    if layout.conversations == 0 {
        return Err(format!(
            "--users {} makes no conversation of {}",
            config.users, layout.size
        ));
    }
    let count = match config.workers {
        0 => layout.workers_needed(config.connections_per_worker),
        n => n.min(layout.conversations),
    };
    let per_worker = layout.conversations.div_ceil(count) * layout.size;
    if per_worker > config.connections_per_worker {
        return Err(format!(
            "{per_worker} connections per worker exceeds --connections-per-worker {}: use more --workers",
            config.connections_per_worker
        ));
    }
    let run = crate::client::random_id()[..8].to_owned();
    let span = 10_000_000u64.saturating_sub(layout.users() as u64).max(1);
    let phone_base = u64::from_str_radix(&run, 16).unwrap_or(0) % span;
    let mut workers = spawn_workers(config, count, &run, phone_base)?;
    let result = drive(config, &mut workers, layout, &run, started);
    if result.is_err() {
        workers.kill();
    }
    result
}

fn drive(
    config: &Config,
    workers: &mut Workers,
    layout: Layout,
    run: &str,
    started: Instant,
) -> Result<bool, String> {
    workers.await_phase("setup")?;
    let setup_seconds = started.elapsed().as_secs_f64();
    let rss_before = report::server_rss(config);
    let connect_started = Instant::now();
    workers.tell("connect")?;
    let connected = workers.await_phase("connected")?;
    let connect_seconds = connect_started.elapsed().as_secs_f64();
    // Let the server settle (its allocator, lazy buffers) before reading it.
    std::thread::sleep(Duration::from_secs(1));
    let rss_connected = report::server_rss(config);
    let connections: u64 = connected
        .iter()
        .map(|v| v["connections"].as_u64().unwrap_or(0))
        .sum();
    let start_unix = unix_micros() + 200_000;
    workers.tell(&format!("start {start_unix}"))?;
    let failover = failover::schedule(config, start_unix);
    let reports = collect(config, workers, connections, start_unix)?;
    let failover = failover.map(|h| h.join().unwrap_or_default());
    for child in &mut workers.children {
        let grace = Instant::now() + WORKER_EXIT_GRACE;
        while Instant::now() < grace && matches!(child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    workers.kill();
    let mut merged = Merged::default();
    for r in &reports {
        merged.add(r);
    }
    merged.connect_seconds = connect_seconds;
    let info = RunInfo {
        run: run.to_owned(),
        workers: workers.children.len(),
        layout,
        setup_seconds,
        start_unix,
        failover,
        memory: Memory {
            rss_before,
            rss_connected,
            connections,
        },
    };
    Ok(report::finish(config, &info, &merged))
}

/// Progress lines until every worker reported.
fn collect(
    config: &Config,
    workers: &mut Workers,
    connections: u64,
    start_unix: u64,
) -> Result<Vec<Report>, String> {
    let n = workers.children.len();
    let mut reports: Vec<Option<Report>> = vec![None; n];
    let mut progress: Vec<Value> = vec![Value::Null; n];
    let mut shown = Instant::now();
    while reports.iter().any(Option::is_none) {
        match workers.next()? {
            Line::Json(i, v) if v.get("report").is_some() => {
                let r: Report = serde_json::from_value(v["report"].clone())
                    .map_err(|e| format!("worker {i}'s report: {e}"))?;
                reports[i] = Some(r);
            }
            Line::Json(i, v) if v.get("progress").is_some() => progress[i] = v,
            Line::Json(i, v) if v.get("error").is_some() => {
                return Err(format!(
                    "worker {i}: {}",
                    v["error"].as_str().unwrap_or("?")
                ))
            }
            Line::Json(..) => {}
            Line::Ended(i) if reports[i].is_none() => {
                return Err(format!(
                    "worker {i} exited without a report (see its stderr above)"
                ))
            }
            Line::Ended(_) => {}
        }
        if !config.quiet && shown.elapsed() >= PROGRESS_INTERVAL {
            shown = Instant::now();
            let t = (unix_micros() as f64 - start_unix as f64) / 1e6;
            eprintln!("{}", progress_line(config, &progress, t, connections));
        }
    }
    Ok(reports.into_iter().map(|r| r.expect("all in")).collect())
}

fn progress_line(config: &Config, progress: &[Value], t: f64, connections: u64) -> String {
    let mut c = Counters::default();
    let (mut missing, mut unanswered, mut faults) = (0u64, 0u64, 0u64);
    for p in progress.iter().filter(|p| !p.is_null()) {
        if let Ok(theirs) = serde_json::from_value::<Counters>(p["progress"].clone()) {
            c.add(&theirs);
        }
        missing += p["missing"].as_u64().unwrap_or(0);
        unanswered += p["unanswered"].as_u64().unwrap_or(0);
        faults += p["faults"].as_u64().unwrap_or(0);
    }
    let phase = if t < config.warmup.as_secs_f64() {
        "warm-up"
    } else if t < (config.warmup + config.duration).as_secs_f64() {
        "measure"
    } else {
        "drain"
    };
    format!(
        "[{t:6.1}s {phase:7}] conns {connections} sent {} received {} in flight {unanswered} undelivered {missing} late {} faults so far {faults}",
        c.sends, c.received, c.sends_late
    )
}
