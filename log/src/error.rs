//! The log's error type.
//!
//! Lives on: any core (plain values; cloneable so one I/O failure can fail
//! every append waiting on the same batch).

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::types::Offset;

#[derive(Clone, Debug)]
pub enum LogError {
    /// An I/O operation failed (ENOSPC, EIO, ...). Nothing acknowledged was lost.
    Io {
        op: &'static str,
        path: PathBuf,
        kind: io::ErrorKind,
        errno: Option<i32>,
        message: String,
    },
    /// A record before the tail is damaged. `file_pos` is the byte position
    /// inside `segment` where the bad record starts.
    Corrupt {
        segment: PathBuf,
        file_pos: u64,
        offset: Offset,
        reason: String,
    },
    /// The offset is outside `[first, last]`.
    OutOfRange {
        offset: Offset,
        first: Offset,
        last: Offset,
    },
    /// A payload or batch over its limit.
    TooLarge { size_bytes: usize, max_bytes: usize },
    /// A call that breaks the log's rules (e.g. truncating below the start).
    Invalid(String),
    /// The log was closed.
    Closed,
}

impl LogError {
    pub fn io(op: &'static str, path: impl Into<PathBuf>, err: &io::Error) -> LogError {
        LogError::Io {
            op,
            path: path.into(),
            kind: err.kind(),
            errno: err.raw_os_error(),
            message: err.to_string(),
        }
    }

    /// True for "no space left on device" (and quota exhaustion).
    pub fn is_no_space(&self) -> bool {
        match self {
            LogError::Io { kind, errno, .. } => {
                matches!(
                    kind,
                    io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
                ) || matches!(errno, Some(e) if *e == libc::ENOSPC || *e == libc::EDQUOT)
            }
            _ => false,
        }
    }
}

impl fmt::Display for LogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogError::Io {
                op, path, message, ..
            } => write!(f, "{op} {}: {message}", path.display()),
            LogError::Corrupt {
                segment,
                file_pos,
                offset,
                reason,
            } => write!(
                f,
                "corrupt record in {} at byte {file_pos} (expected offset {offset}): {reason}",
                segment.display()
            ),
            LogError::OutOfRange {
                offset,
                first,
                last,
            } => write!(f, "offset {offset} outside the log [{first}, {last}]"),
            LogError::TooLarge {
                size_bytes,
                max_bytes,
            } => write!(f, "{size_bytes} bytes is over the limit of {max_bytes}"),
            LogError::Invalid(why) => write!(f, "invalid call: {why}"),
            LogError::Closed => write!(f, "the log is closed"),
        }
    }
}

impl std::error::Error for LogError {}

pub type Result<T> = std::result::Result<T, LogError>;
