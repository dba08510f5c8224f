//! The JSON text of server events (PROTOCOL.md "WebSocket"), written by
//! hand so that `type` comes first as the contract says and each event is
//! encoded once: the conversation's home encodes a `message.new` once and
//! every recipient gets the same text.
//!
//! Lives on: every core (pure functions). Used by the shell (fan-out,
//! receipts, presence) and by the front end (replies); it knows nothing of
//! either.

use chat_net::protocol::push_json_str;

use crate::machine::ids::{message_id, ConvId, DeviceId, Millis, Seq, UserId};
use crate::machine::records::{BodyKind, Mark, MessageRec};
use crate::machine::state::{hex, MediaRef, Version};

/// `{"type":"TY"` and the `ref`, if any: the opening of every event.
fn open(ty: &str, reference: Option<&str>, capacity: usize) -> String {
    let mut out = String::with_capacity(capacity);
    out.push_str("{\"type\":\"");
    out.push_str(ty);
    out.push('"');
    if let Some(r) = reference {
        out.push_str(",\"ref\":");
        out.push_str(r);
    }
    out
}

fn field_str(out: &mut String, name: &str, value: &str) {
    out.push_str(",\"");
    out.push_str(name);
    out.push_str("\":");
    push_json_str(out, value);
}

fn field_num(out: &mut String, name: &str, value: u64) {
    out.push_str(",\"");
    out.push_str(name);
    out.push_str("\":");
    out.push_str(&value.to_string());
}

/// `"media":{"media_id","size","sha256","mime"}`. (A `media` string of
/// a log from before uploads existed names nothing and is not shown.)
fn push_media(out: &mut String, m: &MediaRef) {
    out.push_str(",\"media\":{\"media_id\":\"");
    out.push_str(&m.id.to_string());
    out.push('"');
    field_num(out, "size", m.size);
    field_str(out, "sha256", &hex(&m.sha256));
    field_str(out, "mime", &m.mime);
    out.push('}');
}

fn push_body(out: &mut String, kind: BodyKind, body: &str) {
    out.push_str(match kind {
        BodyKind::Text => ",\"body\":{\"text\":",
        BodyKind::Ciphertext => ",\"body\":{\"ciphertext\":",
    });
    push_json_str(out, body);
    out.push('}');
}

/// The message object of PROTOCOL.md, as JSON text: `m` holds the current
/// body (the latest edit's), `version` says whether it was edited or is
/// deleted (then it shows no body and no media).
pub fn message_object(m: &MessageRec, version: Version) -> String {
    let mut out = String::with_capacity(160 + m.body.len());
    out.push_str("{\"conversation_id\":\"");
    out.push_str(&m.conv.to_string());
    out.push('"');
    field_num(&mut out, "seq", m.seq.0);
    field_str(&mut out, "message_id", &message_id(m.conv, m.seq));
    field_str(&mut out, "sender_id", &m.sender.to_string());
    field_str(&mut out, "sender_device", &m.device.to_string());
    field_num(&mut out, "ts", m.ts.0);
    if version != Version::Deleted {
        push_body(&mut out, m.body_kind, &m.body);
        if let Some(media) = m.media.as_deref().and_then(MediaRef::decode) {
            push_media(&mut out, &media);
        }
    }
    if let Some(reply_to) = m.reply_to {
        field_num(&mut out, "reply_to", reply_to);
    }
    match version {
        Version::Original => {}
        Version::Edited(ts) => field_num(&mut out, "edited", ts.0),
        Version::Deleted => out.push_str(",\"deleted\":true"),
    }
    out.push('}');
    out
}

/// `message.edited`: to every member's devices, and as the answer to the
/// device that edited (with its `ref`).
pub fn message_edited(
    reference: Option<&str>,
    conv: ConvId,
    seq: Seq,
    (body_kind, body): (BodyKind, &str),
    edited_ts: Millis,
) -> String {
    let mut out = open("message.edited", reference, 120 + body.len());
    field_str(&mut out, "conversation_id", &conv.to_string());
    field_num(&mut out, "seq", seq.0);
    push_body(&mut out, body_kind, body);
    field_num(&mut out, "edited_ts", edited_ts.0);
    out.push('}');
    out
}

/// `message.deleted`, likewise.
pub fn message_deleted(reference: Option<&str>, conv: ConvId, seq: Seq) -> String {
    let mut out = open("message.deleted", reference, 100);
    field_str(&mut out, "conversation_id", &conv.to_string());
    field_num(&mut out, "seq", seq.0);
    out.push('}');
    out
}

/// `message.new`: the message object's fields flat beside `type`.
pub fn message_new(object: &str) -> String {
    debug_assert!(object.starts_with('{'));
    let mut out = String::with_capacity(object.len() + 24);
    out.push_str("{\"type\":\"message.new\",");
    out.push_str(&object[1..]);
    out
}

pub fn message_sent(
    reference: Option<&str>,
    conv: ConvId,
    client_msg_id: &str,
    seq: Seq,
    ts: Millis,
) -> String {
    let mut out = open("message.sent", reference, 160);
    field_str(&mut out, "conversation_id", &conv.to_string());
    field_str(&mut out, "client_msg_id", client_msg_id);
    field_str(&mut out, "message_id", &message_id(conv, seq));
    field_num(&mut out, "seq", seq.0);
    field_num(&mut out, "ts", ts.0);
    out.push('}');
    out
}

