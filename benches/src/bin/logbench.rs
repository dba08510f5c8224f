//! logbench: durable append throughput, ack latency and recovery speed of
//! `chat-log`, each next to the machine's own ceiling measured in the same run.
//!
//! Append cases (record size × concurrent appenders, one core, one glommio
//! executor): every appender loops "append one record, await `durable`" for
//! `--seconds`; we report records/s, MB/s and ack latency p50/p99/p999.
//! Baselines for each case, run right after it on the same disk:
//! - plain: a std loop of `pwrite` + `fdatasync` on a buffered file, each
//!   write one nominal batch (appenders × frame bytes);
//! - O_DIRECT loop: the same loop with the log's own I/O pattern (O_DIRECT,
//!   whole sectors, each write rewriting the previous partial sector), which
//!   tells the log's overhead apart from the cost of its I/O pattern;
//! - ceiling: one sequential O_DIRECT write of the framed bytes the log case
//!   wrote, in `SEQ_CHUNK_BYTES` calls, then one `fdatasync`.
//!
//! Recovery: builds a log of `--recovery-gib` GiB of 1 KiB records, then
//! times `Log::open` (scans and CRC-checks every segment) against O_DIRECT
//! sequential reads of the same segment files (in `SEQ_CHUNK_BYTES`, and in
//! the log's `SCAN_CHUNK_BYTES`), and a full `reader_from(1)`.
//!
//! Units: MB = 10^6 bytes, GB = 10^9 bytes, latencies in µs. "framed" bytes
//! are records × frame size (32-byte header + payload padded to 16), which is
//! what the log writes apart from sector padding and the rewritten tail sector.

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::cell::{Cell, RefCell};
use std::error::Error;
use std::fs::OpenOptions;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use chat_log::constants::{
    BATCH_RECORDS_MAX, BATCH_SIZE_BYTES_MAX, HEADER_SIZE_BYTES, RECORD_ALIGN_BYTES,
    SCAN_CHUNK_BYTES,
};
use chat_log::record::frame_len;
use chat_log::{Config, Entry, Kind, Log, Offset, Term};
use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;

type BenchResult<T> = Result<T, Box<dyn Error>>;

/// Seconds each append case (and each plain baseline) runs.
const CASE_SECONDS_DEFAULT: f64 = 3.0;
/// Record payload sizes of the append cases.
const RECORD_SIZES_BYTES_DEFAULT: [usize; 2] = [128, 1024];
/// Concurrent appenders of the append cases.
const APPENDERS_DEFAULT: [usize; 3] = [1, 16, 256];
/// Where the bench writes its data (must be a real disk, not tmpfs).
const DIR_DEFAULT: &str = "target/logbench";
/// Size of the log the recovery case builds and reopens.
const RECOVERY_GIB_DEFAULT: f64 = 1.0;
/// Payload of every record of the recovery log.
const RECOVERY_RECORD_BYTES: usize = 1024;
/// Records per `append` call while building the recovery log.
const RECOVERY_APPEND_RECORDS: usize = 2000;
/// One O_DIRECT call of the sequential write and read ceilings.
const SEQ_CHUNK_BYTES: usize = 4 * 1024 * 1024;
/// O_DIRECT buffer, offset and length alignment.
const DIRECT_ALIGN_BYTES: usize = 4096;
/// Latency histogram bounds and precision.
const LATENCY_LOW_NS: u64 = 1_000;
const LATENCY_HIGH_NS: u64 = 60_000_000_000;
const LATENCY_SIGFIG: u8 = 3;
/// Target: 256 appenders × 1 KiB records reach this share of the ceiling.
const TARGET_CEILING_RATIO_MIN: f64 = 0.8;
/// Target: ack p99 at most this many times the plain fdatasync p99.
const TARGET_P99_FACTOR_MAX: f64 = 3.0;
/// Target: recovery reads at this share of the disk's sequential read.
const TARGET_RECOVERY_RATIO_MIN: f64 = 0.8;
/// The append case the throughput target is about.
const TARGET_CASE_RECORD_BYTES: usize = 1024;
const TARGET_CASE_APPENDERS: usize = 256;
/// statfs magic numbers of memory filesystems (not a disk).
const TMPFS_MAGIC: i64 = 0x0102_1994;
const RAMFS_MAGIC: i64 = 0x8584_58f6;

