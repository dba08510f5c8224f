//! The log handle and the state it shares with its flusher task.
//!
//! Lives on: the core that owns the shard. `Log` is a cheap `Rc` handle:
//! clone it into every task of that core that appends or reads; it never
//! crosses cores (it is `!Send`).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::task::Waker;

use glommio::sync::Semaphore;

use crate::constants::{
    SEGMENT_SIZE_BYTES_DEFAULT, SEGMENT_SIZE_BYTES_MAX, SEGMENT_SIZE_BYTES_MIN,
};
use crate::durable::Durability;
use crate::error::{LogError, Result};
use crate::index::TermRuns;
use crate::segment::Segment;
use crate::types::{Offset, Repair, Term};

/// How a log is opened.
#[derive(Clone, Debug)]
pub struct Config {
    /// The active segment is sealed once it holds this many bytes.
    pub segment_size_bytes: u64,
    /// What to do with a bad record before the tail.
    pub repair: Repair,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            segment_size_bytes: SEGMENT_SIZE_BYTES_DEFAULT,
            repair: Repair::Refuse,
        }
    }
}

impl Config {
    pub fn validate(&self) -> Result<()> {
        let size = self.segment_size_bytes;
        if !(SEGMENT_SIZE_BYTES_MIN..=SEGMENT_SIZE_BYTES_MAX).contains(&size) {
            return Err(LogError::Invalid(format!(
                "segment size {size} outside [{SEGMENT_SIZE_BYTES_MIN}, {SEGMENT_SIZE_BYTES_MAX}]"
            )));
        }
        Ok(())
    }
}

/// Frames appended but not yet taken by the flusher: the next write batch.
#[derive(Default)]
pub(crate) struct Batch {
    pub frames: Vec<u8>,
    pub first: Offset,
    pub count: u32,
}

pub(crate) struct State {
    pub dir: PathBuf,
    pub config: Config,
    /// Every segment by first offset; the last one is the active segment.
    pub segments: BTreeMap<Offset, Segment>,
    pub terms: TermRuns,
    /// First readable offset (raised by `drop_prefix` and retention).
    pub start: Offset,
    /// The offset the next appended record gets.
    pub next: Offset,
    pub durability: Durability,
    pub batch: Batch,
    /// A spare buffer for the next batch, so batches reuse memory.
    pub spare: Vec<u8>,
    /// The bytes of the active segment's last, partial sector.
    pub tail: Vec<u8>,
    /// A failed write left bytes past the active segment's end that a
    /// truncate has not yet removed; no write may happen before it does.
    pub dirty_tail: bool,
    pub closing: bool,
    pub closed: bool,
    pub flusher_waker: Option<Waker>,
    pub space_waiters: Vec<Waker>,
}

impl State {
    pub fn active(&self) -> &Segment {
        self.segments
            .values()
            .next_back()
            .expect("a log always has a segment")
    }

    pub fn active_mut(&mut self) -> &mut Segment {
        self.segments
            .values_mut()
            .next_back()
            .expect("a log always has a segment")
    }

    pub fn last(&self) -> Offset {
        self.next.prev()
    }

    pub fn wake_space(&mut self) {
        for waker in self.space_waiters.drain(..) {
            waker.wake();
        }
    }

    pub fn wake_flusher(&mut self) {
        if let Some(waker) = self.flusher_waker.take() {
            waker.wake();
        }
    }

    pub fn check_open(&self) -> Result<()> {
        if self.closing || self.closed {
            return Err(LogError::Closed);
        }
        Ok(())
    }

    pub fn check_range(&self, offset: Offset) -> Result<()> {
        if offset < self.start || offset > self.last() {
            return Err(LogError::OutOfRange {
                offset,
                first: self.start,
                last: self.last(),
            });
        }
        Ok(())
    }
}

pub(crate) struct Shared {
    pub state: RefCell<State>,
    /// Held by whoever writes, truncates or deletes files.
    pub io_lock: Semaphore,
    pub flusher: RefCell<Option<glommio::Task<()>>>,
    pub io: RefCell<IoStats>,
}

