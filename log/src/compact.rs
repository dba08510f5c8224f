//! Rewriting a sealed segment with some payloads replaced (erasure: the
//! bodies of deleted messages go from disk), every record keeping its
//! offset, term, kind and batch index; and sealing the active segment so
//! that what it holds can be rewritten too.
//!
//! Lives on: the shard's core.
//!
//! A rewrite reads the segment, writes the new frames to `NAME.log.tmp`
//! (sector by sector, a bounded buffer), fdatasyncs it, and only then,
//! under the I/O lock and if the segment is still the one it read, renames
//! it over the segment, syncs the directory and swaps the segment's file,
//! size and index. A crash before the rename leaves a `.tmp` file that the
//! next open removes; after it, the new file is complete. Readers holding
//! the old file keep reading it (it lives until they drop it); the log's
//! iterator notices the new file and locates its position in it again.

use std::rc::Rc;

use crate::constants::{
    REWRITE_BUFFER_BYTES, REWRITE_YIELD_RECORDS, SCAN_CHUNK_BYTES, SECTOR_SIZE_BYTES,
};
use crate::cursor::Cursor;
use crate::error::{LogError, Result};
use crate::file::{sync_dir, LogFile};
use crate::index::SparseIndex;
use crate::log::Log;
use crate::maintenance::create_segment;
use crate::reader::Record;
use crate::record::{encode, Meta};
use crate::segment::{corrupt, segment_name};
use crate::types::Offset;

/// What a rewrite did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rewritten {
    pub records: u64,
    /// Records whose payload was replaced (0: the file was left alone).
    pub changed: u64,
    pub bytes_before: u64,
    pub bytes_after: u64,
}

/// The new file being written: frames are buffered and written in whole
/// sectors; the partial last sector stays in the buffer.
struct Output {
    file: LogFile,
    buf: Vec<u8>,
    written: u64,
    index: SparseIndex,
}

impl Output {
    fn size(&self) -> u64 {
        self.written + self.buf.len() as u64
    }

    async fn push(&mut self, meta: Meta, payload: &[u8]) -> Result<()> {
        self.index.observe(meta.offset, self.size() as u32);
        encode(&mut self.buf, meta, payload);
        if self.buf.len() >= REWRITE_BUFFER_BYTES {
            let whole = self.buf.len() / SECTOR_SIZE_BYTES * SECTOR_SIZE_BYTES;
            self.file
                .write_sectors(self.written, &self.buf[..whole])
                .await?;
            self.buf.drain(..whole);
            self.written += whole as u64;
        }
        Ok(())
    }

    /// Writes the rest (zero-padded to a sector) and makes it durable;
    /// answers the data's size.
    async fn finish(&mut self) -> Result<u64> {
        let size = self.size();
        let end = self.buf.len().div_ceil(SECTOR_SIZE_BYTES) * SECTOR_SIZE_BYTES;
        self.buf.resize(end, 0);
        self.file.write_sectors(self.written, &self.buf).await?;
        self.file
            .truncate(size.div_ceil(SECTOR_SIZE_BYTES as u64) * SECTOR_SIZE_BYTES as u64)
            .await?;
        self.file.sync().await?;
        Ok(size)
    }
}

impl Log {
    /// Seals the active segment if it holds a record: later appends go to
    /// a new one, and the records it held may be rewritten.
    pub async fn seal_active(&self) -> Result<()> {
        let _permit = self.lock_and_flush().await?;
        let (empty, base) = {
            let state = self.state();
            (state.active().is_empty(), state.active().last.next())
        };
        if empty {
            return Ok(());
        }
        create_segment(&self.shared, base).await?;
        sync_dir(&self.dir()).await
    }

