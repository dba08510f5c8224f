//! What part of a file a `GET /v1/media/{id}` answers with: `Range`
//! (one range, RFC 9110 §14) and `If-None-Match` against the ETag.
//!
//! Lives on: every core (pure functions).

/// The answer's shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// 200: all of it (no `Range`, or one we ignore: several ranges, or
    /// not `bytes=`, or malformed, as RFC 9110 allows).
    Whole,
    /// 206: bytes `start..=last`.
    Range { start: u64, last: u64 },
    /// 416: nothing of the file is in the range.
    Unsatisfiable,
}

/// The part of a file of `size` bytes that `range` (the header's value)
/// asks for.
pub fn part(range: Option<&str>, size: u64) -> Part {
    let Some(spec) = range.and_then(|r| r.trim().strip_prefix("bytes=")) else {
        return Part::Whole;
    };
    if spec.contains(',') {
        return Part::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return Part::Whole;
    };
    let number = |t: &str| {
        let ok = !t.is_empty() && t.len() <= 19 && t.bytes().all(|c| c.is_ascii_digit());
        ok.then(|| t.parse::<u64>().ok()).flatten()
    };
    match (a.trim(), b.trim()) {
        ("", suffix) => match number(suffix) {
            None => Part::Whole,
            Some(0) => Part::Unsatisfiable,
            Some(_) if size == 0 => Part::Unsatisfiable,
            Some(n) => Part::Range {
                start: size.saturating_sub(n),
                last: size - 1,
            },
        },
        (first, last) => {
            let Some(start) = number(first) else {
                return Part::Whole;
            };
            let last = match last {
                "" => None,
                text => match number(text) {
                    Some(l) if l >= start => Some(l),
                    _ => return Part::Whole,
                },
            };
            if start >= size {
                return Part::Unsatisfiable;
            }
            Part::Range {
                start,
                last: last.map_or(size - 1, |l| l.min(size - 1)),
            }
        }
    }
}

/// Whether `if_none_match` (the header's value) names `etag` (weak
/// comparison, RFC 9110 §13.1.2; `*` names any).
pub fn not_modified(if_none_match: Option<&str>, etag: &str) -> bool {
    let Some(list) = if_none_match else {
        return false;
    };
    list.split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let r = |start, last| Part::Range { start, last };
        assert_eq!(part(None, 10), Part::Whole);
        assert_eq!(part(Some("bytes=0-3"), 10), r(0, 3));
        assert_eq!(part(Some("bytes=4-"), 10), r(4, 9));
        assert_eq!(part(Some("bytes=-3"), 10), r(7, 9));
        assert_eq!(part(Some("bytes=-30"), 10), r(0, 9));
        assert_eq!(part(Some("bytes=5-100"), 10), r(5, 9));
        assert_eq!(part(Some("bytes=10-"), 10), Part::Unsatisfiable);
        assert_eq!(part(Some("bytes=10-12"), 10), Part::Unsatisfiable);
        assert_eq!(part(Some("bytes=-0"), 10), Part::Unsatisfiable);
        for ignored in [
            "bytes=3-1",
            "bytes=0-1,3-4",
            "items=0-1",
            "bytes=x-",
            "bytes=-",
        ] {
            assert_eq!(part(Some(ignored), 10), Part::Whole, "{ignored}");
        }
    }

    #[test]
    fn etags() {
        let tag = "\"ab\"";
        assert!(not_modified(Some("\"ab\""), tag));
        assert!(not_modified(Some("\"x\", W/\"ab\""), tag));
        assert!(not_modified(Some("*"), tag));
        assert!(!not_modified(Some("\"abc\""), tag));
        assert!(!not_modified(None, tag));
    }
}