// Alignments are powers of two, so `& (align - 1)` is the remainder.
const _: () = assert!(DIRECT_ALIGN_BYTES.is_power_of_two());
const _: () = assert!(RECORD_ALIGN_BYTES.is_power_of_two());
const _: () = assert!(SEQ_CHUNK_BYTES & (DIRECT_ALIGN_BYTES - 1) == 0);
// Payloads need no padding, so frames are header + payload.
const _: () = assert!(RECOVERY_RECORD_BYTES & (RECORD_ALIGN_BYTES - 1) == 0);
const _: () = assert!(RECOVERY_APPEND_RECORDS <= BATCH_RECORDS_MAX);
// One append of the recovery build must fit in one group-commit batch.
const _: () = assert!(
    RECOVERY_APPEND_RECORDS * (HEADER_SIZE_BYTES + RECOVERY_RECORD_BYTES) <= BATCH_SIZE_BYTES_MAX
);

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// Append cases, then recovery.
    All,
    Append,
    Recovery,
}

/// Durable append and recovery benchmark of chat-log against the disk's ceiling.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// What to run.
    #[arg(value_enum, default_value_t = Mode::All)]
    mode: Mode,
    /// Directory for the data (a fresh subdirectory per case, removed after).
    #[arg(long, default_value = DIR_DEFAULT)]
    dir: PathBuf,
    /// Seconds per append case and per plain baseline.
    #[arg(long, default_value_t = CASE_SECONDS_DEFAULT)]
    seconds: f64,
    /// Record payload sizes in bytes.
    #[arg(long, value_delimiter = ',', default_values_t = RECORD_SIZES_BYTES_DEFAULT)]
    sizes: Vec<usize>,
    /// Concurrent appender counts.
    #[arg(long, value_delimiter = ',', default_values_t = APPENDERS_DEFAULT)]
    appenders: Vec<usize>,
    /// GiB of records in the recovery log.
    #[arg(long, default_value_t = RECOVERY_GIB_DEFAULT)]
    recovery_gib: f64,
    /// Print markdown tables (for benches/RESULTS.md) instead of text.
    #[arg(long)]
    markdown: bool,
}

fn main() -> BenchResult<()> {
    let args = Args::parse();
    let dir = disk_dir(&args.dir)?;
    let duration = Duration::from_secs_f64(args.seconds);
    let mut cases = Vec::new();
    if args.mode != Mode::Recovery {
        for &record_bytes in &args.sizes {
            for &appenders in &args.appenders {
                eprintln!("logbench: append {record_bytes} B x {appenders} appenders");
                cases.push(run_case(&dir, record_bytes, appenders, duration)?);
            }
        }
    }
    let recovery = if args.mode != Mode::Append && args.recovery_gib > 0.0 {
        eprintln!("logbench: recovery of {} GiB", args.recovery_gib);
        Some(run_recovery(&dir, args.recovery_gib)?)
    } else {
        None
    };
    report(&cases, recovery.as_ref(), args.markdown);
    Ok(())
}

/// Creates `dir` and returns it absolute (glommio's `Directory::open`, which
/// the log uses to fsync its directory, fails on relative paths with EBADF).
/// Refuses a memory filesystem: the numbers would be fiction.
fn disk_dir(dir: &Path) -> BenchResult<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let dir = std::fs::canonicalize(dir)?;
    let c_path = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes())?;
    // SAFETY: statfs fills the zeroed struct; the path is a valid C string.
    let mut stat: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c_path.as_ptr(), &mut stat) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    let fs_type = stat.f_type as i64;
    if fs_type == TMPFS_MAGIC || fs_type == RAMFS_MAGIC {
        return Err(format!(
            "{} is on a memory filesystem; use --dir on a disk",
            dir.display()
        )
        .into());
    }
    Ok(dir)
}

// ---------------------------------------------------------------- measures

/// Latency percentiles in µs.
#[derive(Clone, Copy, Debug, Default)]
struct Latency {
    p50_us: f64,
    p99_us: f64,
    p999_us: f64,
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(LATENCY_LOW_NS, LATENCY_HIGH_NS, LATENCY_SIGFIG)
        .expect("valid histogram bounds")
}

