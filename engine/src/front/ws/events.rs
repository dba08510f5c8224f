//! The client events of a session: a table from event to handler. Each
//! handler answers on the socket (a reply, an error with the `ref`) and
//! runs what takes time in a task of its own, so the socket keeps being
//! read while a message becomes durable.
//!
//! Lives on: the connection's core.

use std::time::{Duration, Instant};

use chat_net::protocol::{self, ApiError, Body, ClientEvent, ErrorCode};
use serde_json::value::RawValue;

use super::Session;
use crate::constants::TYPING_TIMEOUT_MS;
use crate::front::errors::api_error;
use crate::front::media_access::share_for_send;
use crate::machine::cmd::send::Send;
use crate::machine::ids::{ConvId, Seq, UserId};
use crate::machine::records::{BodyKind, Mark};
use crate::node::stats::Latency;
use crate::shard::conn::CLOSE_SLOW_CONSUMER;
use crate::shard::mesh::{call, shard_of};
use crate::shard::ops::change::{DeleteMessage, EditMessage};
use crate::shard::ops::cursor::MoveCursor;
use crate::shard::ops::presence::Subscribe;
use crate::shard::ops::send::SendMessage;
use crate::shard::ops::typing::{Typing, TypingState};
use crate::wire::{message_deleted, message_edited, message_sent, pong};

type Ref = Option<Box<RawValue>>;

fn not_member_named(conv: &str) -> ApiError {
    ApiError::new(ErrorCode::NotMember, format!("not a member of {conv}"))
}

/// Decodes one frame and runs its handler.
pub async fn on_frame(s: &mut Session, text: &str) {
    let frame = match protocol::decode(text) {
        Ok(frame) => frame,
        Err(e) => {
            s.core.stats.borrow_mut().event_in("invalid");
            s.send_error(&e.error, e.reference.as_deref());
            return;
        }
    };
    let r = frame.reference;
    match frame.event {
        ClientEvent::Auth { .. } => already_authenticated(s, r),
        ClientEvent::Ping => ping(s, r),
        ClientEvent::MessageSend {
            conversation_id,
            client_msg_id,
            body,
            media,
            reply_to,
        } => send(
            s,
            &conversation_id,
            (client_msg_id, body, media, reply_to),
            r,
        ),
        ClientEvent::MessageAck {
            conversation_id,
            seq,
        } => cursor(s, &conversation_id, Mark::Delivered, seq, r),
        ClientEvent::MessageRead {
            conversation_id,
            seq,
        } => cursor(s, &conversation_id, Mark::Read, seq, r),
        ClientEvent::MessageEdit {
            conversation_id,
            seq,
            body,
        } => change(s, &conversation_id, seq, Some(body), r),
        ClientEvent::MessageDelete {
            conversation_id,
            seq,
        } => change(s, &conversation_id, seq, None, r),
        ClientEvent::Typing {
            conversation_id,
            state,
        } => typing(s, &conversation_id, state, r),
        ClientEvent::PresenceSubscribe { user_ids } => presence(s, user_ids).await,
    }
}

fn already_authenticated(s: &Session, r: Ref) {
    s.core.stats.borrow_mut().event_in("auth");
    s.send_error(
        &ApiError::bad_request("already authenticated"),
        r.as_deref(),
    );
}

fn ping(s: &Session, r: Ref) {
    let mut stats = s.core.stats.borrow_mut();
    stats.event_in("ping");
    stats.event_out("pong", 1);
    drop(stats);
    s.send_now(pong(r.as_deref().map(RawValue::get)));
}

/// The id of a conversation an event names, or `not_member` for one that
/// does not even parse.
fn conv_named(s: &Session, text: &str, r: &Ref) -> Option<ConvId> {
    let conv = ConvId::parse(text);
    if conv.is_none() {
        s.send_error(&not_member_named(text), r.as_deref());
    }
    conv
}

fn send(
    s: &mut Session,
    conv: &str,
    (client_msg_id, body, media, reply_to): (String, Body, Option<String>, Option<u64>),
    r: Ref,
) {
    s.core.stats.borrow_mut().event_in("message.send");
    let started = Instant::now();
    if let Err(ms) = s.rate.take() {
        s.send_error(&ApiError::rate_limited(ms), r.as_deref());
        return;
    }
    let Some(conv) = conv_named(s, conv, &r) else {
        return;
    };
    let (body_kind, body) = body_parts(body);
    let cmd = Send {
        conv,
        sender: s.caller.user,
        device: s.caller.device,
        client_msg_id,
        body_kind,
        body,
        media,
        reply_to,
    };
    let (core, outbox) = (s.core.clone(), s.outbox.clone());
    glommio::spawn_local(async move {
        let client_msg_id = cmd.client_msg_id.clone();
        let reply = send_with_media(&core, cmd, started).await;
        let text = match reply {
            Ok((seq, ts)) => {
                let mut stats = core.stats.borrow_mut();
                stats.record(Latency::SendToSent, started.elapsed());
                stats.event_out("message.sent", 1);
                message_sent(
                    r.as_deref().map(RawValue::get),
                    conv,
                    &client_msg_id,
                    seq,
                    ts,
                )
            }
            Err(e) => e.ws_event(r.as_deref()),
        };
        if outbox.try_send(text).is_err() {
            outbox.close(CLOSE_SLOW_CONSUMER, "slow consumer: reconnect to catch up");
        }
    })
    .detach();
}

