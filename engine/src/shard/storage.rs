//! The log a shard writes, behind a small trait: chat-log on disk, or the
//! in-memory `MemLog` with injectable faults (tests, the simulation).
//!
//! Lives on: the shard's core (futures are `!Send`, bound to it).

use std::future::Future;
use std::pin::Pin;

use chat_log::{Entry, IoStats, Log, LogError, Offset, Record, Rewritten, Term};

pub type LocalBoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;
pub type LogResult<T> = Result<T, LogError>;

/// The offsets an append got; `durable` resolves once they are on disk
/// (or fails with the error that dropped them).
pub struct Appended {
    pub first: Offset,
    pub last: Offset,
    pub durable: LocalBoxFuture<'static, LogResult<()>>,
}

/// Durable records from an offset on, in order.
pub trait RecordStream {
    fn next(&mut self) -> LocalBoxFuture<'_, Option<LogResult<Record>>>;
}

/// A snapshot being written: chunks, then `finish` installs it atomically.
pub trait SnapshotSink {
    fn write_chunk<'a>(&'a mut self, chunk: &'a [u8]) -> LocalBoxFuture<'a, LogResult<()>>;
    fn finish(
        self: Box<Self>,
        offset: Offset,
        term: Term,
    ) -> LocalBoxFuture<'static, LogResult<()>>;
    fn abort(self: Box<Self>) -> LocalBoxFuture<'static, ()>;
}

/// The installed snapshot, read chunk by chunk.
pub trait SnapshotSource {
    /// The last offset whose records are whole in the snapshot.
    fn offset(&self) -> Offset;
    fn next_chunk(&mut self) -> LocalBoxFuture<'_, LogResult<Option<Vec<u8>>>>;
}

/// What the shard runner needs of a log (chat-log's API, object-safe).
pub trait LogStore {
    fn append<'a>(&'a self, entries: &'a [Entry<'a>]) -> LocalBoxFuture<'a, LogResult<Appended>>;
    fn read(&self, offset: Offset) -> LocalBoxFuture<'_, LogResult<Record>>;
    fn reader_from(&self, from: Offset) -> Box<dyn RecordStream>;
    fn first_offset(&self) -> Offset;
    fn last_offset(&self) -> Offset;
    fn durable_offset(&self) -> Offset;
    /// The term of the record at `offset`, if the log holds it.
    fn term_at(&self, offset: Offset) -> Option<Term>;
    /// Removes every record after `last` (Raft: a conflicting suffix).
    fn truncate_after(&self, last: Offset) -> LocalBoxFuture<'_, LogResult<()>>;
    /// Resolves once everything appended so far is durable.
    fn sync(&self) -> LocalBoxFuture<'_, LogResult<()>>;
    fn begin_snapshot(&self) -> LocalBoxFuture<'_, LogResult<Box<dyn SnapshotSink>>>;
    fn open_snapshot(&self) -> LocalBoxFuture<'_, LogResult<Option<Box<dyn SnapshotSource>>>>;
    fn take_io_stats(&self) -> IoStats;
    /// Erasure: seals the active segment (if it holds records) and answers
    /// the first offsets of the sealed segments; an in-memory log has
    /// none (there is no disk to erase from).
    fn seal_for_compaction(&self) -> LocalBoxFuture<'_, LogResult<Vec<Offset>>>;
    /// Erasure: rewrites the sealed segment at `base` with `scrub`'s
    /// payloads where it gives one (chat-log's `rewrite_segment`).
    fn rewrite_segment<'a>(
        &'a self,
        base: Offset,
        scrub: &'a mut dyn FnMut(&Record) -> Option<Vec<u8>>,
    ) -> LocalBoxFuture<'a, LogResult<Rewritten>>;
    /// True once closed (shutdown, or a simulated crash).
    fn is_closed(&self) -> bool;
    fn close(&self) -> LocalBoxFuture<'_, LogResult<()>>;
}

struct DiskReader(chat_log::LogReader);

impl RecordStream for DiskReader {
    fn next(&mut self) -> LocalBoxFuture<'_, Option<LogResult<Record>>> {
        Box::pin(self.0.next())
    }
}