impl Latency {
    fn of(hist: &Histogram<u64>) -> Latency {
        let us = |q: f64| hist.value_at_quantile(q) as f64 / 1_000.0;
        Latency {
            p50_us: us(0.50),
            p99_us: us(0.99),
            p999_us: us(0.999),
        }
    }
}

fn nanos(elapsed: Duration) -> u64 {
    u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX)
}

/// Wall-clock time and this thread's CPU time of one measured span.
#[derive(Clone, Copy, Debug)]
struct Span {
    wall: Duration,
    cpu: Duration,
}

struct Stopwatch {
    wall: Instant,
    cpu: Duration,
}

impl Stopwatch {
    fn start() -> Stopwatch {
        Stopwatch {
            wall: Instant::now(),
            cpu: thread_cpu(),
        }
    }

    fn stop(&self) -> Span {
        Span {
            wall: self.wall.elapsed(),
            cpu: thread_cpu().saturating_sub(self.cpu),
        }
    }
}

/// CPU time of this thread (the executor's, when called on it). Kernel
/// work done by io_uring worker threads is not in it.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the valid timespec.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(
        rc, 0,
        "CLOCK_THREAD_CPUTIME_ID is always available on Linux"
    );
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn mb_per_s(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / elapsed.as_secs_f64() / 1e6
}

fn gb_per_s(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / elapsed.as_secs_f64() / 1e9
}

