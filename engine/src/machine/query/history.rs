//! Which messages a history page holds (the bodies are read by the shell).

use crate::machine::error::DomainError;
use crate::machine::ids::{ConvId, Seq, UserId};
use crate::machine::query::conv::member_conv;
use crate::machine::state::State;

/// A page: seqs `lo..=hi` ascending (empty when `lo > hi`), and whether
/// more exist past it in the direction of travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Page {
    pub lo: u64,
    pub hi: u64,
    pub has_more: bool,
}

/// The page of `limit` (≥ 1) messages of `conv` that `user` may see (from
/// the seq after it joined): just below `before`, just above `after`, or
/// the latest.
pub fn page(
    state: &State,
    conv: ConvId,
    user: UserId,
    before: Option<Seq>,
    after: Option<Seq>,
    limit: usize,
) -> Result<Page, DomainError> {
    assert!(limit > 0);
    let c = member_conv(state, conv, user)?;
    let first = c.members[&user].joined.0 + 1;
    let last = c.last_seq().0;
    let n = limit as u64;
    let (lo, hi, more) = match (before, after) {
        (Some(_), Some(_)) => return Err(DomainError::BeforeAndAfter),
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
    };
    Ok(Page {
        lo,
        hi,
        has_more: more && lo <= hi,
    })
}