impl SnapshotSink for chat_log::SnapshotWriter {
    fn write_chunk<'a>(&'a mut self, chunk: &'a [u8]) -> LocalBoxFuture<'a, LogResult<()>> {
        Box::pin(chat_log::SnapshotWriter::write_chunk(self, chunk))
    }

    fn finish(
        self: Box<Self>,
        offset: Offset,
        term: Term,
    ) -> LocalBoxFuture<'static, LogResult<()>> {
        Box::pin((*self).finish(offset, term))
    }

    fn abort(self: Box<Self>) -> LocalBoxFuture<'static, ()> {
        Box::pin((*self).abort())
    }
}

impl SnapshotSource for chat_log::SnapshotReader {
    fn offset(&self) -> Offset {
        chat_log::SnapshotReader::offset(self)
    }

    fn next_chunk(&mut self) -> LocalBoxFuture<'_, LogResult<Option<Vec<u8>>>> {
        Box::pin(chat_log::SnapshotReader::next_chunk(self))
    }
}

impl LogStore for Log {
    fn append<'a>(&'a self, entries: &'a [Entry<'a>]) -> LocalBoxFuture<'a, LogResult<Appended>> {
        Box::pin(async move {
            let a = Log::append(self, entries).await?;
            Ok(Appended {
                first: a.first,
                last: a.last,
                durable: Box::pin(a.durable),
            })
        })
    }

    fn read(&self, offset: Offset) -> LocalBoxFuture<'_, LogResult<Record>> {
        Box::pin(Log::read(self, offset))
    }

    fn reader_from(&self, from: Offset) -> Box<dyn RecordStream> {
        Box::new(DiskReader(Log::reader_from(self, from)))
    }

    fn first_offset(&self) -> Offset {
        Log::first_offset(self)
    }

    fn last_offset(&self) -> Offset {
        Log::last_offset(self)
    }

    fn durable_offset(&self) -> Offset {
        Log::durable_offset(self)
    }

    fn term_at(&self, offset: Offset) -> Option<Term> {
        Log::term_at(self, offset).ok()
    }

    fn truncate_after(&self, last: Offset) -> LocalBoxFuture<'_, LogResult<()>> {
        Box::pin(Log::truncate_after(self, last))
    }

    fn sync(&self) -> LocalBoxFuture<'_, LogResult<()>> {
        Box::pin(Log::sync(self))
    }

    fn begin_snapshot(&self) -> LocalBoxFuture<'_, LogResult<Box<dyn SnapshotSink>>> {
        Box::pin(async move {
            let w = Log::begin_snapshot(self).await?;
            Ok(Box::new(w) as Box<dyn SnapshotSink>)
        })
    }

    fn open_snapshot(&self) -> LocalBoxFuture<'_, LogResult<Option<Box<dyn SnapshotSource>>>> {
        Box::pin(async move {
            let r = Log::open_snapshot(self).await?;
            Ok(r.map(|r| Box::new(r) as Box<dyn SnapshotSource>))
        })
    }

    fn take_io_stats(&self) -> IoStats {
        Log::take_io_stats(self)
    }

    fn seal_for_compaction(&self) -> LocalBoxFuture<'_, LogResult<Vec<Offset>>> {
        Box::pin(async move {
            Log::seal_active(self).await?;
            let segments = Log::segments(self);
            let sealed = segments.len().saturating_sub(1);
            Ok(segments[..sealed].iter().map(|s| s.base).collect())
        })
    }

    fn rewrite_segment<'a>(
        &'a self,
        base: Offset,
        scrub: &'a mut dyn FnMut(&Record) -> Option<Vec<u8>>,
    ) -> LocalBoxFuture<'a, LogResult<Rewritten>> {
        Box::pin(Log::rewrite_segment(self, base, scrub))
    }

    fn is_closed(&self) -> bool {
        Log::is_closed(self)
    }

    fn close(&self) -> LocalBoxFuture<'_, LogResult<()>> {
        Box::pin(Log::close(self))
    }
}
