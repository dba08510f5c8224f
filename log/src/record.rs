//! Record framing: a fixed 32-byte header, the payload, zero padding to 16.
//!
//! Lives on: any core (pure functions over byte slices).
//!
//! Header layout (little endian):
//!
//! | bytes  | field        | meaning                                          |
//! |--------|--------------|--------------------------------------------------|
//! | 0..4   | crc32        | crc32fast over bytes 4.. of the whole frame      |
//! | 4..8   | payload_len  | payload bytes, before padding                    |
//! | 8..16  | offset       | the record's offset (checked on every read)      |
//! | 16..24 | term         | Raft term                                        |
//! | 24     | kind         | caller's record kind                             |
//! | 25     | version      | `FORMAT_VERSION`                                 |
//! | 26..28 | reserved     | zero                                             |
//! | 28..32 | batch_index  | position of the record in its group-commit batch |
//!
//! `batch_index` lets recovery tell a torn last batch (a bad record followed
//! only by records of the same batch) from corruption of durable data (a bad
//! record followed by a record of a later batch, which was only written once
//! the earlier batch was on disk). An all-zero header never passes: its CRC
//! does not match and offset 0 is not a record's offset.

use crate::constants::{
    HEADER_SIZE_BYTES, RECORD_ALIGN_BYTES, RECORD_FRAME_SIZE_BYTES_MAX,
    RECORD_PAYLOAD_SIZE_BYTES_MAX,
};
use crate::types::{Kind, Offset, Term};

pub const FORMAT_VERSION: u8 = 1;

/// The fields of a header other than the CRC and the length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    pub offset: Offset,
    pub term: Term,
    pub kind: Kind,
    pub batch_index: u32,
}

/// A decoded frame borrowing its payload from the buffer it was read from.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    pub meta: Meta,
    pub payload: &'a [u8],
    /// Header + padded payload: where the next frame starts.
    pub frame_len: usize,
}

/// Why bytes are not a valid frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Fewer bytes than the header says the frame has (or than a header).
    Truncated { needed: usize },
    /// The header is all zeros: the end of written data.
    Zero,
    /// The header is not one we write (length, version, reserved bytes).
    BadHeader,
    /// The CRC does not match the bytes.
    Crc,
}

pub fn padded_len(payload_len: usize) -> usize {
    payload_len.div_ceil(RECORD_ALIGN_BYTES) * RECORD_ALIGN_BYTES
}

/// Size of the whole frame for a payload of `payload_len` bytes.
pub fn frame_len(payload_len: usize) -> usize {
    HEADER_SIZE_BYTES + padded_len(payload_len)
}

/// Appends one frame to `out`. `out.len()` must be 16-aligned before and is after.
pub fn encode(out: &mut Vec<u8>, meta: Meta, payload: &[u8]) {
    assert!(payload.len() <= RECORD_PAYLOAD_SIZE_BYTES_MAX);
    assert!(meta.offset.0 >= 1, "offsets start at 1");
    assert_eq!(out.len() % RECORD_ALIGN_BYTES, 0);
    let start = out.len();
    out.extend_from_slice(&[0u8; 4]);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&meta.offset.0.to_le_bytes());
    out.extend_from_slice(&meta.term.0.to_le_bytes());
    out.push(meta.kind.0);
    out.push(FORMAT_VERSION);
    out.extend_from_slice(&[0u8; 2]);
    out.extend_from_slice(&meta.batch_index.to_le_bytes());
    debug_assert_eq!(out.len() - start, HEADER_SIZE_BYTES);
    out.extend_from_slice(payload);
    out.resize(start + frame_len(payload.len()), 0);
    let crc = crc32fast::hash(&out[start + 4..]);
    out[start..start + 4].copy_from_slice(&crc.to_le_bytes());
    assert_eq!(out.len() % RECORD_ALIGN_BYTES, 0);
    // Pair assertion: what leaves must read back as what went in.
    debug_assert_eq!(decode(&out[start..]).map(|f| f.meta), Ok(meta));
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap())
}

