//! Sequential frame reader over one file: large aligned reads, each frame
//! CRC-checked, frames never copied.
//!
//! Lives on: the shard's core.

use std::ops::Range;
use std::rc::Rc;

use glommio::io::ReadResult;

use crate::constants::{HEADER_SIZE_BYTES, PREFETCH_CHUNK_BYTES_MIN, SECTOR_SIZE_BYTES};
use crate::error::Result;
use crate::file::LogFile;
use crate::record::{decode, DecodeError, Meta};

/// One frame found by the cursor: where it starts, its header, and where its
/// payload lies in `Cursor::chunk()`.
#[derive(Clone, Debug)]
pub struct Found {
    pub pos: u64,
    pub meta: Meta,
    pub payload: Range<usize>,
}

/// What stopped the cursor before `limit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Invalid {
    pub pos: u64,
    pub error: DecodeError,
}

/// A read issued ahead of need: its position and the task performing it.
struct Prefetch {
    pos: u64,
    task: glommio::Task<Result<ReadResult>>,
}

pub struct Cursor {
    file: Rc<LogFile>,
    chunk: ReadResult,
    chunk_pos: u64,
    pos: u64,
    limit: u64,
    chunk_size: usize,
    /// Sequential scans keep one read in flight while frames are checked.
    prefetch: Option<Prefetch>,
}

impl Cursor {
    /// Reads frames of `file` from `pos` up to byte `limit`, `chunk_size`
    /// bytes at a time.
    pub fn new(file: Rc<LogFile>, pos: u64, limit: u64, chunk_size: usize) -> Cursor {
        Cursor {
            file,
            chunk: ReadResult::default(),
            chunk_pos: pos,
            pos,
            limit,
            chunk_size,
            prefetch: None,
        }
    }

    /// Moves the end (the active segment grows as batches land).
    pub fn set_limit(&mut self, limit: u64) {
        if limit != self.limit {
            self.limit = limit;
            // The chunk may end in padding that has since been overwritten.
            self.chunk = ReadResult::default();
            self.chunk_pos = self.pos;
            self.prefetch = None;
        }
    }

    /// Whether this cursor reads `file` (not a file that replaced it).
    pub fn reads(&self, file: &Rc<LogFile>) -> bool {
        Rc::ptr_eq(&self.file, file)
    }

    pub fn pos(&self) -> u64 {
        self.pos
    }

    pub fn chunk(&self) -> &[u8] {
        &self.chunk
    }

    fn window(&self) -> &[u8] {
        let rel = (self.pos - self.chunk_pos) as usize;
        let end = (self.limit - self.chunk_pos).min(self.chunk.len() as u64) as usize;
        if rel >= end {
            &[]
        } else {
            &self.chunk[rel..end]
        }
    }

    async fn refill(&mut self, at_least: usize) -> Result<()> {
        let aligned = self.pos - self.pos % SECTOR_SIZE_BYTES as u64;
        let skip = (self.pos - aligned) as usize;
        let want =
            (skip + at_least.max(self.chunk_size)).div_ceil(SECTOR_SIZE_BYTES) * SECTOR_SIZE_BYTES;
        let want = want.min((self.limit - aligned) as usize);
        match self.prefetch.take() {
            Some(prefetch) if prefetch.pos <= self.pos => {
                self.chunk = prefetch.task.await?;
                self.chunk_pos = prefetch.pos;
                let end = self.chunk_pos + self.chunk.len() as u64;
                if end < (self.pos + at_least as u64).min(self.limit) {
                    // Too short for this frame: read exactly what is needed.
                    self.chunk = self.file.read(aligned, want).await?;
                    self.chunk_pos = aligned;
                }
            }
            _ => {
                self.chunk = self.file.read(aligned, want).await?;
                self.chunk_pos = aligned;
            }
        }
        self.start_prefetch();
        Ok(())
    }

    /// For sequential scans: starts reading the next chunk now, overlapping
    /// the last sector of this one (where a frame may continue), so the
    /// device works while this chunk's frames are checked.
    fn start_prefetch(&mut self) {
        let end = self.chunk_pos + self.chunk.len() as u64;
        if self.chunk_size < PREFETCH_CHUNK_BYTES_MIN || end >= self.limit {
            return;
        }
        let pos = end - (end % SECTOR_SIZE_BYTES as u64) - SECTOR_SIZE_BYTES as u64;
        let len = self.chunk_size.min((self.limit - pos) as usize);
        let file = self.file.clone();
        let task = glommio::spawn_local(async move { file.read(pos, len).await });
        self.prefetch = Some(Prefetch { pos, task });
    }

    /// The next frame, `Ok(Ok(None))` at `limit`, or where and why the bytes
    /// stop being frames.
    pub async fn next(&mut self) -> Result<std::result::Result<Option<Found>, Invalid>> {
        if self.pos >= self.limit {
            return Ok(Ok(None));
        }
        let in_chunk = self.pos >= self.chunk_pos
            && self.pos - self.chunk_pos + (HEADER_SIZE_BYTES as u64) <= self.chunk.len() as u64;
        if !in_chunk {
            self.refill(HEADER_SIZE_BYTES).await?;
        }
        let mut outcome = decode(self.window()).map(|f| (f.meta, f.frame_len, f.payload.len()));
        if let Err(DecodeError::Truncated { needed }) = outcome {
            // The frame runs past this chunk: read it whole, if the file has it.
            if self.pos + needed as u64 <= self.limit {
                self.refill(needed).await?;
                outcome = decode(self.window()).map(|f| (f.meta, f.frame_len, f.payload.len()));
            }
        }
        match outcome {
            Ok((meta, frame_len, payload_len)) => {
                let start = (self.pos - self.chunk_pos) as usize + HEADER_SIZE_BYTES;
                let found = Found {
                    pos: self.pos,
                    meta,
                    payload: start..start + payload_len,
                };
                self.pos += frame_len as u64;
                Ok(Ok(Some(found)))
            }
            Err(error) => Ok(Err(Invalid {
                pos: self.pos,
                error,
            })),
        }
    }
}
