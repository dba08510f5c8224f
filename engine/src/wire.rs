//! The JSON the server writes: message objects and server events.
//!
//! Lives on: every core (pure functions). A message is encoded once on its
//! conversation's home shard and the same text goes to every recipient.

use chat_net::protocol::push_json_str;
use serde_json::{json, Value};

use crate::ids::{message_id, ConvId, Millis, Seq, UserId};
use crate::records::{BodyKind, MessageRec};

/// The message object of PROTOCOL.md, as JSON text.
pub fn message_object(m: &MessageRec) -> String {
    let mut out = String::with_capacity(160 + m.body.len());
    out.push_str("{\"conversation_id\":\"");
    out.push_str(&m.conv.to_string());
    out.push_str("\",\"seq\":");
    out.push_str(&m.seq.0.to_string());
    out.push_str(",\"message_id\":\"");
    out.push_str(&message_id(m.conv, m.seq));
    out.push_str("\",\"sender_id\":\"");
    out.push_str(&m.sender.to_string());
    out.push_str("\",\"sender_device\":\"");
    out.push_str(&m.device.to_string());
    out.push_str("\",\"ts\":");
    out.push_str(&m.ts.0.to_string());
    out.push_str(",\"body\":{");
    out.push_str(match m.body_kind {
        BodyKind::Text => "\"text\":",
        BodyKind::Ciphertext => "\"ciphertext\":",
    });
    push_json_str(&mut out, &m.body);
    out.push('}');
    if let Some(media) = &m.media {
        out.push_str(",\"media\":");
        push_json_str(&mut out, media);
    }
    if let Some(reply_to) = m.reply_to {
        out.push_str(",\"reply_to\":");
        out.push_str(&reply_to.to_string());
    }
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
    let mut out = String::with_capacity(160);
    out.push_str("{\"type\":\"message.sent\"");
    if let Some(r) = reference {
        out.push_str(",\"ref\":");
        out.push_str(r);
    }
    out.push_str(",\"conversation_id\":\"");
    out.push_str(&conv.to_string());
    out.push_str("\",\"client_msg_id\":");
    push_json_str(&mut out, client_msg_id);
    out.push_str(",\"message_id\":\"");
    out.push_str(&message_id(conv, seq));
    out.push_str("\",\"seq\":");
    out.push_str(&seq.0.to_string());
    out.push_str(",\"ts\":");
    out.push_str(&ts.0.to_string());
    out.push('}');
    out
}

/// `message.delivered` / `message.read` (direct chats and read receipts).
pub fn receipt_event(ty: &str, conv: ConvId, seq: Seq, user: UserId) -> String {
    json!({"type": ty, "conversation_id": conv.to_string(), "seq": seq.0, "user_id": user.to_string()}).to_string()
}

/// `message.status` for groups: how many members have it delivered / read.
pub fn status_event(conv: ConvId, seq: Seq, delivered: usize, read: usize) -> String {
    json!({"type": "message.status", "conversation_id": conv.to_string(), "seq": seq.0, "delivered": delivered, "read": read}).to_string()
}

pub fn typing_event(conv: ConvId, user: UserId, state: &str) -> String {
    json!({"type": "typing", "conversation_id": conv.to_string(), "user_id": user.to_string(), "state": state}).to_string()
}

pub fn presence_event(user: UserId, online: bool, last_seen: Option<Millis>) -> String {
    let status = if online { "online" } else { "offline" };
    json!({"type": "presence", "user_id": user.to_string(), "status": status, "last_seen": last_seen.map(|t| t.0)}).to_string()
}

/// An event with a `ref` echoed, built from a JSON value.
pub fn with_ref(mut event: Value, reference: Option<&str>) -> String {
    if let Some(r) = reference {
        if let Ok(v) = serde_json::from_str::<Value>(r) {
            event["ref"] = v;
        }
    }
    event.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::DeviceId;

    #[test]
    fn message_new_is_valid_json_with_type_first() {
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
        let text = message_new(&message_object(&m));
        assert!(text.starts_with("{\"type\":\"message.new\""));
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["body"]["text"], "a \"quoted\"\nline");
        assert_eq!(v["seq"], 2);
        assert_eq!(v["conversation_id"], "c5");
        assert_eq!(v["reply_to"], 1);
        let sent: Value = serde_json::from_str(&message_sent(
            Some("\"r\""),
            ConvId(5),
            "x",
            Seq(2),
            Millis(10),
        ))
        .unwrap();
        assert_eq!(sent["ref"], "r");
        assert_eq!(sent["message_id"], "m5.2");
    }
}
