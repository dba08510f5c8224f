//! One WebSocket session: authenticate, sync what the device missed, then
//! serve its events until it goes.
//!
//! Lives on: the core that accepted the connection. Its outbound queue is
//! bounded (`Outbox`); pushes that find it full drop the connection.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::time::{Duration, Instant};

use chat_net::protocol::{self, ApiError, ClientEvent, ErrorCode, TypingState};
use chat_net::ws::{Inbox, Incoming, Outbox, WebSocket};
use serde_json::json;
use serde_json::value::RawValue;

use crate::constants::{AUTH_TIMEOUT_MS, SYNC_PAGE_MESSAGES_MAX, TYPING_TIMEOUT_MS};
use crate::core::{ConnEntry, Core, Held, CLOSE_UNAUTHORIZED};
use crate::ids::{ConnId, ConvId, Seq, UserId};
use crate::ops::{Answer, Op, SendOp};
use crate::records::Mark;
use crate::rest::{authenticate, Caller};
use crate::wire::{message_sent, with_ref};

const CLOSE_TOO_LARGE: u16 = 1009;
/// The server cannot serve the session now (storage trouble): reconnect.
const CLOSE_TRY_AGAIN: u16 = 1013;

/// Token bucket for one device's sends.
struct RateLimit {
    tokens: f64,
    last: Instant,
    rate: f64,
    burst: f64,
}

impl RateLimit {
    /// Takes one token, or says in how many ms one will be there.
    fn take(&mut self) -> Result<(), u64> {
        let now = Instant::now();
        self.tokens =
            (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        Err(((1.0 - self.tokens) / self.rate * 1000.0).ceil() as u64)
    }
}

struct Session {
    core: Rc<Core>,
    caller: Caller,
    conn: ConnId,
    outbox: Outbox,
    rate: RateLimit,
    /// Users whose presence this connection watches.
    watching: HashSet<UserId>,
    /// Typing "start"s not yet stopped: conversation → generation.
    typing: Rc<std::cell::RefCell<HashMap<ConvId, u64>>>,
    typing_generation: u64,
}

fn error_text(e: &ApiError, reference: Option<&RawValue>) -> String {
    e.ws_event(reference)
}

/// Runs a session to its end.
pub async fn run(core: Rc<Core>, ws: WebSocket, bearer: Option<String>) {
    let (mut inbox, outbox) = ws.split(core.config.outbox_frames_max);
    let Some(caller) = auth(&core, &mut inbox, &outbox, bearer).await else {
        return;
    };
    let conn = core.new_conn_id();
    core.conns.borrow_mut().insert(
        conn,
        ConnEntry {
            outbox: outbox.clone(),
            user: caller.user,
            device: caller.device,
            held: Some(Vec::new()),
            synced: HashMap::new(),
        },
    );
    let rate = RateLimit {
        tokens: f64::from(core.config.send_burst),
        last: Instant::now(),
        rate: f64::from(core.config.send_rate_per_second),
        burst: f64::from(core.config.send_burst),
    };
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
    if session.sync().await.is_ok() {
        session.serve(&mut inbox).await;
    }
    session.end().await;
}

async fn auth(
    core: &Rc<Core>,
    inbox: &mut Inbox,
    outbox: &Outbox,
    bearer: Option<String>,
) -> Option<Caller> {
    let (token, reference) = match bearer {
        Some(t) => (t, None),
        None => {
            let first = glommio::timer::timeout(Duration::from_millis(AUTH_TIMEOUT_MS), async {
                Ok(inbox.recv().await)
            })
            .await;
            let frame = match first {
                Ok(Incoming::Text(text)) => protocol::decode(&text).ok(),
                _ => None,
            };
            match frame {
                Some(protocol::Frame {
                    event: ClientEvent::Auth { token },
                    reference,
                }) => (token, reference),
                _ => {
                    let e = ApiError::new(
                        ErrorCode::Unauthorized,
                        "authenticate first: {\"type\":\"auth\",\"token\"} within 10 s",
                    );
                    let _ = outbox.try_send(error_text(&e, None));
                    outbox.close(CLOSE_UNAUTHORIZED, "unauthorized");
                    return None;
                }
            }
        }
    };
    match authenticate(core, Some(&token)).await {
        Ok(caller) => {
            let ok = json!({"type": "auth.ok", "user_id": caller.user.to_string(), "device_id": caller.device.to_string()});
            let _ = outbox.try_send(with_ref(ok, reference.as_deref().map(RawValue::get)));
            Some(caller)
        }
        Err(e) => {
            let _ = outbox.try_send(error_text(&e, reference.as_deref()));
            outbox.close(CLOSE_UNAUTHORIZED, "unauthorized");
            None
        }
    }
}

impl Session {
    fn send_now(&self, text: String) {
        if self.outbox.try_send(text).is_err() {
            self.core.stats.borrow_mut().slow_consumers_dropped += 1;
            self.outbox.close(
                crate::core::CLOSE_SLOW_CONSUMER,
                "slow consumer: reconnect to catch up",
            );
        }
    }

