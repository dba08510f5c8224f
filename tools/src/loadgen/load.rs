//! The scenarios, on one worker: who connects when, who sends what when,
//! and the drain at the end.
//!
//! Open loop (`--rate R`): every sender has a schedule (R spread evenly over
//! the run's senders, first sends staggered); a send that leaves late still
//! carries its *scheduled* time, so latency includes any wait the generator
//! or the server imposed (no coordinated omission). Closed loop
//! (`--rate 0`): each sender keeps `--window` messages in flight.
//!
//! Lives on: one worker executor.

use std::rc::Rc;
use std::time::{Duration, Instant};

use glommio::sync::Semaphore;

use super::config::{Scenario, TargetKind};
use super::constants::{
    CONNECTS_IN_FLIGHT_MAX, CONNECT_TRIES_MAX, DRAIN_POLL_INTERVAL, IO_TIMEOUT,
    RECONNECT_PAUSE_MAX, RECONNECT_PAUSE_MIN, SEND_LAG_LATE, STORM_HOLD_MILLIS_MAX,
    STORM_HOLD_MILLIS_MIN,
};
use super::figures::bump;
use super::session::{self, Conn};
use super::target::{body, chatd_send, message_id, Confirm, CHATD_PING};
use super::transport::within;
use super::worker::Shared;
use super::world::Layout;
use super::xmpp_session;

/// How long the phases after sending took.
#[derive(Clone, Copy, Debug, Default)]
pub struct Phases {
    pub drain_seconds: f64,
    pub catchup_seconds: f64,
}

/// Does user `u` connect before the start? (Catch-up receivers do not.)
fn connects_early(shared: &Shared, u: usize) -> bool {
    shared.config.scenario != Scenario::Catchup || shared.world.users[u].pos.0 == 0
}

/// Connects `users` at this worker's share of `--ramp`, a bounded number at once.
async fn connect_users(shared: &Rc<Shared>, users: Vec<usize>) {
    let per_second = shared.config.ramp / shared.slice.count as f64;
    let gate = Rc::new(Semaphore::new(CONNECTS_IN_FLIGHT_MAX as u64));
    let started = Instant::now();
    let mut joins = Vec::with_capacity(users.len());
    for (i, u) in users.into_iter().enumerate() {
        let at = started + Duration::from_secs_f64(i as f64 / per_second);
        let wait = at.saturating_duration_since(Instant::now());
        if !wait.is_zero() {
            glommio::timer::sleep(wait).await;
        }
        let permit = gate.clone().acquire_static_permit(1).await;
        let shared = shared.clone();
        joins.push(glommio::spawn_local(async move {
            let _permit = permit;
            connect_one(&shared, u).await
        }));
    }
    for join in joins {
        join.await;
    }
}

/// Opens user `u`'s connection and files it; a failed attempt is retried
/// (as a client would) up to `CONNECT_TRIES_MAX` times, each error counted.
async fn connect_one(shared: &Rc<Shared>, u: usize) -> bool {
    for attempt in 1..=CONNECT_TRIES_MAX {
        match session::open(shared, u).await {
            Ok(conn) => {
                shared.conns.borrow_mut()[u] = Some(conn);
                shared.figures.borrow_mut().counters.connected += 1;
                return true;
            }
            Err(e) => {
                let mut f = shared.figures.borrow_mut();
                let key: String = e.chars().take(60).collect();
                bump(&mut f.connect_errors, &key);
                if attempt == CONNECT_TRIES_MAX {
                    f.counters.connect_failed += 1;
                }
            }
        }
    }
    false
}

/// Connects every user that is online from the start.
pub async fn connect_phase(shared: &Rc<Shared>) {
    let users = (0..shared.world.users.len())
        .filter(|u| connects_early(shared, *u))
        .collect();
    connect_users(shared, users).await;
}

