//! The REST API of PROTOCOL.md: a route table; each handler parses its
//! request, calls the shard that owns what it names, and shapes the JSON.
//!
//! Lives on: every core (the one that accepted the connection). It holds
//! no state.

pub mod account;
pub mod auth;
pub mod body;
pub mod conversations;
pub mod keys;
pub mod media;
pub mod messages;
pub mod push;
pub mod search;

use std::rc::Rc;

use chat_net::http::{Request, Response};
use chat_net::protocol::{ApiError, ErrorCode};
use hyper::Method;

use super::caller::{authenticate, Caller};
use super::errors::FrontError;
use crate::node::core::Core;
use body::error_response;

type Handled = Result<Response, FrontError>;

/// Handles one request; every failure becomes its documented error.
pub async fn handle(core: &Rc<Core>, req: Request) -> Response {
    match route(core, &req).await {
        Ok(response) => response,
        Err(FrontError(e)) => error_response(&e),
    }
}

async fn route(core: &Rc<Core>, req: &Request) -> Handled {
    if !core.ready.get() {
        return Err(ApiError::new(ErrorCode::Unavailable, "starting up").into());
    }
    let path: Vec<&str> = req.path.trim_end_matches('/').split('/').skip(1).collect();
    match (&req.method, path.as_slice()) {
        (&Method::POST, ["v1", "auth", "otp"]) => return auth::request_code(core, req).await,
        (&Method::POST, ["v1", "auth", "verify"]) => return auth::verify(core, req).await,
        _ => {}
    }
    let caller = authenticate(core, req.bearer.as_deref()).await?;
    authenticated(core, caller, req, &path).await
}

async fn authenticated(core: &Rc<Core>, caller: Caller, req: &Request, path: &[&str]) -> Handled {
    use conversations as convs;
    match (&req.method, path) {
        (&Method::GET, ["v1", "me"]) => account::get_me(core, caller).await,
        (&Method::PATCH, ["v1", "me"]) => account::patch_me(core, caller, req).await,
        (&Method::DELETE, ["v1", "me"]) => account::delete_me(core, caller).await,
        (&Method::DELETE, ["v1", "devices", device]) => account::revoke(core, caller, device).await,
        (&Method::PUT, ["v1", "devices", device, "push"]) => {
            push::put(core, caller, device, req).await
        }
        (&Method::GET, ["v1", "users"]) => account::lookup(core, req).await,
        (&Method::PUT, ["v1", "keys"]) => keys::put(core, caller, req).await,
        (&Method::GET, ["v1", "keys"]) => keys::left(core, caller).await,
        (&Method::GET, ["v1", "keys", user]) => keys::fetch(core, caller, user).await,
        (&Method::POST, ["v1", "media"]) => media::upload(core, caller, req).await,
        (&Method::GET, ["v1", "media", id]) => media::download(core, caller, id, req).await,
        (&Method::GET, ["v1", "search"]) => search::search(core, caller, req).await,
        (&Method::POST, ["v1", "conversations"]) => convs::create(core, caller, req).await,
        (&Method::GET, ["v1", "conversations"]) => convs::list(core, caller).await,
        (&Method::PATCH, ["v1", "conversations", conv]) => {
            convs::patch(core, caller, conv, req).await
        }
        (&Method::GET, ["v1", "conversations", conv, "messages"]) => {
            messages::history(core, caller, conv, req).await
        }
        (&Method::GET, ["v1", "conversations", conv, "messages", seq, "receipts"]) => {
            messages::receipts(core, caller, conv, seq).await
        }
        (&Method::POST, ["v1", "conversations", conv, "members"]) => {
            convs::add(core, caller, conv, req).await
        }
        (&Method::DELETE, ["v1", "conversations", conv, "members", user]) => {
            convs::remove(core, caller, conv, user).await
        }
        (&Method::PATCH, ["v1", "conversations", conv, "members", user]) => {
            convs::set_role(core, caller, conv, user, req).await
        }
        _ => {
            let e = ApiError::new(
                ErrorCode::NotFound,
                format!("no route {} {}", req.method, req.path),
            );
            Err(e.into())
        }
    }
}
