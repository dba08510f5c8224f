//! What loadgen can drive, and how each speaks: chatd (protocol v1), a
//! WebSocket echo server (the machine's ceiling, fed chatd's own frames) and
//! an XMPP server over WebSocket (`xmpp.rs`, `xmpp_session.rs`).
//!
//! Every target gets the same message bodies: `lg CONV M T_US xxx…`, the
//! run-wide conversation, the message's index in it and its intended send
//! time; ids are `RUN.CONV.M`. So the receiving side can place any copy
//! without asking the sender.
//!
//! What counts as "the server has it" (send→sent) differs, and the report
//! says so: chatd answers `message.sent` after the message is durable
//! (fsynced); the echo server has no ack (a message counts as sent once
//! written, and its echo is its reception); XMPP core has no server ack
//! either (1:1 messages count once written; a group message counts when the
//! room reflects it back to its sender).

use std::borrow::Cow;

use serde::Deserialize;

use super::config::TargetKind;
use super::verdict::{ConvIx, MsgIx, Recipients};

/// chatd's error code for "no leader now, try again": the outcome of the
/// write it answers is unknown.
pub const UNAVAILABLE: &str = "unavailable";
/// The error code of a send over the rate (nothing stored by it).
pub const RATE_LIMITED: &str = "rate_limited";

/// How a target confirms a send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Confirm {
    /// A server answer naming the message (chatd `message.sent`).
    ServerAck,
    /// The sender's own copy coming back (XMPP rooms).
    Reflection,
    /// Nothing: written on the wire is all we know.
    Written,
}

/// A server frame, as loadgen needs it.
#[derive(Debug, PartialEq, Eq)]
pub enum Inbound<'a> {
    /// A chat message arrived: its body is one loadgen wrote.
    Message {
        conv: Option<Cow<'a, str>>,
        seq: Option<u64>,
        body: Cow<'a, str>,
    },
    /// The server accepted the send with this id.
    Accepted { id: Cow<'a, str>, seq: Option<u64> },
    /// An error answer (to the send with this id, when it names one).
    Refused {
        id: Option<Cow<'a, str>>,
        code: Cow<'a, str>,
    },
    /// chatd: the backlog after (re)connect is done.
    SyncDone,
    /// Anything else, by kind.
    Other(Cow<'a, str>),
    /// Not a frame we can read at all.
    Unparsable,
}

impl TargetKind {
    pub fn confirm(self, group: bool) -> Confirm {
        match (self, group) {
            (TargetKind::Chatd, _) => Confirm::ServerAck,
            (TargetKind::Echo, _) => Confirm::Written,
            (TargetKind::Xmpp, true) => Confirm::Reflection,
            (TargetKind::Xmpp, false) => Confirm::Written,
        }
    }

    pub fn recipients(self) -> Recipients {
        match self {
            TargetKind::Echo => Recipients::SenderOnly,
            TargetKind::Chatd | TargetKind::Xmpp => Recipients::Others,
        }
    }

    /// What the server does per message, for the report.
    pub fn per_message(self) -> &'static str {
        match self {
            TargetKind::Chatd => "chatd: parse JSON, rate check, append to the conversation shard's log, fdatasync (group commit), then message.sent to the sender and message.new to every other member's online devices; every message.new is acked (a cursor record)",
            TargetKind::Echo => "echo: read the WebSocket frame and write it back (io_uring, no parsing, no storage): the machine's ceiling for these frames",
            TargetKind::Xmpp => "XMPP (ejabberd): parse the stanza, route it in memory (c2s process → recipient's c2s process, or the room process for groups, which reflects it to the sender); no disk write for online recipients, no ack to the sender",
        }
    }
}

/// The body of message `m` of `conv` meant for `intended_us`, padded to `len`.
pub fn body(conv: ConvIx, m: MsgIx, intended_us: u64, len: usize) -> String {
    let mut text = format!("lg {} {} {intended_us} ", conv.0, m.0);
    while text.len() < len {
        text.push('x');
    }
    text
}

/// (conversation, message, intended send time) out of a body we wrote.
pub fn parse_body(text: &str) -> Option<(ConvIx, MsgIx, u64)> {
    let mut parts = text.strip_prefix("lg ")?.splitn(4, ' ');
    let conv = parts.next()?.parse().ok()?;
    let m = parts.next()?.parse().ok()?;
    let t = parts.next()?.parse().ok()?;
    Some((ConvIx(conv), MsgIx(m), t))
}

/// The id of message `m` of `conv` in run `run`.
pub fn message_id(run: &str, conv: ConvIx, m: MsgIx) -> String {
    format!("{run}.{}.{}", conv.0, m.0)
}

/// (conversation, message) out of an id we made.
pub fn parse_message_id(id: &str) -> Option<(ConvIx, MsgIx)> {
    let mut parts = id.rsplitn(3, '.');
    let m = parts.next()?.parse().ok()?;
    let conv = parts.next()?.parse().ok()?;
    parts.next()?;
    Some((ConvIx(conv), MsgIx(m)))
}

// ---------------------------------------------------------------------------
// chatd's frames (the echo server gets the same ones back)

