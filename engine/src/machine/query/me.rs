//! A user's profile and devices, and lookups by phone.

use crate::machine::error::DomainError;
use crate::machine::ids::{DeviceId, Millis, UserId};
use crate::machine::records::Privacy;
use crate::machine::state::State;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    pub device: DeviceId,
    pub name: String,
    pub created: Millis,
}

/// What `GET /v1/me` shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Me {
    pub user: UserId,
    pub phone: String,
    pub name: String,
    pub privacy: Privacy,
    pub read_receipts: bool,
    pub devices: Vec<DeviceInfo>,
}

pub fn me(state: &State, user: UserId) -> Result<Me, DomainError> {
    let u = state.users.get(&user).ok_or(DomainError::NoUser(user))?;
    let devices = u
        .devices
        .iter()
        .map(|(id, d)| DeviceInfo {
            device: *id,
            name: d.name.clone(),
            created: d.created,
        })
        .collect();
    Ok(Me {
        user,
        phone: u.phone.clone(),
        name: u.name.clone(),
        privacy: u.privacy,
        read_receipts: u.read_receipts,
        devices,
    })
}

/// The account of a phone number: its id and name.
pub fn by_phone(state: &State, phone: &str) -> Result<(UserId, String), DomainError> {
    let user = state
        .phones
        .get(phone)
        .ok_or(DomainError::NoUserWithPhone)?;
    Ok((*user, state.users[user].name.clone()))
}

/// The users of the list that do not exist.
pub fn missing(state: &State, users: &[UserId]) -> Vec<UserId> {
    users
        .iter()
        .filter(|u| state.users.get(u).is_none_or(|u| u.deleted))
        .copied()
        .collect()
}
