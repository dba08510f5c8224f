//! The REST API of PROTOCOL.md: parse, authenticate, route to the owning
//! shard, shape the answer.
//!
//! Lives on: every core (the one that accepted the connection). It holds
//! no state: each call goes to the shard that owns what it names.

use std::rc::Rc;

use chat_net::http::{Request, Response};
use chat_net::protocol::{ApiError, ErrorCode};
use hyper::Method;
use serde_json::{json, Value};

use crate::constants::{
    HISTORY_LIMIT_DEFAULT, HISTORY_LIMIT_MAX, NAME_BYTES_MAX, PHONE_DIGITS_MAX, PHONE_DIGITS_MIN,
};
use crate::core::Core;
use crate::ids::{phone_shard, ConvId, DeviceId, Seq, UserId};
use crate::ops::{Answer, Op};
use crate::records::{Privacy, Role};

type Result<T> = std::result::Result<T, ApiError>;

pub fn json_response(status: u16, body: &Value) -> Response {
    Response {
        status,
        content_type: "application/json",
        body: body.to_string().into_bytes(),
        headers: Vec::new(),
    }
}

pub fn error_response(e: &ApiError) -> Response {
    Response {
        status: e.code.http_status(),
        content_type: "application/json",
        body: e.rest_body().into_bytes(),
        headers: Vec::new(),
    }
}

fn no_content() -> Response {
    Response {
        status: 204,
        content_type: "application/json",
        body: Vec::new(),
        headers: Vec::new(),
    }
}

fn not_found(what: &str) -> ApiError {
    ApiError::new(ErrorCode::NotFound, format!("no {what}"))
}

/// Who is calling: from the bearer token, checked by the user's shard.
#[derive(Clone, Copy, Debug)]
pub struct Caller {
    pub user: UserId,
    pub device: DeviceId,
}

pub async fn authenticate(core: &Rc<Core>, token: Option<&str>) -> Result<Caller> {
    let token =
        token.ok_or_else(|| ApiError::new(ErrorCode::Unauthorized, "missing bearer token"))?;
    let (user, _, _) = crate::token::parse(token)
        .ok_or_else(|| ApiError::new(ErrorCode::Unauthorized, "malformed token"))?;
    match core
        .call(
            core.shard_of(user.0),
            Op::Authenticate {
                token: token.to_string(),
            },
        )
        .await?
    {
        Answer::Authenticated { user, device } => Ok(Caller { user, device }),
        other => panic!("Authenticate answered {other:?}"),
    }
}

/// Handles one request; every failure becomes its documented error.
pub async fn handle(core: &Rc<Core>, req: Request) -> Response {
    match route(core, &req).await {
        Ok(response) => response,
        Err(e) => error_response(&e),
    }
}

async fn route(core: &Rc<Core>, req: &Request) -> Result<Response> {
    if !core.ready.get() {
        return Err(ApiError::new(ErrorCode::Unavailable, "starting up"));
    }
    let segments: Vec<&str> = req.path.trim_end_matches('/').split('/').skip(1).collect();
    let method = &req.method;
    match (method, segments.as_slice()) {
        (&Method::POST, ["v1", "auth", "otp"]) => return otp(core, req).await,
        (&Method::POST, ["v1", "auth", "verify"]) => return verify(core, req).await,
        _ => {}
    }
    let caller = authenticate(core, req.bearer.as_deref()).await?;
    let user_shard = core.shard_of(caller.user.0);
    match (method, segments.as_slice()) {
        (&Method::GET, ["v1", "me"]) => answer(
            200,
            core.call(user_shard, Op::GetMe { user: caller.user })
                .await?,
        ),
        (&Method::PATCH, ["v1", "me"]) => patch_me(core, caller, req).await,
        (&Method::DELETE, ["v1", "devices", device]) => {
            let device = DeviceId::parse(device).ok_or_else(|| not_found("such device"))?;
            core.call(
                user_shard,
                Op::RevokeDevice {
                    user: caller.user,
                    device,
                },
            )
            .await?;
            Ok(no_content())
        }
        (&Method::GET, ["v1", "users"]) => {
            let phone = query_param(req, "phone")
                .ok_or_else(|| ApiError::bad_request("missing ?phone="))?;
            let phone = check_phone(&phone)?;
            answer(
                200,
                core.call(phone_shard(&phone, core.shards), Op::LookupPhone { phone })
                    .await?,
            )
        }
        (&Method::POST, ["v1", "conversations"]) => create_conversation(core, caller, req).await,
        (&Method::GET, ["v1", "conversations"]) => list_conversations(core, caller).await,
        (&Method::GET, ["v1", "conversations", conv, "messages"]) => {
            history(core, caller, conv, req).await
        }
        (&Method::GET, ["v1", "conversations", conv, "messages", seq, "receipts"]) => {
            let conv = parse_conv(conv)?;
            let seq = seq.parse::<u64>().map_err(|_| not_found("such message"))?;
            answer(
                200,
                core.call(
                    core.shard_of(conv.0),
                    Op::Receipts {
                        conv,
                        user: caller.user,
                        seq: Seq(seq),
                    },
                )
                .await?,
            )
        }
        (&Method::POST, ["v1", "conversations", conv, "members"]) => {
            let conv = parse_conv(conv)?;
            let body = body_json(req)?;
            let user = parse_user(body.get("user_id"))?;
            ensure_users(core, &[user]).await?;
            core.call(
                core.shard_of(conv.0),
                Op::AddMember {
                    conv,
                    by: caller.user,
                    user,
                },
            )
            .await?;
            Ok(no_content())
        }
        (&Method::DELETE, ["v1", "conversations", conv, "members", user]) => {
            let conv = parse_conv(conv)?;
            let user = UserId::parse(user).ok_or_else(|| not_found("such member"))?;
            core.call(
                core.shard_of(conv.0),
                Op::RemoveMember {
                    conv,
                    by: caller.user,
                    user,
                },
            )
            .await?;
            Ok(no_content())
        }
        (&Method::PATCH, ["v1", "conversations", conv, "members", user]) => {
            let conv = parse_conv(conv)?;
            let user = UserId::parse(user).ok_or_else(|| not_found("such member"))?;
            let body = body_json(req)?;
            let role = body
                .get("role")
                .and_then(Value::as_str)
                .and_then(Role::parse);
            let role =
                role.ok_or_else(|| ApiError::bad_request("role must be \"admin\" or \"member\""))?;
            core.call(
                core.shard_of(conv.0),
                Op::SetRole {
                    conv,
                    by: caller.user,
                    user,
                    role,
                },
            )
            .await?;
            Ok(no_content())
        }
        _ => Err(ApiError::new(
            ErrorCode::NotFound,
            format!("no route {} {}", req.method, req.path),
        )),
    }
}

