//! Messages on their conversation's home shard: send (sequence, dedupe,
//! store, fan out), receipts and watermarks, typing, history, and the
//! pages a syncing device fetches.
//!
//! Lives on: the conversation's home shard's core.

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use chat_net::protocol::{ApiError, Body, ErrorCode, TypingState};
use serde_json::json;

use crate::constants::{RECEIPT_SCAN_MESSAGES_MAX, STATUS_COALESCE_MS, STATUS_SCAN_MESSAGES_MAX};
use crate::convs::member_conv;
use crate::core::Core;
use crate::ids::{ConvId, DeviceId, Millis, Seq, ShardId, UserId};
use crate::ops::{Answer, Op, Reply, SendOp};
use crate::records::{decode, BodyKind, ConvKind, Mark, MessageRec, Rec};
use crate::shard::{unavailable, Shard};
use crate::soft::{Fanout, FanoutQueue};
use crate::users::not_member;
use crate::wire::{message_new, message_object, receipt_event, status_event, typing_event};

/// Members grouped by their home shard.
fn by_shard(core: &Core, users: impl Iterator<Item = UserId>) -> HashMap<ShardId, Vec<UserId>> {
    let mut out: HashMap<ShardId, Vec<UserId>> = HashMap::new();
    for u in users {
        out.entry(core.shard_of(u.0)).or_default().push(u);
    }
    out
}

enum Sequenced {
    New(MessageRec),
    Duplicate(Seq),
}

impl Shard {
    /// Sequences, stores and (once durable) fans out one message.
    pub async fn send(self: &Rc<Self>, core: &Rc<Core>, op: SendOp) -> Reply {
        let SendOp {
            conv,
            sender,
            device,
            client_msg_id,
            body,
            media,
            reply_to,
            started,
        } = op;
        let outcome = self
            .write(|state| {
                let c = state
                    .convs
                    .get(&conv)
                    .filter(|c| c.members.contains_key(&sender))
                    .ok_or_else(|| not_member(conv))?;
                if let Some(seq) = c.dedupe.get(&(sender, device, client_msg_id.clone())) {
                    return Ok((Vec::new(), Sequenced::Duplicate(*seq)));
                }
                if let Some(r) = reply_to {
                    if r == 0 || r > c.last_seq().0 {
                        return Err(ApiError::bad_request(format!(
                            "reply_to {r} names no message of {conv}"
                        )));
                    }
                }
                let (body_kind, body) = match body {
                    Body::Text(t) => (BodyKind::Text, t),
                    Body::Ciphertext(t) => (BodyKind::Ciphertext, t),
                };
                let seq = Seq(c.last_seq().0 + 1);
                // The fan-out queue starts at the first seq this process
                // assigns, before any of this conversation is in flight.
                self.soft
                    .borrow_mut()
                    .fanout
                    .entry(conv)
                    .or_insert_with(|| FanoutQueue::new(seq));
                let m = MessageRec {
                    conv,
                    seq,
                    sender,
                    device,
                    client_msg_id: client_msg_id.clone(),
                    ts: Millis::now().max(c.last_ts),
                    body_kind,
                    body,
                    media,
                    reply_to,
                };
                Ok((vec![Rec::Message(m.clone())], Sequenced::New(m)))
            })
            .await?;
        let m = match outcome {
            Sequenced::New(m) => Rc::new(m),
            Sequenced::Duplicate(seq) => {
                // The original may still be on its way to disk: reading it
                // waits until it is durable.
                let m = self.read_message(conv, seq).await?;
                return Ok(Answer::Sent { seq, ts: m.ts });
            }
        };
        self.cache.borrow_mut().insert(m.clone());
        let seq_ts = (m.seq, m.ts);
        let item = Fanout { m, started };
        let offered = self
            .soft
            .borrow_mut()
            .fanout
            .get_mut(&conv)
            .map(|q| q.offer(item));
        if offered.expect("the queue was made when the seq was assigned") {
            self.drain_fanout(core, conv).await;
        }
        let (seq, ts) = seq_ts;
        Ok(Answer::Sent { seq, ts })
    }

