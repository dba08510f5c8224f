//! `PUT /v1/keys`: a device uploads its identity key (once), a signed
//! prekey (replacing the stored one) and one-time prekeys (added).

use crate::constants::{PREKEYS_PER_PUT_MAX, PREKEYS_STORED_MAX};
use crate::machine::ctx::Ctx;
use crate::machine::effects::Effects;
use crate::machine::error::DomainError;
use crate::machine::ids::{DeviceId, UserId};
use crate::machine::records::{Rec, SignedPrekey};
use crate::machine::state::{DeviceKeys, Lsn, State};

use super::Decision;

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct PutKeys {
    pub user: UserId,
    pub device: DeviceId,
    pub identity_key: String,
    pub signed_prekey: Option<SignedPrekey>,
    pub one_time: Vec<(u64, String)>,
}

impl PutKeys {
    pub fn decide(self, state: &State, _ctx: &Ctx) -> Result<Decision<()>, DomainError> {
        let u = state
            .users
            .get(&self.user)
            .ok_or(DomainError::NoUser(self.user))?;
        let d = u
            .devices
            .get(&self.device)
            .ok_or(DomainError::NoDevice(self.device))?;
        let conflict = |why: String| Err(DomainError::KeyConflict(why));
        match &d.keys {
            Some(k) if k.identity_key != self.identity_key => {
                return conflict("this device has another identity_key".into())
            }
            None if self.signed_prekey.is_none() => {
                let why = "the first upload of a device needs a signed_prekey";
                return Err(DomainError::BadKeys(why.into()));
            }
            _ => {}
        }
        if self.one_time.len() > PREKEYS_PER_PUT_MAX {
            let why = format!("at most {PREKEYS_PER_PUT_MAX} one_time_prekeys per upload");
            return Err(DomainError::BadKeys(why));
        }
        let mut ids = std::collections::BTreeSet::new();
        for (id, _) in &self.one_time {
            let used = d.keys.as_ref().is_some_and(|k| k.used_ids.contains(id));
            if used || !ids.insert(*id) {
                return conflict(format!("key_id {id} was uploaded before"));
            }
        }
        let stored = d.keys.as_ref().map_or(0, |k| k.one_time.len());
        if stored + self.one_time.len() > PREKEYS_STORED_MAX {
            return conflict(format!(
                "at most {PREKEYS_STORED_MAX} one-time prekeys stored per device ({stored} are)"
            ));
        }
        let rec = Rec::KeysPut {
            user: self.user,
            device: self.device,
            identity_key: self.identity_key,
            signed_prekey: self.signed_prekey,
            one_time: self.one_time,
        };
        Ok(Decision::write(vec![rec], ()))
    }
}

/// A `KeysPut` record, as `apply` hands it over.
pub struct Putting<'a> {
    pub user: UserId,
    pub device: DeviceId,
    pub identity_key: &'a str,
    pub signed_prekey: &'a Option<SignedPrekey>,
    pub one_time: &'a [(u64, String)],
}

pub fn apply(state: &mut State, p: Putting<'_>, at: Lsn) -> Effects {
    let Some(u) = state.user_at(p.user, at) else {
        return Effects::new();
    };
    let d = u
        .devices
        .get_mut(&p.device)
        .expect("keys of a linked device");
    let keys = match d.keys.take() {
        Some(mut k) => {
            assert_eq!(
                k.identity_key, p.identity_key,
                "an identity key never changes"
            );
            if let Some(s) = p.signed_prekey {
                k.signed_prekey = s.clone();
            }
            k
        }
        None => DeviceKeys {
            identity_key: p.identity_key.to_string(),
            signed_prekey: p
                .signed_prekey
                .clone()
                .expect("a first upload has a signed prekey"),
            one_time: Default::default(),
            used_ids: Default::default(),
        },
    };
    let keys = d.keys.insert(keys);
    for (id, key) in p.one_time {
        assert!(keys.used_ids.insert(*id), "a key id is uploaded once");
        keys.one_time.push_back((*id, key.clone()));
    }
    assert!(keys.one_time.len() <= PREKEYS_STORED_MAX);
    Effects::new()
}