/// The fields loadgen reads out of a chatd event.
#[derive(Debug, Deserialize)]
struct Event<'a> {
    #[serde(rename = "type", borrow)]
    ty: Cow<'a, str>,
    #[serde(default, borrow)]
    conversation_id: Option<Cow<'a, str>>,
    #[serde(default)]
    seq: Option<u64>,
    #[serde(default, borrow)]
    client_msg_id: Option<Cow<'a, str>>,
    #[serde(default, rename = "ref", borrow)]
    reference: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    code: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    body: Option<Body<'a>>,
}

#[derive(Debug, Deserialize)]
struct Body<'a> {
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
}

/// `message.send`, with the id as `ref` and `client_msg_id`.
pub fn chatd_send(conv_id: &str, id: &str, body: &str) -> String {
    format!(
        r#"{{"type":"message.send","ref":"{id}","conversation_id":"{conv_id}","client_msg_id":"{id}","body":{{"text":"{body}"}}}}"#
    )
}

pub fn chatd_ack(conv_id: &str, seq: u64) -> String {
    format!(r#"{{"type":"message.ack","conversation_id":"{conv_id}","seq":{seq}}}"#)
}

pub fn chatd_auth(token: &str) -> String {
    format!(r#"{{"type":"auth","token":"{token}"}}"#)
}

pub const CHATD_PING: &str = r#"{"type":"ping"}"#;

fn body_of(event: Event<'_>) -> Option<Cow<'_, str>> {
    event.body.and_then(|b| b.text)
}

/// A chatd server frame; `echo` reads an echoed `message.send` as a message.
pub fn chatd_decode(text: &str, echo: bool) -> Inbound<'_> {
    let Ok(event) = serde_json::from_str::<Event>(text) else {
        return Inbound::Unparsable;
    };
    match event.ty.as_ref() {
        "message.new" if !echo => match (event.conversation_id.clone(), event.seq) {
            (Some(conv), Some(seq)) => match body_of(event) {
                Some(body) => Inbound::Message {
                    conv: Some(conv),
                    seq: Some(seq),
                    body,
                },
                None => Inbound::Unparsable,
            },
            _ => Inbound::Unparsable,
        },
        "message.send" if echo => {
            let conv = event.conversation_id.clone();
            match body_of(event) {
                Some(body) => Inbound::Message {
                    conv,
                    seq: None,
                    body,
                },
                None => Inbound::Unparsable,
            }
        }
        "message.sent" => match event.client_msg_id {
            Some(id) => Inbound::Accepted { id, seq: event.seq },
            None => Inbound::Unparsable,
        },
        "error" => Inbound::Refused {
            id: event.reference,
            code: event.code.unwrap_or(Cow::Borrowed("?")),
        },
        "sync.done" => Inbound::SyncDone,
        _ => Inbound::Other(event.ty),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_and_ids_round_trip() {
        let b = body(ConvIx(12), MsgIx(345), 6789, 60);
        assert_eq!(b.len(), 60);
        assert_eq!(parse_body(&b), Some((ConvIx(12), MsgIx(345), 6789)));
        assert_eq!(parse_body("hello"), None);
        assert_eq!(parse_body("lg 1 x 3 "), None);
        let id = message_id("ab12", ConvIx(3), MsgIx(9));
        assert_eq!(parse_message_id(&id), Some((ConvIx(3), MsgIx(9))));
        assert_eq!(parse_message_id("nope"), None);
    }

    #[test]
    fn chatd_frames_decode_to_what_loadgen_needs() {
        let send = chatd_send("c1", "r.1.2", "lg 1 2 3 xx");
        assert!(serde_json::from_str::<serde_json::Value>(&send).is_ok());
        let echoed = chatd_decode(&send, true);
        assert_eq!(
            echoed,
            Inbound::Message {
                conv: Some("c1".into()),
                seq: None,
                body: "lg 1 2 3 xx".into()
            }
        );
        let new = r#"{"type":"message.new","conversation_id":"c1","seq":4,"sender":"u1","body":{"text":"lg 1 2 3 "}}"#;
        assert!(matches!(
            chatd_decode(new, false),
            Inbound::Message { seq: Some(4), .. }
        ));
        let sent = r#"{"type":"message.sent","conversation_id":"c1","client_msg_id":"r.1.2","seq":4,"ts":1}"#;
        assert_eq!(
            chatd_decode(sent, false),
            Inbound::Accepted {
                id: "r.1.2".into(),
                seq: Some(4)
            }
        );
        let err = r#"{"type":"error","ref":"r.1.3","code":"rate_limited","retry_after_ms":5}"#;
        assert_eq!(
            chatd_decode(err, false),
            Inbound::Refused {
                id: Some("r.1.3".into()),
                code: "rate_limited".into()
            }
        );
        assert_eq!(
            chatd_decode(r#"{"type":"sync.done"}"#, false),
            Inbound::SyncDone
        );
        assert_eq!(
            chatd_decode(r#"{"type":"pong"}"#, false),
            Inbound::Other("pong".into())
        );
        assert_eq!(chatd_decode("{", false), Inbound::Unparsable);
    }
}
