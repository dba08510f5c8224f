//! `PATCH /v1/conversations/{id}/members/{user}`: an admin changes a
//! member's role; a group keeps at least one admin.

use crate::machine::ctx::Ctx;
use crate::machine::effects::Effects;
use crate::machine::error::DomainError;
use crate::machine::ids::{ConvId, UserId};
use crate::machine::query::conv::admin_conv;
use crate::machine::records::{Rec, Role};
use crate::machine::state::{Lsn, State};

use super::Decision;

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct SetRole {
    pub conv: ConvId,
    pub by: UserId,
    pub user: UserId,
    pub role: Role,
}

impl SetRole {
    pub fn decide(self, state: &State, _ctx: &Ctx) -> Result<Decision<()>, DomainError> {
        let c = admin_conv(state, self.conv, self.by)?;
        let m = c
            .members
            .get(&self.user)
            .ok_or(DomainError::NotAMember(self.user))?;
        if m.role == self.role {
            return Ok(Decision::nothing(()));
        }
        if self.role == Role::Member && m.role == Role::Admin && c.admins() == 1 {
            return Err(DomainError::LastAdmin);
        }
        let rec = Rec::RoleSet {
            conv: self.conv,
            user: self.user,
            role: self.role,
        };
        Ok(Decision::write(vec![rec], ()))
    }
}

pub fn apply(state: &mut State, conv: ConvId, user: UserId, role: Role, at: Lsn) -> Effects {
    let Some(c) = state.conv_at(conv, at) else {
        return Effects::new();
    };
    c.members.get_mut(&user).expect("a member").role = role;
    Effects::new()
}
