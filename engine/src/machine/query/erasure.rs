//! What the erasure compaction may remove from a stored record: the body
//! (and media) of a message that is deleted, has vanished (disappearing)
//! or whose sender's account is gone, the original body of an edited
//! message, and every edit body but the latest (all of them once the
//! message is gone); on a deleted account's home, its phone, its names
//! and its devices' names and push tokens. A record the rule leaves alone
//! answers `None`.
//!
//! Lives on: the conversation's home shard (a pure function of the state).
//!
//! The state decides: whatever it says is gone stays gone (deletes,
//! expiry, erasure and later edits are never undone), so erasing the
//! bytes never changes what any reader is shown, and replaying an erased
//! record yields the same state (apply keeps no body).

use crate::machine::ids::{Millis, UserId};
use crate::machine::records::{MessageRec, Rec};
use crate::machine::state::{Conv, State};

/// The record as erasure leaves it, when that differs; `at` is its offset.
pub fn erased(state: &State, rec: &Rec, at: u64, now: Millis) -> Option<Rec> {
    match rec {
        Rec::Message(m) => {
            let c = state.convs.get(&m.conv)?;
            let changed = c.changes.get(&m.seq);
            if gone(c, m, now) {
                let keep = m.body.is_empty() && m.media.is_none();
                return (!keep).then(|| Rec::Message(stripped(m, None)));
            }
            let edited = changed.is_some_and(|ch| ch.edits > 0);
            (edited && !m.body.is_empty()).then(|| Rec::Message(stripped(m, m.media.clone())))
        }
        Rec::MessageEdited {
            conv,
            seq,
            by,
            device,
            ts,
            body_kind,
            body,
        } => {
            let c = state.convs.get(conv)?;
            let ch = c.changes.get(seq)?;
            // An edit is later than its message: once its own ts is past
            // the message's lifetime, the message surely vanished.
            let expired = c.expires(*seq, *ts).is_some_and(|t| now >= t);
            let gone = ch.deleted || c.erased.contains(by) || expired || ch.body_at != at;
            (gone && !body.is_empty()).then(|| Rec::MessageEdited {
                conv: *conv,
                seq: *seq,
                by: *by,
                device: *device,
                ts: *ts,
                body_kind: *body_kind,
                body: String::new(),
            })
        }
        _ => account(state, rec),
    }
}

/// A record of a deleted account, without what identified the person.
fn account(state: &State, rec: &Rec) -> Option<Rec> {
    let deleted = |user: &UserId| state.users.get(user).is_some_and(|u| u.deleted);
    match rec {
        Rec::UserCreated { user, phone, ts } if deleted(user) && !phone.is_empty() => {
            Some(Rec::UserCreated {
                user: *user,
                phone: String::new(),
                ts: *ts,
            })
        }
        Rec::ProfileSet {
            user,
            name: Some(name),
            privacy,
            read_receipts,
        } if deleted(user) && !name.is_empty() => Some(Rec::ProfileSet {
            user: *user,
            name: Some(String::new()),
            privacy: *privacy,
            read_receipts: *read_receipts,
        }),
        Rec::DeviceLinked { user, name, .. } if deleted(user) && !name.is_empty() => {
            let mut r = rec.clone();
            if let Rec::DeviceLinked { name, .. } = &mut r {
                name.clear();
            }
            Some(r)
        }
        Rec::PushTokenSet {
            user,
            device,
            token: Some(_),
        } if deleted(user) => Some(Rec::PushTokenSet {
            user: *user,
            device: *device,
            token: None,
        }),
        Rec::PushDone { user, rejected, .. } if deleted(user) && !rejected.is_empty() => {
            let mut r = rec.clone();
            if let Rec::PushDone { rejected, .. } = &mut r {
                rejected.clear();
            }
            Some(r)
        }
        _ => None,
    }
}

/// Whether `rec` is one of an account's own records (its erasure makes
/// any snapshot taken before the deletion one to replace).
pub fn is_account_record(rec: &Rec) -> bool {
    matches!(
        rec,
        Rec::UserCreated { .. }
            | Rec::ProfileSet { .. }
            | Rec::DeviceLinked { .. }
            | Rec::PushTokenSet { .. }
            | Rec::PushDone { .. }
    )
}

fn gone(c: &Conv, m: &MessageRec, now: Millis) -> bool {
    c.erased.contains(&m.sender)
        || c.changes.get(&m.seq).is_some_and(|ch| ch.deleted)
        || c.expires(m.seq, m.ts).is_some_and(|t| now >= t)
}

fn stripped(m: &MessageRec, media: Option<String>) -> MessageRec {
    MessageRec {
        body: String::new(),
        media,
        ..m.clone()
    }
}
