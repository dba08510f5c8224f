//! Delivery on the user's home: a durable message moves the members'
//! pointers and goes to their online devices (not to the device that sent
//! it); other events go to every online device of some users.
//!
//! Lives on: the users' home shard.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use super::push_to;
use crate::machine::ids::{ConvId, DeviceId, Millis, Seq, UserId};
use crate::push::offer::offer;
use crate::shard::error::ShardResult;
use crate::shard::mesh::{Mesh, ShardOp};
use crate::shard::runner::Shard;

/// A durable message on its way to the members' devices.
pub struct Delivery {
    pub conv: ConvId,
    pub seq: Seq,
    pub ts: Millis,
    pub from: (UserId, DeviceId),
    pub event: Arc<str>,
    pub started: Option<Instant>,
}

/// A durable message for these members (all of this home).
pub struct Deliver {
    pub users: Vec<UserId>,
    pub delivery: Delivery,
}

impl ShardOp for Deliver {
    type Reply = ();

    async fn run(self, shard: Rc<Shard>, mesh: Rc<dyn Mesh>) -> ShardResult<()> {
        let d = &self.delivery;
        let targets: Vec<_> = {
            let mut soft = shard.soft.borrow_mut();
            for user in &self.users {
                let Some(p) = soft.pointers.get_mut(user).and_then(|p| p.get_mut(&d.conv)) else {
                    continue;
                };
                if d.seq > p.last_seq {
                    (p.last_seq, p.last_ts) = (d.seq, d.ts);
                    p.last_from = Some(d.from.0);
                }
                if *user == d.from.0 {
                    p.own_last = p.own_last.max(d.seq);
                }
            }
            self.users
                .iter()
                .flat_map(|u| soft.conns_of(*u).map(move |o| (*u, o)))
                .filter(|(u, o)| (*u, o.device) != d.from)
                .map(|(_, o)| o.conn)
                .collect()
        };
        offer(&shard, &self.users, d);
        let tag = Some((d.conv, d.seq));
        push_to(&mesh, targets.into_iter(), &d.event, tag, d.started).await;
        Ok(())
    }
}

/// A durable message of a large group (fan-out on read): every shard
/// pushes it to the members it has online; offline ones pull on connect.
pub struct DeliverLarge(pub Delivery);

impl ShardOp for DeliverLarge {
    type Reply = ();

    async fn run(self, shard: Rc<Shard>, mesh: Rc<dyn Mesh>) -> ShardResult<()> {
        if shard.pusher().is_some() {
            offer_large(&shard, &self.0);
        }
        let online = shard
            .soft
            .borrow()
            .online_by_conv
            .get(&self.0.conv)
            .cloned();
        let Some(users) = online.filter(|u| !u.is_empty()) else {
            return Ok(());
        };
        Deliver {
            users,
            delivery: self.0,
        }
        .run(shard, mesh)
        .await
    }
}

/// A large group's message for this home's members that are not online
/// (their pointers move, so that their unread count is right), and the
/// notification offer for them; the online ones (whose other devices may
/// be offline) get theirs from `Deliver`.
fn offer_large(shard: &Shard, d: &Delivery) {
    let members: Vec<UserId> = {
        let mut soft = shard.soft.borrow_mut();
        let Some(set) = soft.large_members.get(&d.conv) else {
            return;
        };
        let online = soft.online_by_conv.get(&d.conv);
        let members: Vec<UserId> = set
            .iter()
            .copied()
            .filter(|u| *u != d.from.0 && !online.is_some_and(|o| o.contains(u)))
            .collect();
        for user in &members {
            let p = soft.pointers.get_mut(user).and_then(|p| p.get_mut(&d.conv));
            if let Some(p) = p.filter(|p| d.seq > p.last_seq) {
                (p.last_seq, p.last_ts, p.last_from) = (d.seq, d.ts, Some(d.from.0));
            }
        }
        members
    };
    offer(shard, &members, d);
}

/// An event for every online device of these users.
pub struct Notify {
    pub users: Vec<UserId>,
    pub event: Arc<str>,
}

/// An event for every online device of these users but one, if given (the
/// device that caused it, which has its answer).
pub struct NotifyExcept {
    pub users: Vec<UserId>,
    pub except: Option<(UserId, DeviceId)>,
    pub event: Arc<str>,
}

impl ShardOp for NotifyExcept {
    type Reply = ();

    async fn run(self, shard: Rc<Shard>, mesh: Rc<dyn Mesh>) -> ShardResult<()> {
        let targets: Vec<_> = {
            let soft = shard.soft.borrow();
            self.users
                .iter()
                .flat_map(|u| soft.conns_of(*u).map(move |o| (*u, o)))
                .filter(|(u, o)| Some((*u, o.device)) != self.except)
                .map(|(_, o)| o.conn)
                .collect()
        };
        push_to(&mesh, targets.into_iter(), &self.event, None, None).await;
        Ok(())
    }
}

/// `NotifyExcept` for a large group (fan-out on read): every shard tells
/// the members of `conv` it has online.
pub struct NotifyOnline {
    pub conv: ConvId,
    pub except: Option<(UserId, DeviceId)>,
    pub event: Arc<str>,
}

impl ShardOp for NotifyOnline {
    type Reply = ();

    async fn run(self, shard: Rc<Shard>, mesh: Rc<dyn Mesh>) -> ShardResult<()> {
        let online = shard.soft.borrow().online_by_conv.get(&self.conv).cloned();
        let Some(users) = online.filter(|u| !u.is_empty()) else {
            return Ok(());
        };
        let op = NotifyExcept {
            users,
            except: self.except,
            event: self.event,
        };
        op.run(shard, mesh).await
    }
}

impl ShardOp for Notify {
    type Reply = ();

    async fn run(self, shard: Rc<Shard>, mesh: Rc<dyn Mesh>) -> ShardResult<()> {
        let op = NotifyExcept {
            users: self.users,
            except: None,
            event: self.event,
        };
        op.run(shard, mesh).await
    }
}
