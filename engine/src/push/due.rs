//! Who is owed a notification: pure functions of the durable state (the
//! devices' tokens and cursors) and the home's soft knowledge (the
//! conversations' ends, which devices are connected).
//!
//! Lives on: the user home shard's core.

use std::collections::HashMap;

use super::outbox::{Key, Note};
use crate::constants::PUSH_GIVE_UP_MS;
use crate::machine::ids::{ConvId, DeviceId, Millis, Seq, UserId};
use crate::machine::records::Mark;
use crate::machine::state::{ConvPointer, State, User};

/// The devices of `user` that message `seq` of `conv` should reach by
/// push: with a token, not connected (`online`), and neither delivered
/// nor pushed that far.
pub fn devices_for(user: &User, conv: ConvId, seq: Seq, online: &[DeviceId]) -> Vec<DeviceId> {
    user.devices
        .iter()
        .filter(|(id, d)| d.push_token.is_some() && !online.contains(id))
        .filter(|(_, d)| {
            let c = d.cursors.get(&conv).copied().unwrap_or_default();
            c.delivered < seq && c.pushed < seq
        })
        .map(|(id, _)| *id)
        .collect()
}

/// The user's unread messages in the conversation (its own count as
/// read, and so does all before it joined).
pub fn unread(user: &User, p: &ConvPointer) -> u64 {
    let read = user.level(p.conv, Mark::Read).max(p.joined).max(p.own_last);
    p.last_seq.0.saturating_sub(read.0)
}

/// A notification owed now, as the state stands: what a restarted node or
/// a new leader finds pending. For each user of this home with a push
/// token, each conversation whose latest message is someone else's, is
/// unread, is younger than `PUSH_GIVE_UP_MS`, and has not reached some
/// offline device with a token.
pub fn owed(
    state: &State,
    pointers: &HashMap<UserId, HashMap<ConvId, ConvPointer>>,
    online: impl Fn(UserId) -> Vec<DeviceId>,
    now: Millis,
) -> Vec<(Key, Note, Vec<DeviceId>)> {
    let mut out = Vec::new();
    let tokened = state.users.iter().filter(|(_, u)| u.has_push_token());
    for (id, user) in tokened {
        let Some(convs) = pointers.get(id) else {
            continue;
        };
        let here = online(*id);
        for p in convs.values() {
            let Some(sender) = p.last_from.filter(|s| s != id) else {
                continue;
            };
            let young = now.0.saturating_sub(p.last_ts.0) < PUSH_GIVE_UP_MS;
            if !young || unread(user, p) == 0 {
                continue;
            }
            let devices = devices_for(user, p.conv, p.last_seq, &here);
            if devices.is_empty() {
                continue;
            }
            let note = Note {
                seq: p.last_seq,
                sender,
                stored: p.last_ts,
            };
            out.push(((*id, p.conv), note, devices));
        }
    }
    out
}
