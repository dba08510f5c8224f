//! A worker process: sets up its slice of users, connects them when the
//! coordinator says so, runs the scenario from the agreed start time, drains,
//! and prints its figures as JSON lines on stdout.
//!
//! Talk with the coordinator (one JSON object or word per line):
//! - worker → `{"phase":"setup"}`, `{"phase":"connected","seconds":S}`,
//!   `{"progress":{...}}` every second, `{"report":{...}}` at the end,
//!   `{"error":"..."}` before exiting with status 2;
//! - coordinator → `connect`, then `start UNIX_MICROS`.
//!
//! Lives on: its own process; one glommio executor, plus setup threads.

use std::cell::{Cell, RefCell};
use std::io::{BufRead, Write};
use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use glommio::sync::Semaphore;
use glommio::{LocalExecutorBuilder, Placement};
use serde_json::json;

use super::config::{Config, Scenario, TargetKind};
use super::constants::{FAULT_SAMPLES_MAX, PROGRESS_INTERVAL};
use super::figures::{Buckets, Report, Tally};
use super::load;
use super::outage::Outages;
use super::session::Conn;
use super::setup::setup;
use super::target::Confirm;
use super::transport::Dialer;
use super::verdict::{ConvIx, Ledger, MsgIx};
use super::world::{Layout, Slice, World};

/// The measured window on this worker's clock (µs since `Shared::epoch`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Window {
    pub start_us: u64,
    pub measure_us: u64,
    pub end_us: u64,
}

/// Everything the tasks of one worker share.
///
/// Lives on: the worker's executor (behind an `Rc`).
pub struct Shared {
    pub config: Config,
    pub run: String,
    pub world: World,
    pub dialer: Dialer,
    pub confirm: Confirm,
    pub ledger: RefCell<Ledger>,
    pub figures: RefCell<Tally>,
    pub window: Cell<Window>,
    /// Closed loop: free message slots per user.
    pub slots: Vec<Semaphore>,
    /// The run is over: disconnects from now on are ours.
    pub stopping: Cell<bool>,
    /// Each user's current connection.
    pub conns: RefCell<Vec<Option<Rc<Conn>>>>,
    /// Each user's node (an index into `--url`'s list): `global mod n` at
    /// first, the next one after each failed reconnect.
    pub nodes: Vec<Cell<usize>>,
    /// Failover: the user has messages of unknown outcome to send again.
    pub resend_due: Vec<Cell<bool>>,
    pub outages: RefCell<Outages>,
    pub slice: Slice,
    epoch: Instant,
}

impl Shared {
    pub fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    /// Inside the measured window?
    pub fn measured(&self, t_us: u64) -> bool {
        let w = self.window.get();
        t_us >= w.measure_us && t_us < w.end_us
    }

    /// Closed loop: the sender of message `m` of `ix` may send again.
    pub fn release(&self, ix: ConvIx, m: MsgIx) {
        if self.config.rate > 0.0 {
            return;
        }
        let Some(pos) = self.ledger.borrow().sender_of(ix, m) else {
            return;
        };
        if let Some(c) = self.world.conv_local(ix) {
            self.slots[self.world.convs[c].members[usize::from(pos.0)]].signal(1);
        }
    }

    /// Is this a failover run (reconnects, resends, outages)?
    pub fn failover(&self) -> bool {
        self.config.scenario == Scenario::Failover
    }

    /// User `u`'s connection is gone: its unanswered sends get an unknown
    /// outcome, and (closed loop) their window slots come back, except in a
    /// failover run, where they are sent again and keep their slots.
    pub fn connection_lost(&self, u: usize) {
        let user = &self.world.users[u];
        let ix = self.world.convs[user.conv].ix;
        let orphaned = self.ledger.borrow_mut().disconnected(ix, user.pos);
        if self.failover() {
            let orphans = self.ledger.borrow().orphans_of(ix, user.pos);
            if let Some((_, first)) = orphans.first() {
                self.outages.borrow_mut().failed(u, *first);
                self.resend_due[u].set(true);
            }
        } else if self.config.rate == 0.0 {
            self.slots[u].signal(orphaned);
        }
    }

    /// A send of user `u` meant for `intended_us` failed (failover runs).
    pub fn send_failed(&self, u: usize, intended_us: u64) {
        if self.failover() {
            self.outages.borrow_mut().failed(u, intended_us);
        }
    }

    /// The user who sent message `m` of `ix`, when this worker has it.
    pub fn user_of(&self, ix: ConvIx, m: MsgIx) -> Option<usize> {
        let pos = self.ledger.borrow().sender_of(ix, m)?;
        let c = self.world.conv_local(ix)?;
        Some(self.world.convs[c].members[usize::from(pos.0)])
    }

    /// µs since the Unix epoch of a time on this worker's clock.
    pub fn unix_of_local(&self, local_us: u64) -> u64 {
        (unix_micros() + local_us).saturating_sub(self.now_us())
    }

    /// µs on this clock of a wall-clock time in µs since the Unix epoch.
    fn local_of_unix(&self, unix_us: u64) -> u64 {
        let now_unix = unix_micros();
        let now = self.now_us();
        (now + unix_us).saturating_sub(now_unix)
    }
}

pub fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// One line to the coordinator.
pub fn say(value: serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{value}");
    let _ = out.flush();
}

