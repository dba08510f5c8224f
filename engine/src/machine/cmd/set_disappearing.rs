//! `PATCH /v1/conversations/{id}` `{"disappearing_seconds"}`: either member
//! of a direct conversation, or an admin of a group, sets how long the
//! messages sent from now on stay; the members hear of it, and their homes
//! learn the setting (`GET /v1/conversations` shows it).

use crate::constants::DISAPPEARING_SECONDS_MAX;
use crate::machine::ctx::Ctx;
use crate::machine::effects::{Effect, Effects};
use crate::machine::error::DomainError;
use crate::machine::ids::{ConvId, UserId};
use crate::machine::query::conv::{admin_conv, member_conv};
use crate::machine::records::{ConvKind, Rec};
use crate::machine::state::{Lsn, State};

use super::send::audience;
use super::Decision;

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct SetDisappearing {
    pub conv: ConvId,
    pub by: UserId,
    pub seconds: u64,
}

impl SetDisappearing {
    pub fn decide(self, state: &State, _ctx: &Ctx) -> Result<Decision<()>, DomainError> {
        let c = member_conv(state, self.conv, self.by)?;
        if c.kind == ConvKind::Group {
            admin_conv(state, self.conv, self.by)?;
        }
        assert!(
            self.seconds <= DISAPPEARING_SECONDS_MAX,
            "checked by the front end"
        );
        if c.disappearing_seconds() == self.seconds {
            return Ok(Decision::nothing(()));
        }
        let rec = Rec::DisappearingSet {
            conv: self.conv,
            by: self.by,
            seconds: self.seconds,
        };
        Ok(Decision::write(vec![rec], ()))
    }
}

pub fn apply(state: &mut State, conv: ConvId, seconds: u64, at: Lsn) -> Effects {
    let fanout = state.params.fanout_on_read_members;
    let Some(c) = state.conv_at(conv, at) else {
        return Effects::new();
    };
    c.set_disappearing(seconds);
    let pointers = c
        .members
        .keys()
        .map(|u| (*u, c.pointer(conv, *u, fanout)))
        .collect();
    vec![
        Effect::Announce { pointers },
        Effect::ConvUpdated {
            conv,
            disappearing_seconds: seconds,
            audience: audience(c, fanout),
        },
    ]
}
