//! The ledger: every message a run sends, every copy that arrives, and the
//! verdict over them — zero loss, zero duplicates, per-conversation order.
//!
//! Sans-IO: the worker feeds it events (`sent`, `confirmed`, `refused`,
//! `received`, `connected`, `disconnected`) and asks `verdict()` at the end.
//!
//! Rules (what a target promises, see docs in `target.rs`):
//! - a *confirmed* message (server ack, or written on the wire for targets
//!   without acks) must reach every recipient at least once;
//! - within one connection of a recipient, a message arrives at most once and
//!   a conversation's messages arrive in order (by server seq where the target
//!   has one, else by each sender's own order);
//! - a copy that arrives again on a *later* connection is a redelivery (the
//!   protocol is at least once across reconnects; clients drop it): counted,
//!   not a fault;
//! - a *refused* message (an error answer) must reach nobody;
//! - a message still unanswered at the end is a fault while its sender's
//!   connection is up (the server sat on it), and an unknown outcome when the
//!   connection went away (a storm run closes sockets on purpose).
//!
//! Lives on: one worker executor; merged as `Verdict` counts by the
//! coordinator.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// Reorders described one by one in the report.
const REORDER_SAMPLES_MAX: usize = 8;

/// Index of a conversation in the run (the same in every worker).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConvIx(pub u32);

/// Index of a message within its conversation, in sending order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MsgIx(pub u32);

/// Position of a user among its conversation's members.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MemberPos(pub u16);

/// Who must receive a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recipients {
    /// Every member but the sender (a chat server).
    Others,
    /// The sender itself (an echo server).
    SenderOnly,
}

impl Recipients {
    /// Must `who` get what `sender` sends?
    fn include(self, sender: MemberPos, who: MemberPos) -> bool {
        match self {
            Recipients::Others => sender != who,
            Recipients::SenderOnly => sender == who,
        }
    }
}

/// Where one message stands from its sender's side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SendState {
    /// On the wire, no answer yet.
    Written,
    /// The target accepted it: every recipient must get it.
    Confirmed,
    /// The target refused it: nobody may get it.
    Refused,
    /// Its sender's connection went away before an answer: it may or may
    /// not have been taken (reaching recipients is fine, missing too).
    Orphaned,
}

/// One message of a conversation.
#[derive(Clone, Copy, Debug)]
struct Msg {
    sender: MemberPos,
    /// The sender's own count in this conversation (for per-sender order).
    k: u32,
    state: SendState,
    /// Recipients that have not received it yet.
    missing: u16,
    /// Intended send time, µs since the worker's epoch.
    intended_us: u64,
}

/// One copy count of one message at one recipient.
#[derive(Clone, Copy, Debug, Default)]
struct Got {
    count: u8,
    /// The recipient's connection epoch of the last copy (0: never).
    epoch: u32,
}

/// One member's view of a conversation as a recipient.
#[derive(Clone, Debug, Default)]
struct Inbox {
    got: Vec<Got>,
    /// Connection epoch (1, 2, … one per connection; 0: never connected).
    epoch: u32,
    /// Highest seq seen in this epoch.
    last_seq: Option<u64>,
    /// Per sender: highest k seen in this epoch, plus one (0: none).
    last_k: Vec<u32>,
}

/// One conversation's book.
#[derive(Debug)]
struct Book {
    members: u16,
    msgs: Vec<Msg>,
    inboxes: Vec<Inbox>,
    /// Per sender: messages sent so far (the next k).
    sent_by: Vec<u32>,
    /// seq → message, from the target's confirmations.
    seqs: HashMap<u64, MsgIx>,
}