/// The worker's main: `slice` of the run `run`.
pub fn main(config: Config, slice: Slice, run: String, phone_base: u64) -> Result<(), String> {
    let layout = Layout::of(&config);
    let mut world = World::skeleton(layout, slice);
    setup(&config, &run, phone_base, &mut world)?;
    say(json!({"phase": "setup", "users": world.users.len()}));
    // Commands from the coordinator arrive on stdin, read by a thread.
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let tls = match (config.server()?.tls, &config.ca) {
        (true, Some(ca)) => Some(crate::client::tls_config(ca).map_err(|e| e.to_string())?),
        (true, None) => return Err("a TLS URL needs --ca (the server's CA, PEM)".into()),
        _ => None,
    };
    let subprotocol = (config.target == TargetKind::Xmpp).then_some("xmpp");
    let dialer = Dialer::new(config.servers()?, tls, subprotocol);
    let handle = LocalExecutorBuilder::new(Placement::Unbound)
        .name("loadgen")
        .spawn(move || async move {
            let shared = Rc::new(build_shared(config, run, world, dialer, slice));
            run_phases(shared, rx).await
        })
        .map_err(|e| format!("cannot start the executor: {e}"))?;
    handle.join().map_err(|e| format!("executor failed: {e}"))?
}

fn build_shared(config: Config, run: String, world: World, dialer: Dialer, slice: Slice) -> Shared {
    let group = config.conversation_size() > 2;
    let confirm = config.target.confirm(group);
    let mut ledger = Ledger::new(config.target.recipients());
    for conv in &world.convs {
        ledger.add_conversation(conv.ix, conv.members.len());
    }
    let users = world.users.len();
    let slots = (0..users)
        .map(|_| Semaphore::new(config.window as u64))
        .collect();
    let nodes = world.users.iter().map(|u| Cell::new(u.global)).collect();
    let stall_us = config.stall.as_micros().max(1) as u64;
    Shared {
        confirm,
        ledger: RefCell::new(ledger),
        figures: RefCell::new(Tally::new()),
        window: Cell::new(Window::default()),
        slots,
        stopping: Cell::new(false),
        conns: RefCell::new(vec![None; users]),
        nodes,
        resend_due: (0..users).map(|_| Cell::new(false)).collect(),
        outages: RefCell::new(Outages::new(users, stall_us)),
        slice,
        epoch: Instant::now(),
        config,
        run,
        world,
        dialer,
    }
}

/// Waits for a command line from the coordinator without blocking the
/// executor for long (the stdin thread feeds `rx`).
async fn command(rx: &mpsc::Receiver<String>) -> Result<String, String> {
    loop {
        match rx.try_recv() {
            Ok(line) => return Ok(line),
            Err(mpsc::TryRecvError::Empty) => glommio::timer::sleep(Duration::from_millis(2)).await,
            Err(mpsc::TryRecvError::Disconnected) => return Err("the coordinator went away".into()),
        }
    }
}

async fn run_phases(shared: Rc<Shared>, rx: mpsc::Receiver<String>) -> Result<(), String> {
    if command(&rx).await? != "connect" {
        return Err("expected `connect`".into());
    }
    let started = Instant::now();
    load::connect_phase(&shared).await;
    let connected = shared.figures.borrow().counters.connected;
    say(json!({"phase": "connected", "connections": connected,
               "seconds": started.elapsed().as_secs_f64()}));
    let line = command(&rx).await?;
    let start_unix: u64 = line
        .strip_prefix("start ")
        .and_then(|t| t.parse().ok())
        .ok_or("expected `start UNIX_MICROS`")?;
    let c = &shared.config;
    let start_us = shared.local_of_unix(start_unix);
    let measure_us = start_us + c.warmup.as_micros() as u64;
    shared.window.set(Window {
        start_us,
        measure_us,
        end_us: measure_us + c.duration.as_micros() as u64,
    });
    glommio::spawn_local(progress(shared.clone())).detach();
    let phases = load::run(&shared).await;
    shared.stopping.set(true);
    say(json!({"report": report(&shared, phases)}));
    Ok(())
}

/// A progress line every second until the run stops.
async fn progress(shared: Rc<Shared>) {
    while !shared.stopping.get() {
        glommio::timer::sleep(PROGRESS_INTERVAL).await;
        let counters = shared.figures.borrow().counters.clone();
        let (missing, unanswered) = shared.ledger.borrow().pending();
        let v = shared.ledger.borrow().verdict();
        say(
            json!({"progress": counters, "missing": missing, "unanswered": unanswered,
                   "faults": v.faults() - v.lost - v.unanswered}),
        );
    }
}

fn report(shared: &Shared, phases: load::Phases) -> Report {
    let ledger = shared.ledger.borrow();
    let f = shared.figures.borrow();
    let verdict = ledger.verdict();
    let mut samples = ledger.samples(FAULT_SAMPLES_MAX);
    if verdict.faults() > verdict.lost && samples.len() < FAULT_SAMPLES_MAX {
        samples.push(format!(
            "other faults: {} duplicated, {} reordered, {} unexpected, {} seq mismatches, {} unanswered",
            verdict.duplicated, verdict.reordered, verdict.unexpected, verdict.seq_mismatch, verdict.unanswered
        ));
    }
    Report {
        counters: f.counters.clone(),
        verdict,
        send_to_sent: Buckets::of(&f.send_to_sent),
        send_to_receive: Buckets::of(&f.send_to_receive),
        connect: Buckets::of(&f.connect),
        errors: f.errors.clone(),
        disconnects: f.disconnects.clone(),
        connect_errors: f.connect_errors.clone(),
        other_events: f.other_events.clone(),
        samples,
        drain_seconds: phases.drain_seconds,
        catchup_seconds: phases.catchup_seconds,
        outage: shared.outages.borrow().report(|t| shared.unix_of_local(t)),
    }
}
