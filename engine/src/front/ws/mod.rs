//! One WebSocket session: authenticate, sync what the device missed, then
//! serve its events until it goes.
//!
//! Lives on: the core that accepted the connection. Its outbound queue is
//! bounded (`Outbox`); pushes that find it full drop the connection.
//!
//! # Layout
//! - `auth.rs`   bearer or `auth` event, `auth.ok`
//! - `sync.rs`   sync on connect (shared with the simulation)
//! - `events.rs` the event table: one handler per client event
//! - `rate.rs`   the per-connection send rate limit

pub mod auth;
pub mod events;
pub mod rate;
pub mod sync;

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use chat_net::protocol::{ApiError, ErrorCode};
use chat_net::ws::{Inbox, Incoming, Outbox, WebSocket};
use serde_json::value::RawValue;

use crate::constants::MESSAGE_BYTES_MAX;
use crate::front::caller::Caller;
use crate::machine::ids::{ConvId, UserId};
use crate::node::conns::ConnEntry;
use crate::node::core::Core;
use crate::shard::conn::{ConnId, CLOSE_SLOW_CONSUMER};
use crate::shard::mesh::{shard_of, tell};
use crate::shard::ops::connect::Disconnect;
use crate::shard::ops::presence::Unsubscribe;
use crate::shard::ops::typing::{Typing, TypingState};

const CLOSE_TOO_LARGE: u16 = 1009;

pub struct Session {
    pub core: Rc<Core>,
    pub caller: Caller,
    pub conn: ConnId,
    pub outbox: Outbox,
    pub rate: rate::RateLimit,
    /// Users whose presence this connection watches.
    pub watching: HashSet<UserId>,
    /// Typing "start"s not yet stopped: conversation → generation.
    pub typing: Rc<RefCell<HashMap<ConvId, u64>>>,
    pub typing_generation: u64,
}

/// Runs a session to its end.
pub async fn run(core: Rc<Core>, ws: WebSocket, bearer: Option<String>) {
    let (mut inbox, outbox) = ws.split(core.config.outbox_frames_max);
    let Some(caller) = auth::auth(&core, &mut inbox, &outbox, bearer).await else {
        return;
    };
    let conn = core.new_conn_id();
    let entry = ConnEntry::new(Rc::new(outbox.clone()), caller.user, caller.device);
    core.conns.borrow_mut().insert(conn, entry);
    let rate = rate::RateLimit::new(core.config.send_rate_per_second, core.config.send_burst);
    let mut session = Session {
        core: core.clone(),
        caller,
        conn,
        outbox,
        rate,
        watching: HashSet::new(),
        typing: Default::default(),
        typing_generation: 0,
    };
    match sync::sync(&core, caller, conn, &session.outbox).await {
        Ok(()) => session.serve(&mut inbox).await,
        Err(failed) => {
            if let Some(e) = failed.error {
                session.send_error(&e, None);
            }
            if let Some((code, reason)) = failed.close {
                session.outbox.close(code, reason);
            }
        }
    }
    session.end().await;
}

impl Session {
    /// Queues a frame; a full queue drops the connection as a slow consumer.
    pub fn send_now(&self, text: String) {
        if self.outbox.try_send(text).is_err() {
            self.core.stats.borrow_mut().slow_consumers_dropped += 1;
            self.outbox
                .close(CLOSE_SLOW_CONSUMER, "slow consumer: reconnect to catch up");
        }
    }

    pub fn send_error(&self, e: &ApiError, reference: Option<&RawValue>) {
        self.core.stats.borrow_mut().event_out("error", 1);
        self.send_now(e.ws_event(reference));
    }

    async fn serve(&mut self, inbox: &mut Inbox) {
        loop {
            match inbox.recv().await {
                Incoming::Text(text) => events::on_frame(self, &text).await,
                Incoming::TooLarge => {
                    let e = ApiError::new(
                        ErrorCode::TooLarge,
                        format!("a message is at most {MESSAGE_BYTES_MAX} bytes"),
                    );
                    self.send_error(&e, None);
                    self.outbox.close(CLOSE_TOO_LARGE, "message too large");
                    return;
                }
                Incoming::Closed | Incoming::Error(_) => return,
            }
            if self.outbox.is_closed() {
                return;
            }
        }
    }

    /// The connection ended: offline on the user's home, watches dropped,
    /// typing stopped for the others.
    async fn end(self) {
        let (core, mesh) = (self.core.clone(), self.core.mesh());
        core.conns.borrow_mut().remove(&self.conn);
        let (user, device) = (self.caller.user, self.caller.device);
        let conn = core.conn_ref(self.conn);
        tell(
            &mesh,
            shard_of(&*mesh, user.0),
            Disconnect { user, device, conn },
        )
        .await;
        for subject in self.watching {
            tell(
                &mesh,
                shard_of(&*mesh, subject.0),
                Unsubscribe { subject, conn },
            )
            .await;
        }
        let stopped: Vec<ConvId> = self.typing.borrow_mut().drain().map(|(c, _)| c).collect();
        for conv in stopped {
            let stop = Typing {
                conv,
                user,
                state: TypingState::Stop,
            };
            let _ = crate::shard::mesh::call(&mesh, shard_of(&*mesh, conv.0), stop).await;
        }
        self.outbox.close(1000, "bye");
    }
}
