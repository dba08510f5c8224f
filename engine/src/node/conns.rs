//! The connections of one core: where each one's frames go (an `Outlet`),
//! and pushes from any shard onto them.
//!
//! Lives on: the core that accepted the connections.

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use crate::machine::ids::{ConvId, DeviceId, Seq, UserId};
use crate::shard::storage::LocalBoxFuture;

/// A frame was refused: the outlet is full or closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refused;

/// Where a connection's frames go: a WebSocket's bounded outbox, or the
/// simulation's in-memory device.
pub trait Outlet {
    /// Queues a frame if there is room; `Err` when full or closed (the
    /// connection is then dropped as a slow consumer).
    fn try_send(&self, text: String) -> Result<(), Refused>;
    /// Queues a frame, waiting for room (paced by the socket); `Err` once
    /// closed.
    fn send_paced(&self, text: String) -> LocalBoxFuture<'_, Result<(), Refused>>;
    fn close(&self, code: u16, reason: &str);
    fn is_closed(&self) -> bool;
    fn queued(&self) -> usize;
}

impl Outlet for chat_net::ws::Outbox {
    fn try_send(&self, text: String) -> Result<(), Refused> {
        chat_net::ws::Outbox::try_send(self, text).map_err(|_| Refused)
    }

    fn send_paced(&self, text: String) -> LocalBoxFuture<'_, Result<(), Refused>> {
        Box::pin(async move {
            chat_net::ws::Outbox::send(self, text)
                .await
                .map_err(|_| Refused)
        })
    }

    fn close(&self, code: u16, reason: &str) {
        chat_net::ws::Outbox::close(self, code, reason)
    }

    fn is_closed(&self) -> bool {
        chat_net::ws::Outbox::is_closed(self)
    }

    fn queued(&self) -> usize {
        chat_net::ws::Outbox::queued(self)
    }
}

/// An event held back during sync.
pub struct Held {
    pub tag: Option<(ConvId, Seq)>,
    pub event: Arc<str>,
}

/// A live, authenticated connection.
pub struct ConnEntry {
    pub outlet: Rc<dyn Outlet>,
    pub user: UserId,
    pub device: DeviceId,
    /// While the connection syncs, live messages wait here so that they
    /// reach the device after the older ones the sync sends.
    pub held: Option<Vec<Held>>,
    /// After sync: per conversation, the last seq the sync sent. A live
    /// push of a seq at or below it was already sent (it was durable when
    /// the sync read it, its fan-out still on the way): dropped, so a
    /// connection never gets one message twice.
    pub synced: HashMap<ConvId, Seq>,
}

impl ConnEntry {
    pub fn new(outlet: Rc<dyn Outlet>, user: UserId, device: DeviceId) -> ConnEntry {
        ConnEntry {
            outlet,
            user,
            device,
            held: Some(Vec::new()),
            synced: HashMap::new(),
        }
    }

    /// Did this connection's sync already send the message `tag` names?
    pub fn already_synced(&self, tag: Option<(ConvId, Seq)>) -> bool {
        tag.is_some_and(|(conv, seq)| self.synced.get(&conv).is_some_and(|s| seq <= *s))
    }
}