    /// Fans out the conversation's durable messages strictly in seq order
    /// (durability futures wake in any order). One drainer at a time.
    async fn drain_fanout(self: &Rc<Self>, core: &Rc<Core>, conv: ConvId) {
        loop {
            let next = self
                .soft
                .borrow_mut()
                .fanout
                .get_mut(&conv)
                .and_then(FanoutQueue::take_next);
            let Some(Fanout { m, started }) = next else {
                return;
            };
            let event: Arc<str> = message_new(&message_object(&m)).into();
            let (seq, ts, from) = (m.seq, m.ts, (m.sender, m.device));
            let members: Vec<UserId> = match self.state.borrow().convs.get(&conv) {
                Some(c) => c.members.keys().copied().collect(),
                None => Vec::new(),
            };
            if members.len() > self.config.fanout_on_read_members {
                // Fan-out on read: one note per shard, which pushes it to
                // the members it has online; offline members cost nothing
                // here and pull on connect.
                for shard in 0..core.shards {
                    let op = Op::DeliverLarge {
                        conv,
                        seq,
                        ts,
                        from,
                        event: event.clone(),
                        started,
                    };
                    core.tell(ShardId(shard), op).await;
                }
            } else {
                for (shard, users) in by_shard(core, members.into_iter()) {
                    let op = Op::Deliver {
                        users,
                        conv,
                        seq,
                        ts,
                        from,
                        event: event.clone(),
                        started,
                    };
                    core.tell(shard, op).await;
                }
            }
        }
    }

