//! Reading messages back on the conversation's home: history pages, and
//! the pages a syncing device fetches. A read that saw the state rebuilt
//! under it (a failed write) starts again, so it never mixes two states.
//!
//! Lives on: the conversation's home shard.

use std::rc::Rc;

use crate::constants::READ_TRIES_MAX;
use crate::machine::ids::{ConvId, DeviceId, Seq, UserId};
use crate::machine::query::conv::{fetch_range, missed_changes};
use crate::machine::query::history::page;
use crate::machine::state::Version;
use crate::shard::current::Shown;
use crate::shard::error::{unavailable, ShardResult};
use crate::shard::mesh::{Mesh, ShardOp};
use crate::shard::runner::Shard;

/// Reads `lo..=hi` as they read now (skipping what `skip` says, and
/// disappearing messages that vanished), all under one generation.
async fn read_range(
    shard: &Shard,
    conv: ConvId,
    (lo, hi): (u64, u64),
    skip: impl Fn(&Shown) -> bool,
) -> ShardResult<Option<Vec<Shown>>> {
    let generation = shard.generation();
    let now = shard.clock.now();
    let mut out = Vec::with_capacity((hi + 1).saturating_sub(lo) as usize);
    for seq in lo..=hi {
        let m = match shard.read_current(conv, Seq(seq)).await {
            Ok(m) => m,
            Err(_) if shard.generation() != generation => return Ok(None),
            Err(e) => return Err(e),
        };
        if !skip(&m) && !shard.expired(&m.message, now) {
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
    type Reply = (Vec<Shown>, bool);

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
/// the device's own messages are skipped (it has them) unless another
/// device changed them since.
pub struct Fetch {
    pub conv: ConvId,
    pub user: UserId,
    pub device: DeviceId,
    pub after: Seq,
    pub limit: usize,
    /// The first page (`after` is the device's cursor): also say whether
    /// messages up to it changed since (`MissedChanges` fetches them).
    pub first: bool,
}

/// `through`: the last seq examined (the messages may skip some).
#[derive(Debug)]
pub struct Fetched {
    pub messages: Vec<Shown>,
    pub through: Seq,
    pub last_seq: Seq,
    /// First page only: some message up to the cursor changed since.
    pub changed_before: bool,
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
                    changed_before: false,
                };
                return Ok(none);
            };
            let own = |m: &Shown| {
                let m_ = &m.message;
                (m_.sender, m_.device) == reader && m.version == Version::Original
            };
            let changed_before = self.first && {
                let range = (self.after, Seq(0));
                let missed = missed_changes(&shard.state(), self.conv, self.user, range, 1);
                missed.is_some_and(|m| !m.is_empty())
            };
            if let Some(messages) = read_range(&shard, self.conv, (lo, hi), own).await? {
                let through = Seq(hi.max(self.after.0));
                return Ok(Fetched {
                    messages,
                    through,
                    last_seq,
                    changed_before,
                });
            }
        }
        Err(unavailable("the shard kept rebuilding during the read"))
    }
}

/// For a syncing device that acked `acked`: the messages up to it that
/// were edited or deleted since, after `from`, at most `limit`, as they
/// read now.
pub struct MissedChanges {
    pub conv: ConvId,
    pub user: UserId,
    pub acked: Seq,
    pub from: Seq,
    pub limit: usize,
}

impl ShardOp for MissedChanges {
    type Reply = Vec<Shown>;

    async fn run(self, shard: Rc<Shard>, _mesh: Rc<dyn Mesh>) -> ShardResult<Vec<Shown>> {
        for _ in 0..READ_TRIES_MAX {
            shard.settled().await?;
            let range = (self.acked, self.from);
            let seqs = missed_changes(&shard.state(), self.conv, self.user, range, self.limit);
            let (generation, now) = (shard.generation(), shard.clock.now());
            let mut out = Vec::new();
            for seq in seqs.unwrap_or_default() {
                match shard.read_current(self.conv, seq).await {
                    Ok(m) if shard.expired(&m.message, now) => {}
                    Ok(m) => out.push(m),
                    Err(_) if shard.generation() != generation => break,
                    Err(e) => return Err(e),
                }
            }
            if shard.generation() == generation {
                return Ok(out);
            }
        }
        Err(unavailable("the shard kept rebuilding during the read"))
    }
}