/// Incompressible-looking bytes, so no layer below can shortcut the writes.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A fresh, empty directory `name` under `root`.
fn fresh_dir(root: &Path, name: &str) -> BenchResult<PathBuf> {
    let dir = root.join(name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Runs `future` on a fresh glommio executor on this thread.
fn on_executor<T>(future: impl std::future::Future<Output = T>) -> BenchResult<T> {
    let executor = glommio::LocalExecutorBuilder::default().make()?;
    Ok(executor.run(future))
}

// ------------------------------------------------------------- append case

/// Everything measured for one (record size, appenders) case.
struct Case {
    record_bytes: usize,
    appenders: usize,
    ours: Ours,
    plain: Plain,
    /// The plain loop with the log's own I/O pattern (O_DIRECT, sectors).
    direct: Plain,
    ceiling: SeqIo,
}

/// The log's side of an append case.
struct Ours {
    records: u64,
    /// Distinct durable offsets seen by acks: about the number of fdatasyncs.
    batches: u64,
    elapsed: Duration,
    /// CPU time of the executor thread over the case.
    cpu: Duration,
    latency: Latency,
    direct: bool,
}

/// Counters shared by the appender tasks of one case.
///
/// Lives on: the case's glommio executor (one thread); tasks hold it by `Rc`.
struct Acks {
    hist: RefCell<Histogram<u64>>,
    records: Cell<u64>,
    batches: Cell<u64>,
    durable_seen: Cell<u64>,
}

impl Acks {
    fn ack(&self, latency: Duration, durable: Offset) {
        self.hist.borrow_mut().saturating_record(nanos(latency));
        self.records.set(self.records.get() + 1);
        if durable.0 > self.durable_seen.get() {
            self.durable_seen.set(durable.0);
            self.batches.set(self.batches.get() + 1);
        }
    }
}

fn run_case(
    root: &Path,
    record_bytes: usize,
    appenders: usize,
    duration: Duration,
) -> BenchResult<Case> {
    let dir = fresh_dir(root, "append")?;
    let ours = on_executor(log_case(dir.clone(), record_bytes, appenders, duration))??;
    std::fs::remove_dir_all(&dir)?;
    let frame_bytes = frame_len(record_bytes) as u64;
    let dir = fresh_dir(root, "baseline")?;
    let batch_bytes = appenders * frame_len(record_bytes);
    let plain = plain_case(&dir.join("plain"), batch_bytes, duration, PlainIo::Buffered)?;
    let direct = plain_case(&dir.join("direct"), batch_bytes, duration, PlainIo::Direct)?;
    let ceiling = seq_write(&dir.join("seq"), ours.records * frame_bytes)?;
    std::fs::remove_dir_all(&dir)?;
    Ok(Case {
        record_bytes,
        appenders,
        ours,
        plain,
        direct,
        ceiling,
    })
}

/// `appenders` tasks each append one record and await its durability, in a
/// loop, until `duration` is over.
async fn log_case(
    dir: PathBuf,
    record_bytes: usize,
    appenders: usize,
    duration: Duration,
) -> BenchResult<Ours> {
    let log = Log::open(&dir, Config::default()).await?;
    let acks = Rc::new(Acks {
        hist: RefCell::new(new_histogram()),
        records: Cell::new(0),
        batches: Cell::new(0),
        durable_seen: Cell::new(log.durable_offset().0),
    });
    let watch = Stopwatch::start();
    let deadline = Instant::now() + duration;
    let tasks: Vec<_> = (0..appenders)
        .map(|i| {
            let payload = pattern(record_bytes, i as u64 + 1);
            glommio::spawn_local(appender(log.clone(), acks.clone(), payload, deadline))
        })
        .collect();
    for task in tasks {
        task.await?;
    }
    let span = watch.stop();
    let direct = log.is_direct();
    log.close().await?;
    let latency = Latency::of(&acks.hist.borrow());
    Ok(Ours {
        records: acks.records.get(),
        batches: acks.batches.get(),
        elapsed: span.wall,
        cpu: span.cpu,
        latency,
        direct,
    })
}

async fn appender(
    log: Log,
    acks: Rc<Acks>,
    payload: Vec<u8>,
    deadline: Instant,
) -> chat_log::Result<()> {
    let entry = [Entry {
        kind: Kind(1),
        term: Term(1),
        payload: &payload,
    }];
    while Instant::now() < deadline {
        let began = Instant::now();
        let appended = log.append(&entry).await?;
        appended.durable.await?;
        acks.ack(began.elapsed(), log.durable_offset());
    }
    Ok(())
}

// --------------------------------------------------------------- baselines

/// How a plain pwrite + fdatasync loop writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PlainIo {
    /// Buffered file, each batch written right after the previous one.
    Buffered,
    /// O_DIRECT, like the log: whole sectors, each write starting with the
    /// partial last sector of the previous batch.
    Direct,
}

impl PlainIo {
    /// File position and length of the write that appends `batch_bytes`
    /// to a file whose data ends at `end`.
    fn span(self, end: u64, batch_bytes: usize) -> (u64, usize) {
        match self {
            PlainIo::Buffered => (end, batch_bytes),
            PlainIo::Direct => {
                let align = DIRECT_ALIGN_BYTES as u64;
                let from = end / align * align;
                let to = (end + batch_bytes as u64).div_ceil(align) * align;
                (from, (to - from) as usize)
            }
        }
    }
}

/// A plain pwrite + fdatasync loop of an append case.
struct Plain {
    batches: u64,
    /// Logical bytes appended (without sector padding or rewrites).
    bytes: u64,
    elapsed: Duration,
    /// Per batch: pwrite + fdatasync.
    latency: Latency,
}

/// Appends `batch_bytes` with one pwrite and one fdatasync per batch, until
/// `duration` is over.
fn plain_case(
    path: &Path,
    batch_bytes: usize,
    duration: Duration,
    io: PlainIo,
) -> BenchResult<Plain> {
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    if io == PlainIo::Direct {
        options.custom_flags(libc::O_DIRECT);
    }
    let file = options.open(path)?;
    // Room for the batch plus the rewritten sector in front of it.
    let room = batch_bytes.div_ceil(DIRECT_ALIGN_BYTES) * DIRECT_ALIGN_BYTES + DIRECT_ALIGN_BYTES;
    let mut buf = AlignedBuf::new(room);
    buf.bytes_mut().copy_from_slice(&pattern(room, 7));
    let mut hist = new_histogram();
    let (mut end, mut batches) = (0u64, 0u64);
    let start = Instant::now();
    let deadline = start + duration;
    while Instant::now() < deadline {
        let began = Instant::now();
        let (at, len) = io.span(end, batch_bytes);
        file.write_all_at(&buf.bytes_mut()[..len], at)?;
        file.sync_data()?;
        hist.saturating_record(nanos(began.elapsed()));
        end += batch_bytes as u64;
        batches += 1;
    }
    Ok(Plain {
        batches,
        bytes: end,
        elapsed: start.elapsed(),
        latency: Latency::of(&hist),
    })
}

/// Bytes moved by one sequential O_DIRECT pass, and how long it took.
#[derive(Clone, Copy, Debug)]
struct SeqIo {
    bytes: u64,
    elapsed: Duration,
}

/// A heap buffer aligned for O_DIRECT.
struct AlignedBuf {
    ptr: *mut u8,
    layout: Layout,
}

impl AlignedBuf {
    fn new(len: usize) -> AlignedBuf {
        let layout = Layout::from_size_align(len, DIRECT_ALIGN_BYTES).expect("valid layout");
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { alloc_zeroed(layout) };
        assert!(!ptr.is_null(), "out of memory");
        AlignedBuf { ptr, layout }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: `ptr` owns `layout.size()` initialised bytes.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.layout.size()) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { dealloc(self.ptr, self.layout) }
    }
}