/// Names the message's media first (checked and described by the
/// uploader's home), then sends it.
async fn send_with_media(
    core: &std::rc::Rc<crate::node::core::Core>,
    mut cmd: Send,
    started: Instant,
) -> Result<(Seq, crate::machine::ids::Millis), ApiError> {
    if let Some(id) = cmd.media.take() {
        cmd.media = Some(share_for_send(core, cmd.sender, cmd.conv, &id).await?);
    }
    let home = core.shard_of(cmd.conv.0);
    call(&core.mesh(), home, SendMessage { cmd, started })
        .await
        .map_err(api_error)
}

fn body_parts(body: Body) -> (BodyKind, String) {
    match body {
        Body::Text(t) => (BodyKind::Text, t),
        Body::Ciphertext(t) => (BodyKind::Ciphertext, t),
    }
}

/// `message.edit` (a new body) or `message.delete` (none); the answer is
/// the change event itself, with the `ref`. Counted against the send rate.
fn change(s: &mut Session, conv: &str, seq: u64, body: Option<Body>, r: Ref) {
    s.core.stats.borrow_mut().event_in(match body {
        Some(_) => "message.edit",
        None => "message.delete",
    });
    if let Err(ms) = s.rate.take() {
        s.send_error(&ApiError::rate_limited(ms), r.as_deref());
        return;
    }
    let Some(conv) = conv_named(s, conv, &r) else {
        return;
    };
    let (core, outbox) = (s.core.clone(), s.outbox.clone());
    let (by, seq) = ((s.caller.user, s.caller.device), Seq(seq));
    glommio::spawn_local(async move {
        let (mesh, home) = (core.mesh(), core.shard_of(conv.0));
        let reference = r.as_deref().map(RawValue::get);
        let text = match body.map(body_parts) {
            Some((body_kind, body)) => {
                let op = EditMessage {
                    conv,
                    seq,
                    by,
                    body_kind,
                    body: body.clone(),
                };
                call(&mesh, home, op)
                    .await
                    .map(|e| message_edited(reference, conv, seq, (body_kind, &body), e.edited_ts))
            }
            None => call(&mesh, home, DeleteMessage { conv, seq, by })
                .await
                .map(|()| message_deleted(reference, conv, seq)),
        };
        let text = text.unwrap_or_else(|e| api_error(e).ws_event(r.as_deref()));
        if outbox.try_send(text).is_err() {
            outbox.close(CLOSE_SLOW_CONSUMER, "slow consumer: reconnect to catch up");
        }
    })
    .detach();
}

fn cursor(s: &Session, conv: &str, mark: Mark, seq: u64, r: Ref) {
    s.core.stats.borrow_mut().event_in(match mark {
        Mark::Delivered => "message.ack",
        Mark::Read => "message.read",
    });
    let Some(conv) = conv_named(s, conv, &r) else {
        return;
    };
    let (core, outbox, caller) = (s.core.clone(), s.outbox.clone(), s.caller);
    glommio::spawn_local(async move {
        let op = MoveCursor {
            user: caller.user,
            device: caller.device,
            conv,
            mark,
            seq: Seq(seq),
        };
        if let Err(e) = call(&core.mesh(), core.shard_of(caller.user.0), op).await {
            let _ = outbox.try_send(api_error(e).ws_event(r.as_deref()));
        }
    })
    .detach();
}

fn typing(s: &mut Session, conv: &str, state: protocol::TypingState, r: Ref) {
    s.core.stats.borrow_mut().event_in("typing");
    let Some(conv) = conv_named(s, conv, &r) else {
        return;
    };
    let state = match state {
        protocol::TypingState::Start => TypingState::Start,
        protocol::TypingState::Stop => TypingState::Stop,
    };
    s.typing_generation += 1;
    let generation = s.typing_generation;
    match state {
        TypingState::Start => s.typing.borrow_mut().insert(conv, generation),
        TypingState::Stop => s.typing.borrow_mut().remove(&conv),
    };
    let (core, outbox, user, typing) = (
        s.core.clone(),
        s.outbox.clone(),
        s.caller.user,
        s.typing.clone(),
    );
    glommio::spawn_local(async move {
        let (mesh, home) = (core.mesh(), core.shard_of(conv.0));
        if let Err(e) = call(&mesh, home, Typing { conv, user, state }).await {
            let _ = outbox.try_send(api_error(e).ws_event(r.as_deref()));
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
            let stop = Typing {
                conv,
                user,
                state: TypingState::Stop,
            };
            let _ = call(&mesh, home, stop).await;
        }
    })
    .detach();
}

async fn presence(s: &mut Session, user_ids: Vec<String>) {
    s.core.stats.borrow_mut().event_in("presence.subscribe");
    let mesh = s.core.mesh();
    for id in user_ids {
        let Some(subject) = UserId::parse(&id) else {
            continue;
        };
        if !s.watching.insert(subject) {
            continue;
        }
        let op = Subscribe {
            subject,
            watcher: s.caller.user,
            conn: s.core.conn_ref(s.conn),
        };
        let _ = call(&mesh, shard_of(&*mesh, subject.0), op).await;
    }
}