    /// Rewrites the sealed segment starting at `base`: each record for
    /// which `scrub` answers a payload gets it instead of its own. Nothing
    /// is written when `scrub` answers `None` for every record.
    pub async fn rewrite_segment(
        &self,
        base: Offset,
        scrub: &mut dyn FnMut(&Record) -> Option<Vec<u8>>,
    ) -> Result<Rewritten> {
        let (file, last, size) = {
            let state = self.state();
            let Some(segment) = state.segments.get(&base) else {
                return Err(LogError::Invalid(format!("no segment starts at {base}")));
            };
            if state.active().base == base {
                return Err(LogError::Invalid(format!(
                    "segment {base} is active: seal it first"
                )));
            }
            (segment.file.clone(), segment.last, segment.size)
        };
        let tmp = self.dir().join(format!("{}.tmp", segment_name(base)));
        let mut out = Output {
            file: LogFile::open(&tmp, true).await?,
            buf: Vec::with_capacity(REWRITE_BUFFER_BYTES + SECTOR_SIZE_BYTES),
            written: 0,
            index: SparseIndex::default(),
        };
        out.file.truncate(0).await?;
        let copied = copy_scrubbed(&file, (base, last, size), &mut out, scrub).await;
        let mut done = match copied {
            Ok(done) if done.changed > 0 => done,
            other => {
                let _ = std::fs::remove_file(&tmp);
                return other;
            }
        };
        done.bytes_after = out.finish().await?;
        let swapped = self
            .swap_in(base, &file, &tmp, out.index, done.bytes_after)
            .await;
        if swapped.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        swapped.map(|()| done)
    }

    /// Renames `tmp` over segment `base` and serves it from now on, if the
    /// segment is still the one `old` read.
    async fn swap_in(
        &self,
        base: Offset,
        old: &Rc<LogFile>,
        tmp: &std::path::Path,
        index: SparseIndex,
        size: u64,
    ) -> Result<()> {
        let _permit = self.lock_and_flush().await?;
        let path = {
            let state = self.state();
            match state.segments.get(&base) {
                Some(s) if Rc::ptr_eq(&s.file, old) && state.active().base != base => {
                    s.path().to_owned()
                }
                _ => {
                    return Err(LogError::Invalid(format!(
                        "segment {base} changed during its rewrite"
                    )))
                }
            }
        };
        std::fs::rename(tmp, &path).map_err(|e| LogError::io("rename", tmp, &e))?;
        sync_dir(&self.dir()).await?;
        let file = LogFile::open(&path, false).await?;
        let mut state = self.state_mut();
        let segment = state.segments.get_mut(&base).expect("checked above");
        (segment.file, segment.size, segment.index) = (Rc::new(file), size, index);
        Ok(())
    }
}

/// Copies every record of the segment read from `file` into `out`, with
/// `scrub`'s payloads where it gives one; checks each offset in turn.
async fn copy_scrubbed(
    file: &Rc<LogFile>,
    (base, last, size): (Offset, Offset, u64),
    out: &mut Output,
    scrub: &mut dyn FnMut(&Record) -> Option<Vec<u8>>,
) -> Result<Rewritten> {
    let mut done = Rewritten {
        bytes_before: size,
        ..Rewritten::default()
    };
    let mut cursor = Cursor::new(file.clone(), 0, size, SCAN_CHUNK_BYTES);
    let mut expected = base;
    while expected <= last {
        let at = cursor.pos();
        let found = match cursor.next().await? {
            Ok(Some(found)) if found.meta.offset == expected => found,
            Ok(found) => {
                let why = format!("rewrite found {:?} instead", found.map(|f| f.meta.offset));
                return Err(corrupt(file.path(), at, expected, why));
            }
            Err(invalid) => {
                let why = format!("rewrite: {:?}", invalid.error);
                return Err(corrupt(file.path(), invalid.pos, expected, why));
            }
        };
        let record = Record::from_found(&found, cursor.chunk());
        match scrub(&record) {
            Some(payload) => {
                out.push(found.meta, &payload).await?;
                done.changed += 1;
            }
            None => out.push(found.meta, &record.payload).await?,
        }
        done.records += 1;
        expected = expected.next();
        // A rewrite shares the core with the shard's traffic: let it run.
        if done.records.is_multiple_of(REWRITE_YIELD_RECORDS) {
            futures_lite::future::yield_now().await;
        }
    }
    Ok(done)
}
