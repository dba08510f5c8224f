//! `GET /v1/search?q=WORDS[&conversation_id=ID[&before=SEQ]][&limit=N]`:
//! the caller's conversations (or the one named) are searched on their
//! homes; the answers are merged newest first.
//!
//! Lives on: every core (the one that accepted the connection).

use std::collections::BTreeMap;
use std::rc::Rc;

use chat_net::http::Request;
use chat_net::protocol::ApiError;

use super::body::{parse_conv, query_number, query_param, raw_response};
use super::Handled;
use crate::constants::{
    SEARCH_LIMIT_DEFAULT, SEARCH_LIMIT_MAX, SEARCH_QUERY_BYTES_MAX, SEARCH_QUERY_WORDS_MAX,
};
use crate::front::caller::Caller;
use crate::machine::ids::{ConvId, Seq, ShardId};
use crate::node::core::Core;
use crate::search::words::Query;
use crate::shard::current::Shown;
use crate::shard::mesh::call;
use crate::shard::ops::conversations::ListConvs;
use crate::shard::ops::search::{newest_first, Search, Within};
use crate::wire::message_object;

fn parse_query(req: &Request) -> Result<Query, ApiError> {
    let q = query_param(req, "q").unwrap_or_default();
    if q.len() > SEARCH_QUERY_BYTES_MAX {
        return Err(ApiError::bad_request(format!(
            "q is over {SEARCH_QUERY_BYTES_MAX} bytes"
        )));
    }
    let query = Query::parse(&q).ok_or_else(|| ApiError::bad_request("q must hold a word"))?;
    if query.words.len() > SEARCH_QUERY_WORDS_MAX {
        return Err(ApiError::bad_request(format!(
            "q has over {SEARCH_QUERY_WORDS_MAX} words"
        )));
    }
    Ok(query)
}

pub async fn search(core: &Rc<Core>, caller: Caller, req: &Request) -> Handled {
    let query = parse_query(req)?;
    let limit = query_number(req, "limit")?.unwrap_or(SEARCH_LIMIT_DEFAULT as u64);
    if limit == 0 || limit > SEARCH_LIMIT_MAX as u64 {
        return Err(ApiError::bad_request(format!("limit must be 1..={SEARCH_LIMIT_MAX}")).into());
    }
    let limit = limit as usize;
    let before = query_number(req, "before")?.map(Seq);
    let mesh = core.mesh();
    let mut found: Vec<Shown> = match query_param(req, "conversation_id") {
        Some(conv) => {
            let conv = parse_conv(&conv)?;
            let within = Within::One(conv, before);
            let op = Search {
                user: caller.user,
                within,
                query,
                limit,
            };
            call(&mesh, core.shard_of(conv.0), op).await?
        }
        None if before.is_some() => {
            return Err(ApiError::bad_request("before needs conversation_id").into());
        }
        None => {
            let home = core.shard_of(caller.user.0);
            let pointers = call(&mesh, home, ListConvs { user: caller.user }).await?;
            let mut by_home: BTreeMap<ShardId, Vec<ConvId>> = BTreeMap::new();
            for (p, _) in pointers {
                by_home
                    .entry(core.shard_of(p.conv.0))
                    .or_default()
                    .push(p.conv);
            }
            let mut found = Vec::new();
            for (shard, convs) in by_home {
                let within = Within::Each(convs);
                let op = Search {
                    user: caller.user,
                    within,
                    query: query.clone(),
                    limit,
                };
                found.extend(call(&mesh, shard, op).await?);
            }
            found
        }
    };
    found.sort_by(newest_first);
    found.truncate(limit);
    let mut out = String::from("{\"messages\":[");
    for (i, m) in found.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&message_object(&m.message, m.version));
    }
    out.push_str("]}");
    Ok(raw_response(200, out))
}
