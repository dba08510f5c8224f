//! The snapshot of the state machine, streamed in chunks: the writer frames
//! each chunk (length, CRC) into a temporary file and ends it with a
//! trailer naming the offset (and term) the chunks cover; `finish` syncs
//! and renames it into place atomically. The reader checks the trailer,
//! then yields the chunks one at a time, each CRC-checked: neither side
//! holds more than one chunk (plus a write buffer) in memory.
//!
//! Lives on: the shard's core.
//!
//! File: `[len u32][crc u32][chunk][pad to 8]`... then a 48-byte trailer:
//! magic `CHLSNAP2`, offset, term, chunk count, data bytes (u64 each), the
//! trailer's CRC (u32) and 4 zero bytes.

use std::path::PathBuf;

use crate::constants::{SECTOR_SIZE_BYTES, SNAPSHOT_CHUNK_SIZE_BYTES_MAX};
use crate::error::{LogError, Result};
use crate::file::{sync_dir, LogFile};
use crate::log::Log;
use crate::types::{Offset, Term};

pub const SNAPSHOT_FILE: &str = "snapshot";
const MAGIC: &[u8; 8] = b"CHLSNAP2";
const TRAILER_BYTES: usize = 48;
const FRAME_HEADER_BYTES: usize = 8;
const FRAME_ALIGN_BYTES: usize = 8;
/// The writer hands the file whole sectors once this much is buffered.
const WRITE_BUFFER_BYTES: usize = 1024 * 1024;
/// The reader reads the file in pieces of this size (or a chunk's size).
const READ_PIECE_BYTES: usize = 1024 * 1024;
const _: () = assert!(WRITE_BUFFER_BYTES.is_multiple_of(SECTOR_SIZE_BYTES));
const _: () = assert!(TRAILER_BYTES.is_multiple_of(FRAME_ALIGN_BYTES));

/// A whole snapshot in memory (one chunk): the simple form of the API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// The last offset whose effect the blob includes.
    pub offset: Offset,
    /// The term of that offset.
    pub term: Term,
    pub data: Vec<u8>,
}

/// Streams a new snapshot into `snapshot.tmp`; nothing replaces the current
/// snapshot until `finish` succeeds.
pub struct SnapshotWriter {
    dir: PathBuf,
    file: LogFile,
    /// Bytes not yet written; they start at file position `flushed`.
    buf: Vec<u8>,
    flushed: u64,
    chunks: u64,
}

/// Reads the installed snapshot chunk by chunk.
pub struct SnapshotReader {
    path: PathBuf,
    file: LogFile,
    offset: Offset,
    term: Term,
    chunks_left: u64,
    /// Bytes read ahead, starting at file position `at`.
    window: Vec<u8>,
    at: u64,
    /// Where the next chunk's frame starts.
    cursor: u64,
    data_end: u64,
}

fn corrupt(path: &std::path::Path, file_pos: u64, why: &str) -> LogError {
    LogError::Corrupt {
        segment: path.to_owned(),
        file_pos,
        offset: Offset(0),
        reason: format!("snapshot: {why}"),
    }
}

fn trailer(offset: Offset, term: Term, chunks: u64, data_bytes: u64) -> [u8; TRAILER_BYTES] {
    let mut t = [0u8; TRAILER_BYTES];
    t[..8].copy_from_slice(MAGIC);
    for (i, v) in [offset.0, term.0, chunks, data_bytes].iter().enumerate() {
        t[8 + i * 8..16 + i * 8].copy_from_slice(&v.to_le_bytes());
    }
    let crc = crc32fast::hash(&t[..40]);
    t[40..44].copy_from_slice(&crc.to_le_bytes());
    t
}

impl Log {
    /// Starts writing a new snapshot (a previous unfinished one is discarded).
    pub async fn begin_snapshot(&self) -> Result<SnapshotWriter> {
        let dir = self.dir();
        let tmp = dir.join(format!("{SNAPSHOT_FILE}.tmp"));
        let _ = std::fs::remove_file(&tmp);
        let file = LogFile::open(&tmp, true).await?;
        Ok(SnapshotWriter {
            dir,
            file,
            buf: Vec::with_capacity(WRITE_BUFFER_BYTES + SECTOR_SIZE_BYTES),
            flushed: 0,
            chunks: 0,
        })
    }

