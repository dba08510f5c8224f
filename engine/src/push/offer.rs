//! The live path: a message delivered on its members' home offers a
//! notification for each member's offline devices with a push token.
//!
//! Lives on: the user home shard's core (called by `Deliver` and
//! `DeliverLarge`, after the members' pointers moved).

use super::due::devices_for;
use super::outbox::Note;
use crate::machine::ids::{ConvId, DeviceId, Millis, Seq, UserId};
use crate::shard::runner::Shard;

/// A stored message of `conv`, from `from`, that `users` (members whose
/// home is this shard) should hear of.
pub struct Stored {
    pub conv: ConvId,
    pub seq: Seq,
    pub ts: Millis,
    pub from: UserId,
}

/// Offers the notification of `m` for `users`; nothing without a gateway
/// or on a replica that does not lead.
pub fn offer(shard: &Shard, users: &[UserId], m: &Stored) {
    let Some(pusher) = shard.pusher() else {
        return;
    };
    let now = shard.clock.now();
    let owed: Vec<(UserId, Vec<DeviceId>)> = {
        let state = shard.state();
        let soft = shard.soft.borrow();
        users
            .iter()
            .filter(|u| **u != m.from)
            .filter_map(|u| {
                let user = state.users.get(u)?;
                if !user.devices.values().any(|d| d.push_token.is_some()) {
                    return None;
                }
                let online: Vec<DeviceId> = soft.conns_of(*u).map(|o| o.device).collect();
                Some((*u, devices_for(user, m.conv, m.seq, &online)))
            })
            .filter(|(_, d)| !d.is_empty())
            .collect()
    };
    let note = Note {
        seq: m.seq,
        sender: m.from,
        stored: m.ts,
    };
    for (user, devices) in owed {
        pusher.offer((user, m.conv), note, &devices, now);
    }
}
