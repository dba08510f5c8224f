//! A conversation on its home shard: members and their watermarks, where
//! its messages are, who sent the latest ones, and the dedupe window.
//!
//! Lives on: the conversation's home shard's core.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use rkyv::{Archive, Deserialize, Serialize};

use super::{Changed, Dedupe, Lsn, MessageIndex};
use crate::constants::{RECEIPT_STEPS_PER_MEMBER_MAX, SENDER_WINDOW_MESSAGES};
use crate::machine::ids::{ConvId, Millis, Seq, UserId};
use crate::machine::records::{ConvKind, Role};

#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct Conv {
    pub lsn: Lsn,
    pub kind: ConvKind,
    pub name: String,
    pub created: Millis,
    pub members: BTreeMap<UserId, Member>,
    pub last_ts: Millis,
    pub index: MessageIndex,
    pub senders: RecentSenders,
    pub dedupe: Dedupe,
    /// Edited and deleted messages (`changes.rs`).
    pub changes: BTreeMap<Seq, Changed>,
    /// Disappearing messages: `(first seq, seconds)` for each setting, in
    /// order; a message keeps the one in force when it was sent (0: off).
    pub ttls: Vec<(Seq, u64)>,
    /// Members whose account was deleted: their messages show deleted.
    pub erased: BTreeSet<UserId>,
}

#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct Member {
    pub role: Role,
    /// The last seq before this member joined: it sees what comes after.
    pub joined: Seq,
    /// The offset of the record that made it a member (orders members by
    /// seniority: the longest-standing is the smallest).
    pub since: Lsn,
    pub delivered: Watermark,
    pub read: Watermark,
    /// The member's own latest message (sending implies having read what
    /// came before: it counts as read for unread counts).
    pub last_sent: Seq,
}

impl Member {
    pub fn new(role: Role, joined: Seq, since: Lsn) -> Member {
        Member {
            role,
            joined,
            since,
            delivered: Watermark::default(),
            read: Watermark::default(),
            last_sent: Seq(0),
        }
    }
}

/// One member's watermark: its latest position, and the times it passed
/// recent positions (for the receipts call), oldest first.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct Watermark {
    pub steps: VecDeque<(Seq, Millis)>,
}

impl Watermark {
    pub fn seq(&self) -> Seq {
        self.steps.back().map_or(Seq(0), |s| s.0)
    }

    pub fn advance(&mut self, seq: Seq, ts: Millis) {
        if seq <= self.seq() {
            return;
        }
        if self.steps.len() == RECEIPT_STEPS_PER_MEMBER_MAX {
            self.steps.pop_front();
        }
        self.steps.push_back((seq, ts));
    }

    /// When the watermark first reached `seq` (as far as remembered).
    pub fn reached(&self, seq: Seq) -> Option<Millis> {
        if seq > self.seq() {
            return None;
        }
        let step = self.steps.iter().find(|(s, _)| *s >= seq);
        step.map(|(_, ts)| *ts)
    }
}

/// The senders of the latest `SENDER_WINDOW_MESSAGES` messages (receipts
/// and status look back at most that far); `senders[0]` sent seq `first`.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct RecentSenders {
    senders: VecDeque<UserId>,
    first: u64,
}

impl RecentSenders {
    pub fn push(&mut self, seq: Seq, sender: UserId) {
        if self.senders.is_empty() {
            self.first = seq.0;
        }
        assert_eq!(seq.0, self.first + self.senders.len() as u64);
        if self.senders.len() == SENDER_WINDOW_MESSAGES {
            self.senders.pop_front();
            self.first += 1;
        }
        self.senders.push_back(sender);
    }

    /// Who sent `seq`, if it is in the window.
    pub fn get(&self, seq: Seq) -> Option<UserId> {
        let i = seq.0.checked_sub(self.first)?;
        self.senders.get(usize::try_from(i).ok()?).copied()
    }
}

