//! What a shard operation can fail with: the machine refused (a typed
//! `DomainError`), or the storage could not serve (the write or read did
//! not happen; the client may retry). The front end maps both to protocol
//! errors (`front/errors.rs`).
//!
//! Lives on: every core (plain values; they cross the mesh in replies).

use crate::machine::error::DomainError;

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum ShardError {
    Domain(DomainError),
    /// Storage trouble or shutdown; the text says what.
    Unavailable(String),
}

impl From<DomainError> for ShardError {
    fn from(e: DomainError) -> ShardError {
        ShardError::Domain(e)
    }
}

pub fn unavailable(why: impl std::fmt::Display) -> ShardError {
    ShardError::Unavailable(why.to_string())
}

pub type ShardResult<T> = Result<T, ShardError>;
