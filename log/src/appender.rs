//! Group commit: appends from many tasks of one core fill a batch; the
//! flusher writes each batch with one write and one fdatasync, then releases
//! every append of the batch at once.
//!
//! Lives on: the shard's core. Memory is bounded: one batch being written
//! and one filling, each at most `BATCH_SIZE_BYTES_MAX`; an append that does
//! not fit waits (backpressure) instead of growing the queue.

use std::future::poll_fn;
use std::rc::{Rc, Weak};
use std::task::Poll;

use crate::constants::{
    BATCH_RECORDS_MAX, BATCH_SIZE_BYTES_MAX, HEADER_SIZE_BYTES, RECORD_PAYLOAD_SIZE_BYTES_MAX,
    SECTOR_SIZE_BYTES,
};
use crate::durable::DurableFuture;
use crate::error::{LogError, Result};
use crate::file::{sync_dir, LogFile};
use crate::log::{Log, Shared, State};
use crate::record::{encode, frame_len, Meta};
use crate::segment::{segment_name, Segment};
use crate::types::{Kind, Offset, Term};

/// One record to append.
#[derive(Clone, Copy, Debug)]
pub struct Entry<'a> {
    pub kind: Kind,
    pub term: Term,
    pub payload: &'a [u8],
}

/// The offsets an append got, and its durability future.
pub struct Appended {
    pub first: Offset,
    pub last: Offset,
    pub durable: DurableFuture,
}

