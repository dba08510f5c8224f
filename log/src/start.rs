//! The persisted start of the log: the first offset that `drop_prefix` or
//! retention left readable. A 20-byte file: magic, offset, CRC32.
//!
//! Lives on: the shard's core.

use std::path::Path;

use crate::error::{LogError, Result};
use crate::types::Offset;

pub const START_FILE: &str = "start";
const MAGIC: &[u8; 8] = b"CHLSTART";

pub fn encode_start(start: Offset) -> Vec<u8> {
    let mut bytes = MAGIC.to_vec();
    bytes.extend_from_slice(&start.0.to_le_bytes());
    let crc = crc32fast::hash(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    bytes
}

/// Reads `dir/start`, if present.
pub fn load_start(dir: &Path) -> Result<Option<Offset>> {
    let path = dir.join(START_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(LogError::io("read", &path, &e)),
    };
    let bad = |why: &str| LogError::Corrupt {
        segment: path.clone(),
        file_pos: 0,
        offset: Offset(0),
        reason: why.to_string(),
    };
    if bytes.len() != 20 || &bytes[..8] != MAGIC {
        return Err(bad("not a start file"));
    }
    let crc = u32::from_le_bytes(bytes[16..20].try_into().unwrap());
    if crc32fast::hash(&bytes[..16]) != crc {
        return Err(bad("bad CRC"));
    }
    let start = u64::from_le_bytes(bytes[8..16].try_into().unwrap());
    if start == 0 {
        return Err(bad("start offset 0"));
    }
    Ok(Some(Offset(start)))
}
