//! The first step of a session: a bearer token on the upgrade, or an
//! `auth` event within 10 s; `auth.ok` or an error and close 4401.
//!
//! Lives on: the connection's core.

use std::rc::Rc;
use std::time::Duration;

use chat_net::protocol::{self, ApiError, ClientEvent, ErrorCode};
use chat_net::ws::{Inbox, Incoming, Outbox};
use serde_json::value::RawValue;

use crate::constants::AUTH_TIMEOUT_MS;
use crate::front::caller::{authenticate, Caller};
use crate::node::core::Core;
use crate::shard::conn::{CLOSE_TRY_AGAIN_LATER, CLOSE_UNAUTHORIZED};
use crate::wire::auth_ok;

/// The token and the `ref` of the `auth` event it came in, if any.
async fn token(
    inbox: &mut Inbox,
    bearer: Option<String>,
) -> Option<(String, Option<Box<RawValue>>)> {
    if let Some(t) = bearer {
        return Some((t, None));
    }
    let first = glommio::timer::timeout(Duration::from_millis(AUTH_TIMEOUT_MS), async {
        Ok(inbox.recv().await)
    })
    .await;
    let frame = match first {
        Ok(Incoming::Text(text)) => protocol::decode(&text).ok()?,
        _ => return None,
    };
    match frame.event {
        ClientEvent::Auth { token } => Some((token, frame.reference)),
        _ => None,
    }
}

/// The caller, or `None` once the socket was told why and closed.
pub async fn auth(
    core: &Rc<Core>,
    inbox: &mut Inbox,
    outbox: &Outbox,
    bearer: Option<String>,
) -> Option<Caller> {
    let Some((token, reference)) = token(inbox, bearer).await else {
        let e = ApiError::new(
            ErrorCode::Unauthorized,
            "authenticate first: {\"type\":\"auth\",\"token\"} within 10 s",
        );
        let _ = outbox.try_send(e.ws_event(None));
        outbox.close(CLOSE_UNAUTHORIZED, "unauthorized");
        return None;
    };
    match authenticate(core, Some(&token)).await {
        Ok(caller) => {
            let reference = reference.as_deref().map(RawValue::get);
            let _ = outbox.try_send(auth_ok(reference, caller.user, caller.device));
            Some(caller)
        }
        Err(e) => {
            let _ = outbox.try_send(e.ws_event(reference.as_deref()));
            if e.code == ErrorCode::Unavailable {
                // The token could not be checked now (a shard electing
                // its leader): not the client's fault; it tries again.
                outbox.close(CLOSE_TRY_AGAIN_LATER, "try again later");
            } else {
                outbox.close(CLOSE_UNAUTHORIZED, "unauthorized");
            }
            None
        }
    }
}
