//! The log's API end to end on real files: append, read, iterate, terms,
//! truncate, drop, retention, snapshots, rkyv payloads, reopen.

mod common;

use std::time::{Duration, SystemTime};

use chat_log::{Entry, Kind, Log, LogError, Offset, Retention, Snapshot, Term};
use common::*;

#[test]
fn appended_records_read_back_across_segments_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    run(move || async move {
        let log = Log::open(&path, small_config(8192)).await.unwrap();
        assert_eq!(log.first_offset(), Offset(1));
        assert_eq!(log.last_offset(), Offset(0));
        for i in 1..=300u64 {
            let offset = append_one(&log, 1 + i / 100, &payload(i, (i * 37 % 900) as usize)).await;
            assert_eq!(offset, Offset(i));
        }
        assert!(log.segments().len() > 5, "small segments roll");
        assert_eq!(log.term_at(Offset(99)).unwrap(), Term(1));
        assert_eq!(log.term_at(Offset(100)).unwrap(), Term(2));
        let record = log.read(Offset(123)).await.unwrap();
        assert_eq!(&record.payload[..], &payload(123, 123 * 37 % 900)[..]);
        let range = log.read_range(Offset(50), Offset(250)).await.unwrap();
        assert_eq!(range.len(), 201);
        log.close().await.unwrap();
        assert!(matches!(log.read(Offset(1)).await, Err(LogError::Closed)));

        let log = Log::open(&path, small_config(8192)).await.unwrap();
        assert_eq!(log.last_offset(), Offset(300));
        let all = read_all(&log).await;
        assert_eq!(all.len(), 300);
        for (i, record) in all.iter().enumerate() {
            let o = i as u64 + 1;
            assert_eq!(record.offset, Offset(o));
            assert_eq!(record.term, Term(1 + o / 100));
            assert_eq!(
                &record.payload[..],
                &payload(o, (o * 37 % 900) as usize)[..]
            );
        }
        assert_eq!(append_one(&log, 4, b"after reopen").await, Offset(301));
        assert!(matches!(
            log.read(Offset(302)).await,
            Err(LogError::OutOfRange { .. })
        ));
        log.close().await.unwrap();
    });
}

#[test]
fn concurrent_appends_share_batches_and_all_become_durable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    run(move || async move {
        let log = Log::open(&path, small_config(1 << 20)).await.unwrap();
        let mut tasks = Vec::new();
        for t in 0..64u64 {
            let log = log.clone();
            tasks.push(glommio::spawn_local(async move {
                let mut mine = Vec::new();
                for i in 0..20u64 {
                    let bytes = payload(t * 1000 + i, 100);
                    let entry = Entry {
                        kind: Kind(t as u8),
                        term: Term(1),
                        payload: &bytes,
                    };
                    let (first, _) = log.append_durable(&[entry]).await.unwrap();
                    mine.push((first, t * 1000 + i));
                }
                mine
            }));
        }
        let mut all = Vec::new();
        for task in tasks {
            all.extend(task.await);
        }
        assert_eq!(all.len(), 1280);
        assert_eq!(log.durable_offset(), Offset(1280));
        for (offset, seed) in all {
            let record = log.read(offset).await.unwrap();
            assert_eq!(&record.payload[..], &payload(seed, 100)[..]);
        }
        log.close().await.unwrap();
    });
}