    /// A stored message: from the cache, else from the log.
    async fn read_message(&self, conv: ConvId, seq: Seq) -> Result<Rc<MessageRec>, ApiError> {
        if let Some(m) = self.cache.borrow().get(conv, seq) {
            return Ok(m);
        }
        let offset = {
            let state = self.state.borrow();
            let c = state
                .convs
                .get(&conv)
                .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "no such conversation"))?;
            c.messages
                .get(seq.0 as usize - 1)
                .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "no such message"))?
                .offset
        };
        let record = self.log.read(offset).await.map_err(unavailable)?;
        match decode(&record).map_err(unavailable)? {
            Rec::Message(m) => {
                assert_eq!(
                    (m.conv, m.seq),
                    (conv, seq),
                    "the index points at the message"
                );
                Ok(Rc::new(m))
            }
            other => panic!("offset {} of {conv}/{} holds {other:?}", offset.0, seq.0),
        }
    }

    /// A member's watermark advanced (from its user shard).
    pub async fn receipt(
        self: &Rc<Self>,
        core: &Rc<Core>,
        conv: ConvId,
        user: UserId,
        mark: Mark,
        seq: Seq,
        notify: bool,
    ) -> Reply {
        let ts = Millis::now();
        let advanced = self
            .write(|state| {
                let c = member_conv(state, conv, user)?;
                let m = &c.members[&user];
                let current = match mark {
                    Mark::Delivered => m.delivered.seq(),
                    Mark::Read => m.read.seq(),
                };
                let seq = seq.min(c.last_seq());
                if seq <= current {
                    return Ok((Vec::new(), None));
                }
                Ok((
                    vec![Rec::Receipt {
                        conv,
                        user,
                        mark,
                        seq,
                        ts,
                    }],
                    Some((c.kind, seq, current)),
                ))
            })
            .await?;
        let Some((kind, seq, before)) = advanced else {
            return Ok(Answer::Done);
        };
        if !notify {
            return Ok(Answer::Done);
        }
        match kind {
            ConvKind::Direct => {
                // Tell the peer about its own latest message now covered
                // (not about the reader's own messages).
                let Some((peer, seq)) = self.peer_latest(conv, user, before, seq) else {
                    return Ok(Answer::Done);
                };
                let peers = vec![peer];
                let ty = if mark == Mark::Read {
                    "message.read"
                } else {
                    "message.delivered"
                };
                let event: Arc<str> = receipt_event(ty, conv, seq, user).into();
                for (shard, users) in by_shard(core, peers.into_iter()) {
                    core.tell(
                        shard,
                        Op::Notify {
                            users,
                            event: event.clone(),
                        },
                    )
                    .await;
                }
            }
            ConvKind::Group => self.status_later(core, conv, seq),
        }
        Ok(Answer::Done)
    }

    /// In a direct conversation: the other member, and its latest message
    /// in `(after, upto]` (looking back at most `RECEIPT_SCAN_MESSAGES_MAX`).
    fn peer_latest(
        &self,
        conv: ConvId,
        user: UserId,
        after: Seq,
        upto: Seq,
    ) -> Option<(UserId, Seq)> {
        let state = self.state.borrow();
        let c = state.convs.get(&conv)?;
        let peer = *c.members.keys().find(|u| **u != user)?;
        let floor = after
            .0
            .max(upto.0.saturating_sub(RECEIPT_SCAN_MESSAGES_MAX));
        let seq = (floor + 1..=upto.0)
            .rev()
            .find(|s| c.messages[*s as usize - 1].sender == peer)?;
        Some((peer, Seq(seq)))
    }

    /// Group `message.status`: at most one per conversation per 100 ms,
    /// with the latest counts, to the sender of the message.
    fn status_later(self: &Rc<Self>, core: &Rc<Core>, conv: ConvId, seq: Seq) {
        let mut soft = self.soft.borrow_mut();
        let first = !soft.status_pending.contains_key(&conv);
        let pending = soft.status_pending.entry(conv).or_insert((seq, seq));
        *pending = (pending.0.min(seq), pending.1.max(seq));
        if !first {
            return;
        }
        let (me, core) = (self.clone(), core.clone());
        glommio::spawn_local(async move {
            glommio::timer::sleep(Duration::from_millis(STATUS_COALESCE_MS)).await;
            let Some((lo, hi)) = me.soft.borrow_mut().status_pending.remove(&conv) else {
                return;
            };
            let events = me.status_events(conv, lo, hi);
            for (sender, event) in events {
                core.tell(
                    core.shard_of(sender.0),
                    Op::Notify {
                        users: vec![sender],
                        event: event.into(),
                    },
                )
                .await;
            }
        })
        .detach();
    }

    /// For each sender of a message in `lo..=hi` (looking back at most
    /// `STATUS_SCAN_MESSAGES_MAX`), the counts of its latest one there.
    fn status_events(&self, conv: ConvId, lo: Seq, hi: Seq) -> Vec<(UserId, String)> {
        let state = self.state.borrow();
        let Some(c) = state.convs.get(&conv) else {
            return Vec::new();
        };
        let hi = hi.min(c.last_seq());
        let lo = lo
            .max(Seq(hi.0.saturating_sub(STATUS_SCAN_MESSAGES_MAX)))
            .max(Seq(1));
        let mut latest: HashMap<UserId, Seq> = HashMap::new();
        for seq in (lo.0..=hi.0).rev() {
            latest
                .entry(c.messages[seq as usize - 1].sender)
                .or_insert(Seq(seq));
        }
        latest
            .into_iter()
            .map(|(sender, seq)| {
                let others = c.members.iter().filter(|(u, _)| **u != sender);
                let delivered = others
                    .clone()
                    .filter(|(_, m)| m.delivered.seq() >= seq)
                    .count();
                let read = others.filter(|(_, m)| m.read.seq() >= seq).count();
                (sender, status_event(conv, seq, delivered, read))
            })
            .collect()
    }

    pub async fn typing(
        self: &Rc<Self>,
        core: &Rc<Core>,
        conv: ConvId,
        user: UserId,
        state: TypingState,
    ) -> Reply {
        let others: Vec<UserId> = {
            let st = self.state.borrow();
            let c = st
                .convs
                .get(&conv)
                .filter(|c| c.members.contains_key(&user))
                .ok_or_else(|| not_member(conv))?;
            c.members.keys().filter(|u| **u != user).copied().collect()
        };
        let event: Arc<str> = typing_event(conv, user, state.as_str()).into();
        for (shard, users) in by_shard(core, others.into_iter()) {
            core.tell(
                shard,
                Op::Notify {
                    users,
                    event: event.clone(),
                },
            )
            .await;
        }
        Ok(Answer::Done)
    }

    /// A page of history, ascending, within what `user` may see (from the
    /// seq after it joined).
    pub async fn history(
        &self,
        conv: ConvId,
        user: UserId,
        before: Option<Seq>,
        after: Option<Seq>,
        limit: usize,
    ) -> Reply {
        self.settled().await?;
        let (lo, hi, has_more) = {
            let state = self.state.borrow();
            let c = member_conv(&state, conv, user)?;
            let first = c.members[&user].joined.0 + 1;
            let last = c.last_seq().0;
            let n = limit as u64;
            match (before, after) {
                (Some(_), Some(_)) => {
                    return Err(ApiError::bad_request("give `before` or `after`, not both"))
                }
                (Some(b), None) => {
                    let hi = b.0.saturating_sub(1).min(last);
                    let lo = hi.saturating_sub(n - 1).max(first);
                    (lo, hi, lo > first)
                }
                (None, Some(a)) => {
                    let lo = (a.0 + 1).max(first);
                    let hi = (lo + n - 1).min(last);
                    (lo, hi, hi < last)
                }
                (None, None) => {
                    let lo = (last + 1).saturating_sub(n).max(first);
                    (lo, last, lo > first)
                }
            }
        };
        let mut out = String::from("{\"messages\":[");
        for (i, seq) in (lo..=hi).enumerate() {
            if i > 0 {
                out.push(',');
            }
            let m = self.read_message(conv, Seq(seq)).await?;
            out.push_str(&message_object(&m));
        }
        out.push_str("],\"has_more\":");
        out.push_str(if has_more && lo <= hi {
            "true"
        } else {
            "false"
        });
        out.push('}');
        Ok(Answer::Raw(out))
    }

    pub fn receipts(&self, conv: ConvId, user: UserId, seq: Seq) -> Reply {
        let state = self.state.borrow();
        let c = member_conv(&state, conv, user)?;
        let meta = c
            .messages
            .get((seq.0 as usize).wrapping_sub(1))
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::NotFound,
                    format!("no message {} in {conv}", seq.0),
                )
            })?;
        let others = c.members.iter().filter(|(u, _)| **u != meta.sender);
        let list = |pick: fn(&crate::state::Member) -> &crate::state::Watermark| -> Vec<serde_json::Value> {
            others.clone().filter_map(|(u, m)| pick(m).reached(seq).map(|ts| json!({"user_id": u.to_string(), "ts": ts.0}))).collect()
        };
        Ok(Answer::Json(
            json!({"delivered": list(|m| &m.delivered), "read": list(|m| &m.read)}),
        ))
    }

    /// Messages after `after`, for a syncing device of a member.
    pub async fn fetch(
        &self,
        conv: ConvId,
        reader: (UserId, DeviceId),
        after: Seq,
        limit: usize,
    ) -> Reply {
        self.settled().await?;
        let (lo, hi, last) = {
            let state = self.state.borrow();
            let Ok(c) = member_conv(&state, conv, reader.0) else {
                return Ok(Answer::Fetched {
                    events: Vec::new(),
                    through: after,
                    last_seq: Seq(0),
                });
            };
            let lo = (after.0 + 1).max(c.members[&reader.0].joined.0 + 1);
            let last = c.last_seq().0;
            (lo, last.min(lo + limit as u64 - 1), last)
        };
        let mut events = Vec::with_capacity((hi + 1).saturating_sub(lo) as usize);
        for seq in lo..=hi {
            let m = self.read_message(conv, Seq(seq)).await?;
            if (m.sender, m.device) != reader {
                events.push((Seq(seq), Arc::from(message_new(&message_object(&m)))));
            }
        }
        Ok(Answer::Fetched {
            events,
            through: Seq(hi.max(after.0)),
            last_seq: Seq(last),
        })
    }
}
