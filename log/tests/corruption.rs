//! Damaged logs: a flipped byte before the tail is a named error (or, with
//! `Repair::TruncateAtCorruption`, a cut); a torn, zeroed or bad-CRC tail is
//! cut and the log takes appends again.

mod common;

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use chat_log::record::frame_len;
use chat_log::{Config, Log, LogError, Offset, Repair};
use common::*;

const PAYLOAD_BYTES: usize = 200;
const RECORDS: u64 = 100;

/// Writes RECORDS records of PAYLOAD_BYTES, one batch each, into one segment.
fn build_log(dir: &Path) -> PathBuf {
    let path = dir.to_owned();
    run(move || async move {
        let log = Log::open(&path, small_config(1 << 20)).await.unwrap();
        for i in 1..=RECORDS {
            append_one(&log, 1, &payload(i, PAYLOAD_BYTES)).await;
        }
        let segment = log.segments()[0].path.clone();
        log.close().await.unwrap();
        segment
    })
}

fn record_pos(offset: u64) -> u64 {
    (offset - 1) * frame_len(PAYLOAD_BYTES) as u64
}

fn flip_byte(file: &Path, pos: u64) {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(file)
        .unwrap();
    let mut byte = [0u8];
    f.read_exact_at(&mut byte, pos).unwrap();
    byte[0] ^= 0x5a;
    f.write_all_at(&byte, pos).unwrap();
}

fn open_outcome(dir: &Path, repair: Repair) -> Result<(Offset, Vec<u64>), LogError> {
    let path = dir.to_owned();
    run(move || async move {
        let config = Config {
            repair,
            ..small_config(1 << 20)
        };
        let log = Log::open(&path, config).await?;
        let offsets = read_all(&log).await.iter().map(|r| r.offset.0).collect();
        let next = append_one(&log, 2, b"appended after recovery").await;
        assert_eq!(
            &log.read(next).await.unwrap().payload[..],
            b"appended after recovery"
        );
        log.close().await.unwrap();
        Ok((next, offsets))
    })
}

#[test]
fn flipped_byte_mid_log_is_an_error_naming_segment_and_position() {
    let dir = tempfile::tempdir().unwrap();
    let segment = build_log(dir.path());
    let bad_pos = record_pos(40) + 40; // inside record 40's payload
    flip_byte(&segment, bad_pos);
    match open_outcome(dir.path(), Repair::Refuse) {
        Err(LogError::Corrupt {
            segment: named,
            file_pos,
            offset,
            ..
        }) => {
            assert_eq!(named, segment);
            assert_eq!(file_pos, record_pos(40));
            assert_eq!(offset, Offset(40));
            let text = LogError::Corrupt {
                segment: named,
                file_pos,
                offset,
                reason: String::new(),
            }
            .to_string();
            assert!(
                text.contains("00000000000000000001.log")
                    && text.contains(&record_pos(40).to_string())
            );
        }
        other => panic!("expected a corruption error, got {other:?}"),
    }
    // Nothing was changed by the refused open: it fails the same way again.
    assert!(matches!(
        open_outcome(dir.path(), Repair::Refuse),
        Err(LogError::Corrupt { .. })
    ));
}

#[test]
fn repair_option_truncates_at_the_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let segment = build_log(dir.path());
    flip_byte(&segment, record_pos(40) + 3); // inside record 40's header (CRC)
    let (next, offsets) = open_outcome(dir.path(), Repair::TruncateAtCorruption).unwrap();
    assert_eq!(offsets, (1..40).collect::<Vec<_>>());
    assert_eq!(next, Offset(40));
}

#[test]
fn truncated_tail_is_cut_and_appends_continue() {
    let dir = tempfile::tempdir().unwrap();
    let segment = build_log(dir.path());
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap();
    f.set_len(record_pos(RECORDS) + 50).unwrap(); // half of the last record
    let (next, offsets) = open_outcome(dir.path(), Repair::Refuse).unwrap();
    assert_eq!(offsets.len() as u64, RECORDS - 1);
    assert_eq!(next, Offset(RECORDS));
}

#[test]
fn zeroed_tail_is_cut_and_appends_continue() {
    let dir = tempfile::tempdir().unwrap();
    let segment = build_log(dir.path());
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap();
    let zeros = vec![0u8; 3 * frame_len(PAYLOAD_BYTES)];
    f.write_all_at(&zeros, record_pos(RECORDS - 2)).unwrap();
    let (next, offsets) = open_outcome(dir.path(), Repair::Refuse).unwrap();
    assert_eq!(offsets.len() as u64, RECORDS - 3);
    assert_eq!(next, Offset(RECORDS - 2));
}

#[test]
fn bad_crc_in_the_last_record_is_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let segment = build_log(dir.path());
    flip_byte(&segment, record_pos(RECORDS) + 100);
    let (next, offsets) = open_outcome(dir.path(), Repair::Refuse).unwrap();
    assert_eq!(offsets.len() as u64, RECORDS - 1);
    assert_eq!(next, Offset(RECORDS));
}

#[test]
fn missing_middle_segment_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    let segments = run(move || async move {
        let log = Log::open(&path, small_config(4096)).await.unwrap();
        for i in 1..=100u64 {
            append_one(&log, 1, &payload(i, 300)).await;
        }
        let segments = log.segments();
        log.close().await.unwrap();
        segments
    });
    assert!(segments.len() >= 3);
    std::fs::remove_file(&segments[1].path).unwrap();
    match open_outcome(dir.path(), Repair::Refuse) {
        Err(LogError::Corrupt { reason, .. }) => assert!(reason.contains("next begins")),
        other => panic!("expected a corruption error, got {other:?}"),
    }
    let (_, offsets) = open_outcome(dir.path(), Repair::TruncateAtCorruption).unwrap();
    assert_eq!(offsets.last().copied(), Some(segments[0].last.0));
}
