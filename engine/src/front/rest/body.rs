//! The small pieces every REST handler uses: responses, JSON bodies and
//! fields, query parameters, ids and the checks on phones and names.
//!
//! Lives on: every core (pure functions).

use chat_net::http::{Request, Response};
use chat_net::protocol::{ApiError, ErrorCode};
use serde_json::Value;

use crate::constants::{NAME_BYTES_MAX, PHONE_DIGITS_MAX, PHONE_DIGITS_MIN};
use crate::machine::ids::{ConvId, UserId};

pub type Result<T> = std::result::Result<T, ApiError>;

pub fn json_response(status: u16, body: &Value) -> Response {
    raw_response(status, body.to_string())
}

pub fn raw_response(status: u16, body: String) -> Response {
    Response {
        status,
        content_type: "application/json",
        body: body.into_bytes(),
        headers: Vec::new(),
        stream: None,
    }
}

pub fn error_response(e: &ApiError) -> Response {
    raw_response(e.code.http_status(), e.rest_body())
}

pub fn no_content() -> Response {
    Response {
        status: 204,
        content_type: "application/json",
        body: Vec::new(),
        headers: Vec::new(),
        stream: None,
    }
}

pub fn not_found(what: &str) -> ApiError {
    ApiError::new(ErrorCode::NotFound, format!("no {what}"))
}

pub fn body_json(req: &Request) -> Result<Value> {
    let v: Value = serde_json::from_slice(&req.body)
        .map_err(|e| ApiError::bad_request(format!("malformed JSON body: {e}")))?;
    if !v.is_object() {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    }
    Ok(v)
}

pub fn str_field(body: &Value, name: &str) -> Result<String> {
    body.get(name)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| ApiError::bad_request(format!("missing string field `{name}`")))
}

pub fn check_phone(phone: &str) -> Result<String> {
    let digits = phone.strip_prefix('+').unwrap_or("");
    let ok = digits.bytes().all(|b| b.is_ascii_digit())
        && (PHONE_DIGITS_MIN..=PHONE_DIGITS_MAX).contains(&digits.len())
        && !digits.starts_with('0');
    if !ok {
        return Err(ApiError::bad_request(
            "phone must be E.164: + and 8 to 15 digits",
        ));
    }
    Ok(phone.to_string())
}

pub fn check_name(name: &str, what: &str) -> Result<()> {
    if name.len() > NAME_BYTES_MAX || name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(format!(
            "{what} must be at most {NAME_BYTES_MAX} bytes, without control characters"
        )));
    }
    Ok(())
}

pub fn parse_conv(text: &str) -> Result<ConvId> {
    ConvId::parse(text).ok_or_else(|| not_found("such conversation"))
}

pub fn parse_user(v: Option<&Value>) -> Result<UserId> {
    let text = v
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request("missing string field `user_id`"))?;
    UserId::parse(text).ok_or_else(|| not_found(&format!("user {text}")))
}

/// One query parameter, percent-decoded.
pub fn query_param(req: &Request, name: &str) -> Option<String> {
    let query = req.query.as_deref()?;
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| percent_decode(v))
    })
}

/// A numeric query parameter, if given.
pub fn query_number(req: &Request, name: &str) -> Result<Option<u64>> {
    match query_param(req, name) {
        None => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| ApiError::bad_request(format!("{name} must be a number"))),
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' && i + 2 < bytes.len() {
            if let Ok(v) = u8::from_str_radix(&text[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        // `+` stays `+` (not a space): phone numbers written by hand keep
        // their sign; no field of ours contains spaces.
        out.push(b);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("%2B15551234567"), "+15551234567");
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%zz"), "%zz");
    }

    #[test]
    fn phones_must_be_e164() {
        assert!(check_phone("+15551234567").is_ok());
        assert!(check_phone("15551234567").is_err());
        assert!(check_phone("+1555").is_err());
        assert!(check_phone("+0555123456").is_err());
    }
}
