//! Who got and who read one message (the receipts call).

use crate::machine::error::DomainError;
use crate::machine::ids::{ConvId, Millis, Seq, UserId};
use crate::machine::query::conv::member_conv;
use crate::machine::state::{Member, State, Watermark};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Receipts {
    pub delivered: Vec<(UserId, Millis)>,
    pub read: Vec<(UserId, Millis)>,
}

/// Checks that `user` may ask about message `seq` of `conv`; answers who
/// sent it when that is still in memory (else the shell reads the message).
pub fn check(
    state: &State,
    conv: ConvId,
    user: UserId,
    seq: Seq,
) -> Result<Option<UserId>, DomainError> {
    let c = member_conv(state, conv, user)?;
    if seq.0 == 0 || seq > c.last_seq() {
        return Err(DomainError::NoMessage { conv, seq });
    }
    Ok(c.senders.get(seq))
}

/// The members other than `sender` whose watermarks passed `seq`, with
/// when (as far as remembered).
pub fn receipts(state: &State, conv: ConvId, seq: Seq, sender: UserId) -> Receipts {
    let Some(c) = state.convs.get(&conv) else {
        return Receipts::default();
    };
    let list = |pick: fn(&Member) -> &Watermark| -> Vec<(UserId, Millis)> {
        c.members
            .iter()
            .filter(|(u, _)| **u != sender)
            .filter_map(|(u, m)| pick(m).reached(seq).map(|ts| (*u, ts)))
            .collect()
    };
    Receipts {
        delivered: list(|m| &m.delivered),
        read: list(|m| &m.read),
    }
}
