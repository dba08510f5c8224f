//! Reading messages back on the conversation's home: history pages, and
//! the pages a syncing device fetches. A read that saw the state rebuilt
//! under it (a failed write) starts again, so it never mixes two states.
//!
//! Lives on: the conversation's home shard.

use std::rc::Rc;
use std::sync::Arc;

use crate::constants::READ_TRIES_MAX;
use crate::machine::ids::{ConvId, DeviceId, Seq, UserId};
use crate::machine::query::{conv::fetch_range, history::page};
use crate::machine::records::MessageRec;
use crate::shard::error::{unavailable, ShardResult};
use crate::shard::mesh::{Mesh, ShardOp};
use crate::shard::runner::Shard;

/// Reads `lo..=hi` (skipping what `skip` says), all under one generation.
async fn read_range(
    shard: &Shard,
    conv: ConvId,
    (lo, hi): (u64, u64),
    skip: impl Fn(&MessageRec) -> bool,
) -> ShardResult<Option<Vec<Arc<MessageRec>>>> {
    let generation = shard.generation();
    let mut out = Vec::with_capacity((hi + 1).saturating_sub(lo) as usize);
    for seq in lo..=hi {
        let m = match shard.read_message(conv, Seq(seq)).await {
            Ok(m) => m,
            Err(_) if shard.generation() != generation => return Ok(None),
            Err(e) => return Err(e),
        };
        if !skip(&m) {
            out.push(m);
        }
    }
    Ok((shard.generation() == generation).then_some(out))
}

/// A page of history, ascending, within what `user` may see.
pub struct History {
    pub conv: ConvId,
    pub user: UserId,
    pub before: Option<Seq>,
    pub after: Option<Seq>,
    pub limit: usize,
}

impl ShardOp for History {
    /// The messages, and whether more exist past them.
    type Reply = (Vec<Arc<MessageRec>>, bool);

    async fn run(self, shard: Rc<Shard>, _mesh: Rc<dyn Mesh>) -> ShardResult<Self::Reply> {
        for _ in 0..READ_TRIES_MAX {
            shard.settled().await?;
            let p = page(
                &shard.state(),
                self.conv,
                self.user,
                self.before,
                self.after,
                self.limit,
            )?;
            if let Some(messages) = read_range(&shard, self.conv, (p.lo, p.hi), |_| false).await? {
                return Ok((messages, p.has_more));
            }
        }
        Err(unavailable("the shard kept rebuilding during the read"))
    }
}

/// Messages after `after` for a syncing device, at most `limit` examined;
/// the device's own messages are skipped (it has them).
pub struct Fetch {
    pub conv: ConvId,
    pub user: UserId,
    pub device: DeviceId,
    pub after: Seq,
    pub limit: usize,
}

/// `through`: the last seq examined (the messages may skip some).
#[derive(Debug)]
pub struct Fetched {
    pub messages: Vec<Arc<MessageRec>>,
    pub through: Seq,
    pub last_seq: Seq,
}

impl ShardOp for Fetch {
    type Reply = Fetched;

    async fn run(self, shard: Rc<Shard>, _mesh: Rc<dyn Mesh>) -> ShardResult<Fetched> {
        let reader = (self.user, self.device);
        for _ in 0..READ_TRIES_MAX {
            shard.settled().await?;
            let range = fetch_range(&shard.state(), self.conv, self.user, self.after, self.limit);
            let Some((lo, hi, last_seq)) = range else {
                let none = Fetched {
                    messages: Vec::new(),
                    through: self.after,
                    last_seq: Seq(0),
                };
                return Ok(none);
            };
            let own = |m: &MessageRec| (m.sender, m.device) == reader;
            if let Some(messages) = read_range(&shard, self.conv, (lo, hi), own).await? {
                let through = Seq(hi.max(self.after.0));
                return Ok(Fetched {
                    messages,
                    through,
                    last_seq,
                });
            }
        }
        Err(unavailable("the shard kept rebuilding during the read"))
    }
}
