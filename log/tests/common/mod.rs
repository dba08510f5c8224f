//! Helpers shared by the integration tests.
#![allow(dead_code)]

use chat_log::{Config, Entry, Kind, Log, Offset, Record, Repair, Term};

/// Runs `f` on a fresh glommio executor (one per test).
pub fn run<F, T>(f: impl FnOnce() -> F + Send + 'static) -> T
where
    F: std::future::Future<Output = T> + 'static,
    T: Send + 'static,
{
    glommio::LocalExecutorBuilder::default()
        .spawn(move || async move { f().await })
        .expect("executor")
        .join()
        .expect("executor thread")
}

pub fn small_config(segment_size_bytes: u64) -> Config {
    Config {
        segment_size_bytes,
        repair: Repair::Refuse,
    }
}

/// A payload that says which offset it belongs to, `len` bytes long.
pub fn payload(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

pub async fn append_one(log: &Log, term: u64, bytes: &[u8]) -> Offset {
    let entry = Entry {
        kind: Kind(1),
        term: Term(term),
        payload: bytes,
    };
    log.append_durable(&[entry]).await.expect("append").0
}

pub async fn read_all(log: &Log) -> Vec<Record> {
    let mut reader = log.reader_from(log.first_offset());
    let mut out = Vec::new();
    while let Some(record) = reader.next().await {
        out.push(record.expect("read"));
    }
    out
}