/// What the log did to the disk since it was opened (for the engine's
/// stats). `fsync_micros` keeps the latest fsync latencies until taken.
#[derive(Clone, Debug, Default)]
pub struct IoStats {
    pub batches: u64,
    pub fsyncs: u64,
    pub bytes_written: u64,
    pub fsync_micros: Vec<u32>,
}

/// Latencies kept between two `take_io_stats` calls.
const FSYNC_SAMPLES_MAX: usize = 4096;

impl IoStats {
    pub(crate) fn record(&mut self, bytes: usize, fsync: std::time::Duration) {
        self.batches += 1;
        self.fsyncs += 1;
        self.bytes_written += bytes as u64;
        if self.fsync_micros.len() < FSYNC_SAMPLES_MAX {
            self.fsync_micros
                .push(fsync.as_micros().min(u128::from(u32::MAX)) as u32);
        }
    }
}

/// The append-only segment log of one shard.
#[derive(Clone)]
pub struct Log {
    pub(crate) shared: Rc<Shared>,
}

/// A sealed or active segment, as `Log::segments` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentInfo {
    pub base: Offset,
    pub last: Offset,
    pub size_bytes: u64,
    pub path: PathBuf,
}

impl Log {
    pub(crate) fn state(&self) -> std::cell::Ref<'_, State> {
        self.shared.state.borrow()
    }

    pub(crate) fn state_mut(&self) -> std::cell::RefMut<'_, State> {
        self.shared.state.borrow_mut()
    }

    pub fn dir(&self) -> PathBuf {
        self.state().dir.clone()
    }

    /// First readable offset. When the log is empty, `first == last + 1`.
    pub fn first_offset(&self) -> Offset {
        self.state().start
    }

    /// Last appended offset (it may not be durable yet); `Offset(0)` if none ever.
    pub fn last_offset(&self) -> Offset {
        self.state().last()
    }

    /// Last offset known to be on disk.
    pub fn durable_offset(&self) -> Offset {
        self.state().durability.durable
    }

    /// The term of the record at `offset`, without touching the disk.
    pub fn term_at(&self, offset: Offset) -> Result<Term> {
        let state = self.state();
        state.check_range(offset)?;
        Ok(state
            .terms
            .term_at(offset)
            .expect("every record has a term"))
    }

    /// The term of the last record, if any.
    pub fn last_term(&self) -> Option<Term> {
        let state = self.state();
        (state.last() >= state.start).then(|| state.terms.last_term().expect("term of last"))
    }

    /// Every segment, oldest first.
    pub fn segments(&self) -> Vec<SegmentInfo> {
        self.state()
            .segments
            .values()
            .map(|s| SegmentInfo {
                base: s.base,
                last: s.last,
                size_bytes: s.size,
                path: s.path().to_owned(),
            })
            .collect()
    }

    /// True when the segments bypass the page cache (O_DIRECT).
    pub fn is_direct(&self) -> bool {
        self.state().active().file.is_direct()
    }

    /// Flushes what was appended, stops the flusher and closes every file.
    /// Appends and reads fail with `Closed` afterwards.
    /// Counters since open, and the fsync latencies since the last call.
    /// True once `close` began: nothing more is appended or read.
    pub fn is_closed(&self) -> bool {
        self.state().check_open().is_err()
    }

    pub fn take_io_stats(&self) -> IoStats {
        let mut io = self.shared.io.borrow_mut();
        let taken = io.clone();
        io.fsync_micros.clear();
        taken
    }

    pub async fn close(&self) -> Result<()> {
        {
            let mut state = self.state_mut();
            if state.closed {
                return Ok(());
            }
            state.closing = true;
            state.wake_flusher();
            state.wake_space();
        }
        let flusher = self.shared.flusher.borrow_mut().take();
        if let Some(flusher) = flusher {
            flusher.await;
        }
        let segments = {
            let mut state = self.state_mut();
            state.closed = true;
            let durable = state.durability.durable;
            state.durability.advance(durable);
            std::mem::take(&mut state.segments)
        };
        let mut outcome = Ok(());
        for (_, segment) in segments {
            if let Ok(file) = Rc::try_unwrap(segment.file) {
                if let Err(e) = file.close().await {
                    outcome = Err(e);
                }
            }
        }
        outcome
    }
}
