//! logdump against real logs: prints records, verifies a good log (exit 0),
//! and names the file and position of a corrupt record (exit 1).

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use chat_log::{Config, Entry, Kind, Log, Repair, Term};

const LOGDUMP: &str = env!("CARGO_BIN_EXE_logdump");

fn build_log(dir: &Path) -> Vec<PathBuf> {
    let dir = dir.to_owned();
    glommio::LocalExecutorBuilder::default()
        .spawn(move || async move {
            let config = Config {
                segment_size_bytes: 4096,
                repair: Repair::Refuse,
            };
            let log = Log::open(&dir, config).await.unwrap();
            for i in 0..60u8 {
                let payload = vec![i; 100];
                let entry = Entry {
                    kind: Kind(i % 4),
                    term: Term(1 + (i / 30) as u64),
                    payload: &payload,
                };
                log.append_durable(&[entry]).await.unwrap();
            }
            let paths = log.segments().into_iter().map(|s| s.path).collect();
            log.close().await.unwrap();
            paths
        })
        .unwrap()
        .join()
        .unwrap()
}

fn logdump(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(LOGDUMP).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn segment_lists_records_and_verify_accepts_a_good_log() {
    let dir = tempfile::tempdir().unwrap();
    let segments = build_log(dir.path());
    let (code, out, err) = logdump(&["segment", segments[0].to_str().unwrap(), "--payload"]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].contains("offset") && lines[0].contains("crc"));
    let first: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(&first[..6], &["0", "1", "1", "0", "100", "ok"]);
    assert!(first[6].starts_with("0000"));
    let (code, out, err) = logdump(&["verify", dir.path().to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("ok: 60 records, offsets 1..60"), "{out}");
}

#[test]
fn corruption_exits_non_zero_naming_file_and_position() {
    let dir = tempfile::tempdir().unwrap();
    let segments = build_log(dir.path());
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&segments[0])
        .unwrap();
    file.write_all_at(&[0xEE], 150 + 32).unwrap(); // second record's payload
    let (code, _, err) = logdump(&["segment", segments[0].to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        err.contains(segments[0].to_str().unwrap()) && err.contains("byte 144"),
        "{err}"
    );
    let (code, _, err) = logdump(&["verify", dir.path().to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        err.contains("CORRUPT") && err.contains("at byte 144"),
        "{err}"
    );
    let (code, _, err) = logdump(&["verify", "/nonexistent-dir"]);
    assert_eq!(code, 1);
    assert!(err.contains("not a directory"));
}
