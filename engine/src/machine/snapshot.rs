//! Snapshots of the state, entity by entity, in chunks: the state itself
//! is archived (rkyv), no mirror types.
//!
//! Lives on: the shard's core.
//!
//! A capture walks the users, then the conversations, in id order, and
//! encodes a chunk of them at a time from the state *as it is then*: the
//! shell writes the chunk and lets writes go on before asking for the next
//! one. The result is a fuzzy snapshot: every record up to `start` (the
//! log's last offset when the capture began) is in every entity; records
//! after it are in the entities captured after they were applied. Each
//! entity carries the offset of the last record applied to it, so replay
//! from `start + 1` skips what an entity already holds (`state::covered`).
//!
//! A chunk is a list of entries `[tag u8][7 zero bytes][id u64][len u64]
//! [archive, zero-padded to 16]`; the first chunk opens with a header entry
//! carrying the format version.

use std::ops::Bound::{Excluded, Unbounded};

use rkyv::rancor::Error as RkyvError;
use rkyv::util::AlignedVec;

use crate::machine::ids::{ConvId, UserId};
use crate::machine::state::{Conv, Lsn, Meta, Params, State, User};

/// 3: conversations hold their edited and deleted messages; 4: devices
/// hold their keys; 5: users hold their uploads; 6: devices hold their
/// push token and how far they were pushed.
pub const SNAPSHOT_VERSION: u64 = 6;

const TAG_HEADER: u8 = 0;
const TAG_USER: u8 = 1;
const TAG_CONV: u8 = 2;
const TAG_META: u8 = 3;
const ENTRY_HEADER_BYTES: usize = 24;
const ALIGN_BYTES: usize = 16;
const _: () = assert!(ENTRY_HEADER_BYTES.is_multiple_of(8));

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Header,
    Users(Option<UserId>),
    Convs(Option<ConvId>),
    Meta,
    Done,
}

/// A capture in progress (pure: the shell does the writing).
#[derive(Debug)]
pub struct Capture {
    start: Lsn,
    phase: Phase,
    max_lsn: Lsn,
    entities: u64,
}

fn push_entry(out: &mut Vec<u8>, tag: u8, id: u64, archive: &[u8]) {
    let at = out.len();
    assert_eq!(at % ALIGN_BYTES, 0, "entries start aligned");
    out.push(tag);
    out.extend_from_slice(&[0u8; 7]);
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&(archive.len() as u64).to_le_bytes());
    out.extend_from_slice(
        &[0u8; ENTRY_HEADER_BYTES.next_multiple_of(ALIGN_BYTES) - ENTRY_HEADER_BYTES],
    );
    out.extend_from_slice(archive);
    out.resize(out.len().next_multiple_of(ALIGN_BYTES), 0);
}

fn archive<T>(value: &T) -> AlignedVec
where
    T: for<'a> rkyv::Serialize<
        rkyv::api::high::HighSerializer<
            AlignedVec,
            rkyv::ser::allocator::ArenaHandle<'a>,
            RkyvError,
        >,
    >,
{
    rkyv::to_bytes::<RkyvError>(value).expect("state entities always serialize")
}

impl Capture {
    /// Starts a capture; `start` is the log's last offset now (every record
    /// up to it is applied).
    pub fn new(start: Lsn) -> Capture {
        Capture {
            start,
            phase: Phase::Header,
            max_lsn: start,
            entities: 0,
        }
    }

    /// Records up to here are in the snapshot whole: replay starts after.
    pub fn start(&self) -> Lsn {
        self.start
    }

    /// The newest record any captured entity holds: the snapshot may only
    /// be installed once the log is durable up to it.
    pub fn max_lsn(&self) -> Lsn {
        self.max_lsn
    }

    pub fn entities(&self) -> u64 {
        self.entities
    }