fn answer(status: u16, answer: Answer) -> Result<Response> {
    match answer {
        Answer::Json(v) => Ok(json_response(status, &v)),
        Answer::Raw(text) => Ok(Response {
            status,
            content_type: "application/json",
            body: text.into_bytes(),
            headers: Vec::new(),
        }),
        Answer::Created { created, body } => {
            Ok(json_response(if created { 201 } else { 200 }, &body))
        }
        Answer::Done => Ok(no_content()),
        other => panic!("unexpected answer {other:?}"),
    }
}

fn body_json(req: &Request) -> Result<Value> {
    let v: Value = serde_json::from_slice(&req.body)
        .map_err(|e| ApiError::bad_request(format!("malformed JSON body: {e}")))?;
    if !v.is_object() {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    }
    Ok(v)
}

fn str_field(body: &Value, name: &str) -> Result<String> {
    body.get(name)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| ApiError::bad_request(format!("missing string field `{name}`")))
}

fn check_phone(phone: &str) -> Result<String> {
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

fn check_name(name: &str, what: &str) -> Result<()> {
    if name.len() > NAME_BYTES_MAX || name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(format!(
            "{what} must be at most {NAME_BYTES_MAX} bytes, without control characters"
        )));
    }
    Ok(())
}

fn parse_conv(text: &str) -> Result<ConvId> {
    ConvId::parse(text).ok_or_else(|| not_found("such conversation"))
}

fn parse_user(v: Option<&Value>) -> Result<UserId> {
    let text = v
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request("missing string field `user_id`"))?;
    UserId::parse(text).ok_or_else(|| not_found(&format!("user {text}")))
}

async fn otp(core: &Rc<Core>, req: &Request) -> Result<Response> {
    let phone = check_phone(&str_field(&body_json(req)?, "phone")?)?;
    match core
        .call(phone_shard(&phone, core.shards), Op::OtpRequest { phone })
        .await?
    {
        Answer::ExpiresIn(s) => Ok(json_response(202, &json!({ "expires_in": s }))),
        other => panic!("OtpRequest answered {other:?}"),
    }
}

