//! Protocol v1 encode/decode: the client events a WebSocket carries, the
//! error codes of REST and WebSocket, and the JSON shapes of errors.
//!
//! Lives on: every core (pure functions and plain values).
//!
//! Decoding is one pass of serde into a flat frame, then a check per event
//! type: an unknown type, a missing field or a wrong type is a
//! `bad_request` with a message that names the field.

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

/// Every error code of PROTOCOL.md, with its HTTP status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    Conflict,
    TooLarge,
    RateLimited,
    Unavailable,
    /// WebSocket only: an event names a conversation one is not in.
    NotMember,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Conflict => "conflict",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::NotMember => "not_member",
        }
    }

    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::BadRequest => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::Forbidden | ErrorCode::NotMember => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::Conflict => 409,
            ErrorCode::TooLarge => 413,
            ErrorCode::RateLimited => 429,
            ErrorCode::Unavailable => 503,
        }
    }
}

/// An error as both REST and WebSocket report it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// Only for `rate_limited`.
    pub retry_after_ms: Option<u64>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
            retry_after_ms: None,
        }
    }

    pub fn rate_limited(retry_after_ms: u64) -> ApiError {
        ApiError {
            code: ErrorCode::RateLimited,
            message: "too many requests".into(),
            retry_after_ms: Some(retry_after_ms),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::BadRequest, message)
    }

    /// The REST body: `{"error":{"code","message"}}` (+ `retry_after_ms`).
    pub fn rest_body(&self) -> String {
        let mut error = serde_json::json!({"code": self.code.as_str(), "message": self.message});
        if let Some(ms) = self.retry_after_ms {
            error["retry_after_ms"] = ms.into();
        }
        serde_json::json!({ "error": error }).to_string()
    }

    /// The WebSocket event: `{"type":"error","ref","code","message"}`.
    pub fn ws_event(&self, reference: Option<&RawValue>) -> String {
        let mut out = String::with_capacity(96 + self.message.len());
        out.push_str("{\"type\":\"error\"");
        if let Some(reference) = reference {
            out.push_str(",\"ref\":");
            out.push_str(reference.get());
        }
        out.push_str(",\"code\":\"");
        out.push_str(self.code.as_str());
        out.push_str("\",\"message\":");
        out.push_str(&Value::from(self.message.as_str()).to_string());
        if let Some(ms) = self.retry_after_ms {
            out.push_str(",\"retry_after_ms\":");
            out.push_str(&ms.to_string());
        }
        out.push('}');
        out
    }
}

/// A message body: plaintext or an opaque ciphertext (end-to-end encrypted
/// by the clients; the server never looks inside).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    Text(String),
    Ciphertext(String),
}

