//! The machine on its own: decisions, effects, and a fuzzy snapshot taken
//! while records keep arriving restores exactly the live state.

use super::apply::apply;
use super::cmd::create_direct::CreateDirect;
use super::cmd::create_group::CreateGroup;
use super::cmd::cursor::Cursor;
use super::cmd::delete::Delete;
use super::cmd::edit::{Edit, Target};
use super::cmd::link_device::LinkDevice;
use super::cmd::receipt::Receipt;
use super::cmd::send::{Send, Sent};
use super::ctx::Ctx;
use super::effects::{Audience, Change, Effect};
use super::error::DomainError;
use super::ids::{ConvId, DeviceId, Millis, Seq, ShardId, UserId};
use super::records::{BodyKind, Mark, Rec};
use super::snapshot::{Capture, Restore};
use super::state::{Lsn, Params, State, Version};
use super::token::{Secret, SECRET_BYTES};

const PARAMS: Params = Params {
    group_members_max: 512,
    fanout_on_read_members: 256,
    token_ttl_seconds: 3600,
    edit_window_seconds: 3600,
    key_fetches_per_minute: 60,
};

/// One shard's machine with a log of its own (a Vec of records).
struct Harness {
    state: State,
    log: Vec<Rec>,
    now: u64,
}

impl Harness {
    fn new() -> Harness {
        Harness {
            state: State::new(PARAMS),
            log: Vec::new(),
            now: 1_000,
        }
    }

    fn ctx(&mut self) -> Ctx {
        self.now += 1;
        Ctx {
            now: Millis(self.now),
            shard: ShardId(0),
            shards: 1,
        }
    }

    /// Appends and applies; returns the effects.
    fn write(&mut self, recs: Vec<Rec>) -> Vec<Effect> {
        let mut effects = Vec::new();
        for rec in recs {
            self.log.push(rec);
            let at = Lsn(self.log.len() as u64);
            effects.extend(apply(&mut self.state, self.log.last().unwrap(), at));
        }
        effects
    }

    fn user(&mut self, phone: &str) -> UserId {
        let ctx = self.ctx();
        let cmd = LinkDevice {
            phone: phone.into(),
            device_name: "phone".into(),
            secret: Secret([3; SECRET_BYTES]),
            cursors: Vec::new(),
        };
        let d = cmd.decide(&self.state, &ctx).unwrap();
        self.write(d.recs);
        d.reply.user
    }

    fn send(
        &mut self,
        conv: ConvId,
        sender: UserId,
        id: &str,
    ) -> Result<(Sent, Vec<Effect>), DomainError> {
        let ctx = self.ctx();
        let cmd = Send {
            conv,
            sender,
            device: DeviceId(1),
            client_msg_id: id.into(),
            body_kind: BodyKind::Text,
            body: format!("body of {id}"),
            media: None,
            reply_to: None,
        };
        let d = cmd.decide(&self.state, &ctx)?;
        let effects = self.write(d.recs);
        Ok((d.reply, effects))
    }

    /// Edits `conv`/`seq` (sent by `sender` at `sent`) as `by`.
    fn edit(
        &mut self,
        (conv, seq): (ConvId, u64),
        by: UserId,
        target: Target,
        body: &str,
    ) -> Result<(Millis, Vec<Effect>), DomainError> {
        let ctx = self.ctx();
        let cmd = Edit {
            conv,
            seq: Seq(seq),
            by,
            device: DeviceId(1),
            body_kind: BodyKind::Text,
            body: body.into(),
            target,
        };
        let d = cmd.decide(&self.state, &ctx)?;
        let effects = self.write(d.recs);
        Ok((d.reply.edited_ts, effects))
    }

    fn delete(
        &mut self,
        (conv, seq): (ConvId, u64),
        by: UserId,
        target: Target,
    ) -> Result<Vec<Effect>, DomainError> {
        let ctx = self.ctx();
        let cmd = Delete {
            conv,
            seq: Seq(seq),
            by,
            device: DeviceId(1),
            target,
        };
        let d = cmd.decide(&self.state, &ctx)?;
        Ok(self.write(d.recs))
    }
}

fn direct(h: &mut Harness, a: UserId, b: UserId) -> ConvId {
    let ctx = h.ctx();
    let d = CreateDirect { a, b }.decide(&h.state, &ctx).unwrap();
    h.write(d.recs);
    d.reply.conv
}

