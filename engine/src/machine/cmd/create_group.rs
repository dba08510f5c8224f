//! `POST /v1/conversations` kind group: a new group on the creator's
//! shard, the creator its admin. Applying any `ConvCreated` announces the
//! members to their homes.

use std::collections::BTreeSet;

use crate::machine::ctx::Ctx;
use crate::machine::effects::{Effect, Effects};
use crate::machine::error::DomainError;
use crate::machine::ids::{mint, ConvId, Millis, Seq, UserId};
use crate::machine::records::{ConvKind, Rec, Role};
use crate::machine::state::{covered, Conv, Lsn, Member, State};

use super::create_direct::Created;
use super::Decision;

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct CreateGroup {
    pub creator: UserId,
    pub name: String,
    pub members: Vec<UserId>,
}

impl CreateGroup {
    pub fn decide(self, state: &State, ctx: &Ctx) -> Result<Decision<Created>, DomainError> {
        let max = state.params.group_members_max;
        let mut set: BTreeSet<UserId> = self.members.into_iter().collect();
        set.remove(&self.creator);
        if set.len() + 1 > max {
            return Err(DomainError::GroupFull { max });
        }
        let conv = ConvId(mint(state.meta.groups_minted + 1, ctx.shard, ctx.shards));
        let mut members = vec![(self.creator, Role::Admin)];
        members.extend(set.iter().map(|u| (*u, Role::Member)));
        let rec = Rec::ConvCreated {
            conv,
            kind: ConvKind::Group,
            name: self.name,
            members,
            ts: ctx.now,
        };
        let reply = Created {
            conv,
            created: true,
        };
        Ok(Decision::write(vec![rec], reply))
    }
}

/// The fields of `Rec::ConvCreated`.
pub struct Creating<'a> {
    pub conv: ConvId,
    pub kind: ConvKind,
    pub name: &'a str,
    pub members: &'a [(UserId, Role)],
    pub ts: Millis,
}

pub fn apply(state: &mut State, c: Creating<'_>, at: Lsn) -> Effects {
    let floor = state.replay_floor;
    if c.kind == ConvKind::Group && !covered(floor, state.meta.lsn, at) {
        state.meta.groups_minted += 1;
        state.meta.lsn = at;
    }
    if let Some(existing) = state.convs.get(&c.conv) {
        assert!(
            covered(floor, existing.lsn, at),
            "conversation {} created twice",
            c.conv
        );
        return Effects::new();
    }
    let mut conv = Conv::new(c.kind, c.name.to_string(), c.ts, at);
    for (user, role) in c.members {
        conv.members.insert(*user, Member::new(*role, Seq(0), at));
    }
    let users: Vec<UserId> = conv.members.keys().copied().collect();
    let effect = announce(&conv, c.conv, &users, state.params.fanout_on_read_members);
    state.convs.insert(c.conv, conv);
    vec![effect]
}

/// What each of `users`' homes should now know of `conv`.
pub fn announce(c: &Conv, conv: ConvId, users: &[UserId], fanout_on_read_members: usize) -> Effect {
    let pointers = users
        .iter()
        .filter(|u| c.members.contains_key(u))
        .map(|u| (*u, c.pointer(conv, *u, fanout_on_read_members)))
        .collect();
    Effect::Announce { pointers }
}