    /// The installed snapshot, if there is one, ready to be read.
    pub async fn open_snapshot(&self) -> Result<Option<SnapshotReader>> {
        let path = self.dir().join(SNAPSHOT_FILE);
        if !path.exists() {
            return Ok(None);
        }
        SnapshotReader::open(path).await.map(Some)
    }

    /// Saves `snapshot` as one chunk, replacing the previous one atomically.
    pub async fn save_snapshot(&self, snapshot: &Snapshot) -> Result<()> {
        let mut writer = self.begin_snapshot().await?;
        writer.write_chunk(&snapshot.data).await?;
        writer.finish(snapshot.offset, snapshot.term).await
    }

    /// The last saved snapshot, checked, with its chunks joined.
    pub async fn load_snapshot(&self) -> Result<Option<Snapshot>> {
        let Some(mut reader) = self.open_snapshot().await? else {
            return Ok(None);
        };
        let mut data = Vec::new();
        while let Some(chunk) = reader.next_chunk().await? {
            data.extend_from_slice(&chunk);
        }
        let (offset, term) = (reader.offset(), reader.term());
        reader.close().await?;
        Ok(Some(Snapshot { offset, term, data }))
    }
}

impl SnapshotWriter {
    /// Appends one chunk (at most `SNAPSHOT_CHUNK_SIZE_BYTES_MAX` bytes).
    pub async fn write_chunk(&mut self, chunk: &[u8]) -> Result<()> {
        if chunk.len() > SNAPSHOT_CHUNK_SIZE_BYTES_MAX {
            return Err(LogError::TooLarge {
                size_bytes: chunk.len(),
                max_bytes: SNAPSHOT_CHUNK_SIZE_BYTES_MAX,
            });
        }
        self.buf
            .extend_from_slice(&(chunk.len() as u32).to_le_bytes());
        self.buf
            .extend_from_slice(&crc32fast::hash(chunk).to_le_bytes());
        self.buf.extend_from_slice(chunk);
        let padded = self.buf.len().next_multiple_of(FRAME_ALIGN_BYTES);
        self.buf.resize(padded, 0);
        self.chunks += 1;
        if self.buf.len() >= WRITE_BUFFER_BYTES {
            self.flush_sectors().await?;
        }
        Ok(())
    }

    /// Writes the whole sectors buffered; the partial last one stays.
    async fn flush_sectors(&mut self) -> Result<()> {
        let whole = self.buf.len() - self.buf.len() % SECTOR_SIZE_BYTES;
        if whole == 0 {
            return Ok(());
        }
        self.file
            .write_sectors(self.flushed, &self.buf[..whole])
            .await?;
        self.flushed += whole as u64;
        self.buf.drain(..whole);
        Ok(())
    }

    /// Ends the snapshot as covering `offset` (at `term`) and installs it:
    /// trailer, fdatasync, rename over the previous one, directory fsync.
    pub async fn finish(mut self, offset: Offset, term: Term) -> Result<()> {
        let data_bytes = self.flushed + self.buf.len() as u64;
        self.buf
            .extend_from_slice(&trailer(offset, term, self.chunks, data_bytes));
        let size = data_bytes + TRAILER_BYTES as u64;
        let padded = self.buf.len().next_multiple_of(SECTOR_SIZE_BYTES);
        self.buf.resize(padded, 0);
        self.flush_sectors().await?;
        assert!(self.buf.is_empty(), "everything was written");
        self.file.truncate(size).await?;
        self.file.sync().await?;
        let tmp = self.file.path().to_owned();
        self.file.close().await?;
        let target = self.dir.join(SNAPSHOT_FILE);
        std::fs::rename(&tmp, &target).map_err(|e| LogError::io("rename", &target, &e))?;
        sync_dir(&self.dir).await
    }