impl Log {
    /// Appends `entries` as one unit: they get dense offsets, land in the
    /// same write batch, and `durable` resolves once all are on disk.
    /// Waits while the pending batch is full.
    pub async fn append(&self, entries: &[Entry<'_>]) -> Result<Appended> {
        let (bytes, count) = check_entries(entries)?;
        let shared = &self.shared;
        poll_fn(|cx| {
            let mut state = shared.state.borrow_mut();
            state.check_open()?;
            let batch = &state.batch;
            let fits = batch.frames.len() + bytes <= BATCH_SIZE_BYTES_MAX
                && batch.count as usize + count <= BATCH_RECORDS_MAX;
            if fits {
                return Poll::Ready(Ok(()));
            }
            state.space_waiters.push(cx.waker().clone());
            Poll::Pending
        })
        .await?;
        // No await from the check above to the end: the room is still there.
        let mut state = self.state_mut();
        check_terms(&state, entries)?;
        if state.batch.count == 0 {
            state.batch.first = state.next;
        }
        let first = state.next;
        for entry in entries {
            let meta = Meta {
                offset: state.next,
                term: entry.term,
                kind: entry.kind,
                batch_index: state.batch.count,
            };
            encode(&mut state.batch.frames, meta, entry.payload);
            state.terms.observe(meta.offset, meta.term);
            state.batch.count += 1;
            state.next = state.next.next();
        }
        let last = state.next.prev();
        assert_eq!(state.batch.first.0 + state.batch.count as u64, state.next.0);
        state.wake_flusher();
        Ok(Appended {
            first,
            last,
            durable: DurableFuture {
                shared: self.shared.clone(),
                generation: state.durability.generation(),
                last,
            },
        })
    }

    /// Appends and waits until the entries are durable.
    pub async fn append_durable(&self, entries: &[Entry<'_>]) -> Result<(Offset, Offset)> {
        let appended = self.append(entries).await?;
        appended.durable.await?;
        Ok((appended.first, appended.last))
    }

    /// Waits until everything appended so far is durable.
    pub async fn sync(&self) -> Result<()> {
        let future = {
            let state = self.state();
            state.check_open()?;
            DurableFuture {
                shared: self.shared.clone(),
                generation: state.durability.generation(),
                last: state.last(),
            }
        };
        future.await
    }
}

fn check_entries(entries: &[Entry<'_>]) -> Result<(usize, usize)> {
    if entries.is_empty() {
        return Err(LogError::Invalid("append of no records".into()));
    }
    if entries.len() > BATCH_RECORDS_MAX {
        return Err(LogError::TooLarge {
            size_bytes: entries.len(),
            max_bytes: BATCH_RECORDS_MAX,
        });
    }
    let mut bytes = 0usize;
    for entry in entries {
        if entry.payload.len() > RECORD_PAYLOAD_SIZE_BYTES_MAX {
            return Err(LogError::TooLarge {
                size_bytes: entry.payload.len(),
                max_bytes: RECORD_PAYLOAD_SIZE_BYTES_MAX,
            });
        }
        bytes += frame_len(entry.payload.len());
    }
    if bytes > BATCH_SIZE_BYTES_MAX {
        return Err(LogError::TooLarge {
            size_bytes: bytes,
            max_bytes: BATCH_SIZE_BYTES_MAX,
        });
    }
    Ok((bytes, entries.len()))
}

fn check_terms(state: &State, entries: &[Entry<'_>]) -> Result<()> {
    let mut term = if state.last() >= state.start {
        state.terms.last_term().unwrap_or_default()
    } else {
        Term(0)
    };
    for entry in entries {
        if entry.term < term {
            return Err(LogError::Invalid(format!(
                "term {} after term {term}: terms never go down",
                entry.term
            )));
        }
        term = entry.term;
    }
    Ok(())
}

/// The flusher task: waits for a batch, writes it, repeats; drains and
/// exits once the log is closing.
pub(crate) async fn run_flusher(weak: Weak<Shared>) {
    loop {
        let has_work = poll_fn(|cx| {
            let Some(shared) = weak.upgrade() else {
                return Poll::Ready(false);
            };
            let mut state = shared.state.borrow_mut();
            if state.batch.count > 0 {
                return Poll::Ready(true);
            }
            if state.closing {
                return Poll::Ready(false);
            }
            state.flusher_waker = Some(cx.waker().clone());
            Poll::Pending
        })
        .await;
        let Some(shared) = weak.upgrade() else { return };
        if !has_work {
            return;
        }
        let _permit = shared.io_lock.acquire_permit(1).await.expect("io lock");
        flush_once(&shared).await;
    }
}

/// Writes the pending batch (if any) and fsyncs it. Caller holds `io_lock`.
pub(crate) async fn flush_once(shared: &Rc<Shared>) {
    let (frames, first, count) = {
        let mut state = shared.state.borrow_mut();
        if state.batch.count == 0 {
            return;
        }
        let spare = std::mem::take(&mut state.spare);
        let batch = std::mem::replace(
            &mut state.batch,
            crate::log::Batch {
                frames: spare,
                ..Default::default()
            },
        );
        state.wake_space();
        (batch.frames, batch.first, batch.count)
    };
    let last = Offset(first.0 + count as u64 - 1);
    let outcome = write_batch(shared, &frames, first, last).await;
    let mut state = shared.state.borrow_mut();
    match outcome {
        Ok(()) => state.durability.advance(last),
        Err(error) => fail_from(&mut state, first, error),
    }
    let mut frames = frames;
    frames.clear();
    if frames.capacity() <= BATCH_SIZE_BYTES_MAX * 2 {
        state.spare = frames;
    }
}

/// Every offset from `first` on failed: forget them so they can be given
/// out again, fail their futures, and drop the batch that was filling.
fn fail_from(state: &mut State, first: Offset, error: LogError) {
    state.batch.frames.clear();
    state.batch.count = 0;
    state.next = first;
    state.terms.truncate_after(first.prev());
    state.durability.end_generation(first.prev(), Some(error));
    state.wake_space();
}

async fn write_batch(
    shared: &Rc<Shared>,
    frames: &[u8],
    first: Offset,
    last: Offset,
) -> Result<()> {
    clean_dirty_tail(shared).await?;
    let roll = {
        let state = shared.state.borrow();
        let active = state.active();
        assert_eq!(active.last.next(), first, "batches are dense");
        active.size >= state.config.segment_size_bytes && !active.is_empty()
    };
    if roll {
        roll_segment(shared, first).await?;
    }
    let (file, size, mut buf) = {
        let mut state = shared.state.borrow_mut();
        let mut buf = Vec::with_capacity(SECTOR_SIZE_BYTES + frames.len() + SECTOR_SIZE_BYTES);
        buf.extend_from_slice(&state.tail);
        let active = state.active_mut();
        (active.file.clone(), active.size, buf)
    };
    let write_pos = size - (buf.len() as u64);
    assert_eq!(write_pos % SECTOR_SIZE_BYTES as u64, 0);
    buf.extend_from_slice(frames);
    let end = buf.len();
    buf.resize(end.div_ceil(SECTOR_SIZE_BYTES) * SECTOR_SIZE_BYTES, 0);
    let written = async {
        file.write_sectors(write_pos, &buf).await?;
        let started = std::time::Instant::now();
        file.sync().await?;
        shared.io.borrow_mut().record(buf.len(), started.elapsed());
        Ok(())
    }
    .await;
    if let Err(error) = written {
        shared.state.borrow_mut().dirty_tail = true;
        // Best effort now; retried before the next write if it fails.
        let _ = clean_dirty_tail(shared).await;
        return Err(error);
    }
    let mut state = shared.state.borrow_mut();
    let tail_start = (end / SECTOR_SIZE_BYTES) * SECTOR_SIZE_BYTES;
    state.tail.clear();
    state.tail.extend_from_slice(&buf[tail_start..end]);
    let active = state.active_mut();
    let mut pos = 0usize;
    let mut offset = first;
    while pos < frames.len() {
        let payload_len = u32::from_le_bytes(frames[pos + 4..pos + 8].try_into().unwrap());
        active.index.observe(offset, (size + pos as u64) as u32);
        pos += HEADER_SIZE_BYTES + crate::record::padded_len(payload_len as usize);
        offset = offset.next();
    }
    assert_eq!(pos, frames.len());
    assert_eq!(offset, last.next());
    active.size = size + frames.len() as u64;
    active.last = last;
    Ok(())
}

/// Cuts the active segment's file back to its valid size after a failed write.
async fn clean_dirty_tail(shared: &Rc<Shared>) -> Result<()> {
    let (file, size) = {
        let state = shared.state.borrow();
        if !state.dirty_tail {
            return Ok(());
        }
        (state.active().file.clone(), state.active().size)
    };
    file.truncate(size).await?;
    shared.state.borrow_mut().dirty_tail = false;
    Ok(())
}

/// Seals the active segment and starts a new one whose first offset is `base`.
async fn roll_segment(shared: &Rc<Shared>, base: Offset) -> Result<()> {
    let dir = shared.state.borrow().dir.clone();
    let path = dir.join(segment_name(base));
    let file = LogFile::open(&path, true).await?;
    file.truncate(0).await?;
    sync_dir(&dir).await?;
    let mut state = shared.state.borrow_mut();
    state.tail.clear();
    state.segments.insert(
        base,
        Segment {
            base,
            last: base.prev(),
            size: 0,
            file: Rc::new(file),
            index: Default::default(),
        },
    );
    Ok(())
}
