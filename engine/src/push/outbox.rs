//! The notifications a shard has yet to hand to the push gateway: one per
//! user and conversation (a newer message of the conversation replaces
//! the pending one and adds its devices), each with its retry schedule.
//! Pure: time comes in as an argument; the sender (`sender.rs`) does the
//! calls and reports each outcome back.
//!
//! It is a cache of durable state, not state of its own: what is pending
//! follows from the devices' tokens and cursors and the conversations'
//! ends (`due.rs`), so a restart or a new leader rebuilds it.
//!
//! Lives on: the user home shard's core, inside its sender.

use std::collections::{BTreeSet, HashMap};

use crate::constants::{PUSH_GIVE_UP_MS, PUSH_RETRY_FIRST_MS};
use crate::machine::ids::{ConvId, DeviceId, Millis, Seq, UserId};

/// Whom a notification is for, and about which conversation.
pub type Key = (UserId, ConvId);

/// The message a notification tells of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Note {
    pub seq: Seq,
    pub sender: UserId,
    /// When the message was stored (retries stop `PUSH_GIVE_UP_MS` later).
    pub stored: Millis,
}

/// A notification handed out to be sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    pub key: Key,
    pub note: Note,
    pub devices: Vec<DeviceId>,
}

#[derive(Debug)]
struct Entry {
    note: Note,
    devices: BTreeSet<DeviceId>,
    /// Failed calls in a row.
    tries: u32,
    /// When it goes next; `None` while a call is in flight.
    due: Option<Millis>,
}

/// What `offer` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Offered {
    Queued,
    /// It replaced (or joined) the one pending for the same conversation.
    Collapsed,
    /// The outbox is full: dropped.
    Dropped,
}

/// What became of a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The gateway took it (2xx).
    Taken,
    /// Nothing to send any more (the devices connected, got the message,
    /// or lost their tokens).
    Moot,
    /// No answer in time, or not a 2xx: retried later.
    Failed,
}

/// Counters since the process started (`/metrics`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub queued: u64,
    pub collapsed: u64,
    pub dropped: u64,
    pub taken: u64,
    pub moot: u64,
    pub failed: u64,
    /// Given up on: still failing `PUSH_GIVE_UP_MS` after the message.
    pub expired: u64,
}

impl Counts {
    /// Sums another shard's counters into these.
    pub fn add(&mut self, o: &Counts) {
        self.queued += o.queued;
        self.collapsed += o.collapsed;
        self.dropped += o.dropped;
        self.taken += o.taken;
        self.moot += o.moot;
        self.failed += o.failed;
        self.expired += o.expired;
    }
}

#[derive(Debug)]
pub struct Outbox {
    entries: HashMap<Key, Entry>,
    schedule: BTreeSet<(Millis, Key)>,
    capacity: usize,
    pub counts: Counts,
}

