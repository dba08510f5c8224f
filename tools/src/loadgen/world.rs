//! The shape of a run: which users exist, which conversations they are in,
//! and which worker process owns which of them.
//!
//! Every user is in exactly one conversation, and a worker owns whole
//! conversations with all their members, so that a message's sender and its
//! recipients share one process and one clock: send→receive latency needs no
//! cross-process clock and the verdict needs no cross-process bookkeeping.

use std::ops::Range;

use super::config::Config;
use super::verdict::{ConvIx, MemberPos};

/// Which slice of the run a worker owns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slice {
    pub index: usize,
    pub count: usize,
}

/// The run's layout: conversations of `size` members, users numbered so that
/// conversation `c` has users `c*size .. (c+1)*size`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub size: usize,
    pub conversations: usize,
}

impl Layout {
    pub fn of(config: &Config) -> Layout {
        let size = config.conversation_size();
        Layout {
            size,
            conversations: config.users / size,
        }
    }

    pub fn users(&self) -> usize {
        self.size * self.conversations
    }

    /// Workers needed so that none holds more than `per_worker` connections.
    pub fn workers_needed(&self, per_worker: usize) -> usize {
        let convs_per_worker = (per_worker / self.size).max(1);
        self.conversations.div_ceil(convs_per_worker).max(1)
    }

    /// The conversations of worker `slice` (contiguous, balanced).
    pub fn conversations_of(&self, slice: Slice) -> Range<usize> {
        assert!(slice.index < slice.count);
        let start = self.conversations * slice.index / slice.count;
        let end = self.conversations * (slice.index + 1) / slice.count;
        start..end
    }
}

/// One user of a worker: one connection (one device).
///
/// Lives on: one worker executor.
#[derive(Clone, Debug)]
pub struct User {
    /// Run-wide user number (phones, names and source addresses follow it).
    pub global: usize,
    /// Index into the worker's `World::convs`.
    pub conv: usize,
    pub pos: MemberPos,
    /// chatd: the bearer token; XMPP: the password.
    pub secret: String,
    /// chatd: user id; XMPP: the bare JID.
    pub address: String,
}

/// One conversation of a worker.
#[derive(Clone, Debug)]
pub struct Conv {
    pub ix: ConvIx,
    /// The server's id: chatd conversation id, XMPP room JID (groups) or "".
    pub server_id: String,
    /// Indices into the worker's `World::users`, by member position.
    pub members: Vec<usize>,
}

/// What one worker drives, after setup.
#[derive(Clone, Debug, Default)]
pub struct World {
    pub users: Vec<User>,
    pub convs: Vec<Conv>,
}

impl World {
    /// The skeleton of a worker's world: users and conversations without
    /// server ids or secrets (setup fills them in).
    pub fn skeleton(layout: Layout, slice: Slice) -> World {
        let mut world = World::default();
        for c in layout.conversations_of(slice) {
            let conv = world.convs.len();
            let mut members = Vec::with_capacity(layout.size);
            for p in 0..layout.size {
                members.push(world.users.len());
                world.users.push(User {
                    global: c * layout.size + p,
                    conv,
                    pos: MemberPos(p as u16),
                    secret: String::new(),
                    address: String::new(),
                });
            }
            world.convs.push(Conv {
                ix: ConvIx(c as u32),
                server_id: String::new(),
                members,
            });
        }
        world
    }

    /// The world's conversation of a run-wide index.
    pub fn conv_local(&self, ix: ConvIx) -> Option<usize> {
        let first = self.convs.first()?.ix.0;
        let local = ix.0.checked_sub(first)? as usize;
        (local < self.convs.len()).then_some(local)
    }
}

/// A run's phones: +1555 and 7 digits, from a per-run base so that runs
/// against one data directory make new users.
pub fn phone(base: u64, global: usize) -> String {
    let n = (base + global as u64) % 10_000_000;
    format!("+1555{n:07}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_own_whole_conversations_and_cover_all() {
        let layout = Layout {
            size: 10,
            conversations: 7,
        };
        assert_eq!(layout.workers_needed(30), 3);
        let mut seen = Vec::new();
        for index in 0..3 {
            let world = World::skeleton(layout, Slice { index, count: 3 });
            for conv in &world.convs {
                assert_eq!(conv.members.len(), 10);
                for (p, u) in conv.members.iter().enumerate() {
                    let user = &world.users[*u];
                    assert_eq!(user.global, conv.ix.0 as usize * 10 + p);
                    assert_eq!(world.conv_local(conv.ix), Some(user.conv));
                }
                seen.push(conv.ix.0);
            }
        }
        assert_eq!(seen, (0..7).collect::<Vec<u32>>());
    }

    #[test]
    fn phones_are_e164_with_seven_digits() {
        assert_eq!(phone(0, 42), "+15550000042");
        assert_eq!(phone(9_999_999, 1), "+15550000000");
    }
}
