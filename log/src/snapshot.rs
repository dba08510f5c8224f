//! The snapshot of the state machine: one blob and the offset (and term) it
//! covers, so that replay starts after it. Written atomically.
//!
//! Lives on: the shard's core.

use crate::constants::SNAPSHOT_SIZE_BYTES_MAX;
use crate::error::{LogError, Result};
use crate::file::{write_atomic, LogFile};
use crate::log::Log;
use crate::types::{Offset, Term};

pub const SNAPSHOT_FILE: &str = "snapshot";
const MAGIC: &[u8; 8] = b"CHLSNAP1";
const HEADER_BYTES: usize = 32;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// The last offset whose effect the blob includes.
    pub offset: Offset,
    /// The term of that offset.
    pub term: Term,
    pub data: Vec<u8>,
}

fn encode(snapshot: &Snapshot) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(HEADER_BYTES + snapshot.data.len());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&snapshot.offset.0.to_le_bytes());
    bytes.extend_from_slice(&snapshot.term.0.to_le_bytes());
    bytes.extend_from_slice(&(snapshot.data.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&[0u8; 4]);
    bytes.extend_from_slice(&snapshot.data);
    let crc = crc32fast::hash(&bytes[8..]);
    bytes[28..32].copy_from_slice(&crc.to_le_bytes());
    bytes
}

impl Log {
    /// Saves `snapshot`, replacing the previous one atomically.
    pub async fn save_snapshot(&self, snapshot: &Snapshot) -> Result<()> {
        if snapshot.data.len() > SNAPSHOT_SIZE_BYTES_MAX {
            return Err(LogError::TooLarge {
                size_bytes: snapshot.data.len(),
                max_bytes: SNAPSHOT_SIZE_BYTES_MAX,
            });
        }
        write_atomic(&self.dir(), SNAPSHOT_FILE, &encode(snapshot)).await
    }

    /// The last saved snapshot, checked, if there is one.
    pub async fn load_snapshot(&self) -> Result<Option<Snapshot>> {
        let path = self.dir().join(SNAPSHOT_FILE);
        if !path.exists() {
            return Ok(None);
        }
        let file = LogFile::open(&path, false).await?;
        let size = file.size().await?;
        let bytes = file.read(0, size as usize).await?;
        file.close().await?;
        let bad = |why: &str| LogError::Corrupt {
            segment: path.clone(),
            file_pos: 0,
            offset: Offset(0),
            reason: format!("snapshot: {why}"),
        };
        if bytes.len() < HEADER_BYTES || &bytes[..8] != MAGIC {
            return Err(bad("not a snapshot file"));
        }
        let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
        let len = u32::from_le_bytes(bytes[24..28].try_into().unwrap()) as usize;
        if bytes.len() != HEADER_BYTES + len {
            return Err(bad("length does not match the file"));
        }
        let mut covered = bytes[8..].to_vec();
        covered[20..24].copy_from_slice(&[0u8; 4]);
        let crc = u32::from_le_bytes(bytes[28..32].try_into().unwrap());
        if crc32fast::hash(&covered) != crc {
            return Err(bad("bad CRC"));
        }
        Ok(Some(Snapshot {
            offset: Offset(u64_at(8)),
            term: Term(u64_at(16)),
            data: bytes[HEADER_BYTES..].to_vec(),
        }))
    }
}
