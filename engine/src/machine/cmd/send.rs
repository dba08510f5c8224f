//! `message.send`: sequence a message (gapless seq, dedupe by
//! `client_msg_id`) and store it; applying it fans it out.

use std::sync::Arc;

use crate::machine::ctx::Ctx;
use crate::machine::effects::{Audience, Effect, Effects};
use crate::machine::error::DomainError;
use crate::machine::ids::{ConvId, DeviceId, Millis, Seq, UserId};
use crate::machine::records::{BodyKind, MessageRec, Rec};
use crate::machine::state::{Conv, DedupeKey, Lsn, State};

use super::Decision;

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Send {
    pub conv: ConvId,
    pub sender: UserId,
    pub device: DeviceId,
    pub client_msg_id: String,
    pub body_kind: BodyKind,
    pub body: String,
    pub media: Option<String>,
    pub reply_to: Option<u64>,
}

/// The reply: a new message's place, or the place a resent one already has
/// (its `ts` is read back from the stored message).
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sent {
    New { seq: Seq, ts: Millis },
    Duplicate { seq: Seq },
}

impl Send {
    pub fn decide(self, state: &State, ctx: &Ctx) -> Result<Decision<Sent>, DomainError> {
        let c = state
            .convs
            .get(&self.conv)
            .filter(|c| c.members.contains_key(&self.sender))
            .ok_or(DomainError::NotMember(self.conv))?;
        let key = DedupeKey::new(self.sender, self.device, &self.client_msg_id);
        if let Some(seq) = c.dedupe.get(&key) {
            return Ok(Decision::nothing(Sent::Duplicate { seq }));
        }
        if let Some(r) = self.reply_to {
            if r == 0 || r > c.last_seq().0 {
                return Err(DomainError::BadReplyTo {
                    conv: self.conv,
                    reply_to: r,
                });
            }
        }
        let seq = c.last_seq().next();
        let ts = ctx.now.max(c.last_ts);
        let m = MessageRec {
            conv: self.conv,
            seq,
            sender: self.sender,
            device: self.device,
            client_msg_id: self.client_msg_id,
            ts,
            body_kind: self.body_kind,
            body: self.body,
            media: self.media,
            reply_to: self.reply_to,
        };
        Ok(Decision::write(
            vec![Rec::Message(m)],
            Sent::New { seq, ts },
        ))
    }
}

pub fn apply(state: &mut State, m: &MessageRec, at: Lsn) -> Effects {
    let fanout = state.params.fanout_on_read_members;
    let Some(c) = state.conv_at(m.conv, at) else {
        return Effects::new();
    };
    assert_eq!(
        m.seq,
        c.last_seq().next(),
        "seq of {} must follow {}",
        m.conv,
        c.last_seq().0
    );
    c.index.push(at.0);
    c.senders.push(m.seq, m.sender);
    if let Some(member) = c.members.get_mut(&m.sender) {
        member.last_sent = m.seq;
    }
    c.last_ts = m.ts;
    let key = DedupeKey::new(m.sender, m.device, &m.client_msg_id);
    c.dedupe.remember(key, m.seq);
    let audience = audience(c, fanout);
    vec![Effect::Deliver {
        message: Arc::new(m.clone()),
        audience,
    }]
}

/// Who hears of what happens in `c`: its members through their homes, or
/// (a large group) whoever is online.
pub fn audience(c: &Conv, fanout_on_read_members: usize) -> Audience {
    if c.is_large(fanout_on_read_members) {
        Audience::Online
    } else {
        Audience::Members(c.members.keys().copied().collect())
    }
}