#[test]
fn seqs_are_gapless_and_resends_get_their_first_seq() {
    let mut h = Harness::new();
    let (a, b) = (h.user("+15550000001"), h.user("+15550000002"));
    let conv = direct(&mut h, a, b);
    for i in 1..=5u64 {
        let (sent, effects) = h.send(conv, a, &format!("m{i}")).unwrap();
        assert!(matches!(sent, Sent::New { seq, .. } if seq == Seq(i)));
        assert!(
            matches!(&effects[..], [Effect::Deliver { audience: Audience::Members(m), .. }] if m.len() == 2)
        );
    }
    let (again, effects) = h.send(conv, a, "m3").unwrap();
    assert_eq!(again, Sent::Duplicate { seq: Seq(3) });
    assert!(effects.is_empty(), "a resend changes nothing");
    let outsider = h.user("+15550000003");
    assert_eq!(
        h.send(conv, outsider, "x").unwrap_err(),
        DomainError::NotMember(conv)
    );
}

#[test]
fn edits_and_deletes_follow_the_rules_and_are_deduped() {
    let mut h = Harness::new();
    let (a, b) = (h.user("+15550000001"), h.user("+15550000002"));
    let conv = direct(&mut h, a, b);
    let Sent::New { ts, .. } = h.send(conv, a, "1").unwrap().0 else {
        panic!("a new message");
    };
    let mine = Target { sender: a, ts };
    let (edited, effects) = h.edit((conv, 1), a, mine, "v1").unwrap();
    assert!(matches!(
        &effects[..],
        [Effect::Changed { change: Change::Edited { ts, .. }, by, .. }] if *ts == edited && by.0 == a
    ));
    let (again, effects) = h.edit((conv, 1), a, mine, "v1").unwrap();
    assert_eq!(
        (again, effects.len()),
        (edited, 0),
        "a resent edit changes nothing"
    );
    assert_eq!(
        h.edit((conv, 1), b, mine, "x").unwrap_err(),
        DomainError::NotAuthor
    );
    assert!(matches!(
        h.edit((conv, 2), a, mine, "x"),
        Err(DomainError::NoMessage { .. })
    ));
    for i in 2..=10 {
        h.edit((conv, 1), a, mine, &format!("v{i}")).unwrap();
    }
    assert_eq!(
        h.edit((conv, 1), a, mine, "v11").unwrap_err(),
        DomainError::TooManyEdits { max: 10 }
    );
    let changed = h.state.convs[&conv].changes[&Seq(1)];
    assert_eq!((changed.edits, changed.at_last_seq), (10, 1));
    // Past the window: refused, however few edits.
    h.send(conv, a, "2").unwrap();
    h.now += PARAMS.edit_window_seconds * 1000;
    let old = Target {
        sender: a,
        ts: Millis(1),
    };
    assert_eq!(
        h.edit((conv, 2), a, old, "late").unwrap_err(),
        DomainError::EditWindowPassed {
            seconds: PARAMS.edit_window_seconds
        }
    );
    // Deletes: the sender only in a direct chat; once; no edit after.
    assert_eq!(
        h.delete((conv, 2), b, old).unwrap_err(),
        DomainError::NotAuthor
    );
    assert!(matches!(
        &h.delete((conv, 2), a, old).unwrap()[..],
        [Effect::Changed {
            change: Change::Deleted,
            ..
        }]
    ));
    assert!(
        h.delete((conv, 2), a, old).unwrap().is_empty(),
        "deleted once"
    );
    assert_eq!(
        h.edit((conv, 2), a, old, "back").unwrap_err(),
        DomainError::MessageDeleted
    );
    assert_eq!(
        h.state.convs[&conv].changes[&Seq(2)].version(),
        Version::Deleted
    );
}

#[test]
fn a_group_admin_deletes_any_message_a_member_only_its_own() {
    let mut h = Harness::new();
    let users: Vec<UserId> = (0..3).map(|i| h.user(&format!("+1555000020{i}"))).collect();
    let ctx = h.ctx();
    let cmd = CreateGroup {
        creator: users[0],
        name: "g".into(),
        members: users[1..].to_vec(),
    };
    let d = cmd.decide(&h.state, &ctx).unwrap();
    let conv = d.reply.conv;
    h.write(d.recs);
    h.send(conv, users[1], "x").unwrap();
    let theirs = Target {
        sender: users[1],
        ts: Millis(h.now),
    };
    assert_eq!(
        h.delete((conv, 1), users[2], theirs).unwrap_err(),
        DomainError::NotAuthor
    );
    assert_eq!(
        h.delete((conv, 1), users[0], theirs).unwrap().len(),
        1,
        "the admin may"
    );
}

