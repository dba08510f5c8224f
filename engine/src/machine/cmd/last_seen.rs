//! The user's last device went offline: record when (for `last_seen`);
//! applying it tells the presence watchers.

use crate::machine::ctx::Ctx;
use crate::machine::effects::{Effect, Effects};
use crate::machine::error::DomainError;
use crate::machine::ids::{Millis, UserId};
use crate::machine::records::Rec;
use crate::machine::state::{Lsn, State};

use super::Decision;

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct LastSeen {
    pub user: UserId,
}

impl LastSeen {
    /// Nothing for an account that is gone.
    pub fn decide(self, state: &State, ctx: &Ctx) -> Result<Decision<()>, DomainError> {
        if !state.users.contains_key(&self.user) {
            return Ok(Decision::nothing(()));
        }
        let rec = Rec::LastSeen {
            user: self.user,
            ts: ctx.now,
        };
        Ok(Decision::write(vec![rec], ()))
    }
}

pub fn apply(state: &mut State, user: UserId, ts: Millis, at: Lsn) -> Effects {
    let Some(u) = state.user_at(user, at) else {
        return Effects::new();
    };
    u.last_seen = ts;
    vec![Effect::WentOffline { user, at: ts }]
}