    fn send_error(&self, e: &ApiError, reference: Option<&RawValue>) {
        self.core.stats.borrow_mut().event_out("error", 1);
        self.send_now(error_text(e, reference));
    }

    /// Sends every message this device has not acked, conversation by
    /// conversation in seq order, then the live ones held meanwhile, then
    /// `sync.done`.
    async fn sync(&mut self) -> Result<(), ()> {
        let core = self.core.clone();
        let (user, device) = (self.caller.user, self.caller.device);
        let plan = match core
            .call(
                core.shard_of(user.0),
                Op::Connect {
                    user,
                    device,
                    conn: core.conn_ref(self.conn),
                },
            )
            .await
        {
            Ok(Answer::Pointers { cursors, .. }) => cursors,
            Ok(other) => panic!("Connect answered {other:?}"),
            Err(e) => {
                self.send_error(&e, None);
                self.outbox.close(CLOSE_UNAUTHORIZED, "unauthorized");
                return Err(());
            }
        };
        let mut synced: HashMap<ConvId, Seq> = HashMap::new();
        for (conv, cursor) in plan {
            let mut after = cursor;
            loop {
                let op = Op::Fetch {
                    conv,
                    user,
                    device,
                    after,
                    limit: SYNC_PAGE_MESSAGES_MAX,
                };
                let (events, through, last) = match core.call(core.shard_of(conv.0), op).await {
                    Ok(Answer::Fetched {
                        events,
                        through,
                        last_seq,
                    }) => (events, through, last_seq),
                    Ok(other) => panic!("Fetch answered {other:?}"),
                    Err(e) => {
                        // Never skip: a gap would be silent. The device
                        // reconnects and resumes from its cursor.
                        self.send_error(&e, None);
                        self.outbox.close(CLOSE_TRY_AGAIN, "sync failed: reconnect");
                        return Err(());
                    }
                };
                for (_, event) in &events {
                    if self.outbox.send(event.to_string()).await.is_err() {
                        return Err(());
                    }
                }
                core.stats
                    .borrow_mut()
                    .event_out("message.new", events.len() as u64);
                let moved = through > after;
                after = through;
                if !moved || after >= last {
                    break;
                }
            }
            synced.insert(conv, after);
        }
        let held: Vec<Held> = {
            let mut conns = core.conns.borrow_mut();
            let Some(entry) = conns.get_mut(&self.conn) else {
                return Err(());
            };
            // From now on pushes go straight out; late ones already synced
            // are dropped against this floor, and so are held ones.
            entry.synced = synced;
            let held = entry.held.take().unwrap_or_default();
            held.into_iter()
                .filter(|h| !entry.already_synced(h.tag))
                .collect()
        };
        self.send_now("{\"type\":\"sync.done\"}".to_string());
        for h in held {
            self.send_now(h.event.to_string());
        }
        Ok(())
    }