#[test]
fn truncate_drop_prefix_and_retention_keep_reads_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    run(move || async move {
        let log = Log::open(&path, small_config(4096)).await.unwrap();
        for i in 1..=200u64 {
            append_one(&log, 1, &payload(i, 200)).await;
        }
        log.truncate_after(Offset(150)).await.unwrap();
        assert_eq!(log.last_offset(), Offset(150));
        assert_eq!(append_one(&log, 2, b"new 151").await, Offset(151));
        assert_eq!(
            &log.read(Offset(151)).await.unwrap().payload[..],
            b"new 151"
        );
        assert_eq!(log.term_at(Offset(151)).unwrap(), Term(2));

        log.drop_prefix(Offset(40)).await.unwrap();
        assert_eq!(log.first_offset(), Offset(41));
        assert!(matches!(
            log.read(Offset(40)).await,
            Err(LogError::OutOfRange { .. })
        ));
        assert_eq!(
            &log.read(Offset(41)).await.unwrap().payload[..],
            &payload(41, 200)[..]
        );

        let before = log.segments().len();
        let policy = Retention {
            max_total_bytes: Some(8192),
            max_age: None,
        };
        let retained = log
            .retain(&policy, Offset(120), SystemTime::now())
            .await
            .unwrap();
        assert!(retained.segments_deleted > 0);
        assert_eq!(log.segments().len(), before - retained.segments_deleted);
        assert!(log.first_offset() <= Offset(120), "keep_from is kept");
        assert_eq!(retained.first, log.first_offset());
        let far_future = SystemTime::now() + Duration::from_secs(86400);
        let policy = Retention {
            max_age: Some(Duration::from_secs(60)),
            max_total_bytes: None,
        };
        log.retain(&policy, Offset(u64::MAX), far_future)
            .await
            .unwrap();
        assert_eq!(
            log.segments().len(),
            1,
            "only the active segment is never deleted"
        );
        let first = log.first_offset();
        log.close().await.unwrap();

        let log = Log::open(&path, small_config(4096)).await.unwrap();
        assert_eq!(log.first_offset(), first);
        assert_eq!(log.last_offset(), Offset(151));
        assert_eq!(
            &log.read(Offset(151)).await.unwrap().payload[..],
            b"new 151"
        );

        log.drop_prefix(Offset(500)).await.unwrap();
        assert_eq!(log.first_offset(), Offset(501));
        assert_eq!(append_one(&log, 3, b"after snapshot").await, Offset(501));
        log.close().await.unwrap();
        let log = Log::open(&path, small_config(4096)).await.unwrap();
        assert_eq!(log.first_offset(), Offset(501));
        assert_eq!(log.last_offset(), Offset(501));
        log.close().await.unwrap();
    });
}

#[test]
fn snapshot_saves_and_loads_with_its_offset() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    run(move || async move {
        let log = Log::open(&path, small_config(4096)).await.unwrap();
        assert_eq!(log.load_snapshot().await.unwrap(), None);
        let snapshot = Snapshot {
            offset: Offset(77),
            term: Term(3),
            data: payload(5, 10_000),
        };
        log.save_snapshot(&snapshot).await.unwrap();
        let newer = Snapshot {
            offset: Offset(99),
            term: Term(4),
            data: b"v2".to_vec(),
        };
        log.save_snapshot(&newer).await.unwrap();
        log.close().await.unwrap();
        let log = Log::open(&path, small_config(4096)).await.unwrap();
        assert_eq!(log.load_snapshot().await.unwrap(), Some(newer));
        log.close().await.unwrap();
        let file = path.join("snapshot");
        let mut bytes = std::fs::read(&file).unwrap();
        bytes[33] ^= 0xff;
        std::fs::write(&file, bytes).unwrap();
        let log = Log::open(&path, small_config(4096)).await.unwrap();
        assert!(matches!(
            log.load_snapshot().await,
            Err(LogError::Corrupt { .. })
        ));
        log.close().await.unwrap();
    });
}

