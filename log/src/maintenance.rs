//! Changes to the shape of the log: truncate the end (Raft conflict repair),
//! drop the start (after a snapshot), and retention by age and total size.
//!
//! Lives on: the shard's core. Each takes the I/O lock and first flushes the
//! pending batch, so no write is in flight while files change.

use std::rc::Rc;
use std::time::{Duration, SystemTime};

use crate::appender::flush_once;
use crate::constants::SECTOR_SIZE_BYTES;
use crate::cursor::Cursor;
use crate::error::{LogError, Result};
use crate::file::{sync_dir, write_atomic, LogFile};
use crate::log::{Log, Shared};
use crate::segment::{corrupt, segment_name, Segment};
use crate::start::{encode_start, START_FILE};
use crate::types::Offset;

/// What retention may delete. Whole sealed segments only, oldest first.
#[derive(Clone, Debug, Default)]
pub struct Retention {
    /// Delete segments last written longer ago than this.
    pub max_age: Option<Duration>,
    /// Delete the oldest segments while all of them together exceed this.
    pub max_total_bytes: Option<u64>,
}

/// What one retention pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Retained {
    pub segments_deleted: usize,
    pub bytes_deleted: u64,
    pub first: Offset,
}

impl Log {
    pub(crate) async fn lock_and_flush(&self) -> Result<glommio::sync::Permit<'_>> {
        self.state().check_open()?;
        let permit = self
            .shared
            .io_lock
            .acquire_permit(1)
            .await
            .expect("io lock");
        flush_once(&self.shared).await;
        self.state().check_open()?;
        Ok(permit)
    }

    /// Removes every record after `last` (Raft: a conflicting suffix).
    /// `last` may be `first_offset() - 1`, which empties the log.
    pub async fn truncate_after(&self, last: Offset) -> Result<()> {
        let _permit = self.lock_and_flush().await?;
        let (start, current_last) = {
            let state = self.state();
            (state.start, state.last())
        };
        if last < start.prev() || last > current_last {
            return Err(LogError::Invalid(format!(
                "truncate after {last}: the log holds [{start}, {current_last}]"
            )));
        }
        if last == current_last {
            return Ok(());
        }
        remove_segments(&self.shared, |s| s.base > last).await?;
        if self.state().segments.is_empty() {
            create_segment(&self.shared, last.next()).await?;
        } else {
            cut_active_after(&self.shared, last).await?;
        }
        sync_dir(&self.dir()).await?;
        let mut state = self.state_mut();
        state.next = last.next();
        state.terms.truncate_after(last);
        state.durability.end_generation(last, None);
        Ok(())
    }

    /// Drops every record up to and including `upto` (after a snapshot that
    /// covers them). Past the last record, the log restarts at `upto + 1`.
    pub async fn drop_prefix(&self, upto: Offset) -> Result<()> {
        let _permit = self.lock_and_flush().await?;
        let (start, last, dir) = {
            let state = self.state();
            (state.start, state.last(), state.dir.clone())
        };
        if upto < start {
            return Ok(());
        }
        let new_start = upto.next();
        // The new start is durable before any file goes: a crash in between
        // leaves segments below it, which the next open deletes.
        write_atomic(&dir, START_FILE, &encode_start(new_start)).await?;
        if upto >= last {
            remove_segments(&self.shared, |_| true).await?;
            create_segment(&self.shared, new_start).await?;
        } else {
            remove_segments(&self.shared, |s| s.last < new_start && s.last != last).await?;
        }
        sync_dir(&dir).await?;
        let mut state = self.state_mut();
        state.start = new_start;
        if upto >= last {
            state.next = new_start;
            state.terms.clear();
            state.durability.end_generation(upto, None);
        } else {
            state.terms.drop_before(new_start);
        }
        Ok(())
    }

    /// Deletes whole sealed segments, oldest first, while they are older
    /// than `max_age` (by `now`) or the log is over `max_total_bytes`. Never
    /// the active segment, never one holding an offset at or above `keep_from`.
    pub async fn retain(
        &self,
        policy: &Retention,
        keep_from: Offset,
        now: SystemTime,
    ) -> Result<Retained> {
        let _permit = self.lock_and_flush().await?;
        let (doomed, bytes) = pick_expired(&self.shared, policy, keep_from, now);
        let mut retained = Retained {
            first: self.first_offset(),
            ..Retained::default()
        };
        let Some(&last_doomed) = doomed.last() else {
            return Ok(retained);
        };
        let dir = self.dir();
        let new_start = {
            let state = self.state();
            state.segments[&last_doomed].last.next().max(state.start)
        };
        write_atomic(&dir, START_FILE, &encode_start(new_start)).await?;
        remove_segments(&self.shared, |s| s.base <= last_doomed).await?;
        sync_dir(&dir).await?;
        let mut state = self.state_mut();
        state.start = new_start;
        state.terms.drop_before(new_start);
        retained.segments_deleted = doomed.len();
        retained.bytes_deleted = bytes;
        retained.first = new_start;
        Ok(retained)
    }
}

