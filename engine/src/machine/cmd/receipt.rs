//! A member's delivered or read watermark moves (sent by the member's home
//! when one of its devices acked or read); applying it tells the direct
//! peer, or queues a group `message.status`.

use crate::constants::RECEIPT_SCAN_MESSAGES_MAX;
use crate::machine::ctx::Ctx;
use crate::machine::effects::{Effect, Effects};
use crate::machine::error::DomainError;
use crate::machine::ids::{ConvId, Millis, Seq, UserId};
use crate::machine::query::conv::member_conv;
use crate::machine::records::{ConvKind, Mark, Rec};
use crate::machine::state::{Conv, Lsn, State};

use super::Decision;

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Receipt {
    pub conv: ConvId,
    pub user: UserId,
    pub mark: Mark,
    pub seq: Seq,
}

impl Receipt {
    pub fn decide(self, state: &State, ctx: &Ctx) -> Result<Decision<()>, DomainError> {
        let c = member_conv(state, self.conv, self.user)?;
        let m = &c.members[&self.user];
        let current = match self.mark {
            Mark::Delivered => m.delivered.seq(),
            Mark::Read => m.read.seq(),
        };
        let seq = self.seq.min(c.last_seq());
        if seq <= current {
            return Ok(Decision::nothing(()));
        }
        let rec = Rec::Receipt {
            conv: self.conv,
            user: self.user,
            mark: self.mark,
            seq,
            ts: ctx.now,
        };
        Ok(Decision::write(vec![rec], ()))
    }
}

pub fn apply(
    state: &mut State,
    (conv, user, mark, seq, ts): (ConvId, UserId, Mark, Seq, Millis),
    at: Lsn,
) -> Effects {
    let Some(c) = state.conv_at(conv, at) else {
        return Effects::new();
    };
    // A member removed since keeps no watermark.
    let Some(m) = c.members.get_mut(&user) else {
        return Effects::new();
    };
    let before = match mark {
        Mark::Delivered => m.delivered.seq(),
        Mark::Read => m.read.seq(),
    };
    match mark {
        Mark::Delivered => m.delivered.advance(seq, ts),
        Mark::Read => {
            m.read.advance(seq, ts);
            m.delivered.advance(seq, ts);
        }
    }
    if seq <= before {
        return Effects::new();
    }
    match c.kind {
        ConvKind::Direct => peer_latest(c, user, before, seq)
            .map(|(to, seq)| Effect::ReceiptToPeer {
                to,
                conv,
                seq,
                by: user,
                mark,
            })
            .into_iter()
            .collect(),
        ConvKind::Group => vec![Effect::GroupStatus { conv, seq }],
    }
}

/// In a direct conversation: the other member, and its latest message in
/// `(after, upto]` (looking back at most `RECEIPT_SCAN_MESSAGES_MAX`).
fn peer_latest(c: &Conv, user: UserId, after: Seq, upto: Seq) -> Option<(UserId, Seq)> {
    let peer = *c.members.keys().find(|u| **u != user)?;
    let floor = after
        .0
        .max(upto.0.saturating_sub(RECEIPT_SCAN_MESSAGES_MAX));
    let seq = (floor + 1..=upto.0)
        .rev()
        .find(|s| c.senders.get(Seq(*s)) == Some(peer))?;
    Some((peer, Seq(seq)))
}
