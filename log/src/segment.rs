//! One segment file: its offsets, its logical size, its sparse index, and
//! the recovery scan that rebuilds them from the data.
//!
//! Lives on: the shard's core, inside the `Log`.

use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::constants::{HEADER_SIZE_BYTES, RECORD_ALIGN_BYTES, SCAN_CHUNK_BYTES};
use crate::cursor::{Cursor, Invalid};
use crate::error::{LogError, Result};
use crate::file::LogFile;
use crate::index::{SparseIndex, TermRuns};
use crate::record::{decode, DecodeError};
use crate::types::Offset;

pub const SEGMENT_SUFFIX: &str = ".log";

/// File name of the segment whose first offset is `base`.
pub fn segment_name(base: Offset) -> String {
    format!("{:020}{SEGMENT_SUFFIX}", base.0)
}

/// The first offset named by a segment file name, if it is one.
pub fn parse_segment_name(name: &str) -> Option<Offset> {
    let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|o| *o >= 1).map(Offset)
}

pub struct Segment {
    /// First offset of the segment (its name).
    pub base: Offset,
    /// Last offset in it; `base - 1` when empty.
    pub last: Offset,
    /// Bytes of valid frames (the file may be longer: zero padding).
    pub size: u64,
    pub file: Rc<LogFile>,
    pub index: SparseIndex,
}

impl Segment {
    pub fn path(&self) -> &Path {
        self.file.path()
    }

    pub fn is_empty(&self) -> bool {
        self.last < self.base
    }
}

/// How the bytes after the last good frame of a segment look.
#[derive(Debug, PartialEq, Eq)]
pub enum Tail {
    /// Zeros (or nothing) up to the end of the file: a clean end.
    Clean,
    /// A partial last batch: nothing after it was written by a later batch.
    Torn,
    /// A record of a later batch follows: durable data was damaged.
    Corrupt { reason: String },
}

pub struct Scanned {
    pub segment: Segment,
    /// Where the good frames end and what lies after.
    pub tail: Tail,
    /// The first bad position when the tail is not clean.
    pub bad_pos: u64,
}

/// Reads a whole segment, checks every frame (CRC, dense offsets from
/// `base`), rebuilds its index and the term runs, and classifies its tail.
pub async fn scan(file: LogFile, base: Offset, terms: &mut TermRuns) -> Result<Scanned> {
    let file = Rc::new(file);
    let file_len = file.size().await?;
    let mut cursor = Cursor::new(file.clone(), 0, file_len, SCAN_CHUNK_BYTES);
    let mut index = SparseIndex::default();
    let mut expected = base;
    let invalid = loop {
        match cursor.next().await? {
            Ok(None) => break None,
            Ok(Some(found)) if found.meta.offset == expected => {
                index.observe(expected, found.pos as u32);
                terms.observe(expected, found.meta.term);
                expected = expected.next();
            }
            Ok(Some(found)) => {
                break Some(Invalid {
                    pos: found.pos,
                    error: DecodeError::BadHeader,
                })
            }
            Err(invalid) => break Some(invalid),
        }
    };
    let size = invalid.map_or(cursor.pos(), |i| i.pos);
    let tail = match invalid {
        None => Tail::Clean,
        Some(invalid) => classify_tail(&file, invalid, expected, file_len).await?,
    };
    let segment = Segment {
        base,
        last: expected.prev(),
        size,
        file,
        index,
    };
    Ok(Scanned {
        segment,
        tail,
        bad_pos: size,
    })
}

/// Decides what the bytes from `invalid.pos` to the end of the file are.
async fn classify_tail(
    file: &Rc<LogFile>,
    invalid: Invalid,
    expected: Offset,
    file_len: u64,
) -> Result<Tail> {
    let rest = file
        .read(invalid.pos, (file_len - invalid.pos) as usize)
        .await?;
    if rest.iter().all(|b| *b == 0) {
        return Ok(Tail::Clean);
    }
    // Look for any intact frame further on. One written by a later batch
    // proves the bad record's batch had been on disk: that is corruption.
    let mut at = RECORD_ALIGN_BYTES;
    while at + HEADER_SIZE_BYTES <= rest.len() {
        if let Ok(frame) = decode(&rest[at..]) {
            let batch_first = frame.meta.offset.0 - frame.meta.batch_index as u64;
            if batch_first > expected.0 {
                return Ok(Tail::Corrupt {
                    reason: format!(
                        "{:?}; an intact record of offset {} follows {} bytes later",
                        invalid.error, frame.meta.offset, at
                    ),
                });
            }
        }
        at += RECORD_ALIGN_BYTES;
    }
    Ok(Tail::Torn)
}

/// The error for a bad record at `pos` of `path`.
pub fn corrupt(path: &Path, pos: u64, expected: Offset, reason: String) -> LogError {
    LogError::Corrupt {
        segment: PathBuf::from(path),
        file_pos: pos,
        offset: expected,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_roundtrip_and_reject_strangers() {
        let name = segment_name(Offset(42));
        assert_eq!(name, "00000000000000000042.log");
        assert_eq!(parse_segment_name(&name), Some(Offset(42)));
        assert_eq!(parse_segment_name("00000000000000000000.log"), None);
        assert_eq!(parse_segment_name("42.log"), None);
        assert_eq!(parse_segment_name("0000000000000000004x.log"), None);
        assert_eq!(parse_segment_name("snapshot"), None);
    }
}
