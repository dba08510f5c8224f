//! Domain integers of the log as newtypes.
//!
//! Lives on: any core (plain values).

use std::fmt;

/// Position of a record in the log: dense, starting at 1. `Offset(0)` means
/// "before the first record" and is never the offset of a record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Offset(pub u64);

impl Offset {
    pub const ZERO: Offset = Offset(0);
    pub const FIRST: Offset = Offset(1);

    pub fn next(self) -> Offset {
        Offset(self.0.checked_add(1).expect("offset overflow"))
    }

    pub fn prev(self) -> Offset {
        Offset(self.0.checked_sub(1).expect("offset underflow"))
    }
}

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Raft term of the leader that wrote a record (0 when not replicated).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Term(pub u64);

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// What a record is, chosen by the caller (the log never interprets it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Kind(pub u8);

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// How `Log::open` treats a bad record found before the tail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Repair {
    /// Refuse to open: the error names the segment and the file position.
    Refuse,
    /// Truncate the log at the first bad record (losing everything after).
    TruncateAtCorruption,
}