    /// The next chunk of about `bytes` bytes (one entity at least), encoded
    /// from `state` as it is now; `None` once everything was captured.
    pub fn next_chunk(&mut self, state: &State, bytes: usize) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(bytes.min(1 << 20));
        while out.len() < bytes && self.phase != Phase::Done {
            self.phase = self.step(state, &mut out);
        }
        (!out.is_empty()).then_some(out)
    }

    /// Encodes one entity (or moves to the next phase); returns the phase after.
    fn step(&mut self, state: &State, out: &mut Vec<u8>) -> Phase {
        match self.phase {
            Phase::Header => {
                push_entry(out, TAG_HEADER, SNAPSHOT_VERSION, &[]);
                Phase::Users(None)
            }
            Phase::Users(after) => {
                let bound = after.map_or(Unbounded, Excluded);
                let Some((id, u)) = state.users.range((bound, Unbounded)).next() else {
                    return Phase::Convs(None);
                };
                self.note(u.lsn);
                push_entry(out, TAG_USER, id.0, &archive(u));
                Phase::Users(Some(*id))
            }
            Phase::Convs(after) => {
                let bound = after.map_or(Unbounded, Excluded);
                let Some((id, c)) = state.convs.range((bound, Unbounded)).next() else {
                    return Phase::Meta;
                };
                self.note(c.lsn);
                push_entry(out, TAG_CONV, id.0, &archive(c));
                Phase::Convs(Some(*id))
            }
            Phase::Meta => {
                self.note(state.meta.lsn);
                push_entry(out, TAG_META, 0, &archive(&state.meta));
                Phase::Done
            }
            Phase::Done => Phase::Done,
        }
    }

    fn note(&mut self, lsn: Lsn) {
        self.max_lsn = self.max_lsn.max(lsn);
        self.entities += 1;
    }
}

/// A state being rebuilt from a snapshot's chunks, in order.
#[derive(Debug)]
pub struct Restore {
    state: State,
    header_seen: bool,
    meta_seen: bool,
    max_lsn: Lsn,
}

fn decode<T>(bytes: &[u8]) -> Result<T, String>
where
    T: rkyv::Archive,
    T::Archived: for<'a> rkyv::bytecheck::CheckBytes<rkyv::api::high::HighValidator<'a, RkyvError>>
        + rkyv::Deserialize<T, rkyv::api::high::HighDeserializer<RkyvError>>,
{
    let mut aligned = AlignedVec::<ALIGN_BYTES>::with_capacity(bytes.len());
    aligned.extend_from_slice(bytes);
    rkyv::from_bytes::<T, RkyvError>(&aligned).map_err(|e| format!("invalid entity: {e}"))
}

impl Restore {
    pub fn new(params: Params) -> Restore {
        Restore {
            state: State::new(params),
            header_seen: false,
            meta_seen: false,
            max_lsn: Lsn(0),
        }
    }

    /// Adds the entities of the next chunk (validated, never trusted).
    pub fn add_chunk(&mut self, chunk: &[u8]) -> Result<(), String> {
        let mut at = 0;
        while at < chunk.len() {
            let head = chunk
                .get(at..at + ENTRY_HEADER_BYTES)
                .ok_or("a truncated entry header")?;
            let tag = head[0];
            let id = u64::from_le_bytes(head[8..16].try_into().expect("8 bytes"));
            let len = u64::from_le_bytes(head[16..24].try_into().expect("8 bytes")) as usize;
            let body_at = at + ENTRY_HEADER_BYTES.next_multiple_of(ALIGN_BYTES);
            let body = chunk
                .get(body_at..body_at.saturating_add(len))
                .ok_or("an entry runs past its chunk")?;
            self.add_entry(tag, id, body)?;
            at = (body_at + len).next_multiple_of(ALIGN_BYTES);
        }
        Ok(())
    }

    fn add_entry(&mut self, tag: u8, id: u64, body: &[u8]) -> Result<(), String> {
        if !self.header_seen && tag != TAG_HEADER {
            return Err("the snapshot does not open with its header".into());
        }
        match tag {
            TAG_HEADER if id == SNAPSHOT_VERSION && !self.header_seen => self.header_seen = true,
            TAG_HEADER => {
                return Err(format!(
                    "snapshot format {id} (this build reads {SNAPSHOT_VERSION})"
                ))
            }
            TAG_USER => {
                let u: User = decode(body)?;
                self.max_lsn = self.max_lsn.max(u.lsn);
                if self.state.users.insert(UserId(id), u).is_some() {
                    return Err(format!("user {id} twice"));
                }
            }
            TAG_CONV => {
                let c: Conv = decode(body)?;
                self.max_lsn = self.max_lsn.max(c.lsn);
                if self.state.convs.insert(ConvId(id), c).is_some() {
                    return Err(format!("conversation {id} twice"));
                }
            }
            TAG_META => {
                let m: Meta = decode(body)?;
                self.max_lsn = self.max_lsn.max(m.lsn);
                self.state.meta = m;
                self.meta_seen = true;
            }
            other => return Err(format!("unknown entry tag {other}")),
        }
        Ok(())
    }

    /// The restored state, ready for replay from the snapshot's start + 1.
    pub fn finish(mut self) -> Result<State, String> {
        if !self.meta_seen {
            return Err("the snapshot ends before its counters".into());
        }
        self.state.replay_floor = self.max_lsn;
        self.state.rebuild_derived();
        Ok(self.state)
    }
}
