//! Bearer tokens checked against the user's home state.

use crate::machine::error::DomainError;
use crate::machine::ids::{DeviceId, Millis, UserId};
use crate::machine::state::State;
use crate::machine::token;

/// The device a token belongs to, if it is current at `now`.
pub fn authenticate(
    state: &State,
    token: &str,
    now: Millis,
) -> Result<(UserId, DeviceId), DomainError> {
    let (user, device, secret) = token::parse(token).ok_or(DomainError::TokenMalformed)?;
    let d = state
        .users
        .get(&user)
        .and_then(|u| u.devices.get(&device))
        .ok_or(DomainError::TokenUnknown)?;
    if !token::same_hash(&token::hash_secret(secret), &d.token_hash) {
        return Err(DomainError::TokenUnknown);
    }
    if now >= d.expires {
        return Err(DomainError::TokenExpired);
    }
    Ok((user, device))
}
