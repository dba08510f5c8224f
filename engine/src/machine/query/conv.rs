//! Conversations as members see them: the membership rules that both
//! commands and reads check, and the typed view of a conversation.

use crate::machine::error::DomainError;
use crate::machine::ids::{ConvId, Seq, UserId};
use crate::machine::records::{ConvKind, Role};
use crate::machine::state::{Conv, State};

/// The conversation, if `user` is in it (else `NoConversation`: existence
/// is not revealed to outsiders).
pub fn member_conv(state: &State, conv: ConvId, user: UserId) -> Result<&Conv, DomainError> {
    let c = state
        .convs
        .get(&conv)
        .ok_or(DomainError::NoConversation(conv))?;
    if !c.members.contains_key(&user) {
        return Err(DomainError::NoConversation(conv));
    }
    Ok(c)
}

/// The group, if `by` is one of its admins.
pub fn admin_conv(state: &State, conv: ConvId, by: UserId) -> Result<&Conv, DomainError> {
    let c = member_conv(state, conv, by)?;
    if c.kind == ConvKind::Direct {
        return Err(DomainError::DirectHasNoAdmins);
    }
    if c.members[&by].role != Role::Admin {
        return Err(DomainError::AdminsOnly);
    }
    Ok(c)
}

/// What `POST /v1/conversations` shows of a conversation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConvView {
    pub conv: ConvId,
    pub kind: ConvKind,
    pub name: String,
    pub members: Vec<(UserId, Role)>,
}

pub fn view(state: &State, conv: ConvId) -> Option<ConvView> {
    let c = state.convs.get(&conv)?;
    Some(ConvView {
        conv,
        kind: c.kind,
        name: c.name.clone(),
        members: c.members.iter().map(|(u, m)| (*u, m.role)).collect(),
    })
}

/// The other members of `conv`, for `user` who must be one (typing).
pub fn others(state: &State, conv: ConvId, user: UserId) -> Result<Vec<UserId>, DomainError> {
    let c = state
        .convs
        .get(&conv)
        .filter(|c| c.members.contains_key(&user))
        .ok_or(DomainError::NotMember(conv))?;
    Ok(c.members.keys().filter(|u| **u != user).copied().collect())
}

/// Messages after `after` a syncing device of `user` should get: the
/// range `lo..=hi` (at most `limit`), and the conversation's last seq.
/// `None` when the user is not a member (nothing to send).
pub fn fetch_range(
    state: &State,
    conv: ConvId,
    user: UserId,
    after: Seq,
    limit: usize,
) -> Option<(u64, u64, Seq)> {
    let c = member_conv(state, conv, user).ok()?;
    let lo = (after.0 + 1).max(c.members[&user].joined.0 + 1);
    let last = c.last_seq();
    Some((lo, last.0.min(lo + limit as u64 - 1), last))
}

/// The messages of `conv` up to `acked` (and after `from`) that changed
/// since a device of `user` acked `acked`: edited or deleted when the
/// conversation's last seq was `acked` or more. At most `limit`, ascending;
/// `None` when `user` is not a member.
pub fn missed_changes(
    state: &State,
    conv: ConvId,
    user: UserId,
    (acked, from): (Seq, Seq),
    limit: usize,
) -> Option<Vec<Seq>> {
    let c = member_conv(state, conv, user).ok()?;
    let lo = Seq(from.0.max(c.members[&user].joined.0) + 1);
    if lo > acked {
        return Some(Vec::new());
    }
    let changed = c.changes.range(lo..=acked);
    let missed = changed.filter(|(_, ch)| ch.at_last_seq >= acked.0);
    Some(missed.map(|(seq, _)| *seq).take(limit).collect())
}
