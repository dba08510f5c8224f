//! `DELETE /v1/me`, in two steps the shell runs in order: on each of the
//! user's conversations `EraseSender` (it leaves a group, and its
//! messages there show deleted), then on the user's home `DeleteAccount`
//! (devices with their keys and tokens, uploads, phone and name gone).
//! Both are idempotent, and the account goes last, so a crash in between
//! leaves a user who can simply ask again.

use crate::machine::ctx::Ctx;
use crate::machine::effects::{Effect, Effects};
use crate::machine::error::DomainError;
use crate::machine::ids::{ConvId, UserId};
use crate::machine::records::{ConvKind, Rec};
use crate::machine::state::{Lsn, State};

use super::remove_member::RemoveMember;
use super::Decision;

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct EraseSender {
    pub conv: ConvId,
    pub user: UserId,
}

impl EraseSender {
    pub fn decide(self, state: &State, ctx: &Ctx) -> Result<Decision<()>, DomainError> {
        let Some(c) = state.convs.get(&self.conv) else {
            return Ok(Decision::nothing(()));
        };
        if c.erased.contains(&self.user) {
            return Ok(Decision::nothing(()));
        }
        let mut recs = Vec::new();
        if c.kind == ConvKind::Group && c.members.contains_key(&self.user) {
            let leave = RemoveMember {
                conv: self.conv,
                by: self.user,
                user: self.user,
            };
            recs = leave.decide(state, ctx)?.recs;
        }
        recs.push(Rec::SenderErased {
            conv: self.conv,
            user: self.user,
        });
        Ok(Decision::write(recs, ()))
    }
}

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeleteAccount {
    pub user: UserId,
}

impl DeleteAccount {
    pub fn decide(self, state: &State, _ctx: &Ctx) -> Result<Decision<()>, DomainError> {
        match state.users.get(&self.user) {
            Some(u) if !u.deleted => {
                let rec = Rec::UserDeleted { user: self.user };
                Ok(Decision::write(vec![rec], ()))
            }
            _ => Err(DomainError::AccountGone),
        }
    }
}

pub fn apply(state: &mut State, user: UserId, at: Lsn) -> Effects {
    let Some(u) = state.user_at(user, at) else {
        return Effects::new();
    };
    assert!(!u.deleted, "an account is deleted once");
    let phone = std::mem::take(&mut u.phone);
    u.name.clear();
    u.deleted = true;
    u.media.clear();
    let devices = std::mem::take(&mut u.devices);
    // Empty: its creation record was erased (`query/erasure.rs`).
    if !phone.is_empty() {
        let removed = state.phones.remove(&phone);
        assert_eq!(removed, Some(user), "a live account holds its phone");
    }
    devices
        .into_keys()
        .map(|device| Effect::CloseDevice { user, device })
        .collect()
}

pub fn apply_erased(state: &mut State, conv: ConvId, user: UserId, at: Lsn) -> Effects {
    let Some(c) = state.conv_at(conv, at) else {
        return Effects::new();
    };
    assert!(c.erased.insert(user), "a sender is erased once");
    Effects::new()
}