async fn verify(core: &Rc<Core>, req: &Request) -> Result<Response> {
    let body = body_json(req)?;
    let phone = check_phone(&str_field(&body, "phone")?)?;
    let code = str_field(&body, "code")?;
    let device_name = body
        .get("device_name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    check_name(&device_name, "device_name")?;
    match core
        .call(
            phone_shard(&phone, core.shards),
            Op::OtpVerify {
                phone,
                code,
                device_name,
            },
        )
        .await?
    {
        Answer::Verified {
            user,
            device,
            token,
        } => Ok(json_response(
            200,
            &json!({"user_id": user.to_string(), "device_id": device.to_string(), "token": token}),
        )),
        other => panic!("OtpVerify answered {other:?}"),
    }
}

async fn patch_me(core: &Rc<Core>, caller: Caller, req: &Request) -> Result<Response> {
    let body = body_json(req)?;
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
    let op = Op::PatchMe {
        user: caller.user,
        name,
        privacy,
        read_receipts,
    };
    answer(200, core.call(core.shard_of(caller.user.0), op).await?)
}

/// Fails with `not_found` naming the first user that does not exist.
async fn ensure_users(core: &Rc<Core>, users: &[UserId]) -> Result<()> {
    let mut by_shard: std::collections::BTreeMap<u16, Vec<UserId>> = Default::default();
    for u in users {
        by_shard.entry(core.shard_of(u.0).0).or_default().push(*u);
    }
    for (shard, users) in by_shard {
        if let Answer::Missing(missing) = core
            .call(crate::ids::ShardId(shard), Op::UsersExist { users })
            .await?
        {
            if let Some(u) = missing.first() {
                return Err(not_found(&format!("user {u}")));
            }
        }
    }
    Ok(())
}

async fn create_conversation(core: &Rc<Core>, caller: Caller, req: &Request) -> Result<Response> {
    let body = body_json(req)?;
    match body.get("kind").and_then(Value::as_str) {
        Some("direct") => {
            let peer = parse_user(body.get("peer"))?;
            if peer == caller.user {
                return Err(ApiError::bad_request(
                    "a direct conversation needs another user",
                ));
            }
            ensure_users(core, &[peer]).await?;
            let conv = crate::ids::direct_conv_id(caller.user, peer);
            answer(
                201,
                core.call(
                    core.shard_of(conv.0),
                    Op::CreateDirect {
                        a: caller.user,
                        b: peer,
                    },
                )
                .await?,
            )
        }
        Some("group") => {
            let name = str_field(&body, "name")?;
            check_name(&name, "name")?;
            let list = body
                .get("members")
                .and_then(Value::as_array)
                .ok_or_else(|| ApiError::bad_request("members must be a list of user ids"))?;
            if list.len() > core.config.group_members_max {
                return Err(ApiError::new(
                    ErrorCode::Conflict,
                    format!(
                        "a group has at most {} members",
                        core.config.group_members_max
                    ),
                ));
            }
            let members = list
                .iter()
                .map(|v| parse_user(Some(v)))
                .collect::<Result<Vec<_>>>()?;
            ensure_users(core, &members).await?;
            let op = Op::CreateGroup {
                creator: caller.user,
                name,
                members,
            };
            answer(201, core.call(core.shard_of(caller.user.0), op).await?)
        }
        _ => Err(ApiError::bad_request(
            "kind must be \"direct\" or \"group\"",
        )),
    }
}

async fn history(core: &Rc<Core>, caller: Caller, conv: &str, req: &Request) -> Result<Response> {
    let conv = parse_conv(conv)?;
    let number = |name: &str| -> Result<Option<u64>> {
        match query_param(req, name) {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| ApiError::bad_request(format!("{name} must be a number"))),
        }
    };
    let limit = number("limit")?.unwrap_or(HISTORY_LIMIT_DEFAULT as u64);
    if limit == 0 || limit > HISTORY_LIMIT_MAX as u64 {
        return Err(ApiError::bad_request(format!(
            "limit must be 1..={HISTORY_LIMIT_MAX}"
        )));
    }
    let op = Op::History {
        conv,
        user: caller.user,
        before: number("before")?.map(Seq),
        after: number("after")?.map(Seq),
        limit: limit as usize,
    };
    answer(200, core.call(core.shard_of(conv.0), op).await?)
}

/// One query parameter, percent-decoded.
pub fn query_param(req: &Request, name: &str) -> Option<String> {
    let query = req.query.as_deref()?;
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| percent_decode(v))
    })
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

/// The caller's conversations, latest activity first, with unread counts.
/// Large groups fan out on read: their ends are pulled from their homes.
async fn list_conversations(core: &Rc<Core>, caller: Caller) -> Result<Response> {
    let pointers = match core
        .call(
            core.shard_of(caller.user.0),
            Op::ListConvs { user: caller.user },
        )
        .await?
    {
        Answer::Pointers { pointers, .. } => pointers,
        other => panic!("ListConvs answered {other:?}"),
    };
    let mut rows = Vec::with_capacity(pointers.len());
    for (mut p, read) in pointers {
        if p.large {
            if let Ok(Answer::Pointer(fresh)) = core
                .call(
                    core.shard_of(p.conv.0),
                    Op::ConvInfo {
                        conv: p.conv,
                        user: caller.user,
                    },
                )
                .await
            {
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
                "name": if p.kind == crate::records::ConvKind::Group { json!(p.name) } else { json!(null) },
                "peer": p.peer.map(|u| u.to_string()),
                "last_seq": p.last_seq.0,
                "last_ts": p.last_ts.0,
                "unread": p.last_seq.0.saturating_sub(read.0),
            })
        })
        .collect();
    Ok(json_response(200, &json!({ "conversations": list })))
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
