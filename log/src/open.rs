//! Opening a log: scan every segment, rebuild indexes and terms, cut a torn
//! tail, refuse (or with `Repair::TruncateAtCorruption`, cut) corruption,
//! and start the flusher.
//!
//! Lives on: the shard's core.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::Path;
use std::rc::Rc;

use glommio::sync::Semaphore;

use crate::appender::run_flusher;
use crate::durable::Durability;
use crate::error::{LogError, Result};
use crate::file::{prime_iopoll_probe, sync_dir, LogFile};
use crate::index::TermRuns;
use crate::log::{Config, Log, Shared, State};
use crate::maintenance::{create_segment, load_tail};
use crate::segment::{corrupt, parse_segment_name, scan, Segment, Tail};
use crate::start::load_start;
use crate::types::{Offset, Repair};

impl Log {
    /// Opens the log in `dir` (creating it if needed) and recovers it.
    pub async fn open(dir: impl AsRef<Path>, config: Config) -> Result<Log> {
        config.validate()?;
        // Absolute: glommio 0.9's Directory::open resolves a relative path
        // against fd -1 (not AT_FDCWD) and fails with EBADF.
        let dir = std::path::absolute(dir.as_ref())
            .map_err(|e| LogError::io("resolve dir", dir.as_ref(), &e))?;
        std::fs::create_dir_all(&dir).map_err(|e| LogError::io("create dir", &dir, &e))?;
        prime_iopoll_probe(&dir).await?;
        let bases = list_segments(&dir)?;
        let mut terms = TermRuns::default();
        let segments = recover_segments(&dir, &bases, &mut terms, config.repair).await?;
        let state = State {
            dir: dir.clone(),
            config,
            segments,
            terms,
            start: Offset::FIRST,
            next: Offset::FIRST,
            durability: Durability::default(),
            batch: Default::default(),
            spare: Vec::new(),
            tail: Vec::new(),
            dirty_tail: false,
            closing: false,
            closed: false,
            flusher_waker: None,
            space_waiters: Vec::new(),
        };
        let shared = Rc::new(Shared {
            io: Default::default(),
            state: RefCell::new(state),
            io_lock: Semaphore::new(1),
            flusher: RefCell::new(None),
        });
        settle_start(&shared, load_start(&dir)?).await?;
        sync_dir(&dir).await?;
        let flusher = glommio::spawn_local(run_flusher(Rc::downgrade(&shared)));
        *shared.flusher.borrow_mut() = Some(flusher);
        Ok(Log { shared })
    }
}

/// Segment bases in `dir`, ascending; leftover temp files are removed.
fn list_segments(dir: &Path) -> Result<Vec<Offset>> {
    let mut bases = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| LogError::io("list", dir, &e))?;
    for entry in entries {
        let entry = entry.map_err(|e| LogError::io("list", dir, &e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".tmp") {
            let _ = std::fs::remove_file(entry.path());
        } else if let Some(base) = parse_segment_name(&name) {
            bases.push(base);
        }
    }
    bases.sort();
    Ok(bases)
}

/// Scans each segment in order; stops at the first that cannot be used.
async fn recover_segments(
    dir: &Path,
    bases: &[Offset],
    terms: &mut TermRuns,
    repair: Repair,
) -> Result<BTreeMap<Offset, Segment>> {
    let mut segments: BTreeMap<Offset, Segment> = BTreeMap::new();
    for (i, &base) in bases.iter().enumerate() {
        let is_last = i + 1 == bases.len();
        if let Some(prev) = segments.values().next_back() {
            if prev.last.next() != base {
                let reason = format!(
                    "segment ends at {} but the next begins at {base}",
                    prev.last
                );
                let error = corrupt(prev.path(), prev.size, prev.last.next(), reason);
                return cut_or_refuse(dir, &bases[i..], segments, repair, error);
            }
        }
        let path = dir.join(crate::segment::segment_name(base));
        let file = LogFile::open(&path, false).await?;
        let scanned = scan(file, base, terms).await?;
        let segment = scanned.segment;
        let bad_pos = scanned.bad_pos;
        let error = match scanned.tail {
            Tail::Clean => None,
            Tail::Torn if is_last => {
                segment.file.truncate(bad_pos).await?;
                segment.file.sync().await?;
                None
            }
            Tail::Torn => Some("a torn batch in a sealed segment".to_string()),
            Tail::Corrupt { reason } => Some(reason),
        };
        let Some(reason) = error else {
            segments.insert(base, segment);
            continue;
        };
        let error = corrupt(segment.path(), bad_pos, segment.last.next(), reason);
        if repair == Repair::Refuse {
            return Err(error);
        }
        segment.file.truncate(bad_pos).await?;
        segment.file.sync().await?;
        segments.insert(base, segment);
        return cut_or_refuse(dir, &bases[i + 1..], segments, repair, error);
    }
    Ok(segments)
}

/// Refuses with `error`, or (repair) deletes the segments `rest` and keeps
/// what came before.
fn cut_or_refuse(
    dir: &Path,
    rest: &[Offset],
    segments: BTreeMap<Offset, Segment>,
    repair: Repair,
    error: LogError,
) -> Result<BTreeMap<Offset, Segment>> {
    if repair == Repair::Refuse {
        return Err(error);
    }
    for base in rest {
        let path = dir.join(crate::segment::segment_name(*base));
        std::fs::remove_file(&path).map_err(|e| LogError::io("remove", &path, &e))?;
    }
    Ok(segments)
}

/// Applies the persisted start: deletes segments wholly below it, makes
/// sure an active segment exists, and sets next, durable and the tail.
async fn settle_start(shared: &Rc<Shared>, persisted: Option<Offset>) -> Result<()> {
    let first_base = shared.state.borrow().segments.keys().next().copied();
    let start = match (persisted, first_base) {
        (Some(start), _) => start,
        (None, Some(base)) => base,
        (None, None) => Offset::FIRST,
    };
    let stale: Vec<Offset> = {
        let state = shared.state.borrow();
        state
            .segments
            .values()
            .filter(|s| s.last < start.prev())
            .map(|s| s.base)
            .collect()
    };
    for base in stale {
        let segment = shared.state.borrow_mut().segments.remove(&base).unwrap();
        let path = segment.path().to_owned();
        std::fs::remove_file(&path).map_err(|e| LogError::io("remove", &path, &e))?;
    }
    let first_base = shared.state.borrow().segments.keys().next().copied();
    match first_base {
        None => create_segment(shared, start).await?,
        Some(base) if base > start => {
            let state = shared.state.borrow();
            let path = state.segments[&base].path().to_owned();
            let reason = format!("the log starts at {start} but its first segment at {base}");
            return Err(corrupt(&path, 0, start, reason));
        }
        Some(_) => {}
    }
    let (file, size, last) = {
        let state = shared.state.borrow();
        let active = state.active();
        (active.file.clone(), active.size, active.last)
    };
    let tail = load_tail(&file, size).await?;
    let mut state = shared.state.borrow_mut();
    state.tail = tail;
    state.start = start;
    state.next = last.next().max(start);
    state.durability = Durability::new(state.next.prev());
    state.terms.drop_before(start);
    Ok(())
}
