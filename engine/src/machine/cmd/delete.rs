//! `message.delete`: the sender, or an admin of a group, deletes a
//! message; deleting it again is answered again and stores nothing.
//! Applying it tells every member's devices.

use crate::machine::ctx::Ctx;
use crate::machine::effects::{Change, Effect, Effects};
use crate::machine::error::DomainError;
use crate::machine::ids::{ConvId, DeviceId, Millis, Seq, UserId};
use crate::machine::records::{ConvKind, Rec, Role};
use crate::machine::state::{Lsn, State};

use super::edit::{changeable, Target};
use super::send::audience;
use super::Decision;

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delete {
    pub conv: ConvId,
    pub seq: Seq,
    pub by: UserId,
    pub device: DeviceId,
    pub target: Target,
}

impl Delete {
    pub fn decide(self, state: &State, ctx: &Ctx) -> Result<Decision<()>, DomainError> {
        let c = changeable(state, self.conv, self.seq, self.by)?;
        let admin = c.kind == ConvKind::Group && c.members[&self.by].role == Role::Admin;
        if self.target.sender != self.by && !admin {
            return Err(DomainError::NotAuthor);
        }
        if c.changes.get(&self.seq).is_some_and(|ch| ch.deleted) {
            return Ok(Decision::nothing(()));
        }
        let rec = Rec::MessageDeleted {
            conv: self.conv,
            seq: self.seq,
            by: self.by,
            device: self.device,
            ts: ctx.now,
        };
        Ok(Decision::write(vec![rec], ()))
    }
}

pub fn apply(
    state: &mut State,
    (conv, seq, by, _ts): (ConvId, Seq, (UserId, DeviceId), Millis),
    at: Lsn,
) -> Effects {
    let fanout = state.params.fanout_on_read_members;
    let Some(c) = state.conv_at(conv, at) else {
        return Effects::new();
    };
    let last = c.last_seq().0;
    assert!(seq.0 >= 1 && seq.0 <= last, "a delete of a stored message");
    let changed = c.changes.entry(seq).or_default();
    assert!(!changed.deleted, "a message is deleted once");
    changed.deleted = true;
    changed.at_last_seq = last;
    let audience = audience(c, fanout);
    vec![Effect::Changed {
        conv,
        seq,
        by,
        change: Change::Deleted,
        audience,
    }]
}
