//! logdump: print the records of a chat-log segment, or verify a whole log
//! directory. Exits 1 on corruption, naming the file and byte position.
//!
//! ```text
//! logdump segment FILE [--payload]   one line per record
//! logdump verify DIR                 open the log read-only-ish and check every record
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::rc::Rc;

use chat_log::inspect::{Cursor, LogFile};
use chat_log::{parse_segment_name, Config, Log, LogError, Repair};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Print and verify chat-log segment files")]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print every record of one segment file: offset, term, kind, length, CRC.
    Segment {
        file: PathBuf,
        /// Also print the first bytes of each payload, in hex.
        #[arg(long)]
        payload: bool,
    },
    /// Open a log directory as a shard would (a torn tail is cut) and check
    /// every record of every segment.
    Verify { dir: PathBuf },
}

fn main() -> ExitCode {
    let args = Args::parse();
    let outcome = glommio::LocalExecutorBuilder::default()
        .spawn(move || async move {
            match args.command {
                Command::Segment { file, payload } => dump_segment(&file, payload).await,
                Command::Verify { dir } => verify_dir(&dir).await,
            }
        })
        .expect("executor")
        .join()
        .expect("executor thread");
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("logdump: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn dump_segment(path: &Path, show_payload: bool) -> Result<(), String> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let base = parse_segment_name(name)
        .ok_or_else(|| format!("{}: not a segment file name", path.display()))?;
    let file = Rc::new(
        LogFile::open(path, false)
            .await
            .map_err(|e| e.to_string())?,
    );
    let size = file.size().await.map_err(|e| e.to_string())?;
    let mut cursor = Cursor::new(file.clone(), 0, size, 1 << 20);
    let mut expected = base;
    println!(
        "{:>12} {:>20} {:>6} {:>4} {:>8} crc",
        "position", "offset", "term", "kind", "length"
    );
    loop {
        let found = match cursor.next().await.map_err(|e| e.to_string())? {
            Ok(Some(found)) => found,
            Ok(None) => break,
            Err(invalid) => {
                let rest = file.read(invalid.pos, (size - invalid.pos) as usize).await;
                if rest.is_ok_and(|bytes| bytes.iter().all(|b| *b == 0)) {
                    break;
                }
                return Err(format!(
                    "{}: bad record at byte {} (expected offset {expected}): {:?}",
                    path.display(),
                    invalid.pos,
                    invalid.error
                ));
            }
        };
        let meta = found.meta;
        print!(
            "{:>12} {:>20} {:>6} {:>4} {:>8} ok",
            found.pos,
            meta.offset,
            meta.term,
            meta.kind,
            found.payload.len()
        );
        if show_payload {
            let bytes = &cursor.chunk()[found.payload.clone()];
            let hex: String = bytes.iter().take(32).map(|b| format!("{b:02x}")).collect();
            print!(" {hex}");
        }
        println!();
        if meta.offset != expected {
            return Err(format!(
                "{}: record at byte {} has offset {}, expected {expected}",
                path.display(),
                found.pos,
                meta.offset
            ));
        }
        expected = expected.next();
    }
    println!(
        "{}: {} records, offsets {base}..{}",
        path.display(),
        expected.0 - base.0,
        expected.prev()
    );
    Ok(())
}

async fn verify_dir(dir: &Path) -> Result<(), String> {
    if !dir.is_dir() {
        return Err(format!("{}: not a directory", dir.display()));
    }
    let config = Config {
        repair: Repair::Refuse,
        ..Config::default()
    };
    let log = Log::open(dir, config).await.map_err(|e| describe(&e))?;
    let mut reader = log.reader_from(log.first_offset());
    let mut count = 0u64;
    while let Some(record) = reader.next().await {
        record.map_err(|e| describe(&e))?;
        count += 1;
    }
    let (first, last) = (log.first_offset(), log.last_offset());
    let segments = log.segments().len();
    log.close().await.map_err(|e| e.to_string())?;
    assert_eq!(count, last.0 + 1 - first.0.min(last.0 + 1));
    println!(
        "{}: ok: {count} records, offsets {first}..{last}, {segments} segments",
        dir.display()
    );
    Ok(())
}

fn describe(error: &LogError) -> String {
    match error {
        LogError::Corrupt { .. } => format!("CORRUPT: {error}"),
        _ => error.to_string(),
    }
}