impl Outbox {
    pub fn new(capacity: usize) -> Outbox {
        assert!(capacity > 0);
        Outbox {
            entries: HashMap::new(),
            schedule: BTreeSet::new(),
            capacity,
            counts: Counts::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// A message for these (offline) devices of `key.0`; due at once
    /// unless the pending one it joins is waiting out a backoff.
    pub fn offer(&mut self, key: Key, note: Note, devices: &[DeviceId], now: Millis) -> Offered {
        assert!(!devices.is_empty(), "a notification is for some device");
        if let Some(e) = self.entries.get_mut(&key) {
            if note.seq > e.note.seq {
                e.note = note;
            }
            e.devices.extend(devices.iter().copied());
            self.counts.collapsed += 1;
            return Offered::Collapsed;
        }
        if self.entries.len() >= self.capacity {
            self.counts.dropped += 1;
            return Offered::Dropped;
        }
        let entry = Entry {
            note,
            devices: devices.iter().copied().collect(),
            tries: 0,
            due: Some(now),
        };
        self.entries.insert(key, entry);
        self.schedule.insert((now, key));
        self.counts.queued += 1;
        Offered::Queued
    }

    /// When the next one is due, if any is waiting.
    pub fn next_due(&self) -> Option<Millis> {
        self.schedule.first().map(|(at, _)| *at)
    }

    /// Up to `max` notifications due by `now`, each now in flight.
    pub fn take(&mut self, now: Millis, max: usize) -> Vec<Call> {
        let mut calls = Vec::new();
        while calls.len() < max {
            let Some(&(at, key)) = self.schedule.first() else {
                break;
            };
            if at > now {
                break;
            }
            self.schedule.remove(&(at, key));
            let e = self.entries.get_mut(&key).expect("scheduled entries exist");
            assert_eq!(e.due, Some(at), "the schedule matches its entry");
            e.due = None;
            calls.push(Call {
                key,
                note: e.note,
                devices: e.devices.iter().copied().collect(),
            });
        }
        calls
    }

    /// The outcome of a call `take` handed out.
    pub fn finish(&mut self, call: &Call, outcome: Outcome, now: Millis) {
        let e = self
            .entries
            .get_mut(&call.key)
            .expect("a call in flight has its entry");
        assert!(e.due.is_none(), "finished a call that was not in flight");
        let newer = e.note.seq > call.note.seq;
        match outcome {
            Outcome::Taken => self.counts.taken += 1,
            Outcome::Moot => self.counts.moot += 1,
            Outcome::Failed => self.counts.failed += 1,
        }
        let due = match (outcome, newer) {
            // A newer message came while it was in flight: it goes now.
            (Outcome::Taken | Outcome::Moot, true) => {
                e.tries = 0;
                Some(now)
            }
            (Outcome::Taken | Outcome::Moot, false) => None,
            (Outcome::Failed, _) => {
                e.tries += 1;
                let wait = PUSH_RETRY_FIRST_MS.saturating_mul(1 << (e.tries - 1).min(32));
                let at = Millis(now.0.saturating_add(wait));
                let give_up = Millis(e.note.stored.0.saturating_add(PUSH_GIVE_UP_MS));
                if at > give_up {
                    self.counts.expired += 1;
                    None
                } else {
                    Some(at)
                }
            }
        };
        match due {
            Some(at) => {
                e.due = Some(at);
                self.schedule.insert((at, call.key));
            }
            None => {
                self.entries.remove(&call.key);
            }
        }
    }

    /// Forgets everything (this replica stopped leading its shard).
    pub fn clear(&mut self) {
        self.entries.clear();
        self.schedule.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: Key = (UserId(1), ConvId(7));

    fn note(seq: u64, stored: u64) -> Note {
        Note {
            seq: Seq(seq),
            sender: UserId(2),
            stored: Millis(stored),
        }
    }

    #[test]
    fn a_newer_message_replaces_the_pending_one() {
        let mut o = Outbox::new(8);
        assert_eq!(
            o.offer(KEY, note(1, 0), &[DeviceId(1)], Millis(0)),
            Offered::Queued
        );
        assert_eq!(
            o.offer(KEY, note(2, 5), &[DeviceId(2)], Millis(5)),
            Offered::Collapsed
        );
        let calls = o.take(Millis(5), 10);
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].note.seq, Seq(2));
        assert_eq!(calls[0].devices, vec![DeviceId(1), DeviceId(2)]);
        // A third one while the call is in flight goes right after it.
        o.offer(KEY, note(3, 6), &[DeviceId(1)], Millis(6));
        assert!(o.take(Millis(6), 10).is_empty());
        o.finish(&calls[0], Outcome::Taken, Millis(7));
        let again = o.take(Millis(7), 10);
        assert_eq!(again[0].note.seq, Seq(3));
        o.finish(&again[0], Outcome::Taken, Millis(8));
        assert!(o.is_empty());
        assert_eq!(o.counts.taken, 2);
    }

    #[test]
    fn failures_back_off_doubling_until_an_hour_after_the_message() {
        let mut o = Outbox::new(8);
        o.offer(KEY, note(1, 0), &[DeviceId(1)], Millis(0));
        let mut now = Millis(0);
        let mut waits = Vec::new();
        loop {
            let calls = o.take(now, 10);
            assert_eq!(calls.len(), 1);
            o.finish(&calls[0], Outcome::Failed, now);
            let Some(next) = o.next_due() else { break };
            waits.push(next.0 - now.0);
            now = next;
        }
        assert_eq!(&waits[..4], &[1_000, 2_000, 4_000, 8_000]);
        assert!(now.0 <= PUSH_GIVE_UP_MS && now.0 + 2 * waits[waits.len() - 1] > PUSH_GIVE_UP_MS);
        assert_eq!(o.counts.expired, 1);
        assert!(o.is_empty());
    }

    #[test]
    fn a_full_outbox_drops_and_counts() {
        let mut o = Outbox::new(2);
        for user in 1..=3 {
            o.offer(
                (UserId(user), ConvId(1)),
                note(1, 0),
                &[DeviceId(1)],
                Millis(0),
            );
        }
        assert_eq!(o.len(), 2);
        assert_eq!(o.counts.dropped, 1);
        // Joining a pending one still works when full.
        let joined = o.offer(
            (UserId(1), ConvId(1)),
            note(2, 0),
            &[DeviceId(1)],
            Millis(0),
        );
        assert_eq!(joined, Offered::Collapsed);
        assert_eq!(o.take(Millis(0), 1).len(), 1, "take honours its bound");
    }
}
