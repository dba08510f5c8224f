//! `DELETE /v1/conversations/{id}/members/{user}`: an admin removes a
//! member, or a member leaves. The last admin leaving hands the role to
//! the longest-standing member.

use crate::machine::ctx::Ctx;
use crate::machine::effects::{Effect, Effects};
use crate::machine::error::DomainError;
use crate::machine::ids::{ConvId, UserId};
use crate::machine::query::conv::member_conv;
use crate::machine::records::{ConvKind, Rec, Role};
use crate::machine::state::{Lsn, State};

use super::create_group::announce;
use super::Decision;

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemoveMember {
    pub conv: ConvId,
    pub by: UserId,
    pub user: UserId,
}

impl RemoveMember {
    pub fn decide(self, state: &State, _ctx: &Ctx) -> Result<Decision<()>, DomainError> {
        let c = member_conv(state, self.conv, self.by)?;
        if c.kind == ConvKind::Direct {
            return Err(DomainError::CannotLeaveDirect);
        }
        if self.by != self.user && c.members[&self.by].role != Role::Admin {
            return Err(DomainError::AdminsOnly);
        }
        let m = c
            .members
            .get(&self.user)
            .ok_or(DomainError::NotAMember(self.user))?;
        let mut recs = vec![Rec::MemberRemoved {
            conv: self.conv,
            user: self.user,
        }];
        if m.role == Role::Admin && c.admins() == 1 {
            let heir = c
                .members
                .iter()
                .filter(|(u, _)| **u != self.user)
                .min_by_key(|(u, m)| (m.since, **u));
            if let Some((heir, _)) = heir {
                recs.push(Rec::RoleSet {
                    conv: self.conv,
                    user: *heir,
                    role: Role::Admin,
                });
            }
        }
        Ok(Decision::write(recs, ()))
    }
}

pub fn apply(state: &mut State, conv: ConvId, user: UserId, at: Lsn) -> Effects {
    let large = state.params.fanout_on_read_members;
    let Some(c) = state.conv_at(conv, at) else {
        return Effects::new();
    };
    let was_large = c.is_large(large);
    assert!(c.members.remove(&user).is_some(), "removed a non-member");
    let mut effects = vec![Effect::Left { conv, user }];
    if c.is_large(large) != was_large {
        let members: Vec<UserId> = c.members.keys().copied().collect();
        effects.push(announce(c, conv, &members, large));
    }
    effects
}