/// The counts of a verdict; `faults()` > 0 fails the run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub messages: u64,
    pub confirmed: u64,
    pub refused: u64,
    /// Expected (confirmed message, recipient) deliveries.
    pub deliveries_expected: u64,
    /// Of those, received at least once.
    pub delivered: u64,
    /// Fault: a confirmed message never reached a recipient.
    pub lost: u64,
    /// Fault: a copy arrived twice on one connection.
    pub duplicated: u64,
    /// Fault: a copy arrived after a later one of the same conversation.
    pub reordered: u64,
    /// Fault: a copy of a refused or never-sent message, or of another
    /// conversation, or a body we did not write.
    pub unexpected: u64,
    /// Fault: one seq confirmed for two messages, or a copy whose seq is not
    /// the one its sender was given.
    pub seq_mismatch: u64,
    /// Fault: no answer to a send while its connection stayed up.
    pub unanswered: u64,
    /// Not a fault: a copy again on a later connection (sync after reconnect).
    pub redelivered: u64,
    /// Not a fault: unanswered when its sender's connection went away.
    pub unknown_outcome: u64,
}

impl Verdict {
    pub fn faults(&self) -> u64 {
        self.lost
            + self.duplicated
            + self.reordered
            + self.unexpected
            + self.seq_mismatch
            + self.unanswered
    }

    pub fn add(&mut self, o: &Verdict) {
        self.messages += o.messages;
        self.confirmed += o.confirmed;
        self.refused += o.refused;
        self.deliveries_expected += o.deliveries_expected;
        self.delivered += o.delivered;
        self.lost += o.lost;
        self.duplicated += o.duplicated;
        self.reordered += o.reordered;
        self.unexpected += o.unexpected;
        self.seq_mismatch += o.seq_mismatch;
        self.unanswered += o.unanswered;
        self.redelivered += o.redelivered;
        self.unknown_outcome += o.unknown_outcome;
    }
}

/// What a reception turned out to be (the worker records latency for `New`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reception {
    /// First copy on this connection, in order: intended send time (µs).
    New { intended_us: u64 },
    /// A fault or a redelivery; already counted.
    Other,
}

/// The ledger of one worker: its conversations, by run-wide index.
///
/// Lives on: one worker executor.
#[derive(Debug)]
pub struct Ledger {
    recipients: Recipients,
    books: HashMap<ConvIx, Book>,
    /// Faults and redeliveries counted as they happen.
    running: Verdict,
    /// (confirmed message, recipient) pairs still missing.
    outstanding: u64,
    /// Messages written and not answered.
    written: u64,
    /// The first reorders, described for humans.
    samples: Vec<String>,
}

impl Ledger {
    pub fn new(recipients: Recipients) -> Ledger {
        Ledger {
            recipients,
            books: HashMap::new(),
            running: Verdict::default(),
            outstanding: 0,
            written: 0,
            samples: Vec::new(),
        }
    }

    /// Adds a conversation of `members` members (at most `u16::MAX`).
    pub fn add_conversation(&mut self, conv: ConvIx, members: usize) {
        assert!(members >= 1 && members <= usize::from(u16::MAX));
        let book = Book {
            members: members as u16,
            msgs: Vec::new(),
            inboxes: vec![Inbox::default(); members],
            sent_by: vec![0; members],
            seqs: HashMap::new(),
        };
        let old = self.books.insert(conv, book);
        assert!(old.is_none(), "conversation {conv:?} added twice");
    }

    fn recipients_of(&self, members: u16) -> u16 {
        match self.recipients {
            Recipients::Others => members - 1,
            Recipients::SenderOnly => 1,
        }
    }

    fn is_recipient(&self, sender: MemberPos, who: MemberPos) -> bool {
        self.recipients.include(sender, who)
    }

    /// A member (re)connected: a new epoch for its order and duplicate checks.
    pub fn connected(&mut self, conv: ConvIx, who: MemberPos) {
        let book = self.books.get_mut(&conv).expect("known conversation");
        let inbox = &mut book.inboxes[usize::from(who.0)];
        inbox.epoch += 1;
        inbox.last_seq = None;
        inbox.last_k.clear();
    }

