//! Who is calling: a bearer token checked by the user's home shard.
//!
//! Lives on: every core (the one that accepted the connection).

use std::rc::Rc;

use chat_net::protocol::{ApiError, ErrorCode};

use super::errors::api_error;
use crate::machine::ids::{DeviceId, UserId};
use crate::machine::token;
use crate::node::core::Core;
use crate::shard::mesh::call;
use crate::shard::ops::account::Authenticate;

#[derive(Clone, Copy, Debug)]
pub struct Caller {
    pub user: UserId,
    pub device: DeviceId,
}

pub async fn authenticate(core: &Rc<Core>, token: Option<&str>) -> Result<Caller, ApiError> {
    let token =
        token.ok_or_else(|| ApiError::new(ErrorCode::Unauthorized, "missing bearer token"))?;
    let (user, _, _) = token::parse(token)
        .ok_or_else(|| ApiError::new(ErrorCode::Unauthorized, "malformed token"))?;
    let op = Authenticate {
        token: token.to_string(),
    };
    let (user, device) = call(&core.mesh(), core.shard_of(user.0), op)
        .await
        .map_err(api_error)?;
    Ok(Caller { user, device })
}
