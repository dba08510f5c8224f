//! One shard's push sender: the outbox, the gateway calls, and what each
//! answer changes (the devices' `pushed` cursors and refused tokens, a
//! `PushDone` command through the shard's write path).
//!
//! On a single node the shard always sends. In a cluster only the leader
//! of the user's home sends; a replica that becomes leader rebuilds the
//! outbox from the state (`due::owed`), one that stops leading forgets
//! it. Devices connected to another node are asked for before each call
//! (`Work::Attached`), so that a connected device is not pushed.
//!
//! Delivery is at least once: a crash between the gateway's 2xx and the
//! `PushDone` record sends that notification again after the restart.
//!
//! Lives on: the user home shard's core (one task per shard, and one per
//! call in flight).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::Duration;

use chat_net::client::{Client, Url};
use futures_lite::future;
use tracing::{debug, info, warn};

use super::due::{devices_for, owed, unread};
use super::notification::{rejected, Notification};
use super::outbox::{Call, Counts, Key, Note, Offered, Outbox, Outcome};
use crate::constants::{
    PUSH_ANSWER_TIMEOUT_MS, PUSH_IN_FLIGHT_PER_SHARD_MAX, PUSH_LEADER_CHECK_MS,
    PUSH_PEER_ASK_TIMEOUT_MS, PUSH_PENDING_PER_SHARD_MAX,
};
use crate::machine::cmd::push::PushDone;
use crate::machine::ids::{DeviceId, Millis, UserId};
use crate::shard::mesh::Mesh;
use crate::shard::runner::Shard;

/// A failing gateway is logged at most this often per shard.
const WARN_EVERY_MS: u64 = 10_000;

pub struct Pusher {
    gateway: Client,
    outbox: RefCell<Outbox>,
    in_flight: Cell<usize>,
    leading: Cell<bool>,
    bell: Cell<Option<Waker>>,
    rung: Cell<bool>,
    warned: Cell<Millis>,
}

impl Pusher {
    pub fn new(gateway: Url, tls: Option<Arc<rustls::ClientConfig>>) -> Pusher {
        Pusher {
            gateway: Client::new(gateway, tls, PUSH_IN_FLIGHT_PER_SHARD_MAX),
            outbox: RefCell::new(Outbox::new(PUSH_PENDING_PER_SHARD_MAX)),
            in_flight: Cell::new(0),
            leading: Cell::new(false),
            bell: Cell::new(None),
            rung: Cell::new(false),
            warned: Cell::new(Millis(0)),
        }
    }

    pub fn counts(&self) -> Counts {
        self.outbox.borrow().counts
    }

    pub fn pending(&self) -> usize {
        self.outbox.borrow().len()
    }

    /// A message for these offline devices of `key.0` (the live path,
    /// from `Deliver`); ignored unless this replica leads its shard.
    pub fn offer(&self, key: Key, note: Note, devices: &[DeviceId], now: Millis) {
        if !self.leading.get() || devices.is_empty() {
            return;
        }
        if self.outbox.borrow_mut().offer(key, note, devices, now) == Offered::Dropped {
            debug!(user = %key.0, conv = %key.1, "push outbox full: notification dropped");
        }
        self.ring();
    }

    fn ring(&self) {
        self.rung.set(true);
        if let Some(w) = self.bell.take() {
            w.wake();
        }
    }

    async fn rung_or(&self, wait: Duration) {
        let bell = future::poll_fn(|cx| {
            if self.rung.replace(false) {
                return Poll::Ready(());
            }
            self.bell.set(Some(cx.waker().clone()));
            Poll::Pending
        });
        future::or(bell, glommio::timer::sleep(wait)).await;
    }
}

/// The sender's loop; returns when the shard's log closes.
pub async fn run(shard: Rc<Shard>, mesh: Rc<dyn Mesh>, pusher: Rc<Pusher>) {
    let check = Duration::from_millis(PUSH_LEADER_CHECK_MS);
    while !shard.log.is_closed() {
        let leads = shard.leads();
        if leads != pusher.leading.get() {
            pusher.leading.set(leads);
            if leads {
                rebuild(&shard, &pusher);
            } else {
                pusher.outbox.borrow_mut().clear();
            }
        }
        let now = shard.clock.now();
        if leads {
            dispatch(&shard, &mesh, &pusher, now);
        }
        let next = pusher.outbox.borrow().next_due();
        let wait = match next {
            Some(at) => Duration::from_millis(at.0.saturating_sub(now.0).max(1)).min(check),
            None => check,
        };
        pusher.rung_or(wait).await;
    }
}

/// Fills the outbox from the state (after a restart, or on becoming
/// leader).
fn rebuild(shard: &Shard, pusher: &Pusher) {
    let now = shard.clock.now();
    let owed = {
        let state = shard.state();
        let soft = shard.soft.borrow();
        let online = |u: UserId| soft.devices_online(u);
        owed(&state, &soft.pointers, online, now)
    };
    if owed.is_empty() {
        return;
    }
    info!(
        shard = shard.id.0,
        owed = owed.len(),
        "push notifications owed"
    );
    let mut outbox = pusher.outbox.borrow_mut();
    for (key, note, devices) in owed {
        outbox.offer(key, note, &devices, now);
    }
}