/// Runs the scenario from the window's start; answers after the drain.
pub async fn run(shared: &Rc<Shared>) -> Phases {
    let mut phases = Phases::default();
    let users = shared.world.users.len();
    let mut tasks = Vec::new();
    match shared.config.scenario {
        Scenario::Idle => {
            for u in 0..users {
                tasks.push(glommio::spawn_local(heartbeat(shared.clone(), u)));
            }
        }
        Scenario::Direct | Scenario::Group | Scenario::Storm | Scenario::Failover => {
            for u in 0..users {
                if is_sender(shared, u) {
                    tasks.push(glommio::spawn_local(sender(shared.clone(), u, None)));
                }
                if shared.config.scenario == Scenario::Storm {
                    tasks.push(glommio::spawn_local(storm(shared.clone(), u)));
                }
            }
        }
        Scenario::Catchup => {
            let backlog = Some(shared.config.backlog);
            for u in (0..users).filter(|u| connects_early(shared, *u)) {
                tasks.push(glommio::spawn_local(sender(shared.clone(), u, backlog)));
            }
        }
    }
    for task in tasks {
        task.await;
    }
    let end = Instant::now() + shared.config.drain;
    if shared.config.scenario == Scenario::Catchup {
        // Everything sent and answered before the receivers come back.
        while shared.ledger.borrow().pending().1 > 0 && Instant::now() < end {
            glommio::timer::sleep(DRAIN_POLL_INTERVAL).await;
        }
        let started = Instant::now();
        let receivers = (0..users).filter(|u| !connects_early(shared, *u)).collect();
        connect_users(shared, receivers).await;
        drain(shared, end).await;
        phases.catchup_seconds = started.elapsed().as_secs_f64();
        return phases;
    }
    let started = Instant::now();
    drain(shared, end).await;
    phases.drain_seconds = started.elapsed().as_secs_f64();
    phases
}

/// Until every confirmed message arrived and every send was answered, or `end`.
async fn drain(shared: &Shared, end: Instant) {
    while !shared.ledger.borrow().settled() && Instant::now() < end {
        glommio::timer::sleep(DRAIN_POLL_INTERVAL).await;
    }
}

/// Sleeps until `t_us` on the worker's clock.
async fn sleep_until(shared: &Shared, t_us: u64) {
    let wait = t_us.saturating_sub(shared.now_us());
    if wait > 0 {
        glommio::timer::sleep(Duration::from_micros(wait)).await;
    }
}

/// Members that send in each conversation.
fn senders_per_conversation(shared: &Shared) -> usize {
    let size = Layout::of(&shared.config).size;
    match (
        shared.config.scenario,
        shared.config.senders_per_conversation,
    ) {
        (Scenario::Catchup, _) => 1,
        (_, 0) => size,
        (_, n) => n.min(size),
    }
}

fn is_sender(shared: &Shared, u: usize) -> bool {
    usize::from(shared.world.users[u].pos.0) < senders_per_conversation(shared)
}

/// Run-wide senders and this user's place among them (for staggering).
fn sender_place(shared: &Shared, u: usize) -> (usize, usize) {
    let layout = Layout::of(&shared.config);
    let per = senders_per_conversation(shared);
    let user = &shared.world.users[u];
    let conv = user.global / layout.size;
    (
        layout.conversations * per,
        conv * per + usize::from(user.pos.0),
    )
}