    async fn serve(&mut self, inbox: &mut Inbox) {
        loop {
            match inbox.recv().await {
                Incoming::Text(text) => self.on_frame(&text).await,
                Incoming::TooLarge => {
                    let e = ApiError::new(
                        ErrorCode::TooLarge,
                        format!(
                            "a message is at most {} bytes",
                            crate::constants::MESSAGE_BYTES_MAX
                        ),
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

    async fn on_frame(&mut self, text: &str) {
        let frame = match protocol::decode(text) {
            Ok(frame) => frame,
            Err(e) => {
                self.core.stats.borrow_mut().event_in("invalid");
                self.send_error(&e.error, e.reference.as_deref());
                return;
            }
        };
        let reference = frame.reference;
        let core = self.core.clone();
        match frame.event {
            ClientEvent::Auth { .. } => {
                core.stats.borrow_mut().event_in("auth");
                self.send_error(
                    &ApiError::bad_request("already authenticated"),
                    reference.as_deref(),
                );
            }
            ClientEvent::Ping => {
                core.stats.borrow_mut().event_in("ping");
                core.stats.borrow_mut().event_out("pong", 1);
                self.send_now(with_ref(
                    json!({"type": "pong"}),
                    reference.as_deref().map(RawValue::get),
                ));
            }
            ClientEvent::MessageSend {
                conversation_id,
                client_msg_id,
                body,
                media,
                reply_to,
            } => {
                core.stats.borrow_mut().event_in("message.send");
                let started = Instant::now();
                if let Err(ms) = self.rate.take() {
                    self.send_error(&ApiError::rate_limited(ms), reference.as_deref());
                    return;
                }
                let Some(conv) = ConvId::parse(&conversation_id) else {
                    self.send_error(
                        &crate::users::not_member_named(&conversation_id),
                        reference.as_deref(),
                    );
                    return;
                };
                let op = SendOp {
                    conv,
                    sender: self.caller.user,
                    device: self.caller.device,
                    client_msg_id,
                    body,
                    media,
                    reply_to,
                    started,
                };
                self.spawn_send(op, reference);
            }
            ClientEvent::MessageAck {
                conversation_id,
                seq,
            } => self.cursor(
                &conversation_id,
                Mark::Delivered,
                seq,
                reference,
                "message.ack",
            ),
            ClientEvent::MessageRead {
                conversation_id,
                seq,
            } => self.cursor(&conversation_id, Mark::Read, seq, reference, "message.read"),
            ClientEvent::Typing {
                conversation_id,
                state,
            } => {
                core.stats.borrow_mut().event_in("typing");
                let Some(conv) = ConvId::parse(&conversation_id) else {
                    self.send_error(
                        &crate::users::not_member_named(&conversation_id),
                        reference.as_deref(),
                    );
                    return;
                };
                self.typing(conv, state, reference);
            }
            ClientEvent::PresenceSubscribe { user_ids } => {
                core.stats.borrow_mut().event_in("presence.subscribe");
                for id in user_ids {
                    let Some(subject) = UserId::parse(&id) else {
                        continue;
                    };
                    if !self.watching.insert(subject) {
                        continue;
                    }
                    let op = Op::PresenceSubscribe {
                        subject,
                        subscriber: self.caller.user,
                        conn: core.conn_ref(self.conn),
                    };
                    let _ = core.call(core.shard_of(subject.0), op).await;
                }
            }
        }
    }

    /// Sends in its own task so the socket keeps being read while the
    /// message becomes durable; the answer goes out when it is.
    fn spawn_send(&self, op: SendOp, reference: Option<Box<RawValue>>) {
        let core = self.core.clone();
        let outbox = self.outbox.clone();
        let (conv, client_msg_id, started) = (op.conv, op.client_msg_id.clone(), op.started);
        glommio::spawn_local(async move {
            let text = match core.call(core.shard_of(conv.0), Op::Send(op)).await {
                Ok(Answer::Sent { seq, ts }) => {
                    let mut stats = core.stats.borrow_mut();
                    stats.record(crate::stats::Latency::SendToSent, started.elapsed());
                    stats.event_out("message.sent", 1);
                    message_sent(
                        reference.as_deref().map(RawValue::get),
                        conv,
                        &client_msg_id,
                        seq,
                        ts,
                    )
                }
                Ok(other) => panic!("Send answered {other:?}"),
                Err(e) => error_text(&e, reference.as_deref()),
            };
            if outbox.try_send(text).is_err() {
                outbox.close(
                    crate::core::CLOSE_SLOW_CONSUMER,
                    "slow consumer: reconnect to catch up",
                );
            }
        })
        .detach();
    }

    fn cursor(
        &self,
        conversation_id: &str,
        mark: Mark,
        seq: u64,
        reference: Option<Box<RawValue>>,
        ty: &'static str,
    ) {
        self.core.stats.borrow_mut().event_in(ty);
        let Some(conv) = ConvId::parse(conversation_id) else {
            self.send_error(
                &crate::users::not_member_named(conversation_id),
                reference.as_deref(),
            );
            return;
        };
        let (core, outbox, caller) = (self.core.clone(), self.outbox.clone(), self.caller);
        glommio::spawn_local(async move {
            let op = Op::Cursor {
                user: caller.user,
                device: caller.device,
                conv,
                mark,
                seq: Seq(seq),
            };
            if let Err(e) = core.call(core.shard_of(caller.user.0), op).await {
                let _ = outbox.try_send(error_text(&e, reference.as_deref()));
            }
        })
        .detach();
    }

    fn typing(&mut self, conv: ConvId, state: TypingState, reference: Option<Box<RawValue>>) {
        self.typing_generation += 1;
        let generation = self.typing_generation;
        match state {
            TypingState::Start => self.typing.borrow_mut().insert(conv, generation),
            TypingState::Stop => self.typing.borrow_mut().remove(&conv),
        };
        let (core, outbox, user, typing) = (
            self.core.clone(),
            self.outbox.clone(),
            self.caller.user,
            self.typing.clone(),
        );
        glommio::spawn_local(async move {
            let shard = core.shard_of(conv.0);
            if let Err(e) = core.call(shard, Op::Typing { conv, user, state }).await {
                let _ = outbox.try_send(error_text(&e, reference.as_deref()));
                return;
            }
            if state == TypingState::Stop {
                return;
            }
            glommio::timer::sleep(Duration::from_millis(TYPING_TIMEOUT_MS)).await;
            // Still the latest start, never stopped: stop it for the others.
            let expired = typing.borrow().get(&conv) == Some(&generation);
            if expired {
                typing.borrow_mut().remove(&conv);
                let _ = core
                    .call(
                        shard,
                        Op::Typing {
                            conv,
                            user,
                            state: TypingState::Stop,
                        },
                    )
                    .await;
            }
        })
        .detach();
    }

    async fn end(self) {
        let core = self.core;
        core.conns.borrow_mut().remove(&self.conn);
        let (user, device) = (self.caller.user, self.caller.device);
        let conn = core.conn_ref(self.conn);
        core.tell(core.shard_of(user.0), Op::Disconnect { user, device, conn })
            .await;
        for subject in self.watching {
            core.tell(
                core.shard_of(subject.0),
                Op::PresenceUnsubscribe { subject, conn },
            )
            .await;
        }
        let stopped: Vec<ConvId> = self.typing.borrow_mut().drain().map(|(c, _)| c).collect();
        for conv in stopped {
            let _ = core
                .call(
                    core.shard_of(conv.0),
                    Op::Typing {
                        conv,
                        user,
                        state: TypingState::Stop,
                    },
                )
                .await;
        }
        self.outbox.close(1000, "bye");
    }
}
