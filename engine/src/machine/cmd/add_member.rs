//! `POST /v1/conversations/{id}/members`: an admin adds a member; applying
//! it announces the group to the new member's home (to every member's
//! home when the group crossed the fan-out-on-read size).

use crate::machine::ctx::Ctx;
use crate::machine::effects::Effects;
use crate::machine::error::DomainError;
use crate::machine::ids::{ConvId, UserId};
use crate::machine::query::conv::admin_conv;
use crate::machine::records::{Rec, Role};
use crate::machine::state::{Lsn, Member, State};

use super::create_group::announce;
use super::Decision;

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddMember {
    pub conv: ConvId,
    pub by: UserId,
    pub user: UserId,
}

impl AddMember {
    /// Replies whether the user was added (false: already a member).
    pub fn decide(self, state: &State, _ctx: &Ctx) -> Result<Decision<bool>, DomainError> {
        let max = state.params.group_members_max;
        let c = admin_conv(state, self.conv, self.by)?;
        if c.members.contains_key(&self.user) {
            return Ok(Decision::nothing(false));
        }
        if c.members.len() >= max {
            return Err(DomainError::GroupFull { max });
        }
        let rec = Rec::MemberAdded {
            conv: self.conv,
            user: self.user,
            role: Role::Member,
        };
        Ok(Decision::write(vec![rec], true))
    }
}

pub fn apply(state: &mut State, conv: ConvId, user: UserId, role: Role, at: Lsn) -> Effects {
    let large = state.params.fanout_on_read_members;
    let Some(c) = state.conv_at(conv, at) else {
        return Effects::new();
    };
    let was_large = c.is_large(large);
    let joined = c.last_seq();
    assert!(
        c.members
            .insert(user, Member::new(role, joined, at))
            .is_none(),
        "{user} added twice to {conv}"
    );
    let to: Vec<UserId> = if c.is_large(large) != was_large {
        c.members.keys().copied().collect()
    } else {
        vec![user]
    };
    vec![announce(c, conv, &to, large)]
}
