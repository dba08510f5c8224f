//! `GET /v1/search` on a conversation's home: the index proposes
//! candidates newest first; each is read as it reads now and kept only if
//! it is text the caller may see that matches (so deleted, expired and
//! erased messages, and old bodies of edited ones, never show).
//!
//! Lives on: the conversations' home shard.

use std::collections::HashSet;
use std::rc::Rc;

use crate::constants::{READ_TRIES_MAX, SEARCH_CANDIDATES_MAX, SEARCH_READS_MAX};
use crate::machine::error::DomainError;
use crate::machine::ids::{ConvId, Seq, UserId};
use crate::machine::query::conv::member_conv;
use crate::machine::records::BodyKind;
use crate::machine::state::Version;
use crate::search::index::{Candidate, DocKind, Scope};
use crate::search::words::Query;
use crate::shard::current::Shown;
use crate::shard::error::{unavailable, ShardResult};
use crate::shard::mesh::{Mesh, ShardOp};
use crate::shard::runner::Shard;

/// Where to look.
#[derive(Clone, Debug)]
pub enum Within {
    /// One conversation (the caller must be a member), below `before`.
    One(ConvId, Option<Seq>),
    /// The caller's conversations of this shard (those it left are passed by).
    Each(Vec<ConvId>),
}

pub struct Search {
    pub user: UserId,
    pub within: Within,
    pub query: Query,
    pub limit: usize,
}

impl ShardOp for Search {
    /// Matches, newest first (by ts, then seq), at most `limit`.
    type Reply = Vec<Shown>;

    async fn run(self, shard: Rc<Shard>, _mesh: Rc<dyn Mesh>) -> ShardResult<Vec<Shown>> {
        for _ in 0..READ_TRIES_MAX {
            shard.settled().await?;
            let scope = self.scope(&shard)?;
            let generation = shard.generation();
            let candidates =
                shard
                    .search
                    .borrow()
                    .candidates(&self.query, &scope, SEARCH_CANDIDATES_MAX);
            if let Some(found) = self.check(&shard, &candidates, generation).await? {
                return Ok(found);
            }
        }
        Err(unavailable("the shard kept rebuilding during the search"))
    }
}

/// The order of search results: newest first (ts, then seq, then
/// conversation).
pub fn newest_first(a: &Shown, b: &Shown) -> std::cmp::Ordering {
    let key = |m: &Shown| (m.message.ts, m.message.seq, m.message.conv);
    key(b).cmp(&key(a))
}

impl Search {
    /// Per conversation the caller may search, the seqs it may see.
    fn scope(&self, shard: &Shard) -> ShardResult<Scope> {
        let state = shard.state();
        let range = |conv: ConvId, before: Option<Seq>| -> Result<(u64, u64), DomainError> {
            let c = member_conv(&state, conv, self.user)?;
            Ok((
                c.members[&self.user].joined.0,
                before.map_or(u64::MAX, |b| b.0),
            ))
        };
        let mut scope = Scope::new();
        match &self.within {
            Within::One(conv, before) => {
                scope.insert(conv.0, range(*conv, *before)?);
            }
            Within::Each(convs) => {
                for conv in convs {
                    if let Ok(r) = range(*conv, None) {
                        scope.insert(conv.0, r);
                    }
                }
            }
        }
        Ok(scope)
    }

    /// The candidates that match as they read now (`None`: the state was
    /// rebuilt meanwhile, start again).
    async fn check(
        &self,
        shard: &Shard,
        candidates: &[Candidate],
        generation: u64,
    ) -> ShardResult<Option<Vec<Shown>>> {
        let now = shard.clock.now();
        let mut seen = HashSet::new();
        let mut found: Vec<Shown> = Vec::new();
        for c in candidates.iter().take(SEARCH_READS_MAX) {
            if !seen.insert((c.conv, c.seq)) {
                continue;
            }
            let m = match shard.read_current(ConvId(c.conv), Seq(c.seq)).await {
                Ok(m) => m,
                Err(_) if shard.generation() != generation => return Ok(None),
                Err(e) => return Err(e),
            };
            let text = m.version != Version::Deleted && m.message.body_kind == BodyKind::Text;
            let at = (m.message.ts, m.message.seq);
            if text && !shard.expired(&m.message, now) && self.query.matches(&m.message.body) {
                found.push(m);
            }
            // Documents come in log order, so every later candidate was
            // sent before this message: once `limit` newer ones are found,
            // none can take their place.
            if c.kind == DocKind::Sent && found.len() >= self.limit {
                found.sort_by(newest_first);
                let kth = &found[self.limit - 1].message;
                if at <= (kth.ts, kth.seq) {
                    break;
                }
            }
        }
        if shard.generation() != generation {
            return Ok(None);
        }
        found.sort_by(newest_first);
        found.truncate(self.limit);
        Ok(Some(found))
    }
}
