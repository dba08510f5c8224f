//! `message.ack` / `message.read` on the user's home: a device's cursor
//! moves forward; applying it tells the conversation's home when the
//! user's own position moved.

use crate::machine::ctx::Ctx;
use crate::machine::effects::{Effect, Effects};
use crate::machine::error::DomainError;
use crate::machine::ids::{ConvId, DeviceId, Seq, UserId};
use crate::machine::records::{Mark, Rec};
use crate::machine::state::{Cursors, Lsn, State};

use super::Decision;

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub user: UserId,
    pub device: DeviceId,
    pub conv: ConvId,
    pub mark: Mark,
    pub seq: Seq,
    /// From the user's pointer to the conversation: its last seq (a cursor
    /// never passes what exists) and the seq before the user joined.
    pub last: Seq,
    pub joined: Seq,
}

impl Cursor {
    pub fn decide(self, state: &State, _ctx: &Ctx) -> Result<Decision<()>, DomainError> {
        let u = state
            .users
            .get(&self.user)
            .ok_or(DomainError::AccountGone)?;
        let d = u
            .devices
            .get(&self.device)
            .ok_or(DomainError::DeviceRevoked)?;
        let seq = self.seq.min(self.last);
        let current = d.cursors.get(&self.conv).copied().unwrap_or(Cursors {
            delivered: self.joined,
            read: self.joined,
            pushed: self.joined,
        });
        if seq <= current.get(self.mark) {
            return Ok(Decision::nothing(()));
        }
        let rec = Rec::Cursor {
            user: self.user,
            device: self.device,
            conv: self.conv,
            mark: self.mark,
            seq,
        };
        Ok(Decision::write(vec![rec], ()))
    }
}

pub fn apply(
    state: &mut State,
    (user, device, conv, mark, seq): (UserId, DeviceId, ConvId, Mark, Seq),
    at: Lsn,
) -> Effects {
    let Some(u) = state.user_at(user, at) else {
        return Effects::new();
    };
    let level = u.level(conv, mark);
    let d = u
        .devices
        .get_mut(&device)
        .expect("a cursor of a known device");
    d.cursors.entry(conv).or_default().advance(mark, seq);
    if seq <= level {
        return Effects::new();
    }
    // A read implies delivery; with read receipts off it is reported as a
    // delivery only.
    let mark = if mark == Mark::Read && !u.read_receipts {
        Mark::Delivered
    } else {
        mark
    };
    vec![Effect::MemberMoved {
        conv,
        user,
        mark,
        seq,
    }]
}
