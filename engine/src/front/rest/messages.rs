//! `GET /v1/conversations/{id}/messages` (history pages) and
//! `GET .../messages/{seq}/receipts`.

use std::rc::Rc;

use chat_net::http::Request;
use chat_net::protocol::ApiError;
use serde_json::{json, Value};

use super::body::{json_response, not_found, parse_conv, query_number, raw_response};
use super::Handled;
use crate::constants::{HISTORY_LIMIT_DEFAULT, HISTORY_LIMIT_MAX};
use crate::front::caller::Caller;
use crate::machine::ids::{Millis, Seq, UserId};
use crate::node::core::Core;
use crate::shard::mesh::call;
use crate::shard::ops::history::History;
use crate::shard::ops::receipt::GetReceipts;
use crate::wire::message_object;

pub async fn history(core: &Rc<Core>, caller: Caller, conv: &str, req: &Request) -> Handled {
    let conv = parse_conv(conv)?;
    let limit = query_number(req, "limit")?.unwrap_or(HISTORY_LIMIT_DEFAULT as u64);
    if limit == 0 || limit > HISTORY_LIMIT_MAX as u64 {
        return Err(ApiError::bad_request(format!("limit must be 1..={HISTORY_LIMIT_MAX}")).into());
    }
    let op = History {
        conv,
        user: caller.user,
        before: query_number(req, "before")?.map(Seq),
        after: query_number(req, "after")?.map(Seq),
        limit: limit as usize,
    };
    let (messages, has_more) = call(&core.mesh(), core.shard_of(conv.0), op).await?;
    let mut out = String::from("{\"messages\":[");
    for (i, m) in messages.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&message_object(&m.message, m.version));
    }
    out.push_str("],\"has_more\":");
    out.push_str(if has_more { "true" } else { "false" });
    out.push('}');
    Ok(raw_response(200, out))
}

pub async fn receipts(core: &Rc<Core>, caller: Caller, conv: &str, seq: &str) -> Handled {
    let conv = parse_conv(conv)?;
    let seq = seq.parse::<u64>().map_err(|_| not_found("such message"))?;
    let op = GetReceipts {
        conv,
        user: caller.user,
        seq: Seq(seq),
    };
    let r = call(&core.mesh(), core.shard_of(conv.0), op).await?;
    let list = |l: &[(UserId, Millis)]| -> Vec<Value> {
        l.iter()
            .map(|(u, ts)| json!({"user_id": u.to_string(), "ts": ts.0}))
            .collect()
    };
    Ok(json_response(
        200,
        &json!({"delivered": list(&r.delivered), "read": list(&r.read)}),
    ))
}
