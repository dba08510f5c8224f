//! chat-log: the append-only segment log of one shard.
//!
//! One `Log` per shard, used only from the glommio executor of the core that
//! owns the shard. It knows nothing of chat or the network: it stores records
//! (a kind byte, a Raft term, payload bytes) at dense offsets from 1, makes
//! them durable with group commit, and recovers them after a crash.
//!
//! # Layout
//! - `constants.rs`   every limit, related by compile-time asserts
//! - `types.rs`       newtypes: `Offset`, `Term`, `Kind`; the `Repair` choice
//! - `error.rs`       `LogError`
//! - `record.rs`      framing: 32-byte header, CRC32, 16-byte padding
//! - `index.rs`       sparse offset index per segment; term runs
//! - `file.rs`        one file: DMA (O_DIRECT) or buffered fallback; atomic writes
//! - `cursor.rs`      sequential frame reader over a file
//! - `segment.rs`     one segment: naming, recovery scan, tail classification
//! - `log.rs`         the `Log` handle, its state and configuration
//! - `open.rs`        recovery: scan, cut a torn tail, refuse or repair corruption
//! - `appender.rs`    append and group commit (one write + one fdatasync per batch)
//! - `durable.rs`     durability futures
//! - `reader.rs`      read one offset, a range, or iterate
//! - `maintenance.rs` truncate the end, drop the start, retention
//! - `compact.rs`     seal the active segment; rewrite a sealed one with payloads replaced (erasure)
//! - `start.rs`       the persisted first offset
//! - `snapshot.rs`    the state machine's snapshot, streamed in chunks
//! - `archive.rs`     rkyv payloads with validation
//!
//! # Durability contract
//! A record is acknowledged when its `Appended::durable` future resolves:
//! it then survives a crash of the process or the machine. A crash never
//! shows a half-written record. A failed write or fdatasync fails the
//! futures of its batch (and of every append after it); the log stays
//! readable and takes appends again once the cause is gone.

pub mod constants;

mod appender;
mod archive;
mod compact;
mod cursor;
mod durable;
mod error;
mod file;
mod index;
mod log;
mod maintenance;
mod open;
mod reader;
pub mod record;
mod segment;
mod snapshot;
mod start;
mod types;

pub use appender::{Appended, Entry};
pub use archive::to_archive;
pub use compact::Rewritten;
pub use durable::DurableFuture;
pub use error::{LogError, Result};
pub use file::write_atomic;
pub use log::{Config, IoStats, Log, SegmentInfo};
pub use maintenance::{Retained, Retention};
pub use reader::{LogReader, Record};
pub use segment::{parse_segment_name, segment_name};
pub use snapshot::{Snapshot, SnapshotReader, SnapshotWriter};
pub use types::{Kind, Offset, Repair, Term};

/// Tools (logdump) read segment files without opening a `Log`.
pub mod inspect {
    pub use crate::cursor::{Cursor, Found, Invalid};
    pub use crate::file::LogFile;
}
