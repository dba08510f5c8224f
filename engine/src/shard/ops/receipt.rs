//! Receipts on the conversation's home: a member's watermark moves (from
//! the member's home); group `message.status` goes out coalesced; the
//! receipts call answers who got and read a message.
//!
//! Lives on: the conversation's home shard.

use std::rc::Rc;

use crate::constants::STATUS_COALESCE_MS;
use crate::machine::cmd::receipt::Receipt;
use crate::machine::ids::{ConvId, Seq, UserId};
use crate::machine::query::receipts::{self, Receipts};
use crate::machine::query::status::statuses;
use crate::machine::records::Mark;
use crate::shard::error::ShardResult;
use crate::shard::mesh::{shard_of, tell, Mesh, ShardOp};
use crate::shard::runner::Shard;
use crate::wire::status_event;

use super::deliver::Notify;

/// A member's watermark advanced (told by its home).
pub struct MoveWatermark {
    pub conv: ConvId,
    pub user: UserId,
    pub mark: Mark,
    pub seq: Seq,
}

impl ShardOp for MoveWatermark {
    type Reply = ();

    async fn run(self, shard: Rc<Shard>, mesh: Rc<dyn Mesh>) -> ShardResult<()> {
        let cmd = Receipt {
            conv: self.conv,
            user: self.user,
            mark: self.mark,
            seq: self.seq,
        };
        shard.submit(&mesh, cmd).await
    }
}

/// Group `message.status`: at most one per conversation per 100 ms, with
/// the latest counts, to the senders of the messages it covers.
pub fn status_later(shard: &Rc<Shard>, mesh: &Rc<dyn Mesh>, conv: ConvId, seq: Seq) {
    {
        let mut soft = shard.soft.borrow_mut();
        let first = !soft.status_pending.contains_key(&conv);
        let pending = soft.status_pending.entry(conv).or_insert((seq, seq));
        *pending = (pending.0.min(seq), pending.1.max(seq));
        if !first {
            return;
        }
    }
    let (shard, mesh) = (shard.clone(), mesh.clone());
    glommio::spawn_local(async move {
        shard.clock.sleep(STATUS_COALESCE_MS).await;
        let Some((lo, hi)) = shard.soft.borrow_mut().status_pending.remove(&conv) else {
            return;
        };
        let list = statuses(&shard.state(), conv, lo, hi);
        for s in list {
            let event = status_event(conv, s.seq, s.delivered, s.read).into();
            let notify = Notify {
                users: vec![s.sender],
                event,
            };
            tell(&mesh, shard_of(&*mesh, s.sender.0), notify).await;
        }
    })
    .detach();
}

/// `GET .../messages/{seq}/receipts`.
pub struct GetReceipts {
    pub conv: ConvId,
    pub user: UserId,
    pub seq: Seq,
}

impl ShardOp for GetReceipts {
    type Reply = Receipts;

    async fn run(self, shard: Rc<Shard>, _mesh: Rc<dyn Mesh>) -> ShardResult<Receipts> {
        shard.settled().await?;
        let known = receipts::check(&shard.state(), self.conv, self.user, self.seq)?;
        let sender = match known {
            Some(sender) => sender,
            None => shard.read_message(self.conv, self.seq).await?.sender,
        };
        Ok(receipts::receipts(
            &shard.state(),
            self.conv,
            self.seq,
            sender,
        ))
    }
}
