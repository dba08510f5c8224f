//! Reads: one offset, a range, or an iterator from an offset. Every frame
//! read is CRC-checked and its offset compared with the one expected.
//!
//! Lives on: the shard's core.

use std::rc::Rc;

use rkyv::util::AlignedVec;

use crate::constants::{INDEX_INTERVAL_BYTES, RECORD_ALIGN_BYTES, SCAN_CHUNK_BYTES};
use crate::cursor::{Cursor, Found};
use crate::durable::DurableFuture;
use crate::error::{LogError, Result};
use crate::file::LogFile;
use crate::log::Log;
use crate::segment::corrupt;
use crate::types::{Kind, Offset, Term};

/// A record read back from the log. The payload is 16-byte aligned, so an
/// rkyv archive in it can be accessed in place (see `archive.rs`).
#[derive(Clone, Debug)]
pub struct Record {
    pub offset: Offset,
    pub term: Term,
    pub kind: Kind,
    pub payload: AlignedVec<RECORD_ALIGN_BYTES>,
}

impl PartialEq for Record {
    fn eq(&self, other: &Record) -> bool {
        (self.offset, self.term, self.kind) == (other.offset, other.term, other.kind)
            && self.payload[..] == other.payload[..]
    }
}

impl Eq for Record {}

impl Record {
    pub(crate) fn from_found(found: &Found, chunk: &[u8]) -> Record {
        let bytes = &chunk[found.payload.clone()];
        let mut payload = AlignedVec::with_capacity(bytes.len());
        payload.extend_from_slice(bytes);
        Record {
            offset: found.meta.offset,
            term: found.meta.term,
            kind: found.meta.kind,
            payload,
        }
    }
}

/// Where to start reading for `offset`: the segment's file, a position at
/// or before the record, and the segment's valid size.
struct Located {
    file: Rc<LogFile>,
    pos: u64,
    limit: u64,
}

impl Log {
    /// Waits until `offset` is durable (reads see durable records only).
    async fn wait_readable(&self, offset: Offset) -> Result<()> {
        let future = {
            let state = self.state();
            state.check_open()?;
            state.check_range(offset)?;
            if offset <= state.durability.durable {
                return Ok(());
            }
            DurableFuture {
                shared: self.shared.clone(),
                generation: state.durability.generation(),
                last: offset,
            }
        };
        future.await
    }

    fn locate(&self, offset: Offset) -> Result<Located> {
        let state = self.state();
        state.check_range(offset)?;
        let (_, segment) = state
            .segments
            .range(..=offset)
            .next_back()
            .expect("a segment holds every offset in range");
        assert!(offset <= segment.last, "offset {offset} beyond its segment");
        let pos = segment.index.floor(offset).map_or(0, |(_, pos)| pos as u64);
        Ok(Located {
            file: segment.file.clone(),
            pos,
            limit: segment.size,
        })
    }

    /// Reads the record at `offset`.
    pub async fn read(&self, offset: Offset) -> Result<Record> {
        self.wait_readable(offset).await?;
        let located = self.locate(offset)?;
        let path = located.file.path().to_owned();
        let chunk = 2 * INDEX_INTERVAL_BYTES;
        let mut cursor = Cursor::new(located.file, located.pos, located.limit, chunk);
        loop {
            let at = cursor.pos();
            match cursor.next().await? {
                Ok(Some(found)) if found.meta.offset == offset => {
                    return Ok(Record::from_found(&found, cursor.chunk()))
                }
                Ok(Some(found)) if found.meta.offset < offset => continue,
                Ok(Some(found)) => {
                    let why = format!("found offset {} instead", found.meta.offset);
                    return Err(self.read_failure(offset, &path, at, why));
                }
                Ok(None) => {
                    let why = "segment ends before it".to_string();
                    return Err(self.read_failure(offset, &path, at, why));
                }
                Err(invalid) => {
                    let why = format!("{:?}", invalid.error);
                    return Err(self.read_failure(offset, &path, invalid.pos, why));
                }
            }
        }
    }