    /// Gives up: the temporary file is removed, the installed one stays.
    pub async fn abort(self) {
        let tmp = self.file.path().to_owned();
        let _ = self.file.close().await;
        let _ = std::fs::remove_file(tmp);
    }
}

impl SnapshotReader {
    async fn open(path: PathBuf) -> Result<SnapshotReader> {
        let file = LogFile::open(&path, false).await?;
        let size = file.size().await?;
        if size < TRAILER_BYTES as u64 {
            return Err(corrupt(&path, 0, "shorter than its trailer"));
        }
        let at = size - TRAILER_BYTES as u64;
        let t = file.read(at, TRAILER_BYTES).await?;
        if t.len() != TRAILER_BYTES || &t[..8] != MAGIC {
            return Err(corrupt(&path, at, "not a snapshot file"));
        }
        let crc = u32::from_le_bytes(t[40..44].try_into().expect("4 bytes"));
        if crc32fast::hash(&t[..40]) != crc {
            return Err(corrupt(&path, at, "bad trailer CRC"));
        }
        let field = |i: usize| u64::from_le_bytes(t[8 + i * 8..16 + i * 8].try_into().expect("8"));
        let (offset, term, chunks, data_end) = (field(0), field(1), field(2), field(3));
        if data_end != at {
            return Err(corrupt(&path, at, "trailer does not match the file size"));
        }
        Ok(SnapshotReader {
            path,
            file,
            offset: Offset(offset),
            term: Term(term),
            chunks_left: chunks,
            window: Vec::new(),
            at: 0,
            cursor: 0,
            data_end,
        })
    }

    /// The last offset the snapshot covers.
    pub fn offset(&self) -> Offset {
        self.offset
    }

    pub fn term(&self) -> Term {
        self.term
    }

    /// Makes `len` bytes from file position `pos` available in the window.
    async fn window_at(&mut self, pos: u64, len: usize) -> Result<&[u8]> {
        if pos + len as u64 > self.data_end {
            return Err(corrupt(&self.path, pos, "a chunk runs past the data"));
        }
        let have = self.at <= pos && pos + len as u64 <= self.at + self.window.len() as u64;
        if !have {
            let want = len
                .max(READ_PIECE_BYTES)
                .min((self.data_end - pos) as usize);
            let bytes = self.file.read(pos, want).await?;
            if bytes.len() < len {
                return Err(corrupt(&self.path, pos, "short read"));
            }
            self.window = bytes.to_vec();
            self.at = pos;
        }
        let start = (pos - self.at) as usize;
        Ok(&self.window[start..start + len])
    }

    /// The next chunk, CRC-checked; `None` after the last.
    pub async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>> {
        let pos = self.cursor;
        if self.chunks_left == 0 {
            if pos != self.data_end {
                return Err(corrupt(&self.path, pos, "bytes after the last chunk"));
            }
            return Ok(None);
        }
        let head = self.window_at(pos, FRAME_HEADER_BYTES).await?;
        let len = u32::from_le_bytes(head[..4].try_into().expect("4")) as usize;
        let crc = u32::from_le_bytes(head[4..8].try_into().expect("4"));
        if len > SNAPSHOT_CHUNK_SIZE_BYTES_MAX {
            return Err(corrupt(&self.path, pos, "chunk length over the limit"));
        }
        let body_at = pos + FRAME_HEADER_BYTES as u64;
        let chunk = self.window_at(body_at, len).await?.to_vec();
        if crc32fast::hash(&chunk) != crc {
            return Err(corrupt(&self.path, pos, "bad chunk CRC"));
        }
        let end = (FRAME_HEADER_BYTES + len).next_multiple_of(FRAME_ALIGN_BYTES);
        self.cursor = pos + end as u64;
        self.chunks_left -= 1;
        Ok(Some(chunk))
    }

    pub async fn close(self) -> Result<()> {
        self.file.close().await
    }
}