/// Writes `bytes` (rounded up to the O_DIRECT alignment) sequentially with
/// O_DIRECT in `SEQ_CHUNK_BYTES` calls, then one fdatasync.
fn seq_write(path: &Path, bytes: u64) -> BenchResult<SeqIo> {
    let total = bytes.div_ceil(DIRECT_ALIGN_BYTES as u64) * DIRECT_ALIGN_BYTES as u64;
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)?;
    let mut buf = AlignedBuf::new(SEQ_CHUNK_BYTES);
    buf.bytes_mut()
        .copy_from_slice(&pattern(SEQ_CHUNK_BYTES, 11));
    let start = Instant::now();
    let mut pos = 0u64;
    while pos < total {
        let len = (total - pos).min(SEQ_CHUNK_BYTES as u64) as usize;
        file.write_all_at(&buf.bytes_mut()[..len], pos)?;
        pos += len as u64;
    }
    file.sync_data()?;
    Ok(SeqIo {
        bytes: total,
        elapsed: start.elapsed(),
    })
}

/// Reads every file of `paths` sequentially with O_DIRECT preads of
/// `chunk_bytes`: the disk's sequential read speed over exactly those bytes.
fn seq_read(paths: &[PathBuf], chunk_bytes: usize) -> BenchResult<SeqIo> {
    let mut buf = AlignedBuf::new(chunk_bytes);
    let start = Instant::now();
    let mut bytes = 0u64;
    for path in paths {
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECT)
            .open(path)?;
        let mut pos = 0u64;
        loop {
            let read = file.read_at(buf.bytes_mut(), pos)?;
            pos += read as u64;
            // A short read is the end of the file (it may end mid-sector).
            if read < chunk_bytes {
                break;
            }
        }
        bytes += pos;
    }
    Ok(SeqIo {
        bytes,
        elapsed: start.elapsed(),
    })
}

// ----------------------------------------------------------- recovery case

/// The recovery case: a log built once, read back three ways.
struct Recovery {
    records: u64,
    segments: usize,
    /// Bytes of all segment files (what every reader below goes through).
    bytes: u64,
    build: Duration,
    caches_dropped: bool,
    /// O_DIRECT sequential reads of the segment files in `SEQ_CHUNK_BYTES`
    /// preads, before and after the log's reads.
    disk_reads: [SeqIo; 2],
    /// The same in preads of the log's `SCAN_CHUNK_BYTES`.
    disk_read_scan_chunk: SeqIo,
    /// `Log::open`: scan and CRC-check of every segment.
    open: Span,
    /// A full `reader_from(1)` iteration on the reopened log.
    reader: Span,
}

impl Recovery {
    /// The faster of the two disk reads: the ratio is never flattered.
    fn disk_gb_per_s(&self) -> f64 {
        let [a, b] = self.disk_reads;
        gb_per_s(a.bytes, a.elapsed).max(gb_per_s(b.bytes, b.elapsed))
    }
}