impl Body {
    pub fn to_json(&self) -> Value {
        match self {
            Body::Text(text) => serde_json::json!({ "text": text }),
            Body::Ciphertext(c) => serde_json::json!({ "ciphertext": c }),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TypingState {
    Start,
    Stop,
}

impl TypingState {
    pub fn as_str(self) -> &'static str {
        match self {
            TypingState::Start => "start",
            TypingState::Stop => "stop",
        }
    }
}

/// A decoded client event. Ids stay as the client sent them; the engine
/// parses them (an id that does not parse names nothing: `not_found` or
/// `not_member`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientEvent {
    Auth {
        token: String,
    },
    MessageSend {
        conversation_id: String,
        client_msg_id: String,
        body: Body,
        /// The `media_id` of `"media":{"media_id"}`.
        media: Option<String>,
        reply_to: Option<u64>,
    },
    MessageAck {
        conversation_id: String,
        seq: u64,
    },
    MessageEdit {
        conversation_id: String,
        seq: u64,
        body: Body,
    },
    MessageDelete {
        conversation_id: String,
        seq: u64,
    },
    MessageRead {
        conversation_id: String,
        seq: u64,
    },
    Typing {
        conversation_id: String,
        state: TypingState,
    },
    PresenceSubscribe {
        user_ids: Vec<String>,
    },
    Ping,
}

/// A decoded frame: the event and its `ref`, kept as raw JSON to echo.
#[derive(Debug)]
pub struct Frame {
    pub event: ClientEvent,
    pub reference: Option<Box<RawValue>>,
}

/// Why a frame did not decode; carries the `ref` if it could be read.
#[derive(Debug)]
pub struct DecodeError {
    pub error: ApiError,
    pub reference: Option<Box<RawValue>>,
}

/// Longest `client_msg_id` accepted.
pub const CLIENT_MSG_ID_BYTES_MAX: usize = 128;
/// Most users one `presence.subscribe` may name.
pub const PRESENCE_SUBSCRIBE_USERS_MAX: usize = 1024;

#[derive(Deserialize)]
struct RawFrame {
    #[serde(rename = "type")]
    ty: Option<String>,
    #[serde(rename = "ref")]
    reference: Option<Box<RawValue>>,
    token: Option<String>,
    conversation_id: Option<String>,
    client_msg_id: Option<String>,
    body: Option<RawBody>,
    media: Option<serde_json::Value>,
    reply_to: Option<u64>,
    seq: Option<u64>,
    state: Option<String>,
    user_ids: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct RawBody {
    text: Option<String>,
    ciphertext: Option<String>,
}

/// Decodes one text frame.
pub fn decode(text: &str) -> Result<Frame, DecodeError> {
    let raw: RawFrame = serde_json::from_str(text).map_err(|e| DecodeError {
        error: ApiError::bad_request(format!("malformed JSON: {e}")),
        reference: None,
    })?;
    let reference = raw.reference.clone();
    match to_event(raw) {
        Ok(event) => Ok(Frame { event, reference }),
        Err(error) => Err(DecodeError { error, reference }),
    }
}

/// `{"media_id":"..."}`, the only shape a message names media by.
fn media_id(media: serde_json::Value) -> Result<String, ApiError> {
    match media.get("media_id").and_then(serde_json::Value::as_str) {
        Some(id) if !id.is_empty() => Ok(id.to_string()),
        _ => Err(ApiError::bad_request(
            "media must be {\"media_id\": ID} with the id POST /v1/media answered",
        )),
    }
}

fn need<T>(field: Option<T>, name: &str) -> Result<T, ApiError> {
    field.ok_or_else(|| ApiError::bad_request(format!("missing field `{name}`")))
}

fn to_event(raw: RawFrame) -> Result<ClientEvent, ApiError> {
    let ty = need(raw.ty, "type")?;
    let event = match ty.as_str() {
        "auth" => ClientEvent::Auth {
            token: need(raw.token, "token")?,
        },
        "message.send" => {
            let client_msg_id = need(raw.client_msg_id, "client_msg_id")?;
            if client_msg_id.is_empty() || client_msg_id.len() > CLIENT_MSG_ID_BYTES_MAX {
                return Err(ApiError::bad_request(format!(
                    "client_msg_id must be 1 to {CLIENT_MSG_ID_BYTES_MAX} bytes"
                )));
            }
            ClientEvent::MessageSend {
                conversation_id: need(raw.conversation_id, "conversation_id")?,
                client_msg_id,
                body: body(need(raw.body, "body")?)?,
                media: raw.media.map(media_id).transpose()?,
                reply_to: raw.reply_to,
            }
        }
        "message.ack" => ClientEvent::MessageAck {
            conversation_id: need(raw.conversation_id, "conversation_id")?,
            seq: need(raw.seq, "seq")?,
        },
        "message.read" => ClientEvent::MessageRead {
            conversation_id: need(raw.conversation_id, "conversation_id")?,
            seq: need(raw.seq, "seq")?,
        },
        "typing" => ClientEvent::Typing {
            conversation_id: need(raw.conversation_id, "conversation_id")?,
            state: match need(raw.state, "state")?.as_str() {
                "start" => TypingState::Start,
                "stop" => TypingState::Stop,
                other => {
                    return Err(ApiError::bad_request(format!(
                        "state must be \"start\" or \"stop\", not {other:?}"
                    )))
                }
            },
        },
        "presence.subscribe" => {
            let user_ids = need(raw.user_ids, "user_ids")?;
            if user_ids.len() > PRESENCE_SUBSCRIBE_USERS_MAX {
                return Err(ApiError::bad_request(format!(
                    "at most {PRESENCE_SUBSCRIBE_USERS_MAX} user_ids"
                )));
            }
            ClientEvent::PresenceSubscribe { user_ids }
        }
        "ping" => ClientEvent::Ping,
        "message.edit" => ClientEvent::MessageEdit {
            conversation_id: need(raw.conversation_id, "conversation_id")?,
            seq: need(raw.seq, "seq")?,
            body: body(need(raw.body, "body")?)?,
        },
        "message.delete" => ClientEvent::MessageDelete {
            conversation_id: need(raw.conversation_id, "conversation_id")?,
            seq: need(raw.seq, "seq")?,
        },
        other => return Err(ApiError::bad_request(format!("unknown type {other:?}"))),
    };
    Ok(event)
}

fn body(raw: RawBody) -> Result<Body, ApiError> {
    match (raw.text, raw.ciphertext) {
        (Some(text), None) => Ok(Body::Text(text)),
        (None, Some(c)) => Ok(Body::Ciphertext(c)),
        _ => Err(ApiError::bad_request(
            "body must have exactly one of `text` or `ciphertext`",
        )),
    }
}

/// Appends `value` to `out` as a JSON string literal.
pub fn push_json_str(out: &mut String, value: &str) {
    // serde_json escapes exactly as JSON requires; writing into a String
    // cannot fail.
    let quoted = serde_json::to_string(value).expect("a str always serializes");
    out.push_str(&quoted);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_send_with_ref() {
        let frame = decode(
            r#"{"type":"message.send","ref":7,"conversation_id":"c1","client_msg_id":"a","body":{"text":"hi"}}"#,
        )
        .unwrap();
        assert_eq!(frame.reference.unwrap().get(), "7");
        assert_eq!(
            frame.event,
            ClientEvent::MessageSend {
                conversation_id: "c1".into(),
                client_msg_id: "a".into(),
                body: Body::Text("hi".into()),
                media: None,
                reply_to: None,
            }
        );
    }

    #[test]
    fn malformed_and_unknown_are_bad_requests_keeping_ref() {
        let e = decode("{not json").unwrap_err();
        assert_eq!(e.error.code, ErrorCode::BadRequest);
        let e = decode(r#"{"type":"nope","ref":"x"}"#).unwrap_err();
        assert_eq!(e.error.code, ErrorCode::BadRequest);
        assert_eq!(e.reference.unwrap().get(), "\"x\"");
        let e = decode(r#"{"type":"message.ack","conversation_id":"c1"}"#).unwrap_err();
        assert!(e.error.message.contains("seq"), "{}", e.error.message);
        let e = decode(r#"{"type":"message.send","conversation_id":"c","client_msg_id":"a","body":{"text":"a","ciphertext":"b"}}"#).unwrap_err();
        assert_eq!(e.error.code, ErrorCode::BadRequest);
    }

    #[test]
    fn error_event_shapes() {
        let e = ApiError::rate_limited(250);
        let v: Value = serde_json::from_str(&e.ws_event(None)).unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["code"], "rate_limited");
        assert_eq!(v["retry_after_ms"], 250);
        let v: Value = serde_json::from_str(&e.rest_body()).unwrap();
        assert_eq!(v["error"]["code"], "rate_limited");
        assert_eq!(ErrorCode::NotFound.http_status(), 404);
    }
}
