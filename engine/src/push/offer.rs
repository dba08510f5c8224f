//! The live path: a message delivered on its members' home offers a
//! notification for each member's offline devices with a push token.
//!
//! Lives on: the user home shard's core (called by `Deliver` and
//! `DeliverLarge`, after the members' pointers moved).

use super::due::devices_for;
use super::outbox::Note;
use crate::machine::ids::{DeviceId, UserId};
use crate::shard::ops::deliver::Delivery;
use crate::shard::runner::Shard;

/// Offers the notification of `d` for `users` (members whose home is this
/// shard); nothing without a gateway or on a replica that does not lead.
pub fn offer(shard: &Shard, users: &[UserId], d: &Delivery) {
    let Some(pusher) = shard.pusher() else {
        return;
    };
    let now = shard.clock.now();
    let from = d.from.0;
    let owed: Vec<(UserId, Vec<DeviceId>)> = {
        let state = shard.state();
        let soft = shard.soft.borrow();
        users
            .iter()
            .filter(|u| **u != from)
            .filter_map(|u| {
                let user = state.users.get(u).filter(|user| user.has_push_token())?;
                let online = soft.devices_online(*u);
                Some((*u, devices_for(user, d.conv, d.seq, &online)))
            })
            .filter(|(_, devices)| !devices.is_empty())
            .collect()
    };
    let note = Note {
        seq: d.seq,
        sender: from,
        stored: d.ts,
    };
    for (user, devices) in owed {
        pusher.offer((user, d.conv), note, &devices, now);
    }
}