fn run_recovery(root: &Path, gib: f64) -> BenchResult<Recovery> {
    let dir = fresh_dir(root, "recovery")?;
    let frame_bytes = frame_len(RECOVERY_RECORD_BYTES) as f64;
    let records = (gib * (1u64 << 30) as f64 / frame_bytes).ceil() as u64;
    let start = Instant::now();
    on_executor(build_log(dir.clone(), records))??;
    let build = start.elapsed();
    let paths = segment_paths(&dir)?;
    let mut bytes = 0u64;
    for path in &paths {
        bytes += std::fs::metadata(path)?.len();
    }
    let caches_dropped = drop_caches();
    let before = seq_read(&paths, SEQ_CHUNK_BYTES)?;
    let disk_read_scan_chunk = seq_read(&paths, SCAN_CHUNK_BYTES)?;
    let (open, reader, read_records) = on_executor(reopen(dir.clone()))??;
    if read_records != records {
        return Err(format!("read {read_records} records back, wrote {records}").into());
    }
    let after = seq_read(&paths, SEQ_CHUNK_BYTES)?;
    std::fs::remove_dir_all(&dir)?;
    Ok(Recovery {
        records,
        segments: paths.len(),
        bytes,
        build,
        caches_dropped,
        disk_reads: [before, after],
        disk_read_scan_chunk,
        open,
        reader,
    })
}

/// Appends `records` 1 KiB records in large appends, without waiting for
/// each to be durable (the log's backpressure paces us), then closes.
async fn build_log(dir: PathBuf, records: u64) -> BenchResult<()> {
    let log = Log::open(&dir, Config::default()).await?;
    let payloads: Vec<Vec<u8>> = (0..16)
        .map(|i| pattern(RECOVERY_RECORD_BYTES, i + 1))
        .collect();
    let mut left = records;
    let mut last_durable = None;
    while left > 0 {
        let count = left.min(RECOVERY_APPEND_RECORDS as u64) as usize;
        let entries: Vec<Entry<'_>> = (0..count)
            .map(|i| Entry {
                kind: Kind(1),
                term: Term(1),
                payload: &payloads[i % payloads.len()],
            })
            .collect();
        last_durable = Some(log.append(&entries).await?.durable);
        left -= count as u64;
    }
    if let Some(durable) = last_durable {
        durable.await?;
    }
    log.close().await?;
    Ok(())
}

/// Times `Log::open` (recovery), then a full iteration; returns both and
/// the number of records iterated.
async fn reopen(dir: PathBuf) -> BenchResult<(Span, Span, u64)> {
    let watch = Stopwatch::start();
    let log = Log::open(&dir, Config::default()).await?;
    let open = watch.stop();
    let watch = Stopwatch::start();
    let mut reader = log.reader_from(Offset::FIRST);
    let mut records = 0u64;
    while let Some(record) = reader.next().await {
        record?;
        records += 1;
    }
    let iterate = watch.stop();
    log.close().await?;
    Ok((open, iterate, records))
}

/// The segment files of the log in `dir`, oldest first.
fn segment_paths(dir: &Path) -> BenchResult<Vec<PathBuf>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if let Some(base) = chat_log::parse_segment_name(&entry.file_name().to_string_lossy()) {
            found.push((base, entry.path()));
        }
    }
    found.sort();
    Ok(found.into_iter().map(|(_, path)| path).collect())
}

/// Drops the page cache when allowed (root, writable /proc/sys). Segments
/// are O_DIRECT and so are our reads, so this mostly drops metadata.
fn drop_caches() -> bool {
    // SAFETY: sync(2) has no preconditions.
    unsafe { libc::sync() };
    std::fs::write("/proc/sys/vm/drop_caches", "3").is_ok()
}

// ------------------------------------------------------------------ report

/// A table: a title, column headers, rows of cells.
struct Table {
    title: &'static str,
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn print(&self, markdown: bool) {
        if markdown {
            println!("#### {}\n", self.title);
            println!("| {} |", self.headers.join(" | "));
            println!("|{}", "---:|".repeat(self.headers.len()));
            for row in &self.rows {
                println!("| {} |", row.join(" | "));
            }
            println!();
            return;
        }
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let line = |cells: Vec<&str>| {
            let padded: Vec<String> = cells
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:>w$}", w = *w))
                .collect();
            println!("{}", padded.join("  "));
        };
        println!("{}", self.title);
        line(self.headers.clone());
        for row in &self.rows {
            line(row.iter().map(String::as_str).collect());
        }
        println!();
    }
}

fn f0(x: f64) -> String {
    format!("{x:.0}")
}

fn f2(x: f64) -> String {
    format!("{x:.2}")
}

impl Case {
    fn frame_bytes(&self) -> u64 {
        frame_len(self.record_bytes) as u64
    }

    fn ours_framed_mb_per_s(&self) -> f64 {
        mb_per_s(self.ours.records * self.frame_bytes(), self.ours.elapsed)
    }