/// Decodes the frame at the start of `bytes`, checking its bounds and CRC.
pub fn decode(bytes: &[u8]) -> Result<Frame<'_>, DecodeError> {
    if bytes.len() < HEADER_SIZE_BYTES {
        return Err(DecodeError::Truncated {
            needed: HEADER_SIZE_BYTES,
        });
    }
    let header = &bytes[..HEADER_SIZE_BYTES];
    if header.iter().all(|b| *b == 0) {
        return Err(DecodeError::Zero);
    }
    let payload_len = u32_at(header, 4) as usize;
    let offset = u64_at(header, 8);
    if payload_len > RECORD_PAYLOAD_SIZE_BYTES_MAX
        || header[25] != FORMAT_VERSION
        || header[26] != 0
        || header[27] != 0
        || offset == 0
    {
        return Err(DecodeError::BadHeader);
    }
    let len = frame_len(payload_len);
    debug_assert!(len <= RECORD_FRAME_SIZE_BYTES_MAX);
    if bytes.len() < len {
        return Err(DecodeError::Truncated { needed: len });
    }
    if crc32fast::hash(&bytes[4..len]) != u32_at(header, 0) {
        return Err(DecodeError::Crc);
    }
    let meta = Meta {
        offset: Offset(offset),
        term: Term(u64_at(header, 16)),
        kind: Kind(header[24]),
        batch_index: u32_at(header, 28),
    };
    let payload = &bytes[HEADER_SIZE_BYTES..HEADER_SIZE_BYTES + payload_len];
    Ok(Frame {
        meta,
        payload,
        frame_len: len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(offset: u64) -> Meta {
        Meta {
            offset: Offset(offset),
            term: Term(7),
            kind: Kind(3),
            batch_index: 2,
        }
    }

    #[test]
    fn frame_roundtrips_and_is_padded_to_16() {
        for len in [0usize, 1, 15, 16, 17, 100, 4096, 4097] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 7 + 1) as u8).collect();
            let mut out = vec![0u8; 16];
            out.truncate(16);
            encode(&mut out, meta(9), &payload);
            let frame_bytes = &out[16..];
            assert_eq!(frame_bytes.len() % 16, 0);
            assert_eq!(frame_bytes.len(), frame_len(len));
            let frame = decode(frame_bytes).unwrap();
            assert_eq!(frame.meta, meta(9));
            assert_eq!(frame.payload, &payload[..]);
            assert_eq!(frame.frame_len, frame_bytes.len());
            // Padding is zero.
            assert!(frame_bytes[HEADER_SIZE_BYTES + len..]
                .iter()
                .all(|b| *b == 0));
        }
    }

    #[test]
    fn payload_starts_16_aligned_within_frame() {
        assert_eq!(HEADER_SIZE_BYTES % 16, 0);
        assert_eq!(padded_len(1), 16);
        assert_eq!(padded_len(16), 16);
        assert_eq!(padded_len(0), 0);
    }

    #[test]
    fn every_flipped_bit_is_detected() {
        let mut out = Vec::new();
        encode(&mut out, meta(1), b"hello, world");
        for i in 0..out.len() {
            for bit in 0..8 {
                let mut bad = out.clone();
                bad[i] ^= 1 << bit;
                assert!(decode(&bad).is_err(), "flip at byte {i} bit {bit} passed");
            }
        }
    }

    #[test]
    fn zero_and_short_input_are_not_frames() {
        assert_eq!(decode(&[0u8; 64]).unwrap_err(), DecodeError::Zero);
        assert!(matches!(
            decode(&[1u8; 8]).unwrap_err(),
            DecodeError::Truncated { .. }
        ));
        let mut out = Vec::new();
        encode(&mut out, meta(1), &[5u8; 100]);
        assert_eq!(
            decode(&out[..out.len() - 16]).unwrap_err(),
            DecodeError::Truncated { needed: out.len() }
        );
    }

    #[test]
    fn oversized_length_is_a_bad_header() {
        let mut out = Vec::new();
        encode(&mut out, meta(1), b"x");
        out[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode(&out).unwrap_err(), DecodeError::BadHeader);
    }
}