    /// A member's connection went away: its unanswered sends have an
    /// unknown outcome. Answers how many there were.
    pub fn disconnected(&mut self, conv: ConvIx, who: MemberPos) -> u64 {
        let book = self.books.get_mut(&conv).expect("known conversation");
        let mut orphaned = 0;
        for msg in book.msgs.iter_mut().rev() {
            if msg.sender == who && msg.state == SendState::Written {
                msg.state = SendState::Orphaned;
                orphaned += 1;
            }
        }
        self.written -= orphaned;
        orphaned
    }

    /// `sender` is about to write a message meant for `intended_us`.
    pub fn sent(&mut self, conv: ConvIx, sender: MemberPos, intended_us: u64) -> MsgIx {
        let recipients = self.recipients_of(self.books[&conv].members);
        let book = self.books.get_mut(&conv).expect("known conversation");
        assert!(sender.0 < book.members);
        let ix = MsgIx(u32::try_from(book.msgs.len()).expect("under 2^32 messages"));
        let k = book.sent_by[usize::from(sender.0)];
        book.sent_by[usize::from(sender.0)] = k + 1;
        book.msgs.push(Msg {
            sender,
            k,
            state: SendState::Written,
            missing: recipients,
            intended_us,
        });
        self.written += 1;
        self.running.messages += 1;
        ix
    }

    /// The target accepted message `ix` (with its seq where it has one).
    /// Answers the intended send time, or `None` if this was not news.
    pub fn confirmed(&mut self, conv: ConvIx, ix: MsgIx, seq: Option<u64>) -> Option<u64> {
        let book = self.books.get_mut(&conv)?;
        let msg = book.msgs.get_mut(ix.0 as usize)?;
        if msg.state != SendState::Written {
            return None;
        }
        msg.state = SendState::Confirmed;
        self.written -= 1;
        self.running.confirmed += 1;
        self.outstanding += u64::from(msg.missing);
        if let Some(seq) = seq {
            if let Some(other) = book.seqs.insert(seq, ix) {
                if other != ix {
                    self.running.seq_mismatch += 1;
                }
            }
        }
        Some(msg.intended_us)
    }

    /// The target refused message `ix`.
    pub fn refused(&mut self, conv: ConvIx, ix: MsgIx) {
        if self.answered(conv, ix, SendState::Refused) {
            self.running.refused += 1;
            // Anything it already reached is unexpected.
            let reached = self.recipients_reached(conv, ix);
            self.running.unexpected += u64::from(reached);
        }
    }

    /// The target answered message `ix` with "unavailable": it may or may
    /// not have been taken (a cluster lost its leader mid-write).
    pub fn unknown(&mut self, conv: ConvIx, ix: MsgIx) {
        self.answered(conv, ix, SendState::Orphaned);
    }

    /// Moves message `ix`, still waiting for an answer, to `state`; false
    /// when it was not waiting (or is not known).
    fn answered(&mut self, conv: ConvIx, ix: MsgIx, state: SendState) -> bool {
        let msg = self
            .books
            .get_mut(&conv)
            .and_then(|b| b.msgs.get_mut(ix.0 as usize));
        match msg {
            Some(msg) if msg.state == SendState::Written => {
                msg.state = state;
                self.written -= 1;
                true
            }
            _ => false,
        }
    }

    /// `who`'s messages of unknown outcome, oldest first, with their
    /// intended send times: what a client sends again (same id).
    pub fn orphans_of(&self, conv: ConvIx, who: MemberPos) -> Vec<(MsgIx, u64)> {
        let Some(book) = self.books.get(&conv) else {
            return Vec::new();
        };
        let mine = book.msgs.iter().enumerate();
        mine.filter(|(_, m)| m.sender == who && m.state == SendState::Orphaned)
            .map(|(i, m)| (MsgIx(i as u32), m.intended_us))
            .collect()
    }

    /// Message `ix` of unknown outcome is on the wire again (same id).
    pub fn resent(&mut self, conv: ConvIx, ix: MsgIx) {
        let book = self.books.get_mut(&conv).expect("known conversation");
        let msg = &mut book.msgs[ix.0 as usize];
        assert_eq!(msg.state, SendState::Orphaned, "only an orphan is resent");
        msg.state = SendState::Written;
        self.written += 1;
    }

