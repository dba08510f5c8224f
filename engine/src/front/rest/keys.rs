//! The key directory: `PUT /v1/keys`, `GET /v1/keys`,
//! `GET /v1/keys/{user_id}` (PROTOCOL.md "Keys"). Key fields are checked
//! here (standard base64 of 1..=1024 bytes); the rules on what is stored
//! are the machine's.

use std::rc::Rc;

use base64::Engine as _;
use chat_net::http::Request;
use chat_net::protocol::ApiError;
use serde_json::{json, Value};

use super::body::{body_json, json_response, no_content, not_found};
use super::Handled;
use crate::constants::{KEY_BYTES_MAX, PREKEYS_PER_PUT_MAX};
use crate::front::caller::Caller;
use crate::machine::cmd::put_keys::PutKeys;
use crate::machine::cmd::take_prekeys::{Bundle, TakePrekeys};
use crate::machine::ids::UserId;
use crate::machine::records::SignedPrekey;
use crate::node::core::Core;
use crate::shard::mesh::call;
use crate::shard::ops::keys::{CountKeyFetch, FetchKeys, PrekeysLeft, UploadKeys};

/// A key field: standard base64 of 1..=`KEY_BYTES_MAX` bytes, kept as sent.
fn key_field(v: &Value, name: &str) -> Result<String, ApiError> {
    let text = v[name]
        .as_str()
        .ok_or_else(|| ApiError::bad_request(format!("`{name}` must be a base64 string")))?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| ApiError::bad_request(format!("`{name}` is not standard base64")))?;
    if bytes.is_empty() || bytes.len() > KEY_BYTES_MAX {
        let why = format!("`{name}` must hold 1 to {KEY_BYTES_MAX} bytes");
        return Err(ApiError::bad_request(why));
    }
    Ok(text.to_string())
}

fn key_id(v: &Value) -> Result<u64, ApiError> {
    v["key_id"]
        .as_u64()
        .ok_or_else(|| ApiError::bad_request("`key_id` must be a non-negative integer"))
}

fn signed_prekey(v: &Value) -> Result<Option<SignedPrekey>, ApiError> {
    let s = match v.get("signed_prekey") {
        None | Some(Value::Null) => return Ok(None),
        Some(s) if s.is_object() => s,
        Some(_) => return Err(ApiError::bad_request("`signed_prekey` must be an object")),
    };
    Ok(Some(SignedPrekey {
        key_id: key_id(s)?,
        public_key: key_field(s, "public_key")?,
        signature: key_field(s, "signature")?,
    }))
}

fn one_time_prekeys(v: &Value) -> Result<Vec<(u64, String)>, ApiError> {
    let list = match v.get("one_time_prekeys") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(list)) => list,
        Some(_) => return Err(ApiError::bad_request("`one_time_prekeys` must be a list")),
    };
    if list.len() > PREKEYS_PER_PUT_MAX {
        let why = format!("at most {PREKEYS_PER_PUT_MAX} one_time_prekeys per upload");
        return Err(ApiError::bad_request(why));
    }
    list.iter()
        .map(|k| Ok((key_id(k)?, key_field(k, "public_key")?)))
        .collect()
}

pub async fn put(core: &Rc<Core>, caller: Caller, req: &Request) -> Handled {
    let body = body_json(req)?;
    let cmd = PutKeys {
        user: caller.user,
        device: caller.device,
        identity_key: key_field(&body, "identity_key")?,
        signed_prekey: signed_prekey(&body)?,
        one_time: one_time_prekeys(&body)?,
    };
    call(&core.mesh(), core.shard_of(caller.user.0), UploadKeys(cmd)).await?;
    Ok(no_content())
}

pub async fn left(core: &Rc<Core>, caller: Caller) -> Handled {
    let op = PrekeysLeft {
        user: caller.user,
        device: caller.device,
    };
    let n = call(&core.mesh(), core.shard_of(caller.user.0), op).await?;
    Ok(json_response(200, &json!({ "one_time_prekeys_left": n })))
}

fn bundle_json(b: &Bundle) -> Value {
    let s = &b.signed_prekey;
    let one_time = b
        .one_time
        .as_ref()
        .map(|(id, key)| json!({"key_id": id, "public_key": key}));
    json!({
        "device_id": b.device.to_string(),
        "identity_key": b.identity_key,
        "signed_prekey": {"key_id": s.key_id, "public_key": s.public_key, "signature": s.signature},
        "one_time_prekey": one_time,
    })
}

pub async fn fetch(core: &Rc<Core>, caller: Caller, user: &str) -> Handled {
    let user = UserId::parse(user).ok_or_else(|| not_found("such user"))?;
    let mesh = core.mesh();
    call(
        &mesh,
        core.shard_of(caller.user.0),
        CountKeyFetch {
            caller: caller.user,
        },
    )
    .await?;
    let op = FetchKeys(TakePrekeys { user });
    let bundles = call(&mesh, core.shard_of(user.0), op).await?;
    let devices: Vec<Value> = bundles.iter().map(bundle_json).collect();
    Ok(json_response(200, &json!({ "devices": devices })))
}
