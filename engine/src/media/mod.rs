//! Media: the node's content-addressed files (`store.rs`) and the HTTP
//! reading rules for them, `Range` and `If-None-Match` (`range.rs`, pure),
//! the copies between the nodes of a cluster (`replica.rs`), and the
//! sweep of files no account holds any more (`sweep.rs`).
//! Who may read what is the machine's (`cmd/store_media.rs`,
//! `cmd/share_media.rs`); the REST handlers are `front/rest/media.rs`.
//!
//! Lives on: every core (each has its `Store` handle).

pub mod range;
pub mod replica;
pub mod store;
pub mod sweep;