    /// Recipients that already got message `ix`.
    fn recipients_reached(&self, conv: ConvIx, ix: MsgIx) -> u16 {
        let book = &self.books[&conv];
        let msg = book.msgs[ix.0 as usize];
        self.recipients_of(book.members) - msg.missing
    }

    /// A copy of message `ix` of `conv` arrived at member `who` (with the
    /// target's seq where it has one).
    pub fn received(
        &mut self,
        conv: ConvIx,
        ix: MsgIx,
        who: MemberPos,
        seq: Option<u64>,
    ) -> Reception {
        let recipients = self.recipients;
        let Some(book) = self.books.get_mut(&conv) else {
            self.running.unexpected += 1;
            return Reception::Other;
        };
        let Some(msg) = book.msgs.get(ix.0 as usize).copied() else {
            self.running.unexpected += 1;
            return Reception::Other;
        };
        let is_recipient = recipients.include(msg.sender, who);
        if who.0 >= book.members || !is_recipient || msg.state == SendState::Refused {
            self.running.unexpected += 1;
            return Reception::Other;
        }
        if let Some(known) = seq.and_then(|s| book.seqs.get(&s)) {
            if *known != ix {
                self.running.seq_mismatch += 1;
                return Reception::Other;
            }
        }
        let inbox = &mut book.inboxes[usize::from(who.0)];
        if inbox.got.len() <= ix.0 as usize {
            inbox.got.resize(ix.0 as usize + 1, Got::default());
        }
        let got = inbox.got[ix.0 as usize];
        if got.count > 0 {
            inbox.got[ix.0 as usize].count = got.count.saturating_add(1);
            inbox.got[ix.0 as usize].epoch = inbox.epoch;
            if got.epoch == inbox.epoch {
                self.running.duplicated += 1;
            } else {
                self.running.redelivered += 1;
                let back = check_order(inbox, &msg, seq, book.members, &mut self.running);
                note_reorder(&mut self.samples, conv, ix, who, seq, msg.k, back);
            }
            return Reception::Other;
        }
        inbox.got[ix.0 as usize] = Got {
            count: 1,
            epoch: inbox.epoch,
        };
        let back = check_order(inbox, &msg, seq, book.members, &mut self.running);
        note_reorder(&mut self.samples, conv, ix, who, seq, msg.k, back);
        let in_order = back.is_none();
        let msg = &mut book.msgs[ix.0 as usize];
        assert!(msg.missing > 0, "a first copy is missing somewhere");
        msg.missing -= 1;
        if msg.state == SendState::Confirmed {
            self.outstanding -= 1;
        }
        if in_order {
            Reception::New {
                intended_us: msg.intended_us,
            }
        } else {
            Reception::Other
        }
    }

    /// A copy that names something we cannot place (bad body, unknown conv).
    pub fn unplaceable(&mut self) {
        self.running.unexpected += 1;
    }

    /// Every confirmed message reached every recipient, every send answered.
    pub fn settled(&self) -> bool {
        self.outstanding == 0 && self.written == 0
    }

    /// (confirmed message, recipient) pairs still missing, and sends unanswered.
    pub fn pending(&self) -> (u64, u64) {
        (self.outstanding, self.written)
    }

    /// The verdict over everything so far.
    pub fn verdict(&self) -> Verdict {
        let mut v = self.running;
        for book in self.books.values() {
            let recipients = u64::from(self.recipients_of(book.members));
            for msg in &book.msgs {
                match msg.state {
                    SendState::Confirmed => {
                        v.deliveries_expected += recipients;
                        v.lost += u64::from(msg.missing);
                        v.delivered += recipients - u64::from(msg.missing);
                    }
                    SendState::Orphaned => v.unknown_outcome += 1,
                    SendState::Written => v.unanswered += 1,
                    SendState::Refused => {}
                }
            }
        }
        v
    }

    /// The intended send time of message `ix` of `conv`.
    pub fn intended_of(&self, conv: ConvIx, ix: MsgIx) -> Option<u64> {
        Some(self.books.get(&conv)?.msgs.get(ix.0 as usize)?.intended_us)
    }

