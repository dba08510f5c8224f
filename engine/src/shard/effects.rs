//! Carrying out the machine's effects, once their records are durable:
//! fan-out, announcements, closes, presence, receipts, group status.
//!
//! Lives on: the shard's core; called by the runner's drainer, one effect
//! at a time in log order (so a conversation's messages go out in seq
//! order, and each peer ring is entered in that order).

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

use super::conn::{ConnRef, CLOSE_UNAUTHORIZED};
use super::mesh::{shard_of, tell, Mesh};
use super::ops::deliver::{Deliver, DeliverLarge, Delivery, Notify, NotifyExcept, NotifyOnline};
use super::ops::membership::{Joined, Left};
use super::ops::receipt::{status_later, MoveWatermark};
use super::runner::Shard;
use crate::machine::effects::{Audience, Change, Effect};
use crate::machine::ids::{ConvId, DeviceId, Seq, ShardId, UserId};
use crate::machine::records::MessageRec;
use crate::machine::state::Version;
use crate::wire::{
    conversation_updated, message_deleted, message_edited, message_new, message_object,
    receipt_event,
};

pub async fn carry_out(shard: &Rc<Shard>, mesh: &Rc<dyn Mesh>, effect: Effect) {
    match effect {
        Effect::Deliver { message, audience } => deliver(shard, mesh, message, audience).await,
        Effect::Announce { pointers } => {
            for (user, info) in pointers {
                tell(mesh, shard_of(&**mesh, user.0), Joined { user, info }).await;
            }
        }
        Effect::Left { conv, user } => {
            tell(mesh, shard_of(&**mesh, user.0), Left { user, conv }).await
        }
        Effect::CloseDevice { user, device } => close_device(shard, mesh, user, device).await,
        Effect::WentOffline { user, at } => {
            super::ops::presence::changed(shard, mesh, user, false, Some(at)).await;
        }
        Effect::MemberMoved { .. } if !shard.leads() => {}
        Effect::MemberMoved {
            conv,
            user,
            mark,
            seq,
        } => {
            let op = MoveWatermark {
                conv,
                user,
                mark,
                seq,
            };
            tell(mesh, shard_of(&**mesh, conv.0), op).await;
        }
        Effect::ReceiptToPeer {
            to,
            conv,
            seq,
            by,
            mark,
        } => {
            let event: Arc<str> = receipt_event(mark, conv, seq, by).into();
            let notify = Notify {
                users: vec![to],
                event,
            };
            tell(mesh, shard_of(&**mesh, to.0), notify).await;
        }
        Effect::GroupStatus { conv, seq } => status_later(shard, mesh, conv, seq),
        Effect::Changed {
            conv,
            seq,
            by,
            change,
            audience,
        } => changed(mesh, (conv, seq, by), &change, audience).await,
        Effect::ConvUpdated {
            conv,
            disappearing_seconds,
            audience,
        } => {
            let event = conversation_updated(conv, disappearing_seconds);
            notify(mesh, conv, event.into(), audience, None).await
        }
    }
}

/// An edit or delete, encoded once, to every member's home (or every
/// shard, for a large group).
async fn changed(
    mesh: &Rc<dyn Mesh>,
    (conv, seq, by): (ConvId, Seq, (UserId, DeviceId)),
    change: &Change,
    audience: Audience,
) {
    let event: Arc<str> = match change {
        Change::Edited {
            body_kind,
            body,
            ts,
        } => message_edited(None, conv, seq, (*body_kind, body), *ts),
        Change::Deleted => message_deleted(None, conv, seq),
    }
    .into();
    notify(mesh, conv, event, audience, Some(by)).await
}

/// `event` to every online device of the audience (but `except`).
async fn notify(
    mesh: &Rc<dyn Mesh>,
    conv: ConvId,
    event: Arc<str>,
    audience: Audience,
    except: Option<(UserId, DeviceId)>,
) {
    match audience {
        Audience::Online => {
            for home in 0..mesh.shards() {
                let event = event.clone();
                let op = NotifyOnline {
                    conv,
                    except,
                    event,
                };
                tell(mesh, ShardId(home), op).await;
            }
        }
        Audience::Members(users) => {
            for (home, users) in by_home(mesh, users) {
                let event = event.clone();
                let op = NotifyExcept {
                    users,
                    except,
                    event,
                };
                tell(mesh, home, op).await;
            }
        }
    }
}

fn by_home(mesh: &Rc<dyn Mesh>, users: Vec<UserId>) -> BTreeMap<ShardId, Vec<UserId>> {
    let mut by_home: BTreeMap<ShardId, Vec<UserId>> = BTreeMap::new();
    for u in users {
        by_home.entry(shard_of(&**mesh, u.0)).or_default().push(u);
    }
    by_home
}

/// A durable message: into the recent cache, encoded once, and to every
/// member's home (or every shard, for a large group).
async fn deliver(shard: &Rc<Shard>, mesh: &Rc<dyn Mesh>, m: Arc<MessageRec>, audience: Audience) {
    let started = shard.take_started(m.conv, m.seq);
    shard.cache.borrow_mut().insert(m.clone());
    let event: Arc<str> = message_new(&message_object(&m, Version::Original)).into();
    let each = || Delivery {
        conv: m.conv,
        seq: m.seq,
        ts: m.ts,
        from: (m.sender, m.device),
        event: event.clone(),
        started,
    };
    match audience {
        Audience::Online => {
            for home in 0..mesh.shards() {
                tell(mesh, ShardId(home), DeliverLarge(each())).await;
            }
        }
        Audience::Members(users) => {
            for (home, users) in by_home(mesh, users) {
                tell(
                    mesh,
                    home,
                    Deliver {
                        users,
                        delivery: each(),
                    },
                )
                .await;
            }
        }
    }
}

/// Closes the connections of a revoked device.
async fn close_device(shard: &Rc<Shard>, mesh: &Rc<dyn Mesh>, user: UserId, device: DeviceId) {
    let conns: Vec<ConnRef> = shard
        .soft
        .borrow()
        .conns_of(user)
        .filter(|o| o.device == device)
        .map(|o| o.conn)
        .collect();
    for conn in conns {
        mesh.close(conn, CLOSE_UNAUTHORIZED, "device revoked").await;
    }
}
