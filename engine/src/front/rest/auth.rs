//! `POST /v1/auth/otp` and `POST /v1/auth/verify`.

use std::rc::Rc;

use chat_net::http::{Request, Response};
use serde_json::{json, Value};

use super::body::{body_json, check_name, check_phone, json_response, str_field};
use super::Handled;
use crate::machine::ids::phone_shard;
use crate::node::core::Core;
use crate::shard::mesh::call;
use crate::shard::ops::otp::{RequestCode, Verify};

pub async fn request_code(core: &Rc<Core>, req: &Request) -> Handled {
    let phone = check_phone(&str_field(&body_json(req)?, "phone")?)?;
    let home = phone_shard(&phone, core.shards);
    let expires_in = call(&core.mesh(), home, RequestCode { phone }).await?;
    Ok(json_response(202, &json!({ "expires_in": expires_in })))
}

pub async fn verify(core: &Rc<Core>, req: &Request) -> Handled {
    let body = body_json(req)?;
    let phone = check_phone(&str_field(&body, "phone")?)?;
    let code = str_field(&body, "code")?;
    let device_name = body
        .get("device_name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    check_name(&device_name, "device_name")?;
    let home = phone_shard(&phone, core.shards);
    let op = Verify {
        phone,
        code,
        device_name,
    };
    let linked = call(&core.mesh(), home, op).await?;
    let answer = json!({
        "user_id": linked.user.to_string(),
        "device_id": linked.device.to_string(),
        "token": linked.token,
    });
    Ok(json_response(200, &answer) as Response)
}
