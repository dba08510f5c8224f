//! Property test: random sequences of append / truncate / drop-prefix /
//! retention / reopen against an in-memory model; after every step every
//! read (by offset, by range, by iterator, term_at) equals the model.
//! proptest prints the failing sequence (shrunk) and saves its seed under
//! `proptest-regressions/`.

mod common;

use std::collections::BTreeMap;
use std::time::SystemTime;

use chat_log::{Entry, Kind, Log, LogError, Offset, Retention, Term};
use common::*;
use proptest::prelude::*;

const SEGMENT_BYTES: u64 = 4096;

#[derive(Clone, Debug)]
enum Op {
    Append {
        count: usize,
        size: usize,
        new_term: bool,
        seed: u64,
    },
    Truncate {
        back: u64,
    },
    DropPrefix {
        forward: u64,
    },
    Retain {
        max_total_bytes: u64,
        keep_back: u64,
    },
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1usize..6, 0usize..1500, any::<bool>(), any::<u64>())
            .prop_map(|(count, size, new_term, seed)| Op::Append { count, size, new_term, seed }),
        1 => (0u64..30).prop_map(|back| Op::Truncate { back }),
        1 => (0u64..40).prop_map(|forward| Op::DropPrefix { forward }),
        1 => (0u64..60_000, 0u64..40)
            .prop_map(|(max_total_bytes, keep_back)| Op::Retain { max_total_bytes, keep_back }),
        1 => Just(Op::Reopen),
    ]
}

/// What the log must hold: `start` and the records from it on.
#[derive(Default)]
struct Model {
    start: u64,
    records: BTreeMap<u64, (Term, Kind, Vec<u8>)>,
    next: u64,
    term: u64,
}

impl Model {
    fn last(&self) -> u64 {
        self.next - 1
    }
}

async fn apply(log: &mut Log, model: &mut Model, op: &Op, path: &std::path::Path) {
    match *op {
        Op::Append {
            count,
            size,
            new_term,
            seed,
        } => {
            if new_term {
                model.term += 1;
            }
            let payloads: Vec<Vec<u8>> = (0..count)
                .map(|i| payload(seed + i as u64, (size * (i + 1)) % 1500))
                .collect();
            let entries: Vec<Entry> = payloads
                .iter()
                .map(|p| Entry {
                    kind: Kind(p.len() as u8),
                    term: Term(model.term),
                    payload: p,
                })
                .collect();
            let (first, last) = log.append_durable(&entries).await.unwrap();
            assert_eq!(
                (first.0, last.0),
                (model.next, model.next + count as u64 - 1)
            );
            for p in payloads {
                model
                    .records
                    .insert(model.next, (Term(model.term), Kind(p.len() as u8), p));
                model.next += 1;
            }
        }
        Op::Truncate { back } => {
            let target = model.last().saturating_sub(back).max(model.start - 1);
            log.truncate_after(Offset(target)).await.unwrap();
            model.records.split_off(&(target + 1));
            model.next = target + 1;
        }
        Op::DropPrefix { forward } => {
            let upto = model.start - 1 + forward;
            log.drop_prefix(Offset(upto)).await.unwrap();
            if upto >= model.start {
                model.start = upto + 1;
                model.records = model.records.split_off(&model.start);
                model.next = model.next.max(model.start);
            }
        }
        Op::Retain {
            max_total_bytes,
            keep_back,
        } => {
            let keep_from = (model.next).saturating_sub(keep_back).max(1);
            let policy = Retention {
                max_total_bytes: Some(max_total_bytes),
                max_age: None,
            };
            let before = model.start;
            let done = log
                .retain(&policy, Offset(keep_from), SystemTime::now())
                .await
                .unwrap();
            let first = log.first_offset().0;
            assert_eq!(done.first.0, first);
            assert!(first >= before, "retention never moves the start back");
            assert!(
                first <= keep_from.max(before),
                "nothing at or above keep_from goes"
            );
            let segments = log.segments();
            let total: u64 = segments.iter().map(|s| s.size_bytes).sum();
            if total > max_total_bytes {
                let oldest = &segments[0];
                assert!(
                    segments.len() == 1 || oldest.last.0 >= keep_from,
                    "over the cap with a deletable segment"
                );
            }
            model.start = first;
            model.records = model.records.split_off(&first);
        }
        Op::Reopen => {
            log.close().await.unwrap();
            *log = Log::open(path, small_config(SEGMENT_BYTES)).await.unwrap();
        }
    }
}

async fn check(log: &Log, model: &Model) {
    assert_eq!(log.first_offset().0, model.start);
    assert_eq!(log.last_offset().0, model.last());
    assert_eq!(log.durable_offset().0, model.last());
    for (&offset, (term, kind, bytes)) in &model.records {
        let record = log.read(Offset(offset)).await.unwrap();
        assert_eq!(
            (record.term, record.kind),
            (*term, *kind),
            "offset {offset}"
        );
        assert_eq!(&record.payload[..], &bytes[..], "offset {offset}");
        assert_eq!(log.term_at(Offset(offset)).unwrap(), *term);
    }
    let all = read_all(log).await;
    assert_eq!(all.len(), model.records.len());
    for (record, (&offset, (_, _, bytes))) in all.iter().zip(&model.records) {
        assert_eq!(record.offset.0, offset);
        assert_eq!(&record.payload[..], &bytes[..]);
    }
    if model.start > 1 {
        let below = log.read(Offset(model.start - 1)).await;
        assert!(matches!(below, Err(LogError::OutOfRange { .. })));
    }
    assert!(matches!(
        log.read(Offset(model.next)).await,
        Err(LogError::OutOfRange { .. })
    ));
    if let (Some((&a, _)), Some((&b, _))) = (
        model.records.first_key_value(),
        model.records.last_key_value(),
    ) {
        let range = log.read_range(Offset(a), Offset(b)).await.unwrap();
        assert_eq!(range.len() as u64, b - a + 1);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn log_matches_model_under_random_operations(ops in proptest::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_owned();
        run(move || async move {
            let mut log = Log::open(&path, small_config(SEGMENT_BYTES)).await.unwrap();
            let mut model = Model { start: 1, next: 1, ..Model::default() };
            for op in &ops {
                apply(&mut log, &mut model, op, &path).await;
                check(&log, &model).await;
            }
            log.close().await.unwrap();
        });
    }
}
