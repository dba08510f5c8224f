//! Search over message text: an inverted index per shard, kept up to date
//! as records are applied (and built from the log at startup), proposing
//! candidates that the shard then checks against what each message reads
//! now.
//!
//! - `words.rs` words, terms and queries (what matches)
//! - `index.rs` the index: terms → documents, candidates newest first
//!
//! The shard's side (applying records, the search operation) is in
//! `shard/search.rs` and `shard/ops/search.rs`.

pub mod index;
pub mod words;