    /// A read that found the wrong bytes: out of range if the log changed
    /// under it (a concurrent truncate), corruption otherwise.
    fn read_failure(
        &self,
        offset: Offset,
        path: &std::path::Path,
        pos: u64,
        why: String,
    ) -> LogError {
        match self.state().check_range(offset) {
            Err(out_of_range) => out_of_range,
            Ok(()) => corrupt(path, pos, offset, why),
        }
    }

    /// Reads the records `from..=to` (waiting for them to be durable).
    pub async fn read_range(&self, from: Offset, to: Offset) -> Result<Vec<Record>> {
        if to < from {
            return Ok(Vec::new());
        }
        self.wait_readable(to).await?;
        self.state().check_range(from)?;
        let mut reader = self.reader_from(from);
        let mut records = Vec::with_capacity((to.0 - from.0 + 1).min(4096) as usize);
        while records.len() as u64 <= to.0 - from.0 {
            match reader.next().await {
                Some(record) => records.push(record?),
                None => break,
            }
        }
        assert_eq!(records.len() as u64, to.0 - from.0 + 1);
        Ok(records)
    }

    /// Iterates over durable records from `from` on, in large sequential reads.
    pub fn reader_from(&self, from: Offset) -> LogReader {
        LogReader {
            log: self.clone(),
            next: from,
            cursor: None,
        }
    }
}

/// Iterator over durable records; see `Log::reader_from`.
///
/// Lives on: the shard's core.
pub struct LogReader {
    log: Log,
    next: Offset,
    /// The segment being read (by first offset) and the cursor over it.
    cursor: Option<(Offset, Cursor)>,
}

impl LogReader {
    /// The offset the next call returns.
    pub fn position(&self) -> Offset {
        self.next
    }

    /// The next durable record, `None` past the last durable one.
    pub async fn next(&mut self) -> Option<Result<Record>> {
        let target = self.next;
        let (base, limit, file) = {
            let state = self.log.state();
            if let Err(e) = state.check_open() {
                return Some(Err(e));
            }
            if target > state.durability.durable {
                return None;
            }
            if let Err(e) = state.check_range(target) {
                return Some(Err(e));
            }
            let (base, segment) = state.segments.range(..=target).next_back().unwrap();
            (*base, segment.size, segment.file.clone())
        };
        // A rewritten segment (compaction) has a new file: locate again.
        let same = |(b, c): &(Offset, Cursor)| *b == base && c.reads(&file);
        if !self.cursor.as_ref().is_some_and(same) {
            let located = match self.log.locate(target) {
                Ok(located) => located,
                Err(e) => return Some(Err(e)),
            };
            let cursor = Cursor::new(located.file, located.pos, located.limit, SCAN_CHUNK_BYTES);
            self.cursor = Some((base, cursor));
        }
        let (_, cursor) = self.cursor.as_mut().unwrap();
        cursor.set_limit(limit);
        loop {
            let at = cursor.pos();
            let path = self.log.state().segments[&base].path().to_owned();
            let outcome = match cursor.next().await {
                Ok(outcome) => outcome,
                Err(e) => return Some(Err(e)),
            };
            let why = match outcome {
                Ok(Some(found)) if found.meta.offset == target => {
                    self.next = target.next();
                    return Some(Ok(Record::from_found(&found, cursor.chunk())));
                }
                Ok(Some(found)) if found.meta.offset < target => continue,
                Ok(Some(found)) => format!("found offset {} instead", found.meta.offset),
                Ok(None) => "segment ends before it".to_string(),
                Err(invalid) => format!("{:?} at byte {}", invalid.error, invalid.pos),
            };
            self.cursor = None;
            return Some(Err(self.log.read_failure(target, &path, at, why)));
        }
    }
}
