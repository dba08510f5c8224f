//! `DELETE /v1/devices/{id}`: the device's token stops working; applying
//! it closes the device's connections.

use crate::machine::ctx::Ctx;
use crate::machine::effects::{Effect, Effects};
use crate::machine::error::DomainError;
use crate::machine::ids::{DeviceId, UserId};
use crate::machine::records::Rec;
use crate::machine::state::{Lsn, State};

use super::Decision;

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct RevokeDevice {
    pub user: UserId,
    pub device: DeviceId,
}

impl RevokeDevice {
    pub fn decide(self, state: &State, _ctx: &Ctx) -> Result<Decision<()>, DomainError> {
        let known = state
            .users
            .get(&self.user)
            .is_some_and(|u| u.devices.contains_key(&self.device));
        if !known {
            return Err(DomainError::NoDevice(self.device));
        }
        let rec = Rec::DeviceRevoked {
            user: self.user,
            device: self.device,
        };
        Ok(Decision::write(vec![rec], ()))
    }
}

pub fn apply(state: &mut State, user: UserId, device: DeviceId, at: Lsn) -> Effects {
    let Some(u) = state.user_at(user, at) else {
        return Effects::new();
    };
    assert!(
        u.devices.remove(&device).is_some(),
        "revoked an unknown device"
    );
    vec![Effect::CloseDevice { user, device }]
}