/// User `u` sends into its conversation on its schedule (or its window)
/// until the window ends or `limit` messages went out.
async fn sender(shared: Rc<Shared>, u: usize, limit: Option<u64>) {
    let w = shared.window.get();
    let (total, place) = sender_place(&shared, u);
    let open = shared.config.rate > 0.0;
    let interval_us = total as f64 * 1e6 / shared.config.rate.max(f64::MIN_POSITIVE);
    let offset_us = interval_us * place as f64 / total as f64;
    let mut k: u64 = 0;
    loop {
        if limit.is_some_and(|l| k >= l) {
            return;
        }
        let intended = if open {
            let at = w.start_us + (offset_us + interval_us * k as f64) as u64;
            if at >= w.end_us {
                return;
            }
            sleep_until(&shared, at).await;
            at
        } else {
            sleep_until(&shared, w.start_us).await;
            // Bounded: a slot whose answer never comes must not hold the
            // sender past the window.
            let left = Duration::from_micros(w.end_us.saturating_sub(shared.now_us()));
            match within(left, shared.slots[u].acquire(1)).await {
                Some(Ok(())) => {}
                _ => return,
            }
            shared.now_us()
        };
        if shared.now_us() >= w.end_us {
            return;
        }
        k += 1;
        let conn = shared.conns.borrow()[u].clone();
        match conn.filter(|c| c.alive.get()) {
            Some(conn) => {
                if shared.resend_due[u].get() {
                    resend_orphans(&shared, &conn).await;
                }
                send_one(&shared, &conn, intended).await
            }
            None if !open => {
                // Away (storm, failover): keep the slot, try again shortly.
                shared.send_failed(u, intended);
                shared.slots[u].signal(1);
                glommio::timer::sleep(Duration::from_millis(5)).await;
            }
            None => {
                shared.send_failed(u, intended);
                shared.figures.borrow_mut().counters.sends_skipped += 1;
            }
        }
    }
}

/// Failover: user `u` sends its messages of unknown outcome again, with
/// their ids (chatd answers a repeated id with the first seq and delivers
/// nothing twice).
async fn resend_orphans(shared: &Shared, conn: &Conn) {
    let u = conn.user;
    shared.resend_due[u].set(false);
    let user = &shared.world.users[u];
    let conv = &shared.world.convs[user.conv];
    let orphans = shared.ledger.borrow().orphans_of(conv.ix, user.pos);
    for (m, intended) in orphans {
        let id = message_id(&shared.run, conv.ix, m);
        let text = body(conv.ix, m, intended, shared.config.body_bytes);
        shared.ledger.borrow_mut().resent(conv.ix, m);
        if !conn.send(chatd_send(&conv.server_id, &id, &text)).await {
            shared.connection_lost(u);
            return;
        }
        shared.figures.borrow_mut().counters.resends += 1;
    }
}

/// Failover: a send of user `u` was answered `unavailable`; after a pause
/// it goes out again (unless the sender's loop or a reconnect did it first).
pub async fn resend_later(shared: Rc<Shared>, u: usize) {
    glommio::timer::sleep(RECONNECT_PAUSE_MIN).await;
    let conn = shared.conns.borrow()[u].clone();
    if let Some(conn) = conn.filter(|c| c.alive.get() && shared.resend_due[u].get()) {
        resend_orphans(&shared, &conn).await;
    }
}

/// Failover: user `u`'s connection dropped (its node died, or the server
/// closed it with 1012). It connects again, to the next node after each
/// failure, pausing longer each time, until it is back or the drain ends;
/// then it sends its messages of unknown outcome again.
pub async fn reconnect(shared: Rc<Shared>, u: usize) {
    let give_up = shared.window.get().end_us + shared.config.drain.as_micros() as u64;
    let mut pause = RECONNECT_PAUSE_MIN;
    while !shared.stopping.get() && shared.now_us() < give_up {
        // The node it was on may be gone: the next one first.
        let node = &shared.nodes[u];
        node.set(node.get() + 1);
        match session::open(&shared, u).await {
            Ok(conn) => {
                shared.conns.borrow_mut()[u] = Some(conn.clone());
                {
                    let mut f = shared.figures.borrow_mut();
                    f.counters.connected += 1;
                    f.counters.reconnects += 1;
                }
                resend_orphans(&shared, &conn).await;
                return;
            }
            Err(e) => {
                let key: String = e.chars().take(60).collect();
                bump(&mut shared.figures.borrow_mut().connect_errors, &key);
                glommio::timer::sleep(pause).await;
                pause = (pause * 2).min(RECONNECT_PAUSE_MAX);
            }
        }
    }
}

