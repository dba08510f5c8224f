//! `PATCH /v1/me`: name, last-seen privacy, read receipts.

use crate::machine::ctx::Ctx;
use crate::machine::effects::Effects;
use crate::machine::error::DomainError;
use crate::machine::ids::UserId;
use crate::machine::records::{Privacy, Rec};
use crate::machine::state::{Lsn, State};

use super::Decision;

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct PatchMe {
    pub user: UserId,
    pub name: Option<String>,
    pub privacy: Option<Privacy>,
    pub read_receipts: Option<bool>,
}

impl PatchMe {
    pub fn decide(self, state: &State, _ctx: &Ctx) -> Result<Decision<()>, DomainError> {
        if !state.users.contains_key(&self.user) {
            return Err(DomainError::UserGone);
        }
        let rec = Rec::ProfileSet {
            user: self.user,
            name: self.name,
            privacy: self.privacy,
            read_receipts: self.read_receipts,
        };
        Ok(Decision::write(vec![rec], ()))
    }
}

pub fn apply(
    state: &mut State,
    user: UserId,
    (name, privacy, read_receipts): (&Option<String>, Option<Privacy>, Option<bool>),
    at: Lsn,
) -> Effects {
    let Some(u) = state.user_at(user, at) else {
        return Effects::new();
    };
    if let Some(name) = name {
        u.name = name.clone();
    }
    if let Some(p) = privacy {
        u.privacy = p;
    }
    if let Some(r) = read_receipts {
        u.read_receipts = r;
    }
    Effects::new()
}