fn dispatch(shard: &Rc<Shard>, mesh: &Rc<dyn Mesh>, pusher: &Rc<Pusher>, now: Millis) {
    let room = PUSH_IN_FLIGHT_PER_SHARD_MAX - pusher.in_flight.get();
    let calls = pusher.outbox.borrow_mut().take(now, room);
    for call in calls {
        pusher.in_flight.set(pusher.in_flight.get() + 1);
        let (shard, mesh, pusher) = (shard.clone(), mesh.clone(), pusher.clone());
        glommio::spawn_local(async move {
            let outcome = send(&shard, &mesh, &pusher, &call).await;
            let now = shard.clock.now();
            pusher.outbox.borrow_mut().finish(&call, outcome, now);
            pusher.in_flight.set(pusher.in_flight.get() - 1);
            pusher.ring();
        })
        .detach();
    }
}

/// One notification: who still needs it, the call, what its answer says.
async fn send(shard: &Rc<Shard>, mesh: &Rc<dyn Mesh>, pusher: &Pusher, call: &Call) -> Outcome {
    let Some((mut devices, count)) = still_owed(shard, call) else {
        return Outcome::Moot;
    };
    let attached = attached_elsewhere(shard, call.key.0, &devices).await;
    devices.retain(|(d, _)| !attached.contains(d));
    if devices.is_empty() {
        return Outcome::Moot;
    }
    let body = Notification {
        conv: call.key.1,
        seq: call.note.seq,
        sender: call.note.sender,
        unread: count,
        user: call.key.0,
        devices: &devices,
    }
    .encode();
    let deadline = Duration::from_millis(PUSH_ANSWER_TIMEOUT_MS);
    let why = match pusher.gateway.post_json(body, deadline).await {
        Ok(a) if a.is_success() => {
            let done = PushDone {
                user: call.key.0,
                conv: call.key.1,
                seq: call.note.seq,
                devices: devices.iter().map(|(d, _)| *d).collect(),
                rejected: rejected(&a.body),
            };
            if let Err(e) = shard.submit(mesh, done).await {
                debug!(shard = shard.id.0, error = ?e, "push outcome not recorded");
            }
            return Outcome::Taken;
        }
        Ok(a) => format!("status {}", a.status),
        Err(e) => e.to_string(),
    };
    let now = shard.clock.now();
    if now.0.saturating_sub(pusher.warned.get().0) >= WARN_EVERY_MS {
        pusher.warned.set(now);
        warn!(gateway = %pusher.gateway.url(), error = %why, "push gateway call failed (retried with backoff)");
    }
    Outcome::Failed
}

/// The devices of the call that still need it (with their tokens) and the
/// user's unread count there; `None` when none does.
fn still_owed(shard: &Shard, call: &Call) -> Option<(Vec<(DeviceId, String)>, u64)> {
    let (user, conv) = call.key;
    let state = shard.state();
    let soft = shard.soft.borrow();
    let u = state.users.get(&user)?;
    let online = soft.devices_online(user);
    let devices: Vec<(DeviceId, String)> = devices_for(u, conv, call.note.seq, &online)
        .into_iter()
        .filter(|d| call.devices.contains(d))
        .filter_map(|d| Some((d, u.devices.get(&d)?.push_token.clone()?)))
        .collect();
    if devices.is_empty() {
        return None;
    }
    let count = soft
        .pointers
        .get(&user)
        .and_then(|p| p.get(&conv))
        .map_or(1, |p| unread(u, p).max(1));
    Some((devices, count))
}

/// Cluster mode: which of these devices are connected to another node
/// (a peer that does not answer in time counts as having none).
async fn attached_elsewhere(
    shard: &Shard,
    user: UserId,
    devices: &[(DeviceId, String)],
) -> Vec<DeviceId> {
    let Some(r) = shard.cluster() else {
        return Vec::new();
    };
    let group = shard.group();
    let peers: Vec<_> = r
        .membership
        .replicas(group)
        .iter()
        .copied()
        .filter(|n| *n != r.node)
        .collect();
    let ids: Vec<DeviceId> = devices.iter().map(|(d, _)| *d).collect();
    let mut found = Vec::new();
    for node in peers {
        let work = crate::cluster::forward::Work::Attached {
            user,
            devices: ids.clone(),
        };
        let ask = crate::cluster::forward::call_node(&r, node, shard.id.0, work);
        let late = async {
            glommio::timer::sleep(Duration::from_millis(PUSH_PEER_ASK_TIMEOUT_MS)).await;
            Err(crate::shard::error::unavailable("no answer in time"))
        };
        if let Ok(crate::cluster::forward::AnyReply::Devices(d)) = future::or(ask, late).await {
            found.extend(d);
        }
    }
    found
}
