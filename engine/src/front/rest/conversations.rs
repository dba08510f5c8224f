//! `/v1/conversations`: create, list, and the members of a group.

use std::collections::BTreeMap;
use std::rc::Rc;

use chat_net::http::Request;
use chat_net::protocol::{ApiError, ErrorCode};
use serde_json::{json, Value};

use super::body::{
    body_json, check_name, json_response, no_content, not_found, parse_conv, parse_user, str_field,
};
use super::Handled;
use crate::constants::DISAPPEARING_SECONDS_MAX;
use crate::front::caller::Caller;
use crate::front::errors::FrontError;
use crate::machine::cmd::{
    add_member::AddMember, create_direct::CreateDirect, create_group::CreateGroup,
    remove_member::RemoveMember, set_disappearing::SetDisappearing, set_role::SetRole,
};
use crate::machine::ids::{direct_conv_id, ShardId, UserId};
use crate::machine::query::conv::ConvView;
use crate::machine::records::{ConvKind, Role};
use crate::node::core::Core;
use crate::shard::mesh::call;
use crate::shard::ops::account::Missing;
use crate::shard::ops::conversations::{
    Add, ChangeRole, ConvInfo, Disappearing, ListConvs, NewDirect, NewGroup, Remove,
};

fn conv_json(v: &ConvView) -> Value {
    let members: Vec<Value> = v
        .members
        .iter()
        .map(|(u, role)| json!({"user_id": u.to_string(), "role": role.as_str()}))
        .collect();
    let name = if v.kind == ConvKind::Group {
        json!(v.name)
    } else {
        json!(null)
    };
    json!({"conversation_id": v.conv.to_string(), "kind": v.kind.as_str(), "name": name, "members": members})
}

/// Fails with `not_found` naming the first user that does not exist.
async fn ensure_users(core: &Rc<Core>, users: &[UserId]) -> Result<(), FrontError> {
    let mut by_home: BTreeMap<u16, Vec<UserId>> = BTreeMap::new();
    for u in users {
        by_home.entry(core.shard_of(u.0).0).or_default().push(*u);
    }
    for (home, users) in by_home {
        let missing = call(&core.mesh(), ShardId(home), Missing { users }).await?;
        if let Some(u) = missing.first() {
            return Err(not_found(&format!("user {u}")).into());
        }
    }
    Ok(())
}

pub async fn create(core: &Rc<Core>, caller: Caller, req: &Request) -> Handled {
    let body = body_json(req)?;
    match body.get("kind").and_then(Value::as_str) {
        Some("direct") => create_direct(core, caller, &body).await,
        Some("group") => create_group(core, caller, &body).await,
        _ => Err(ApiError::bad_request("kind must be \"direct\" or \"group\"").into()),
    }
}

async fn create_direct(core: &Rc<Core>, caller: Caller, body: &Value) -> Handled {
    let peer = parse_user(body.get("peer"))?;
    if peer == caller.user {
        return Err(ApiError::bad_request("a direct conversation needs another user").into());
    }
    ensure_users(core, &[peer]).await?;
    let home = core.shard_of(direct_conv_id(caller.user, peer).0);
    let cmd = CreateDirect {
        a: caller.user,
        b: peer,
    };
    let (view, created) = call(&core.mesh(), home, NewDirect(cmd)).await?;
    Ok(json_response(
        if created { 201 } else { 200 },
        &conv_json(&view),
    ))
}

async fn create_group(core: &Rc<Core>, caller: Caller, body: &Value) -> Handled {
    let name = str_field(body, "name")?;
    check_name(&name, "name")?;
    let list = body
        .get("members")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::bad_request("members must be a list of user ids"))?;
    let max = core.config.group_members_max;
    if list.len() > max {
        let e = ApiError::new(
            ErrorCode::Conflict,
            format!("a group has at most {max} members"),
        );
        return Err(e.into());
    }
    let members = list
        .iter()
        .map(|v| parse_user(Some(v)))
        .collect::<Result<Vec<_>, _>>()?;
    ensure_users(core, &members).await?;
    let cmd = CreateGroup {
        creator: caller.user,
        name,
        members,
    };
    let view = call(&core.mesh(), core.shard_of(caller.user.0), NewGroup(cmd)).await?;
    Ok(json_response(201, &conv_json(&view)))
}

