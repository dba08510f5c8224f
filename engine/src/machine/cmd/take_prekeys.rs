//! `GET /v1/keys/{user_id}`: every device of the user that has keys, each
//! with its front one-time prekey, which the record then consumes: decided
//! one at a time on the user's home (its leader), durable before the
//! answer, so no prekey is handed out twice, whatever the concurrency and
//! across a crash.

use crate::machine::ctx::Ctx;
use crate::machine::effects::Effects;
use crate::machine::error::DomainError;
use crate::machine::ids::{DeviceId, UserId};
use crate::machine::records::{Rec, SignedPrekey};
use crate::machine::state::{Lsn, State};

use super::Decision;

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct TakePrekeys {
    pub user: UserId,
}

/// One device's keys as a fetch hands them out.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Bundle {
    pub device: DeviceId,
    pub identity_key: String,
    pub signed_prekey: SignedPrekey,
    /// `(key_id, public_key)`; `None` once the device ran out.
    pub one_time: Option<(u64, String)>,
}

impl TakePrekeys {
    pub fn decide(self, state: &State, _ctx: &Ctx) -> Result<Decision<Vec<Bundle>>, DomainError> {
        let u = state
            .users
            .get(&self.user)
            .filter(|u| !u.deleted)
            .ok_or(DomainError::NoUser(self.user))?;
        let bundles: Vec<Bundle> = u
            .devices
            .iter()
            .filter_map(|(id, d)| {
                let k = d.keys.as_ref()?;
                Some(Bundle {
                    device: *id,
                    identity_key: k.identity_key.clone(),
                    signed_prekey: k.signed_prekey.clone(),
                    one_time: k.one_time.front().cloned(),
                })
            })
            .collect();
        let taken: Vec<(DeviceId, u64)> = bundles
            .iter()
            .filter_map(|b| Some((b.device, b.one_time.as_ref()?.0)))
            .collect();
        if taken.is_empty() {
            return Ok(Decision::nothing(bundles));
        }
        let rec = Rec::PrekeysTaken {
            user: self.user,
            taken,
        };
        Ok(Decision::write(vec![rec], bundles))
    }
}

pub fn apply(state: &mut State, user: UserId, taken: &[(DeviceId, u64)], at: Lsn) -> Effects {
    let Some(u) = state.user_at(user, at) else {
        return Effects::new();
    };
    for (device, id) in taken {
        let d = u.devices.get_mut(device).expect("a device that has keys");
        let keys = d.keys.as_mut().expect("a device that has keys");
        let front = keys.one_time.pop_front().map(|(front, _)| front);
        assert_eq!(front, Some(*id), "the front prekey is the one handed out");
    }
    Effects::new()
}
