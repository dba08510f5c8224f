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
use crate::shard::error::ShardResult;
use crate::shard::mesh::{Mesh, ShardOp};
use crate::shard::runner::Shard;

/// A durable message for these members (all of this home).
pub struct Deliver {
    pub users: Vec<UserId>,
    pub conv: ConvId,
    pub seq: Seq,
    pub ts: Millis,
    pub from: (UserId, DeviceId),
    pub event: Arc<str>,
    pub started: Option<Instant>,
}

impl ShardOp for Deliver {
    type Reply = ();

    async fn run(self, shard: Rc<Shard>, mesh: Rc<dyn Mesh>) -> ShardResult<()> {
        let targets: Vec<_> = {
            let mut soft = shard.soft.borrow_mut();
            for user in &self.users {
                let Some(p) = soft
                    .pointers
                    .get_mut(user)
                    .and_then(|p| p.get_mut(&self.conv))
                else {
                    continue;
                };
                if self.seq > p.last_seq {
                    (p.last_seq, p.last_ts) = (self.seq, self.ts);
                }
                if *user == self.from.0 {
                    p.own_last = p.own_last.max(self.seq);
                }
            }
            let from = self.from;
            self.users
                .iter()
                .flat_map(|u| soft.conns_of(*u).map(move |o| (*u, o)))
                .filter(|(u, o)| (*u, o.device) != from)
                .map(|(_, o)| o.conn)
                .collect()
        };
        let tag = Some((self.conv, self.seq));
        push_to(&mesh, targets.into_iter(), &self.event, tag, self.started).await;
        Ok(())
    }
}

/// A durable message of a large group (fan-out on read): every shard
/// pushes it to the members it has online; offline ones pull on connect.
pub struct DeliverLarge {
    pub conv: ConvId,
    pub seq: Seq,
    pub ts: Millis,
    pub from: (UserId, DeviceId),
    pub event: Arc<str>,
    pub started: Option<Instant>,
}

impl ShardOp for DeliverLarge {
    type Reply = ();

    async fn run(self, shard: Rc<Shard>, mesh: Rc<dyn Mesh>) -> ShardResult<()> {
        let users = shard
            .soft
            .borrow()
            .online_by_conv
            .get(&self.conv)
            .cloned()
            .unwrap_or_default();
        if users.is_empty() {
            return Ok(());
        }
        let deliver = Deliver {
            users,
            conv: self.conv,
            seq: self.seq,
            ts: self.ts,
            from: self.from,
            event: self.event,
            started: self.started,
        };
        deliver.run(shard, mesh).await
    }
}

/// An event for every online device of these users.
pub struct Notify {
    pub users: Vec<UserId>,
    pub event: Arc<str>,
}

impl ShardOp for Notify {
    type Reply = ();

    async fn run(self, shard: Rc<Shard>, mesh: Rc<dyn Mesh>) -> ShardResult<()> {
        let targets: Vec<_> = {
            let soft = shard.soft.borrow();
            self.users
                .iter()
                .flat_map(|u| soft.conns_of(*u).map(|o| o.conn))
                .collect()
        };
        push_to(&mesh, targets.into_iter(), &self.event, None, None).await;
        Ok(())
    }
}