    fn ceiling_ratio(&self) -> f64 {
        self.ours_framed_mb_per_s() / mb_per_s(self.ceiling.bytes, self.ceiling.elapsed)
    }

    fn p99_factor(&self) -> f64 {
        self.ours.latency.p99_us / self.plain.latency.p99_us
    }
}

fn ours_table(cases: &[Case]) -> Table {
    let rows = cases
        .iter()
        .map(|c| {
            let o = &c.ours;
            let secs = o.elapsed.as_secs_f64();
            vec![
                c.record_bytes.to_string(),
                c.appenders.to_string(),
                f0(o.records as f64 / secs),
                f2(mb_per_s(o.records * c.record_bytes as u64, o.elapsed)),
                f2(c.ours_framed_mb_per_s()),
                f2(o.records as f64 / o.batches.max(1) as f64),
                f0(o.latency.p50_us),
                f0(o.latency.p99_us),
                f0(o.latency.p999_us),
                f0(100.0 * o.cpu.as_secs_f64() / secs),
                if o.direct { "yes" } else { "no" }.to_string(),
            ]
        })
        .collect();
    Table {
        title: "Durable append, one core (ours)",
        headers: vec![
            "record B",
            "appenders",
            "records/s",
            "payload MB/s",
            "framed MB/s",
            "records/fdatasync ~",
            "ack p50 us",
            "ack p99 us",
            "ack p999 us",
            "executor CPU %",
            "O_DIRECT",
        ],
        rows,
    }
}

fn baseline_table(cases: &[Case]) -> Table {
    let rows = cases
        .iter()
        .map(|c| {
            let (p, d) = (&c.plain, &c.direct);
            vec![
                c.record_bytes.to_string(),
                c.appenders.to_string(),
                (c.appenders as u64 * c.frame_bytes()).to_string(),
                f0(p.batches as f64 / p.elapsed.as_secs_f64()),
                f2(mb_per_s(p.bytes, p.elapsed)),
                f0(p.latency.p50_us),
                f0(p.latency.p99_us),
                f0(p.latency.p999_us),
                f2(mb_per_s(d.bytes, d.elapsed)),
                f0(d.latency.p50_us),
                f0(d.latency.p99_us),
            ]
        })
        .collect();
    Table {
        title: "Baselines: pwrite + fdatasync per nominal batch (appenders x frame)",
        headers: vec![
            "record B",
            "appenders",
            "batch B",
            "plain fdatasync/s",
            "plain MB/s",
            "plain p50 us",
            "plain p99 us",
            "plain p999 us",
            "O_DIRECT-loop MB/s",
            "O_DIRECT-loop p50 us",
            "O_DIRECT-loop p99 us",
        ],
        rows,
    }
}

fn ratio_table(cases: &[Case]) -> Table {
    let rows = cases
        .iter()
        .map(|c| {
            let seq = mb_per_s(c.ceiling.bytes, c.ceiling.elapsed);
            vec![
                c.record_bytes.to_string(),
                c.appenders.to_string(),
                f2(c.ceiling.bytes as f64 / 1e6),
                f2(seq),
                f2(c.ceiling_ratio()),
                f2(mb_per_s(c.plain.bytes, c.plain.elapsed) / seq),
                f2(mb_per_s(c.direct.bytes, c.direct.elapsed) / seq),
                f2(c.p99_factor()),
            ]
        })
        .collect();
    Table {
        title: "Ceiling (one sequential O_DIRECT write of ours' framed bytes) and ratios",
        headers: vec![
            "record B",
            "appenders",
            "seq write MB",
            "seq write MB/s",
            "ours/seq",
            "plain/seq",
            "O_DIRECT-loop/seq",
            "ours p99/plain p99",
        ],
        rows,
    }
}

fn io_gb_per_s(io: SeqIo) -> String {
    f2(gb_per_s(io.bytes, io.elapsed))
}

