//! An in-memory log with the same contract as chat-log, and faults a test
//! controls: records become durable only when the test flushes (or at
//! once, in auto mode), a flush can fail (dropping everything not yet
//! durable, as a failed fdatasync does), and a crash keeps only what was
//! durable.
//!
//! Lives on: the core (or test thread) that made it. Deterministic: no
//! timers, no threads.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};

use chat_log::{Entry, IoStats, LogError, Offset, Record, Term};

use super::storage::{
    Appended, LocalBoxFuture, LogResult, LogStore, RecordStream, SnapshotSink, SnapshotSource,
};

/// When appended records become durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flush {
    /// At once.
    Auto,
    /// When the test calls `flush`.
    Manual,
}

#[derive(Default)]
struct Inner {
    records: Vec<Record>,
    durable: u64,
    generation: u64,
    /// Ended generations: what was durable then, and why the rest failed.
    ended: BTreeMap<u64, (u64, LogError)>,
    waiters: Vec<Waker>,
    snapshot: Option<(Offset, Vec<Vec<u8>>)>,
    closed: bool,
    fail_next_flush: bool,
    manual: bool,
    stats: IoStats,
}

impl Inner {
    fn wake(&mut self) {
        for w in self.waiters.drain(..) {
            w.wake();
        }
    }

    /// The outcome for offsets up to `last` born in `generation`, if known.
    fn check(&self, generation: u64, last: u64) -> Option<LogResult<()>> {
        if generation == self.generation {
            if self.durable >= last {
                return Some(Ok(()));
            }
            return self.closed.then_some(Err(LogError::Closed));
        }
        let (durable, error) = &self.ended[&generation];
        Some(if last <= *durable {
            Ok(())
        } else {
            Err(error.clone())
        })
    }
}

/// See the module doc. Cheap to clone (one `Rc`).
#[derive(Clone)]
pub struct MemLog {
    inner: Rc<RefCell<Inner>>,
}

fn storage_full() -> LogError {
    LogError::Io {
        op: "fdatasync",
        path: "memlog".into(),
        kind: std::io::ErrorKind::StorageFull,
        errno: Some(libc::ENOSPC),
        message: "injected: no space left on device".into(),
    }
}

impl MemLog {
    pub fn new(flush: Flush) -> MemLog {
        let inner = Inner {
            manual: flush == Flush::Manual,
            ..Inner::default()
        };
        MemLog {
            inner: Rc::new(RefCell::new(inner)),
        }
    }

    /// Makes everything appended durable, or (after `fail_next_flush`)
    /// drops everything not yet durable and fails its futures.
    pub fn flush(&self) {
        let mut s = self.inner.borrow_mut();
        if std::mem::take(&mut s.fail_next_flush) {
            let (generation, durable) = (s.generation, s.durable);
            s.ended.insert(generation, (durable, storage_full()));
            s.generation += 1;
            s.records.truncate(durable as usize);
        } else {
            s.stats.fsyncs += 1;
            s.durable = s.records.len() as u64;
        }
        s.wake();
    }

    pub fn fail_next_flush(&self) {
        self.inner.borrow_mut().fail_next_flush = true;
    }

    /// Records appended and not yet durable.
    pub fn pending(&self) -> u64 {
        let s = self.inner.borrow();
        s.records.len() as u64 - s.durable
    }

    /// The process died: this handle fails from now on; the returned log
    /// holds what was durable (and the installed snapshot).
    pub fn crash(&self) -> MemLog {
        let mut s = self.inner.borrow_mut();
        s.closed = true;
        s.wake();
        let durable = s.durable as usize;
        let after = Inner {
            records: s.records[..durable].to_vec(),
            durable: durable as u64,
            snapshot: s.snapshot.clone(),
            manual: s.manual,
            ..Inner::default()
        };
        MemLog {
            inner: Rc::new(RefCell::new(after)),
        }
    }

    fn durable_future(&self, generation: u64, last: u64) -> LocalBoxFuture<'static, LogResult<()>> {
        let inner = self.inner.clone();
        Box::pin(poll_fn(move |cx| {
            let mut s = inner.borrow_mut();
            match s.check(generation, last) {
                Some(outcome) => Poll::Ready(outcome),
                None => {
                    s.waiters.push(cx.waker().clone());
                    Poll::Pending
                }
            }
        }))
    }

    fn do_append(&self, entries: &[Entry<'_>]) -> LogResult<Appended> {
        let mut s = self.inner.borrow_mut();
        if s.closed {
            return Err(LogError::Closed);
        }
        let first = s.records.len() as u64 + 1;
        for e in entries {
            let mut payload = rkyv::util::AlignedVec::with_capacity(e.payload.len());
            payload.extend_from_slice(e.payload);
            let offset = Offset(s.records.len() as u64 + 1);
            s.stats.bytes_written += e.payload.len() as u64;
            s.records.push(Record {
                offset,
                term: e.term,
                kind: e.kind,
                payload,
            });
        }
        let last = s.records.len() as u64;
        if !s.manual {
            s.durable = last;
        }
        let generation = s.generation;
        drop(s);
        Ok(Appended {
            first: Offset(first),
            last: Offset(last),
            durable: self.durable_future(generation, last),
        })
    }
}

struct MemReader {
    inner: Rc<RefCell<Inner>>,
    next: u64,
}

impl RecordStream for MemReader {
    fn next(&mut self) -> LocalBoxFuture<'_, Option<LogResult<Record>>> {
        let s = self.inner.borrow();
        let out = if s.closed {
            Some(Err(LogError::Closed))
        } else if self.next > s.durable {
            None
        } else {
            self.next += 1;
            Some(Ok(s.records[self.next as usize - 2].clone()))
        };
        Box::pin(std::future::ready(out))
    }
}

