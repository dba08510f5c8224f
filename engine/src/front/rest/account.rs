//! `/v1/me` (its deletion too), `/v1/devices/{id}`, `/v1/users?phone=`.

use std::rc::Rc;

use chat_net::http::Request;
use chat_net::protocol::ApiError;
use serde_json::{json, Value};

use super::body::{
    body_json, check_name, check_phone, json_response, no_content, not_found, query_param,
};
use super::Handled;
use crate::front::caller::Caller;
use crate::machine::cmd::delete_account::{DeleteAccount, EraseSender};
use crate::machine::cmd::patch_me::PatchMe;
use crate::machine::cmd::revoke_device::RevokeDevice;
use crate::machine::ids::{phone_shard, DeviceId};
use crate::machine::query::me::Me;
use crate::machine::records::Privacy;
use crate::node::core::Core;
use crate::shard::mesh::call;
use crate::shard::ops::account::{ByPhone, GetMe, Revoke, SetProfile};
use crate::shard::ops::conversations::ListConvs;
use crate::shard::ops::erase::{DeleteUser, EraseOn};

fn me_json(me: &Me) -> Value {
    let devices: Vec<Value> = me
        .devices
        .iter()
        .map(|d| json!({"device_id": d.device.to_string(), "name": d.name, "created": d.created.0}))
        .collect();
    json!({
        "user_id": me.user.to_string(),
        "phone": me.phone,
        "name": me.name,
        "last_seen_privacy": me.privacy.as_str(),
        "read_receipts": me.read_receipts,
        "devices": devices,
    })
}

pub async fn get_me(core: &Rc<Core>, caller: Caller) -> Handled {
    let home = core.shard_of(caller.user.0);
    let me = call(&core.mesh(), home, GetMe { user: caller.user }).await?;
    Ok(json_response(200, &me_json(&me)))
}

/// A profile patch: name, last-seen privacy, read receipts (each optional).
type ProfileFields = (Option<String>, Option<Privacy>, Option<bool>);

/// The optional fields of a profile patch, each checked.
fn profile_fields(body: &Value) -> Result<ProfileFields, ApiError> {
    let name = match body.get("name") {
        None => None,
        Some(v) => Some(
            v.as_str()
                .ok_or_else(|| ApiError::bad_request("name must be a string"))?
                .to_string(),
        ),
    };
    if let Some(n) = &name {
        check_name(n, "name")?;
    }
    let privacy = match body.get("last_seen_privacy") {
        None => None,
        Some(v) => Some(v.as_str().and_then(Privacy::parse).ok_or_else(|| {
            ApiError::bad_request("last_seen_privacy must be everyone, contacts or nobody")
        })?),
    };
    let read_receipts = match body.get("read_receipts") {
        None => None,
        Some(v) => Some(
            v.as_bool()
                .ok_or_else(|| ApiError::bad_request("read_receipts must be true or false"))?,
        ),
    };
    Ok((name, privacy, read_receipts))
}

pub async fn patch_me(core: &Rc<Core>, caller: Caller, req: &Request) -> Handled {
    let (name, privacy, read_receipts) = profile_fields(&body_json(req)?)?;
    let cmd = PatchMe {
        user: caller.user,
        name,
        privacy,
        read_receipts,
    };
    let me = call(&core.mesh(), core.shard_of(caller.user.0), SetProfile(cmd)).await?;
    Ok(json_response(200, &me_json(&me)))
}

pub async fn revoke(core: &Rc<Core>, caller: Caller, device: &str) -> Handled {
    let device = DeviceId::parse(device).ok_or_else(|| not_found("such device"))?;
    let cmd = RevokeDevice {
        user: caller.user,
        device,
    };
    call(&core.mesh(), core.shard_of(caller.user.0), Revoke(cmd)).await?;
    Ok(no_content())
}

pub async fn lookup(core: &Rc<Core>, req: &Request) -> Handled {
    let phone =
        query_param(req, "phone").ok_or_else(|| ApiError::bad_request("missing ?phone="))?;
    let phone = check_phone(&phone)?;
    let home = phone_shard(&phone, core.shards);
    let (user, name) = call(&core.mesh(), home, ByPhone { phone }).await?;
    Ok(json_response(
        200,
        &json!({"user_id": user.to_string(), "name": name}),
    ))
}

/// `DELETE /v1/me`: first every conversation of the caller forgets it
/// (it leaves its groups; its messages show deleted), then the account
/// goes (every token 401, sockets closed with 4401, the phone free for a
/// new account). Each step is idempotent and the account goes last, so
/// after a failure the caller asks again.
pub async fn delete_me(core: &Rc<Core>, caller: Caller) -> Handled {
    let mesh = core.mesh();
    let home = core.shard_of(caller.user.0);
    let pointers = call(&mesh, home, ListConvs { user: caller.user }).await?;
    for (p, _) in pointers {
        let erase = EraseOn(EraseSender {
            conv: p.conv,
            user: caller.user,
        });
        call(&mesh, core.shard_of(p.conv.0), erase).await?;
    }
    let delete = DeleteUser(DeleteAccount { user: caller.user });
    call(&mesh, home, delete).await?;
    // 202 as the contract says, though all of it is done (and durable) by
    // now.
    Ok(json_response(202, &json!({})))
}