/// What a user's home knows of one of its conversations (soft state there,
/// sent by the conversation's home when membership changes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConvPointer {
    pub conv: ConvId,
    pub kind: ConvKind,
    pub name: String,
    /// The other member of a direct conversation.
    pub peer: Option<UserId>,
    /// Seq before the user joined.
    pub joined: Seq,
    pub last_seq: Seq,
    pub last_ts: Millis,
    /// Who sent `last_seq`, when known (for push notifications).
    pub last_from: Option<UserId>,
    /// Over the fan-out-on-read size: members' pointers are not moved per
    /// message (only online ones'); readers pull `last_seq` from the home.
    pub large: bool,
    /// The user's own latest message here (counts as read).
    pub own_last: Seq,
    /// The disappearing setting for new messages (0: off).
    pub disappearing_seconds: u64,
}

impl Conv {
    pub fn new(kind: ConvKind, name: String, created: Millis, lsn: Lsn) -> Conv {
        Conv {
            lsn,
            kind,
            name,
            created,
            members: BTreeMap::new(),
            last_ts: created,
            index: MessageIndex::default(),
            senders: RecentSenders::default(),
            dedupe: Dedupe::default(),
            changes: BTreeMap::new(),
            ttls: Vec::new(),
            erased: BTreeSet::new(),
        }
    }

    pub fn last_seq(&self) -> Seq {
        self.index.last_seq()
    }

    /// The disappearing setting for new messages (0: off).
    pub fn disappearing_seconds(&self) -> u64 {
        self.ttls.last().map_or(0, |t| t.1)
    }

    /// When message `seq` (sent at `ts`) vanishes, if it does.
    pub fn expires(&self, seq: Seq, ts: Millis) -> Option<Millis> {
        let i = self.ttls.partition_point(|(first, _)| *first <= seq);
        let seconds = self.ttls[..i].last().map_or(0, |t| t.1);
        (seconds > 0).then(|| ts.plus_seconds(seconds))
    }

    /// Sets the disappearing setting for the messages after the last.
    pub fn set_disappearing(&mut self, seconds: u64) {
        let first = self.last_seq().next();
        if self.ttls.last().is_some_and(|t| t.0 == first) {
            self.ttls.pop();
        }
        self.ttls.push((first, seconds));
    }

    pub fn admins(&self) -> usize {
        self.members
            .values()
            .filter(|m| m.role == Role::Admin)
            .count()
    }

    /// Over the fan-out-on-read size?
    pub fn is_large(&self, fanout_on_read_members: usize) -> bool {
        self.members.len() > fanout_on_read_members
    }

    /// What `user`'s home should know of this conversation now.
    pub fn pointer(
        &self,
        conv: ConvId,
        user: UserId,
        fanout_on_read_members: usize,
    ) -> ConvPointer {
        let peer = match self.kind {
            ConvKind::Direct => self.members.keys().find(|u| **u != user).copied(),
            ConvKind::Group => None,
        };
        let member = self.members.get(&user);
        ConvPointer {
            conv,
            kind: self.kind,
            name: self.name.clone(),
            peer,
            joined: member.map_or(Seq(0), |m| m.joined),
            last_seq: self.last_seq(),
            last_ts: self.last_ts,
            last_from: self.senders.get(self.last_seq()),
            large: self.is_large(fanout_on_read_members),
            own_last: member.map_or(Seq(0), |m| m.last_sent),
            disappearing_seconds: self.disappearing_seconds(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_message_keeps_the_setting_it_was_sent_under() {
        let mut c = Conv::new(ConvKind::Direct, String::new(), Millis(0), Lsn(1));
        c.index.push(10);
        c.set_disappearing(60);
        c.set_disappearing(30); // changed again before any message: replaces
        assert_eq!(c.ttls, vec![(Seq(2), 30)]);
        c.index.push(20);
        c.set_disappearing(0);
        c.index.push(30);
        assert_eq!(
            c.expires(Seq(1), Millis(5)),
            None,
            "sent before any setting"
        );
        assert_eq!(c.expires(Seq(2), Millis(5)), Some(Millis(30_005)));
        assert_eq!(
            c.expires(Seq(3), Millis(5)),
            None,
            "sent after it was turned off"
        );
        assert_eq!(c.disappearing_seconds(), 0);
    }
}
