//! rkyv payloads: append a value as an archive, access a record's payload
//! in place with validation (bytecheck). Bytes read from disk are never
//! accessed unchecked.
//!
//! Lives on: the shard's core.

use rkyv::api::high::{HighSerializer, HighValidator};
use rkyv::bytecheck::CheckBytes;
use rkyv::rancor;
use rkyv::ser::allocator::ArenaHandle;
use rkyv::util::AlignedVec;
use rkyv::{Archive, Portable, Serialize};

use crate::appender::{Appended, Entry};
use crate::error::{LogError, Result};
use crate::log::Log;
use crate::reader::Record;
use crate::types::{Kind, Term};

/// Serializes `value` into an rkyv archive.
pub fn to_archive<T>(value: &T) -> Result<AlignedVec>
where
    T: for<'a> Serialize<HighSerializer<AlignedVec, ArenaHandle<'a>, rancor::Error>>,
{
    rkyv::to_bytes::<rancor::Error>(value).map_err(|e| LogError::Invalid(format!("rkyv: {e}")))
}

impl Log {
    /// Appends one record whose payload is the rkyv archive of `value`.
    pub async fn append_archived<T>(&self, kind: Kind, term: Term, value: &T) -> Result<Appended>
    where
        T: for<'a> Serialize<HighSerializer<AlignedVec, ArenaHandle<'a>, rancor::Error>>,
    {
        let bytes = to_archive(value)?;
        self.append(&[Entry {
            kind,
            term,
            payload: &bytes,
        }])
        .await
    }
}

impl Record {
    /// Validates the payload as an archived `T` and gives access in place.
    pub fn access<T>(&self) -> Result<&T::Archived>
    where
        T: Archive,
        T::Archived: Portable + for<'a> CheckBytes<HighValidator<'a, rancor::Error>>,
    {
        rkyv::access::<T::Archived, rancor::Error>(&self.payload).map_err(|e| LogError::Corrupt {
            segment: Default::default(),
            file_pos: 0,
            offset: self.offset,
            reason: format!("payload is not a valid archive: {e}"),
        })
    }
}