fn recovery_table(r: &Recovery) -> Table {
    let disk = r.disk_gb_per_s();
    let open = gb_per_s(r.bytes, r.open.wall);
    let reader = gb_per_s(r.bytes, r.reader.wall);
    let [before, after] = r.disk_reads;
    let scan_mib = SCAN_CHUNK_BYTES >> 20;
    let seq_mib = SEQ_CHUNK_BYTES >> 20;
    let rows = vec![
        ("segment bytes (GB)".to_string(), f2(r.bytes as f64 / 1e9)),
        (
            "records / segments".into(),
            format!("{} / {}", r.records, r.segments),
        ),
        (
            "build: pipelined appends (MB/s)".into(),
            f2(mb_per_s(r.bytes, r.build)),
        ),
        ("page cache dropped".into(), r.caches_dropped.to_string()),
        (
            format!("disk read {seq_mib} MiB O_DIRECT, before (GB/s)"),
            io_gb_per_s(before),
        ),
        (
            format!("disk read {scan_mib} MiB O_DIRECT, scan's chunk (GB/s)"),
            io_gb_per_s(r.disk_read_scan_chunk),
        ),
        (
            format!("disk read {seq_mib} MiB O_DIRECT, after (GB/s)"),
            io_gb_per_s(after),
        ),
        (
            "Log::open: scan + CRC, wall (s)".into(),
            format!("{:.3}", r.open.wall.as_secs_f64()),
        ),
        (
            "Log::open: executor CPU (s)".into(),
            format!("{:.3}", r.open.cpu.as_secs_f64()),
        ),
        ("Log::open (GB/s)".into(), f2(open)),
        ("Log::open / best disk read".into(), f2(open / disk)),
        ("reader_from(1), full iteration (GB/s)".into(), f2(reader)),
        (
            "reader_from(1): executor CPU (s)".into(),
            format!("{:.3}", r.reader.cpu.as_secs_f64()),
        ),
        ("reader_from(1) / best disk read".into(), f2(reader / disk)),
    ];
    Table {
        title: "Recovery (1 KiB records)",
        headers: vec!["measure", "value"],
        rows: rows
            .into_iter()
            .map(|(what, value)| vec![what, value])
            .collect(),
    }
}

/// One line per target of the issue: met or not, and by how much.
fn target_lines(cases: &[Case], recovery: Option<&Recovery>) -> Vec<String> {
    let verdict = |ok: bool| if ok { "MET" } else { "MISSED" };
    let mut lines = Vec::new();
    let target_case = cases.iter().find(|c| {
        c.record_bytes == TARGET_CASE_RECORD_BYTES && c.appenders == TARGET_CASE_APPENDERS
    });
    if let Some(c) = target_case {
        let ratio = c.ceiling_ratio();
        lines.push(format!(
            "{}: {TARGET_CASE_APPENDERS} appenders x {TARGET_CASE_RECORD_BYTES} B at {ratio:.2} of the \
             sequential-write ceiling (target >= {TARGET_CEILING_RATIO_MIN})",
            verdict(ratio >= TARGET_CEILING_RATIO_MIN)
        ));
    }
    if let Some(worst) = cases
        .iter()
        .max_by(|a, b| a.p99_factor().total_cmp(&b.p99_factor()))
    {
        let factor = worst.p99_factor();
        lines.push(format!(
            "{}: worst ack p99 is {factor:.2}x the plain fdatasync p99 ({} B x {} appenders; \
             target <= {TARGET_P99_FACTOR_MAX}x in every case)",
            verdict(factor <= TARGET_P99_FACTOR_MAX),
            worst.record_bytes,
            worst.appenders
        ));
    }
    if let Some(r) = recovery {
        let ratio = gb_per_s(r.bytes, r.open.wall) / r.disk_gb_per_s();
        lines.push(format!(
            "{}: recovery at {ratio:.2} of the disk's sequential read (target >= {TARGET_RECOVERY_RATIO_MIN})",
            verdict(ratio >= TARGET_RECOVERY_RATIO_MIN)
        ));
    }
    lines
}

fn report(cases: &[Case], recovery: Option<&Recovery>, markdown: bool) {
    if !cases.is_empty() {
        ours_table(cases).print(markdown);
        baseline_table(cases).print(markdown);
        ratio_table(cases).print(markdown);
    }
    if let Some(r) = recovery {
        recovery_table(r).print(markdown);
    }
    let lines = target_lines(cases, recovery);
    if markdown && !lines.is_empty() {
        println!("#### Targets\n");
    }
    for line in lines {
        println!("{}{line}", if markdown { "- " } else { "" });
    }
}
