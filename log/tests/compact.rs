//! Rewriting sealed segments (erasure): payloads replaced, offsets, terms
//! and kinds kept, the other records byte for byte; reads before, during
//! (an iterator across the swap) and after, and after a reopen; the
//! active segment sealed first; a leftover temporary file removed.

mod common;

use chat_log::{Log, LogError, Offset, Term};
use common::*;

fn secret(i: u64) -> Vec<u8> {
    let mut p = payload(i, 200);
    p[..16].copy_from_slice(b"SECRET-MARKER-42");
    p
}

#[test]
fn a_rewrite_replaces_payloads_and_keeps_everything_else() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    run(move || async move {
        let log = Log::open(&path, small_config(16 * 1024)).await.unwrap();
        for i in 1..=400u64 {
            let bytes = if i.is_multiple_of(7) {
                secret(i)
            } else {
                payload(i, (i * 13 % 500) as usize)
            };
            append_one(&log, 1 + i / 150, &bytes).await;
        }
        let mut reader = log.reader_from(Offset(1));
        let mut before_swap = Vec::new();
        for _ in 0..10 {
            before_swap.push(reader.next().await.unwrap().unwrap());
        }
        assert!(
            matches!(
                log.rewrite_segment(log.segments().last().unwrap().base, &mut |_| None)
                    .await,
                Err(LogError::Invalid(_))
            ),
            "the active segment is refused"
        );
        log.seal_active().await.unwrap();
        let mut changed = 0;
        for s in log.segments() {
            if s.last < s.base {
                continue; // the new, empty active segment
            }
            let done = log
                .rewrite_segment(s.base, &mut |r| {
                    r.offset.0.is_multiple_of(7).then(|| b"gone".to_vec())
                })
                .await
                .unwrap();
            assert_eq!(done.records, s.last.0 - s.base.0 + 1);
            assert!(done.bytes_after <= done.bytes_before);
            changed += done.changed;
        }
        assert_eq!(changed, 400 / 7);
        // The iterator started before the swap goes on in the new files.
        while let Some(r) = reader.next().await {
            before_swap.push(r.unwrap());
        }
        let check = |records: &[chat_log::Record]| {
            assert_eq!(records.len(), 400);
            for (i, r) in records.iter().enumerate() {
                let o = i as u64 + 1;
                assert_eq!((r.offset, r.term), (Offset(o), Term(1 + o / 150)));
                let want = if o.is_multiple_of(7) {
                    b"gone".to_vec()
                } else {
                    payload(o, (o * 13 % 500) as usize)
                };
                if o > 10 {
                    assert_eq!(&r.payload[..], &want[..], "offset {o}");
                }
            }
        };
        check(&before_swap);
        check(&read_all(&log).await);
        assert_eq!(&log.read(Offset(14)).await.unwrap().payload[..], b"gone");
        assert_eq!(append_one(&log, 9, b"after").await, Offset(401));
        log.close().await.unwrap();
        let grep = |dir: &std::path::Path| {
            std::fs::read_dir(dir).unwrap().any(|e| {
                let bytes = std::fs::read(e.unwrap().path()).unwrap();
                bytes.windows(16).any(|w| w == b"SECRET-MARKER-42")
            })
        };
        assert!(!grep(&path), "no file holds the replaced payloads");
        std::fs::write(path.join("00000000000000000001.log.tmp"), b"half a rewrite").unwrap();
        let log = Log::open(&path, small_config(16 * 1024)).await.unwrap();
        assert!(
            !path.join("00000000000000000001.log.tmp").exists(),
            "a leftover rewrite is removed"
        );
        let mut all = read_all(&log).await;
        assert_eq!(all.pop().map(|r| r.offset), Some(Offset(401)));
        check(&all);
        log.close().await.unwrap();
    });
}
