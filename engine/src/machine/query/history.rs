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
/// the seq after it joined): just below `before`, just above `after`, the
/// first above `after` that are below `before` (both), or the latest.
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
        (Some(b), Some(a)) => {
            // Upward from `after`, bounded by `before`.
            let top = b.0.saturating_sub(1).min(last);
            let lo = (a.0 + 1).max(first);
            let hi = (lo + n - 1).min(top);
            (lo, hi, hi < top)
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
    };
    Ok(Page {
        lo,
        hi,
        has_more: more && lo <= hi,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::ids::Millis;
    use crate::machine::records::{ConvKind, Role};
    use crate::machine::state::{Conv, Lsn, Member, Params};

    #[test]
    fn before_and_after_together_page_upward_within_both() {
        let params = Params {
            group_members_max: 8,
            fanout_on_read_members: 8,
            token_ttl_seconds: 1,
            edit_window_seconds: 1,
            key_fetches_per_minute: 1,
        };
        let mut state = State::new(params);
        let (conv, user) = (ConvId(1), UserId(1));
        let mut c = Conv::new(ConvKind::Group, "g".into(), Millis(0), Lsn(1));
        c.members
            .insert(user, Member::new(Role::Admin, Seq(0), Lsn(1)));
        for i in 0..20 {
            c.index.push(10 + i);
        }
        state.convs.insert(conv, c);
        let p = |b: u64, a: u64, n: usize| {
            page(&state, conv, user, Some(Seq(b)), Some(Seq(a)), n).unwrap()
        };
        assert_eq!(
            p(10, 2, 3),
            Page {
                lo: 3,
                hi: 5,
                has_more: true
            }
        );
        assert_eq!(
            p(10, 2, 7),
            Page {
                lo: 3,
                hi: 9,
                has_more: false
            }
        );
        assert_eq!(
            p(99, 18, 5),
            Page {
                lo: 19,
                hi: 20,
                has_more: false
            }
        );
        assert!(
            !p(4, 3, 5).has_more && p(4, 3, 5).lo > p(4, 3, 5).hi,
            "nothing between"
        );
    }
}