    /// The sender of message `ix` of `conv`.
    pub fn sender_of(&self, conv: ConvIx, ix: MsgIx) -> Option<MemberPos> {
        Some(self.books.get(&conv)?.msgs.get(ix.0 as usize)?.sender)
    }

    /// Lines naming the first reorders and lost (message, recipient) pairs.
    pub fn samples(&self, max: usize) -> Vec<String> {
        let mut out: Vec<String> = self.samples.iter().take(max / 2).cloned().collect();
        let mut convs: Vec<&ConvIx> = self.books.keys().collect();
        convs.sort();
        for conv in convs {
            let book = &self.books[conv];
            for (m, msg) in book.msgs.iter().enumerate() {
                if msg.state != SendState::Confirmed || msg.missing == 0 {
                    continue;
                }
                let missing: Vec<usize> = (0..usize::from(book.members))
                    .filter(|r| self.is_recipient(msg.sender, MemberPos(*r as u16)))
                    .filter(|r| book.inboxes[*r].got.get(m).is_none_or(|g| g.count == 0))
                    .collect();
                out.push(format!(
                    "lost: conversation {} message {m} (member {}'s #{}) never reached member(s) {missing:?}",
                    conv.0, msg.sender.0, msg.k
                ));
                if out.len() >= max {
                    return out;
                }
            }
        }
        out
    }
}

/// Keeps a line about a reorder, for the first few.
fn note_reorder(
    samples: &mut Vec<String>,
    conv: ConvIx,
    ix: MsgIx,
    who: MemberPos,
    seq: Option<u64>,
    k: u32,
    before: Option<u64>,
) {
    if let Some(before) = before {
        if samples.len() < REORDER_SAMPLES_MAX {
            let what = match seq {
                Some(seq) => format!("seq {seq} after seq {before}"),
                None => format!("its sender's #{k} after #{before}"),
            };
            samples.push(format!(
                "reordered: conversation {} message {} reached member {} as {what}",
                conv.0, ix.0, who.0
            ));
        }
    }
}