#[test]
fn a_read_moves_the_member_and_tells_the_direct_peer() {
    let mut h = Harness::new();
    let (a, b) = (h.user("+15550000001"), h.user("+15550000002"));
    let conv = direct(&mut h, a, b);
    h.send(conv, a, "1").unwrap();
    h.send(conv, b, "2").unwrap();
    let ctx = h.ctx();
    let cursor = Cursor {
        user: b,
        device: DeviceId(1),
        conv,
        mark: Mark::Read,
        seq: Seq(9),
        last: Seq(2),
        joined: Seq(0),
    };
    let d = cursor.decide(&h.state, &ctx).unwrap();
    let effects = h.write(d.recs);
    assert_eq!(
        effects,
        vec![Effect::MemberMoved {
            conv,
            user: b,
            mark: Mark::Read,
            seq: Seq(2)
        }],
        "clamped to what exists"
    );
    let ctx = h.ctx();
    let receipt = Receipt {
        conv,
        user: b,
        mark: Mark::Read,
        seq: Seq(2),
    };
    let d = receipt.decide(&h.state, &ctx).unwrap();
    let effects = h.write(d.recs);
    assert_eq!(
        effects,
        vec![Effect::ReceiptToPeer {
            to: a,
            conv,
            seq: Seq(1),
            by: b,
            mark: Mark::Read
        }],
        "the peer hears of its own latest message, not of the reader's"
    );
}

#[test]
fn large_groups_fan_out_on_read() {
    let mut h = Harness::new();
    h.state.params.fanout_on_read_members = 3;
    let users: Vec<UserId> = (0..5).map(|i| h.user(&format!("+1555000010{i}"))).collect();
    let ctx = h.ctx();
    let cmd = CreateGroup {
        creator: users[0],
        name: "g".into(),
        members: users[1..].to_vec(),
    };
    let d = cmd.decide(&h.state, &ctx).unwrap();
    let effects = h.write(d.recs);
    assert!(
        matches!(&effects[..], [Effect::Announce { pointers }] if pointers.len() == 5 && pointers[0].1.large)
    );
    let (_, effects) = h.send(d.reply.conv, users[2], "x").unwrap();
    assert!(matches!(
        &effects[..],
        [Effect::Deliver {
            audience: Audience::Online,
            ..
        }]
    ));
}

/// Every record up to `start` is in the snapshot; records after it keep
/// landing between chunks. Restore + replay from `start + 1` must equal the
/// live state, entity for entity.
#[test]
fn fuzzy_snapshot_plus_replay_equals_the_live_state() {
    let mut h = Harness::new();
    let users: Vec<UserId> = (0..30)
        .map(|i| h.user(&format!("+155500002{i:02}")))
        .collect();
    let convs: Vec<ConvId> = (1..30)
        .map(|i| direct(&mut h, users[0], users[i]))
        .collect();
    for (i, conv) in convs.iter().enumerate() {
        h.send(*conv, users[0], &format!("pre{i}")).unwrap();
    }
    let start = Lsn(h.log.len() as u64);
    let mut capture = Capture::new(start);
    let mut chunks = Vec::new();
    let mut round = 0;
    while let Some(chunk) = capture.next_chunk(&h.state, 600) {
        chunks.push(chunk);
        // Writes go on between chunks: messages, a new user, a new conversation.
        round += 1;
        let conv = convs[round % convs.len()];
        h.send(
            conv,
            users[round % convs.len() + 1],
            &format!("during{round}"),
        )
        .unwrap();
        if round % 5 == 0 {
            let target = Target {
                sender: users[0],
                ts: Millis(h.now),
            };
            h.edit((conv, 1), users[0], target, &format!("edit {round}"))
                .unwrap();
        }
        if round % 7 == 0 {
            let u = h.user(&format!("+15550009{round:03}"));
            direct(&mut h, users[0], u);
        }
    }
    assert!(chunks.len() > 10, "the capture took several chunks");
    for i in 0..20 {
        h.send(convs[i % convs.len()], users[0], &format!("post{i}"))
            .unwrap();
    }
    let mut restore = Restore::new(PARAMS);
    for chunk in &chunks {
        restore.add_chunk(chunk).unwrap();
    }
    let mut back = restore.finish().unwrap();
    assert!(back.replay_floor >= capture.max_lsn());
    for (i, rec) in h.log.iter().enumerate().skip(start.0 as usize) {
        let _ = apply(&mut back, rec, Lsn(i as u64 + 1));
    }
    assert_eq!(back.users, h.state.users);
    assert_eq!(back.convs, h.state.convs);
    assert_eq!(back.meta, h.state.meta);
    assert_eq!(back.phones, h.state.phones);
}

#[test]
fn a_damaged_snapshot_chunk_is_refused() {
    let mut h = Harness::new();
    h.user("+15550000001");
    let mut capture = Capture::new(Lsn(h.log.len() as u64));
    let mut chunk = capture.next_chunk(&h.state, 1 << 20).unwrap();
    let mut restore = Restore::new(PARAMS);
    let mid = chunk.len() / 2;
    chunk.truncate(mid);
    assert!(restore.add_chunk(&chunk).is_err());
    let mut restore = Restore::new(PARAMS);
    restore.add_chunk(&[]).unwrap();
    assert!(
        restore.finish().is_err(),
        "no counters: not a whole snapshot"
    );
}
