//! Reads of the state: pure functions that answer with typed values (the
//! front end shapes them into JSON) or a `DomainError`.
//!
//! Lives on: the shard's core (the home shard of what they read).

pub mod auth;
pub mod conv;
pub mod erasure;
pub mod history;
pub mod keys;
pub mod me;
pub mod receipts;
pub mod status;