/// Checks a first-in-epoch copy against the order seen so far on this
/// connection; counts a reorder and answers the higher seq (or k) seen
/// before when it steps back.
fn check_order(
    inbox: &mut Inbox,
    msg: &Msg,
    seq: Option<u64>,
    members: u16,
    v: &mut Verdict,
) -> Option<u64> {
    if let Some(seq) = seq {
        let before = inbox.last_seq.filter(|last| seq < *last);
        inbox.last_seq = Some(inbox.last_seq.map_or(seq, |l| l.max(seq)));
        if before.is_some() {
            v.reordered += 1;
        }
        return before;
    }
    if inbox.last_k.is_empty() {
        inbox.last_k = vec![0; usize::from(members)];
    }
    // `last_k` holds the highest k seen plus one; a lower k steps back.
    let last = &mut inbox.last_k[usize::from(msg.sender.0)];
    if msg.k + 1 < *last {
        v.reordered += 1;
        return Some(u64::from(*last - 1));
    }
    *last = msg.k + 1;
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const C: ConvIx = ConvIx(7);
    const A: MemberPos = MemberPos(0);
    const B: MemberPos = MemberPos(1);

    fn pair() -> Ledger {
        let mut l = Ledger::new(Recipients::Others);
        l.add_conversation(C, 2);
        l.connected(C, A);
        l.connected(C, B);
        l
    }

    /// A sends `n` messages, each confirmed with seq = index + 1.
    fn send_confirmed(l: &mut Ledger, n: u32) -> Vec<MsgIx> {
        (0..n)
            .map(|i| {
                let ix = l.sent(C, A, u64::from(i) * 10);
                assert_eq!(
                    l.confirmed(C, ix, Some(u64::from(i) + 1)),
                    Some(u64::from(i) * 10)
                );
                ix
            })
            .collect()
    }

    #[test]
    fn every_message_once_in_order_is_clean() {
        let mut l = pair();
        let ixs = send_confirmed(&mut l, 5);
        for (i, ix) in ixs.iter().enumerate() {
            let r = l.received(C, *ix, B, Some(i as u64 + 1));
            assert_eq!(
                r,
                Reception::New {
                    intended_us: i as u64 * 10
                }
            );
        }
        assert!(l.settled());
        let v = l.verdict();
        assert_eq!(v.faults(), 0, "{v:?}");
        assert_eq!((v.messages, v.confirmed, v.delivered), (5, 5, 5));
    }

    #[test]
    fn a_missing_message_is_lost() {
        let mut l = pair();
        let ixs = send_confirmed(&mut l, 5);
        for (i, ix) in ixs.iter().enumerate().filter(|(i, _)| *i != 2) {
            l.received(C, *ix, B, Some(i as u64 + 1));
        }
        assert!(!l.settled());
        let v = l.verdict();
        assert_eq!((v.lost, v.faults()), (1, 1), "{v:?}");
    }

    #[test]
    fn a_second_copy_on_one_connection_is_a_duplicate() {
        let mut l = pair();
        let ixs = send_confirmed(&mut l, 3);
        l.received(C, ixs[0], B, Some(1));
        l.received(C, ixs[1], B, Some(2));
        assert_eq!(l.received(C, ixs[1], B, Some(2)), Reception::Other);
        l.received(C, ixs[2], B, Some(3));
        let v = l.verdict();
        assert_eq!((v.duplicated, v.faults()), (1, 1), "{v:?}");
    }

    #[test]
    fn a_copy_again_after_reconnect_is_a_redelivery_not_a_fault() {
        let mut l = pair();
        let ixs = send_confirmed(&mut l, 3);
        l.received(C, ixs[0], B, Some(1));
        l.received(C, ixs[1], B, Some(2));
        l.disconnected(C, B);
        l.connected(C, B);
        // Sync resends from the cursor: 2 again, then 3.
        l.received(C, ixs[1], B, Some(2));
        l.received(C, ixs[2], B, Some(3));
        let v = l.verdict();
        assert_eq!((v.redelivered, v.faults()), (1, 0), "{v:?}");
    }

    #[test]
    fn a_step_back_in_seq_is_a_reorder() {
        let mut l = pair();
        let ixs = send_confirmed(&mut l, 4);
        for i in [0usize, 2, 1, 3] {
            l.received(C, ixs[i], B, Some(i as u64 + 1));
        }
        let v = l.verdict();
        assert_eq!((v.reordered, v.lost, v.faults()), (1, 0, 1), "{v:?}");
    }

    #[test]
    fn without_seqs_order_is_per_sender() {
        let mut l = Ledger::new(Recipients::Others);
        l.add_conversation(C, 3);
        for m in 0..3 {
            l.connected(C, MemberPos(m));
        }
        let a0 = l.sent(C, A, 0);
        let b0 = l.sent(C, B, 0);
        let a1 = l.sent(C, A, 0);
        for ix in [a0, b0, a1] {
            l.confirmed(C, ix, None);
        }
        // Interleaving senders differently is fine; A's own order is not.
        let z = MemberPos(2);
        l.received(C, b0, z, None);
        l.received(C, a1, z, None);
        l.received(C, a0, z, None);
        l.received(C, a0, B, None);
        l.received(C, a1, B, None);
        l.received(C, b0, A, None);
        let v = l.verdict();
        assert_eq!((v.reordered, v.faults()), (1, 1), "{v:?}");
    }

    #[test]
    fn refused_messages_must_reach_nobody() {
        let mut l = pair();
        let ix = l.sent(C, A, 0);
        l.refused(C, ix);
        l.received(C, ix, B, None);
        let v = l.verdict();
        assert_eq!((v.refused, v.unexpected, v.faults()), (1, 1, 1), "{v:?}");
        // Refused after it already arrived: unexpected too.
        let mut l = pair();
        let ix = l.sent(C, A, 0);
        l.received(C, ix, B, None);
        l.refused(C, ix);
        assert_eq!(l.verdict().unexpected, 1);
    }

    #[test]
    fn an_unavailable_answer_is_an_unknown_outcome_that_a_resend_settles() {
        let mut l = pair();
        let ix = l.sent(C, A, 7);
        l.unknown(C, ix);
        assert_eq!(l.verdict().unknown_outcome, 1);
        assert_eq!(l.orphans_of(C, A), [(ix, 7)]);
        assert!(l.orphans_of(C, B).is_empty());
        // It was taken after all: a copy arrives before the resend's answer.
        l.received(C, ix, B, Some(1));
        l.resent(C, ix);
        assert_eq!(l.pending(), (0, 1));
        assert_eq!(l.confirmed(C, ix, Some(1)), Some(7));
        let v = l.verdict();
        assert_eq!(
            (v.confirmed, v.delivered, v.unknown_outcome, v.faults()),
            (1, 1, 0, 0)
        );
        assert!(l.settled());
    }

    #[test]
    fn never_sent_or_wrong_member_copies_are_unexpected() {
        let mut l = pair();
        let ix = l.sent(C, A, 0);
        l.confirmed(C, ix, Some(1));
        l.received(C, MsgIx(9), B, None);
        l.received(C, ix, A, None); // the sender is not a recipient
        l.received(ConvIx(99), ix, B, None);
        l.unplaceable();
        let v = l.verdict();
        assert_eq!((v.unexpected, v.lost), (4, 1), "{v:?}");
    }

    #[test]
    fn unanswered_sends_fail_unless_the_sender_went_away() {
        let mut l = pair();
        l.sent(C, A, 0);
        assert!(!l.settled());
        assert_eq!(l.verdict().unanswered, 1);
        l.disconnected(C, A);
        l.connected(C, A);
        assert!(l.settled());
        let late = l.sent(C, A, 0);
        let v = l.verdict();
        assert_eq!((v.unanswered, v.unknown_outcome, v.faults()), (1, 1, 1));
        l.confirmed(C, late, Some(2));
        l.received(C, late, B, Some(2));
        assert_eq!(l.verdict().faults(), 0);
    }

    #[test]
    fn one_seq_for_two_messages_is_a_mismatch() {
        let mut l = pair();
        let a = l.sent(C, A, 0);
        let b = l.sent(C, A, 0);
        l.confirmed(C, a, Some(1));
        l.confirmed(C, b, Some(1));
        // The second confirmation conflicts; so does a copy of `a` carrying
        // the seq that now names `b`.
        assert_eq!(l.verdict().seq_mismatch, 1);
        l.received(C, a, B, Some(1));
        let v = l.verdict();
        assert_eq!(v.seq_mismatch, 2, "{v:?}");
    }

    #[test]
    fn echo_targets_expect_the_copy_at_the_sender() {
        let mut l = Ledger::new(Recipients::SenderOnly);
        l.add_conversation(C, 1);
        l.connected(C, A);
        let ixs: Vec<MsgIx> = (0..4).map(|_| l.sent(C, A, 1)).collect();
        for ix in &ixs {
            l.confirmed(C, *ix, None);
        }
        l.received(C, ixs[0], A, None);
        l.received(C, ixs[2], A, None); // 1 dropped
        l.received(C, ixs[2], A, None); // duplicated
        l.received(C, ixs[3], A, None);
        let v = l.verdict();
        assert_eq!((v.lost, v.duplicated, v.reordered), (1, 1, 0), "{v:?}");
        assert_eq!(v.delivered, 3);
    }

    #[test]
    fn a_copy_before_its_confirmation_still_counts() {
        let mut l = pair();
        let ix = l.sent(C, A, 5);
        // chatd may deliver to the peer before the sender hears message.sent.
        assert_eq!(
            l.received(C, ix, B, None),
            Reception::New { intended_us: 5 }
        );
        l.confirmed(C, ix, Some(1));
        assert!(l.settled());
        assert_eq!(l.verdict().faults(), 0);
    }
}