/// Writes one message of `conn`'s user, meant for `intended`.
async fn send_one(shared: &Shared, conn: &Conn, intended: u64) {
    let user = &shared.world.users[conn.user];
    let conv = &shared.world.convs[user.conv];
    let m = shared.ledger.borrow_mut().sent(conv.ix, user.pos, intended);
    let id = message_id(&shared.run, conv.ix, m);
    let text = body(conv.ix, m, intended, shared.config.body_bytes);
    let frame = match shared.config.target {
        TargetKind::Chatd | TargetKind::Echo => chatd_send(&conv.server_id, &id, &text),
        TargetKind::Xmpp => xmpp_session::send_frame(shared, conn.user, &id, &text),
    };
    let now = shared.now_us();
    if !conn.send(frame).await {
        // Gone before it left: whatever it sent last is of unknown outcome.
        shared.connection_lost(conn.user);
        return;
    }
    let mut f = shared.figures.borrow_mut();
    f.counters.sends += 1;
    if shared.measured(intended) {
        f.counters.sends_measured += 1;
    }
    if now.saturating_sub(intended) > SEND_LAG_LATE.as_micros() as u64 {
        f.counters.sends_late += 1;
    }
    drop(f);
    if shared.confirm == Confirm::Written {
        shared.ledger.borrow_mut().confirmed(conv.ix, m, None);
    }
}

/// Idle: a heartbeat every `--heartbeat` (first ones spread out) until the end.
async fn heartbeat(shared: Rc<Shared>, u: usize) {
    let w = shared.window.get();
    let every = shared.config.heartbeat.max(Duration::from_millis(100));
    let first = every.mul_f64((shared.world.users[u].global % 1000) as f64 / 1000.0);
    let mut at = w.start_us + first.as_micros() as u64;
    while at < w.end_us {
        sleep_until(&shared, at).await;
        let conn = shared.conns.borrow()[u].clone();
        let Some(conn) = conn.filter(|c| c.alive.get()) else {
            return;
        };
        let ping = match shared.config.target {
            TargetKind::Xmpp => xmpp_session::ping_frame(),
            _ => CHATD_PING.to_owned(),
        };
        if conn.send(ping).await {
            shared.figures.borrow_mut().counters.heartbeats += 1;
        }
        at += every.as_micros() as u64;
    }
    sleep_until(&shared, w.end_us).await;
}

/// Storm: user `u` drops its connection and comes back (sync) over and over
/// until the window ends, then stays connected for the drain.
async fn storm(shared: Rc<Shared>, u: usize) {
    let w = shared.window.get();
    let mut rng = (shared.world.users[u].global as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    loop {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let span = STORM_HOLD_MILLIS_MAX - STORM_HOLD_MILLIS_MIN;
        let hold_ms = STORM_HOLD_MILLIS_MIN + rng % span;
        let at = shared.now_us() + hold_ms * 1000;
        sleep_until(&shared, at.min(w.end_us)).await;
        let conn = shared.conns.borrow_mut()[u].take();
        let over = shared.now_us() >= w.end_us;
        if let Some(conn) = conn {
            if over && conn.alive.get() {
                shared.conns.borrow_mut()[u] = Some(conn);
                return;
            }
            conn.close().await;
            let deadline = Instant::now() + IO_TIMEOUT;
            while conn.alive.get() && Instant::now() < deadline {
                glommio::timer::sleep(Duration::from_millis(2)).await;
            }
        }
        while !connect_one(&shared, u).await {
            if shared.now_us() >= w.end_us + shared.config.drain.as_micros() as u64 {
                return;
            }
            glommio::timer::sleep(Duration::from_millis(100)).await;
        }
        if over {
            return;
        }
    }
}