/// `message.delivered` / `message.read` (direct chats, read receipts).
pub fn receipt_event(mark: Mark, conv: ConvId, seq: Seq, user: UserId) -> String {
    let ty = match mark {
        Mark::Delivered => "message.delivered",
        Mark::Read => "message.read",
    };
    let mut out = open(ty, None, 120);
    field_str(&mut out, "conversation_id", &conv.to_string());
    field_num(&mut out, "seq", seq.0);
    field_str(&mut out, "user_id", &user.to_string());
    out.push('}');
    out
}

/// `message.status` for groups: how many members have it delivered / read.
pub fn status_event(conv: ConvId, seq: Seq, delivered: usize, read: usize) -> String {
    let mut out = open("message.status", None, 120);
    field_str(&mut out, "conversation_id", &conv.to_string());
    field_num(&mut out, "seq", seq.0);
    field_num(&mut out, "delivered", delivered as u64);
    field_num(&mut out, "read", read as u64);
    out.push('}');
    out
}

pub fn typing_event(conv: ConvId, user: UserId, state: &str) -> String {
    let mut out = open("typing", None, 120);
    field_str(&mut out, "conversation_id", &conv.to_string());
    field_str(&mut out, "user_id", &user.to_string());
    field_str(&mut out, "state", state);
    out.push('}');
    out
}

pub fn presence_event(user: UserId, online: bool, last_seen: Option<Millis>) -> String {
    let mut out = open("presence", None, 100);
    field_str(&mut out, "user_id", &user.to_string());
    field_str(
        &mut out,
        "status",
        if online { "online" } else { "offline" },
    );
    match last_seen {
        Some(t) => field_num(&mut out, "last_seen", t.0),
        None => out.push_str(",\"last_seen\":null"),
    }
    out.push('}');
    out
}

pub fn auth_ok(reference: Option<&str>, user: UserId, device: DeviceId) -> String {
    let mut out = open("auth.ok", reference, 80);
    field_str(&mut out, "user_id", &user.to_string());
    field_str(&mut out, "device_id", &device.to_string());
    out.push('}');
    out
}

pub fn pong(reference: Option<&str>) -> String {
    let mut out = open("pong", reference, 40);
    out.push('}');
    out
}

/// `conversation.updated`: a conversation's disappearing setting changed.
pub fn conversation_updated(conv: ConvId, disappearing_seconds: u64) -> String {
    let mut out = open("conversation.updated", None, 100);
    field_str(&mut out, "conversation_id", &conv.to_string());
    field_num(&mut out, "disappearing_seconds", disappearing_seconds);
    out.push('}');
    out
}

pub const SYNC_DONE: &str = "{\"type\":\"sync.done\"}";

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn parsed(text: &str) -> Value {
        assert!(text.starts_with("{\"type\":"), "type first: {text}");
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn events_are_valid_json_with_type_first() {
        let m = MessageRec {
            conv: ConvId(5),
            seq: Seq(2),
            sender: UserId(1),
            device: DeviceId(1),
            client_msg_id: "x".into(),
            ts: Millis(10),
            body_kind: BodyKind::Text,
            body: "a \"quoted\"\nline".into(),
            media: None,
            reply_to: Some(1),
        };
        let v = parsed(&message_new(&message_object(&m, Version::Original)));
        assert_eq!(v["body"]["text"], "a \"quoted\"\nline");
        assert_eq!(
            (v["seq"].clone(), v["conversation_id"].clone()),
            (2.into(), "c5".into())
        );
        assert_eq!(v["reply_to"], 1);
        let sent = parsed(&message_sent(
            Some("\"r\""),
            ConvId(5),
            "x",
            Seq(2),
            Millis(10),
        ));
        assert_eq!(
            (sent["ref"].clone(), sent["message_id"].clone()),
            ("r".into(), "m5.2".into())
        );
        let p = parsed(&presence_event(UserId(3), false, None));
        assert!(p["last_seen"].is_null());
        assert_eq!(parsed(&pong(Some("{\"a\":1}")))["ref"]["a"], 1);
        assert_eq!(
            parsed(&auth_ok(None, UserId(1), DeviceId(2)))["device_id"],
            "d2"
        );
        assert_eq!(
            parsed(&receipt_event(Mark::Read, ConvId(1), Seq(3), UserId(2)))["type"],
            "message.read"
        );
        assert_eq!(parsed(&status_event(ConvId(1), Seq(3), 2, 1))["read"], 1);
        assert_eq!(
            parsed(&typing_event(ConvId(1), UserId(2), "start"))["state"],
            "start"
        );
        parsed(SYNC_DONE);
        let edited = parsed(&message_new(&message_object(
            &m,
            Version::Edited(Millis(12)),
        )));
        assert_eq!(
            (edited["edited"].clone(), edited["body"]["text"].is_string()),
            (12.into(), true)
        );
        let deleted = parsed(&message_new(&message_object(&m, Version::Deleted)));
        assert_eq!(deleted["deleted"], true);
        assert!(deleted.get("body").is_none() && deleted.get("media").is_none());
        let e = parsed(&message_edited(
            Some("1"),
            ConvId(1),
            Seq(2),
            (BodyKind::Ciphertext, "x"),
            Millis(3),
        ));
        assert_eq!(
            (
                e["ref"].clone(),
                e["body"]["ciphertext"].clone(),
                e["edited_ts"].clone()
            ),
            (1.into(), "x".into(), 3.into())
        );
        assert_eq!(
            parsed(&message_deleted(None, ConvId(1), Seq(2)))["type"],
            "message.deleted"
        );
    }
}