/// The caller's conversations, latest activity first, with unread counts.
/// Large groups fan out on read: their ends are pulled from their homes.
pub async fn list(core: &Rc<Core>, caller: Caller) -> Handled {
    let mesh = core.mesh();
    let pointers = call(
        &mesh,
        core.shard_of(caller.user.0),
        ListConvs { user: caller.user },
    )
    .await?;
    let mut rows = Vec::with_capacity(pointers.len());
    for (mut p, read) in pointers {
        if p.large {
            let op = ConvInfo {
                conv: p.conv,
                user: caller.user,
            };
            if let Ok(fresh) = call(&mesh, core.shard_of(p.conv.0), op).await {
                (p.last_seq, p.last_ts) = (fresh.last_seq, fresh.last_ts);
            }
        }
        rows.push((p, read));
    }
    rows.sort_by(|(a, _), (b, _)| b.last_ts.cmp(&a.last_ts).then(b.conv.cmp(&a.conv)));
    let list: Vec<Value> = rows
        .iter()
        .map(|(p, read)| {
            json!({
                "conversation_id": p.conv.to_string(),
                "kind": p.kind.as_str(),
                "name": if p.kind == ConvKind::Group { json!(p.name) } else { json!(null) },
                "peer": p.peer.map(|u| u.to_string()),
                "last_seq": p.last_seq.0,
                "last_ts": p.last_ts.0,
                "unread": p.last_seq.0.saturating_sub(read.0),
                "disappearing_seconds": p.disappearing_seconds,
            })
        })
        .collect();
    Ok(json_response(200, &json!({ "conversations": list })))
}

pub async fn add(core: &Rc<Core>, caller: Caller, conv: &str, req: &Request) -> Handled {
    let conv = parse_conv(conv)?;
    let user = parse_user(body_json(req)?.get("user_id"))?;
    ensure_users(core, &[user]).await?;
    let cmd = AddMember {
        conv,
        by: caller.user,
        user,
    };
    call(&core.mesh(), core.shard_of(conv.0), Add(cmd)).await?;
    Ok(no_content())
}

pub async fn remove(core: &Rc<Core>, caller: Caller, conv: &str, user: &str) -> Handled {
    let conv = parse_conv(conv)?;
    let user = UserId::parse(user).ok_or_else(|| not_found("such member"))?;
    let cmd = RemoveMember {
        conv,
        by: caller.user,
        user,
    };
    call(&core.mesh(), core.shard_of(conv.0), Remove(cmd)).await?;
    Ok(no_content())
}

pub async fn set_role(
    core: &Rc<Core>,
    caller: Caller,
    conv: &str,
    user: &str,
    req: &Request,
) -> Handled {
    let conv = parse_conv(conv)?;
    let user = UserId::parse(user).ok_or_else(|| not_found("such member"))?;
    let role = body_json(req)?
        .get("role")
        .and_then(Value::as_str)
        .and_then(Role::parse);
    let role = role.ok_or_else(|| ApiError::bad_request("role must be \"admin\" or \"member\""))?;
    let cmd = SetRole {
        conv,
        by: caller.user,
        user,
        role,
    };
    call(&core.mesh(), core.shard_of(conv.0), ChangeRole(cmd)).await?;
    Ok(no_content())
}

/// `PATCH /v1/conversations/{id}`: the disappearing setting.
pub async fn patch(core: &Rc<Core>, caller: Caller, conv: &str, req: &Request) -> Handled {
    let conv = parse_conv(conv)?;
    let seconds = body_json(req)?
        .get("disappearing_seconds")
        .and_then(Value::as_u64);
    let seconds = seconds
        .filter(|s| *s <= DISAPPEARING_SECONDS_MAX)
        .ok_or_else(|| {
            let why = format!("disappearing_seconds must be 0..={DISAPPEARING_SECONDS_MAX}");
            ApiError::bad_request(why)
        })?;
    let cmd = SetDisappearing {
        conv,
        by: caller.user,
        seconds,
    };
    call(&core.mesh(), core.shard_of(conv.0), Disappearing(cmd)).await?;
    Ok(no_content())
}