struct MemSink {
    inner: Rc<RefCell<Inner>>,
    chunks: Vec<Vec<u8>>,
}

impl SnapshotSink for MemSink {
    fn write_chunk<'a>(&'a mut self, chunk: &'a [u8]) -> LocalBoxFuture<'a, LogResult<()>> {
        self.chunks.push(chunk.to_vec());
        Box::pin(std::future::ready(Ok(())))
    }

    fn finish(
        self: Box<Self>,
        offset: Offset,
        _term: Term,
    ) -> LocalBoxFuture<'static, LogResult<()>> {
        let MemSink { inner, chunks } = *self;
        inner.borrow_mut().snapshot = Some((offset, chunks));
        Box::pin(std::future::ready(Ok(())))
    }

    fn abort(self: Box<Self>) -> LocalBoxFuture<'static, ()> {
        Box::pin(std::future::ready(()))
    }
}

struct MemSource {
    offset: Offset,
    chunks: std::vec::IntoIter<Vec<u8>>,
}

impl SnapshotSource for MemSource {
    fn offset(&self) -> Offset {
        self.offset
    }

    fn next_chunk(&mut self) -> LocalBoxFuture<'_, LogResult<Option<Vec<u8>>>> {
        Box::pin(std::future::ready(Ok(self.chunks.next())))
    }
}

impl LogStore for MemLog {
    fn append<'a>(&'a self, entries: &'a [Entry<'a>]) -> LocalBoxFuture<'a, LogResult<Appended>> {
        Box::pin(std::future::ready(self.do_append(entries)))
    }

    fn read(&self, offset: Offset) -> LocalBoxFuture<'_, LogResult<Record>> {
        let (generation, last) = {
            let s = self.inner.borrow();
            if offset.0 == 0 || offset.0 > s.records.len() as u64 {
                let last = Offset(s.records.len() as u64);
                return Box::pin(std::future::ready(Err(LogError::OutOfRange {
                    offset,
                    first: Offset(1),
                    last,
                })));
            }
            (s.generation, offset.0)
        };
        let durable = self.durable_future(generation, last);
        let inner = self.inner.clone();
        Box::pin(async move {
            durable.await?;
            let s = inner.borrow();
            Ok(s.records[offset.0 as usize - 1].clone())
        })
    }

    fn reader_from(&self, from: Offset) -> Box<dyn RecordStream> {
        Box::new(MemReader {
            inner: self.inner.clone(),
            next: from.0.max(1),
        })
    }

    fn first_offset(&self) -> Offset {
        Offset(1)
    }

    fn last_offset(&self) -> Offset {
        Offset(self.inner.borrow().records.len() as u64)
    }

    fn durable_offset(&self) -> Offset {
        Offset(self.inner.borrow().durable)
    }

    fn term_at(&self, offset: Offset) -> Option<chat_log::Term> {
        let s = self.inner.borrow();
        let i = offset.0.checked_sub(1)? as usize;
        s.records.get(i).map(|r| r.term)
    }

    fn truncate_after(&self, last: Offset) -> LocalBoxFuture<'_, LogResult<()>> {
        let mut s = self.inner.borrow_mut();
        let keep = (last.0 as usize).min(s.records.len());
        s.records.truncate(keep);
        s.durable = s.durable.min(keep as u64);
        Box::pin(std::future::ready(Ok(())))
    }

    fn sync(&self) -> LocalBoxFuture<'_, LogResult<()>> {
        let s = self.inner.borrow();
        let (generation, last) = (s.generation, s.records.len() as u64);
        drop(s);
        self.durable_future(generation, last)
    }

    fn begin_snapshot(&self) -> LocalBoxFuture<'_, LogResult<Box<dyn SnapshotSink>>> {
        let sink = MemSink {
            inner: self.inner.clone(),
            chunks: Vec::new(),
        };
        Box::pin(std::future::ready(Ok(
            Box::new(sink) as Box<dyn SnapshotSink>
        )))
    }

    fn open_snapshot(&self) -> LocalBoxFuture<'_, LogResult<Option<Box<dyn SnapshotSource>>>> {
        let snapshot = self.inner.borrow().snapshot.clone();
        let source = snapshot.map(|(offset, chunks)| {
            Box::new(MemSource {
                offset,
                chunks: chunks.into_iter(),
            }) as Box<dyn SnapshotSource>
        });
        Box::pin(std::future::ready(Ok(source)))
    }

    fn take_io_stats(&self) -> IoStats {
        let mut s = self.inner.borrow_mut();
        let taken = s.stats.clone();
        s.stats.fsync_micros.clear();
        taken
    }

    fn seal_for_compaction(&self) -> LocalBoxFuture<'_, LogResult<Vec<Offset>>> {
        Box::pin(std::future::ready(Ok(Vec::new())))
    }

    fn rewrite_segment<'a>(
        &'a self,
        base: Offset,
        _scrub: &'a mut dyn FnMut(&Record) -> Option<Vec<u8>>,
    ) -> LocalBoxFuture<'a, LogResult<chat_log::Rewritten>> {
        let e = LogError::Invalid(format!("an in-memory log has no segment {base}"));
        Box::pin(std::future::ready(Err(e)))
    }

    fn is_closed(&self) -> bool {
        self.inner.borrow().closed
    }

    fn close(&self) -> LocalBoxFuture<'_, LogResult<()>> {
        let mut s = self.inner.borrow_mut();
        s.closed = true;
        s.wake();
        Box::pin(std::future::ready(Ok(())))
    }
}