#[test]
fn snapshot_streams_chunks_and_checks_each() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    run(move || async move {
        let log = Log::open(&path, small_config(4096)).await.unwrap();
        let chunks: Vec<Vec<u8>> = (0..40).map(|i| payload(i, 1 + i as usize * 997)).collect();
        let mut writer = log.begin_snapshot().await.unwrap();
        for c in &chunks {
            writer.write_chunk(c).await.unwrap();
        }
        // Nothing is installed before `finish`.
        assert!(log.open_snapshot().await.unwrap().is_none());
        writer.finish(Offset(12), Term(2)).await.unwrap();
        let mut reader = log.open_snapshot().await.unwrap().unwrap();
        assert_eq!((reader.offset(), reader.term()), (Offset(12), Term(2)));
        for c in &chunks {
            assert_eq!(&reader.next_chunk().await.unwrap().unwrap(), c);
        }
        assert!(reader.next_chunk().await.unwrap().is_none());
        reader.close().await.unwrap();
        // An aborted writer leaves the installed snapshot alone.
        let mut writer = log.begin_snapshot().await.unwrap();
        writer.write_chunk(b"never installed").await.unwrap();
        writer.abort().await;
        let reader = log.open_snapshot().await.unwrap().unwrap();
        assert_eq!(reader.offset(), Offset(12));
        reader.close().await.unwrap();
        log.close().await.unwrap();
        // A flipped byte inside a later chunk fails that chunk's CRC.
        let file = path.join("snapshot");
        let mut bytes = std::fs::read(&file).unwrap();
        let at = bytes.len() / 2;
        bytes[at] ^= 0x40;
        std::fs::write(&file, bytes).unwrap();
        let log = Log::open(&path, small_config(4096)).await.unwrap();
        let mut reader = log.open_snapshot().await.unwrap().unwrap();
        let mut outcome = Ok(());
        while outcome.is_ok() {
            match reader.next_chunk().await {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => outcome = Err(e),
            }
        }
        assert!(
            matches!(outcome, Err(LogError::Corrupt { .. })),
            "{outcome:?}"
        );
        log.close().await.unwrap();
    });
}

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Debug, PartialEq)]
struct Message {
    conversation: u64,
    seq: u64,
    text: String,
}

#[test]
fn rkyv_payloads_are_validated_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    run(move || async move {
        let log = Log::open(&path, small_config(4096)).await.unwrap();
        let message = Message {
            conversation: 7,
            seq: 42,
            text: "hello".into(),
        };
        let appended = log
            .append_archived(Kind(2), Term(1), &message)
            .await
            .unwrap();
        appended.durable.await.unwrap();
        append_one(&log, 1, b"not an archive at all").await;
        let record = log.read(Offset(1)).await.unwrap();
        assert_eq!(record.payload.as_ptr() as usize % 16, 0);
        let archived = record.access::<Message>().unwrap();
        assert_eq!(archived.seq, 42);
        assert_eq!(archived.text.as_str(), "hello");
        let garbage = log.read(Offset(2)).await.unwrap();
        assert!(garbage.access::<Message>().is_err());
        log.close().await.unwrap();
    });
}

#[test]
fn bad_calls_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    run(move || async move {
        let log = Log::open(&path, small_config(4096)).await.unwrap();
        append_one(&log, 5, b"x").await;
        let huge = vec![0u8; chat_log::constants::RECORD_PAYLOAD_SIZE_BYTES_MAX + 1];
        let entry = Entry {
            kind: Kind(1),
            term: Term(5),
            payload: &huge,
        };
        assert!(matches!(
            log.append(&[entry]).await,
            Err(LogError::TooLarge { .. })
        ));
        let entry = Entry {
            kind: Kind(1),
            term: Term(4),
            payload: b"old term",
        };
        assert!(matches!(
            log.append(&[entry]).await,
            Err(LogError::Invalid(_))
        ));
        assert!(matches!(log.append(&[]).await, Err(LogError::Invalid(_))));
        assert!(matches!(
            log.truncate_after(Offset(9)).await,
            Err(LogError::Invalid(_))
        ));
        assert!(matches!(
            log.read(Offset(0)).await,
            Err(LogError::OutOfRange { .. })
        ));
        assert_eq!(log.last_offset(), Offset(1));
        log.close().await.unwrap();
        let entry = Entry {
            kind: Kind(1),
            term: Term(5),
            payload: b"late",
        };
        assert!(matches!(log.append(&[entry]).await, Err(LogError::Closed)));
    });
}

#[test]
fn relative_directory_opens() {
    let dir = tempfile::tempdir_in(".").unwrap();
    let relative = dir.path().file_name().unwrap().to_owned();
    run(move || async move {
        let log = Log::open(std::path::Path::new(&relative), small_config(4096))
            .await
            .unwrap();
        assert_eq!(append_one(&log, 1, b"x").await, Offset(1));
        log.close().await.unwrap();
    });
}
