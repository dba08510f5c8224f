//! `message.edit`: the sender gives a message a new body, within the edit
//! window and at most `EDITS_PER_MESSAGE_MAX` times; a resent edit (the
//! body it already has) is answered again and stores nothing. Applying it
//! tells every member's devices.

use std::sync::Arc;

use crate::constants::EDITS_PER_MESSAGE_MAX;
use crate::machine::ctx::Ctx;
use crate::machine::effects::{Change, Effect, Effects};
use crate::machine::error::DomainError;
use crate::machine::ids::{ConvId, DeviceId, Millis, Seq, UserId};
use crate::machine::records::{BodyKind, Rec};
use crate::machine::state::{body_hash, Conv, Lsn, State};

use super::send::audience;
use super::Decision;

/// The stored message a change names, as the shell read it from the log
/// (a message's record never changes, so any replica reads the same).
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    pub sender: UserId,
    pub ts: Millis,
}

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Edit {
    pub conv: ConvId,
    pub seq: Seq,
    pub by: UserId,
    pub device: DeviceId,
    pub body_kind: BodyKind,
    pub body: String,
    pub target: Target,
}

/// The reply: the time the message's current body was set.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Edited {
    pub edited_ts: Millis,
}

/// The conversation, if `by` is a member and `seq` one of its messages.
pub fn changeable(state: &State, conv: ConvId, seq: Seq, by: UserId) -> Result<&Conv, DomainError> {
    let c = state
        .convs
        .get(&conv)
        .filter(|c| c.members.contains_key(&by))
        .ok_or(DomainError::NotMember(conv))?;
    if seq.0 == 0 || seq > c.last_seq() {
        return Err(DomainError::NoMessage { conv, seq });
    }
    Ok(c)
}

impl Edit {
    pub fn decide(self, state: &State, ctx: &Ctx) -> Result<Decision<Edited>, DomainError> {
        let c = changeable(state, self.conv, self.seq, self.by)?;
        if self.target.sender != self.by {
            return Err(DomainError::NotAuthor);
        }
        let changed = c.changes.get(&self.seq).copied().unwrap_or_default();
        if changed.deleted {
            return Err(DomainError::MessageDeleted);
        }
        let hash = body_hash(&self.body);
        if changed.edits > 0 && changed.body_hash == hash {
            let edited_ts = changed.edited_ts;
            return Ok(Decision::nothing(Edited { edited_ts }));
        }
        let window = state.params.edit_window_seconds;
        if ctx.now > self.target.ts.plus_seconds(window) {
            return Err(DomainError::EditWindowPassed { seconds: window });
        }
        if changed.edits >= EDITS_PER_MESSAGE_MAX {
            let max = EDITS_PER_MESSAGE_MAX;
            return Err(DomainError::TooManyEdits { max });
        }
        // Edit times never go back, so the latest edit is the latest body.
        let ts = ctx.now.max(changed.edited_ts);
        let rec = Rec::MessageEdited {
            conv: self.conv,
            seq: self.seq,
            by: self.by,
            device: self.device,
            ts,
            body_kind: self.body_kind,
            body: self.body,
        };
        Ok(Decision::write(vec![rec], Edited { edited_ts: ts }))
    }
}

/// A `MessageEdited` record, as `apply` hands it over.
pub struct Editing<'a> {
    pub conv: ConvId,
    pub seq: Seq,
    pub by: (UserId, DeviceId),
    pub ts: Millis,
    pub body_kind: BodyKind,
    pub body: &'a str,
}

pub fn apply(state: &mut State, e: Editing<'_>, at: Lsn) -> Effects {
    let fanout = state.params.fanout_on_read_members;
    let Some(c) = state.conv_at(e.conv, at) else {
        return Effects::new();
    };
    let last = c.last_seq().0;
    assert!(
        e.seq.0 >= 1 && e.seq.0 <= last,
        "an edit of a stored message"
    );
    let changed = c.changes.entry(e.seq).or_default();
    assert!(!changed.deleted, "an edit of a deleted message");
    assert!(
        changed.edits < EDITS_PER_MESSAGE_MAX,
        "edits over the bound"
    );
    changed.edits += 1;
    changed.edited_ts = e.ts;
    changed.body_at = at.0;
    changed.body_hash = body_hash(e.body);
    changed.at_last_seq = last;
    let audience = audience(c, fanout);
    vec![Effect::Changed {
        conv: e.conv,
        seq: e.seq,
        by: e.by,
        change: Change::Edited {
            body_kind: e.body_kind,
            body: Arc::from(e.body),
            ts: e.ts,
        },
        audience,
    }]
}