/// The bases of the oldest segments that retention deletes, and their bytes.
fn pick_expired(
    shared: &Shared,
    policy: &Retention,
    keep_from: Offset,
    now: SystemTime,
) -> (Vec<Offset>, u64) {
    let state = shared.state.borrow();
    let mut total: u64 = state.segments.values().map(|s| s.size).sum();
    let active = state.active().base;
    let mut doomed = Vec::new();
    let mut bytes = 0;
    for segment in state.segments.values() {
        if segment.base == active || segment.last >= keep_from {
            break;
        }
        let too_big = policy.max_total_bytes.is_some_and(|max| total > max);
        let too_old = policy.max_age.is_some_and(|age| {
            let modified = std::fs::metadata(segment.path()).and_then(|m| m.modified());
            modified.is_ok_and(|m| m + age < now)
        });
        if !(too_big || too_old) {
            break;
        }
        total -= segment.size;
        bytes += segment.size;
        doomed.push(segment.base);
    }
    (doomed, bytes)
}

/// Closes and deletes every segment for which `doomed` holds, newest first.
async fn remove_segments(shared: &Rc<Shared>, doomed: impl Fn(&Segment) -> bool) -> Result<()> {
    let bases: Vec<Offset> = {
        let state = shared.state.borrow();
        state
            .segments
            .values()
            .filter(|s| doomed(s))
            .map(|s| s.base)
            .collect()
    };
    for base in bases.into_iter().rev() {
        let segment = shared.state.borrow_mut().segments.remove(&base).unwrap();
        let path = segment.path().to_owned();
        std::fs::remove_file(&path).map_err(|e| LogError::io("remove", &path, &e))?;
        if let Ok(file) = Rc::try_unwrap(segment.file) {
            file.close().await?;
        }
    }
    if shared.state.borrow().segments.is_empty() {
        shared.state.borrow_mut().tail.clear();
    }
    Ok(())
}

/// Creates an empty segment starting at `base` as the active one.
pub(crate) async fn create_segment(shared: &Rc<Shared>, base: Offset) -> Result<()> {
    let path = shared.state.borrow().dir.join(segment_name(base));
    let file = LogFile::open(&path, true).await?;
    file.truncate(0).await?;
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

/// Cuts the active segment just after the record `last`.
async fn cut_active_after(shared: &Rc<Shared>, last: Offset) -> Result<()> {
    let (file, pos, limit, base) = {
        let state = shared.state.borrow();
        let active = state.active();
        assert!(active.base <= last.next() && last <= active.last);
        let pos = active.index.floor(last).map_or(0, |(_, p)| p as u64);
        (active.file.clone(), pos, active.size, active.base)
    };
    let end = if last < base {
        0
    } else {
        let mut cursor = Cursor::new(file.clone(), pos, limit, 2 * SECTOR_SIZE_BYTES);
        loop {
            let at = cursor.pos();
            match cursor.next().await? {
                Ok(Some(found)) if found.meta.offset < last => continue,
                Ok(Some(found)) if found.meta.offset == last => break cursor.pos(),
                _ => return Err(corrupt(file.path(), at, last, "while truncating".into())),
            }
        }
    };
    file.truncate(end).await?;
    file.sync().await?;
    let tail = load_tail(&file, end).await?;
    let mut state = shared.state.borrow_mut();
    state.tail = tail;
    let active = state.active_mut();
    active.size = end;
    active.last = last;
    active.index.truncate_after(last);
    Ok(())
}

/// The bytes of the partial last sector of a segment whose valid size is `size`.
pub(crate) async fn load_tail(file: &LogFile, size: u64) -> Result<Vec<u8>> {
    let start = size - size % SECTOR_SIZE_BYTES as u64;
    if start == size {
        return Ok(Vec::new());
    }
    let bytes = file.read(start, (size - start) as usize).await?;
    assert_eq!(
        bytes.len() as u64,
        size - start,
        "tail shorter than the segment"
    );
    Ok(bytes.to_vec())
}
