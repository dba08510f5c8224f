//! The gateway's contract (PROTOCOL.md "Push notifications"): the JSON a
//! notification carries (never a message's text or media) and the
//! `rejected` tokens of its answer.
//!
//! Lives on: the user home shard's core.

use serde_json::json;

use crate::constants::{PUSH_REJECTED_PER_ANSWER_MAX, PUSH_TOKEN_BYTES_MAX};
use crate::machine::ids::{ConvId, DeviceId, Seq, UserId};

/// What one POST says: a message of `conv` for some devices of one user.
pub struct Notification<'a> {
    pub conv: ConvId,
    pub seq: Seq,
    pub sender: UserId,
    pub unread: u64,
    pub user: UserId,
    pub devices: &'a [(DeviceId, String)],
}

impl Notification<'_> {
    pub fn encode(&self) -> String {
        let devices: Vec<_> = self
            .devices
            .iter()
            .map(|(d, token)| {
                json!({
                    "user_id": self.user.to_string(),
                    "device_id": d.to_string(),
                    "push_token": token,
                })
            })
            .collect();
        json!({"notification": {
            "conversation_id": self.conv.to_string(),
            "seq": self.seq.0,
            "sender_id": self.sender.to_string(),
            "unread": self.unread,
            "devices": devices,
        }})
        .to_string()
    }
}

/// The tokens a 2xx answer refused: `{"rejected":[TOKEN,...]}`. Anything
/// else (an empty body, other JSON) refuses none; at most
/// `PUSH_REJECTED_PER_ANSWER_MAX` are taken, each a string no longer than
/// a token may be.
pub fn rejected(body: &[u8]) -> Vec<String> {
    #[derive(serde::Deserialize)]
    struct Answer {
        #[serde(default)]
        rejected: Vec<serde_json::Value>,
    }
    let Ok(answer) = serde_json::from_slice::<Answer>(body) else {
        return Vec::new();
    };
    answer
        .rejected
        .into_iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .filter(|t| !t.is_empty() && t.len() <= PUSH_TOKEN_BYTES_MAX)
        .take(PUSH_REJECTED_PER_ANSWER_MAX)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_contract_s_shape_and_no_text() {
        let devices = [(DeviceId(2), "tok".to_string())];
        let n = Notification {
            conv: ConvId(9),
            seq: Seq(4),
            sender: UserId(3),
            unread: 2,
            user: UserId(1),
            devices: &devices,
        };
        let v: serde_json::Value = serde_json::from_str(&n.encode()).unwrap();
        let n = &v["notification"];
        assert_eq!(n["seq"], 4);
        assert_eq!(n["unread"], 2);
        assert_eq!(n["devices"][0]["push_token"], "tok");
        assert_eq!(n["devices"][0]["device_id"], DeviceId(2).to_string());
        let keys: Vec<_> = n.as_object().unwrap().keys().cloned().collect();
        let mut want = ["conversation_id", "devices", "sender_id", "seq", "unread"];
        want.sort();
        assert_eq!(keys, want);
    }

    #[test]
    fn answers() {
        assert_eq!(rejected(br#"{"rejected":["a","b"]}"#), ["a", "b"]);
        assert!(rejected(b"").is_empty());
        assert!(rejected(b"ok").is_empty());
        assert!(rejected(br#"{"other":1}"#).is_empty());
        assert_eq!(rejected(br#"{"rejected":["a",7,null,""]}"#), ["a"]);
        let many = format!(r#"{{"rejected":[{}]}}"#, vec!["\"t\""; 1000].join(","));
        assert_eq!(
            rejected(many.as_bytes()).len(),
            PUSH_REJECTED_PER_ANSWER_MAX
        );
    }
}
