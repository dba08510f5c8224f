//! The key directory's reads.

use crate::machine::error::DomainError;
use crate::machine::ids::{DeviceId, UserId};
use crate::machine::state::State;

/// One-time prekeys `device` of `user` still has (0 before any upload).
pub fn prekeys_left(state: &State, user: UserId, device: DeviceId) -> Result<usize, DomainError> {
    let u = state
        .users
        .get(&user)
        .filter(|u| !u.deleted)
        .ok_or(DomainError::NoUser(user))?;
    let d = u
        .devices
        .get(&device)
        .ok_or(DomainError::NoDevice(device))?;
    Ok(d.keys.as_ref().map_or(0, |k| k.one_time.len()))
}
