//! All limits of the log, in one place. Units last in every name.
//!
//! Lives on: compile time; used by every file of the crate.

/// Every record frame starts and ends on this boundary, so that an rkyv
/// archive in the payload can be accessed in place.
pub const RECORD_ALIGN_BYTES: usize = 16;

/// Fixed header in front of every payload (see `record.rs` for the layout).
pub const HEADER_SIZE_BYTES: usize = 32;

/// Largest payload a single record may carry.
pub const RECORD_PAYLOAD_SIZE_BYTES_MAX: usize = 1024 * 1024;

/// Largest whole frame (header + padded payload).
pub const RECORD_FRAME_SIZE_BYTES_MAX: usize = HEADER_SIZE_BYTES + RECORD_PAYLOAD_SIZE_BYTES_MAX;

/// Writes are issued in whole sectors (O_DIRECT); the partial last sector
/// of the active segment is rewritten by the next batch.
pub const SECTOR_SIZE_BYTES: usize = 4096;

/// Default size at which the active segment is sealed and a new one begun.
pub const SEGMENT_SIZE_BYTES_DEFAULT: u64 = 128 * 1024 * 1024;

/// Smallest configurable roll size (tests use small segments to roll often).
pub const SEGMENT_SIZE_BYTES_MIN: u64 = SECTOR_SIZE_BYTES as u64;

/// Largest configurable roll size; positions inside a segment fit in u32.
pub const SEGMENT_SIZE_BYTES_MAX: u64 = 1024 * 1024 * 1024;

/// One group-commit batch: at most this many bytes of frames, written with
/// one write and one fdatasync.
pub const BATCH_SIZE_BYTES_MAX: usize = 4 * 1024 * 1024;

/// One group-commit batch: at most this many records.
pub const BATCH_RECORDS_MAX: usize = 16 * 1024;

/// The sparse index holds one entry per this many bytes of segment data.
pub const INDEX_INTERVAL_BYTES: usize = 4096;

/// Size of one sequential read during recovery scans and iteration.
pub const SCAN_CHUNK_BYTES: usize = 2 * 1024 * 1024;

/// Cursors reading chunks at least this large read one chunk ahead.
pub const PREFETCH_CHUNK_BYTES_MIN: usize = 256 * 1024;

/// Largest snapshot chunk (and whole-blob snapshot).
pub const SNAPSHOT_CHUNK_SIZE_BYTES_MAX: usize = 1024 * 1024 * 1024;

const _: () = assert!(HEADER_SIZE_BYTES.is_multiple_of(RECORD_ALIGN_BYTES));
const _: () = assert!(RECORD_PAYLOAD_SIZE_BYTES_MAX.is_multiple_of(RECORD_ALIGN_BYTES));
const _: () = assert!(SECTOR_SIZE_BYTES.is_multiple_of(RECORD_ALIGN_BYTES));
const _: () = assert!(BATCH_SIZE_BYTES_MAX >= RECORD_FRAME_SIZE_BYTES_MAX);
const _: () = assert!(BATCH_SIZE_BYTES_MAX.is_multiple_of(SECTOR_SIZE_BYTES));
const _: () = assert!(SCAN_CHUNK_BYTES.is_multiple_of(SECTOR_SIZE_BYTES));
const _: () = assert!(SCAN_CHUNK_BYTES >= 2 * INDEX_INTERVAL_BYTES);
const _: () = assert!(SCAN_CHUNK_BYTES >= PREFETCH_CHUNK_BYTES_MIN);
const _: () = assert!(PREFETCH_CHUNK_BYTES_MIN > 2 * INDEX_INTERVAL_BYTES);
const _: () = assert!(SEGMENT_SIZE_BYTES_DEFAULT <= SEGMENT_SIZE_BYTES_MAX);
const _: () = assert!(SEGMENT_SIZE_BYTES_MIN.is_multiple_of(SECTOR_SIZE_BYTES as u64));
// A segment may exceed its roll size by one batch; positions must fit u32.
const _: () = assert!(SEGMENT_SIZE_BYTES_MAX + (BATCH_SIZE_BYTES_MAX as u64) < u32::MAX as u64);

/// A segment rewrite (compaction) buffers this many bytes of new frames
/// before it writes them.
pub const REWRITE_BUFFER_BYTES: usize = 1024 * 1024;
const _: () = assert!(REWRITE_BUFFER_BYTES.is_multiple_of(SECTOR_SIZE_BYTES));
/// A rewrite lets the core's other tasks run after this many records.
pub const REWRITE_YIELD_RECORDS: u64 = 64;
