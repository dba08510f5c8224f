//! `PUT /v1/devices/{id}/push {"push_token"}`: a device of the caller's
//! own account gets (or, with `null`, loses) the token its push
//! notifications go to (`push/`).

use std::rc::Rc;

use chat_net::http::Request;
use chat_net::protocol::ApiError;
use serde_json::Value;

use super::body::{body_json, no_content, not_found};
use super::Handled;
use crate::constants::PUSH_TOKEN_BYTES_MAX;
use crate::front::caller::Caller;
use crate::machine::cmd::push::SetPushToken;
use crate::machine::ids::DeviceId;
use crate::node::core::Core;
use crate::shard::mesh::call;
use crate::shard::ops::account::SetPush;

pub async fn put(core: &Rc<Core>, caller: Caller, device: &str, req: &Request) -> Handled {
    let device = DeviceId::parse(device).ok_or_else(|| not_found("such device"))?;
    let token = token(&body_json(req)?)?;
    let cmd = SetPushToken {
        user: caller.user,
        device,
        token,
    };
    call(&core.mesh(), core.shard_of(caller.user.0), SetPush(cmd)).await?;
    Ok(no_content())
}

/// `push_token`: a string of 1 to `PUSH_TOKEN_BYTES_MAX` bytes without
/// control characters, or `null`.
fn token(body: &Value) -> Result<Option<String>, ApiError> {
    match body.get("push_token") {
        Some(Value::Null) => Ok(None),
        Some(Value::String(t)) if t.is_empty() || t.len() > PUSH_TOKEN_BYTES_MAX => {
            Err(ApiError::bad_request(format!(
                "push_token must be 1 to {PUSH_TOKEN_BYTES_MAX} bytes"
            )))
        }
        Some(Value::String(t)) if t.chars().any(char::is_control) => Err(ApiError::bad_request(
            "push_token must not hold control characters",
        )),
        Some(Value::String(t)) => Ok(Some(t.clone())),
        _ => Err(ApiError::bad_request(
            "push_token (a string, or null to remove it) is required",
        )),
    }
}
