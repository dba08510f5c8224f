//! Peer frames: what travels on a link between two nodes' cores.
//!
//! ```text
//! u32 body length (LE) | u8 version | u8 kind | u16 zero | u32 CRC32 of body | body
//! ```
//! Kinds: `Hello` (the first frame on a link: cluster id, sender node and
//! core), `Raft` (a batch of raft messages, each with its group), and
//! `Call`/`Answer` (an opaque request for a group's leader and its reply,
//! matched by id: the shell forwards work with them). Peer
//! bytes are untrusted: every length is bounded before anything is
//! allocated, and a bad frame is an error that closes the link, never a
//! panic. Plain functions; any core.

use protobuf::Message as _;
use raft::eraftpb::Message;

use crate::constants::{
    FRAME_BODY_SIZE_BYTES_MAX, FRAME_HEADER_SIZE_BYTES, FRAME_MESSAGES_MAX, FRAME_VERSION,
};
use crate::ids::{GroupId, NodeId};

const KIND_HELLO: u8 = 1;
const KIND_RAFT: u8 = 2;
const KIND_CALL: u8 = 3;
const KIND_ANSWER: u8 = 4;

/// A decoded peer frame.
#[derive(Clone, Debug, PartialEq)]
pub enum Frame {
    Hello {
        cluster: u64,
        node: NodeId,
        core: u32,
    },
    Raft(Vec<(GroupId, Message)>),
    /// Work for `group`'s leader; `id` names the caller's wait.
    Call {
        id: u64,
        group: GroupId,
        body: Vec<u8>,
    },
    /// The reply to the call `id`.
    Answer {
        id: u64,
        body: Vec<u8>,
    },
}

/// Why a peer's bytes were refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameError {
    TooLarge(usize),
    Version(u8),
    Kind(u8),
    Reserved,
    Crc,
    Malformed(&'static str),
    Message(String),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::TooLarge(n) => write!(
                f,
                "frame body of {n} bytes over {FRAME_BODY_SIZE_BYTES_MAX}"
            ),
            FrameError::Version(v) => write!(f, "frame version {v}, expected {FRAME_VERSION}"),
            FrameError::Kind(k) => write!(f, "unknown frame kind {k}"),
            FrameError::Reserved => write!(f, "reserved header bytes not zero"),
            FrameError::Crc => write!(f, "frame CRC mismatch"),
            FrameError::Malformed(why) => write!(f, "malformed frame: {why}"),
            FrameError::Message(why) => write!(f, "bad raft message: {why}"),
        }
    }
}

impl std::error::Error for FrameError {}

/// Appends one frame to `out`.
pub fn encode(frame: &Frame, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; FRAME_HEADER_SIZE_BYTES]);
    let kind = match frame {
        Frame::Hello {
            cluster,
            node,
            core,
        } => {
            out.extend_from_slice(&cluster.to_le_bytes());
            out.extend_from_slice(&node.0.to_le_bytes());
            out.extend_from_slice(&core.to_le_bytes());
            KIND_HELLO
        }
        Frame::Raft(msgs) => {
            assert!(
                msgs.len() <= FRAME_MESSAGES_MAX,
                "batch of {} messages",
                msgs.len()
            );
            out.extend_from_slice(&(msgs.len() as u32).to_le_bytes());
            for (group, m) in msgs {
                let bytes = m.write_to_bytes().expect("raft messages always encode");
                out.extend_from_slice(&group.0.to_le_bytes());
                out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
                out.extend_from_slice(&bytes);
            }
            KIND_RAFT
        }
        Frame::Call { id, group, body } => {
            out.extend_from_slice(&id.to_le_bytes());
            out.extend_from_slice(&group.0.to_le_bytes());
            out.extend_from_slice(body);
            KIND_CALL
        }
        Frame::Answer { id, body } => {
            out.extend_from_slice(&id.to_le_bytes());
            out.extend_from_slice(body);
            KIND_ANSWER
        }
    };
    let body_len = out.len() - start - FRAME_HEADER_SIZE_BYTES;
    assert!(
        body_len <= FRAME_BODY_SIZE_BYTES_MAX,
        "frame body {body_len} over the limit"
    );
    let crc = crc32fast::hash(&out[start + FRAME_HEADER_SIZE_BYTES..]);
    let header = &mut out[start..start + FRAME_HEADER_SIZE_BYTES];
    header[0..4].copy_from_slice(&(body_len as u32).to_le_bytes());
    header[4] = FRAME_VERSION;
    header[5] = kind;
    header[8..12].copy_from_slice(&crc.to_le_bytes());
}

/// Decodes the first frame of `buf`: `Ok(None)` when more bytes are
/// needed, else the frame and how many bytes it took.
/// Splits raft messages for one peer into batches that each fit one
/// `Frame::Raft` (body ≤ `FRAME_BODY_SIZE_BYTES_MAX`, ≤ `FRAME_MESSAGES_MAX`
/// messages), in order. A follower far behind gets many full appends in one
/// Ready; one frame for all of them would go over the limit.
pub fn raft_batches(msgs: Vec<(GroupId, Message)>) -> Vec<Vec<(GroupId, Message)>> {
    let mut out: Vec<Vec<(GroupId, Message)>> = Vec::new();
    let mut bytes = usize::MAX;
    for (group, m) in msgs {
        let size = RAFT_MESSAGE_OVERHEAD_BYTES + m.compute_size() as usize;
        assert!(
            RAFT_BATCH_OVERHEAD_BYTES + size <= FRAME_BODY_SIZE_BYTES_MAX,
            "one raft message of {size} bytes exceeds a frame"
        );
        let full = out.last().is_none_or(|b| b.len() == FRAME_MESSAGES_MAX);
        if full || bytes + size > FRAME_BODY_SIZE_BYTES_MAX {
            out.push(Vec::new());
            bytes = RAFT_BATCH_OVERHEAD_BYTES;
        }
        bytes += size;
        out.last_mut().expect("pushed").push((group, m));
    }
    out
}

/// A raft batch's count; each message's group id and length.
const RAFT_BATCH_OVERHEAD_BYTES: usize = 4;
const RAFT_MESSAGE_OVERHEAD_BYTES: usize = 8;

pub fn decode(buf: &[u8]) -> Result<Option<(Frame, usize)>, FrameError> {
    if buf.len() < FRAME_HEADER_SIZE_BYTES {
        return Ok(None);
    }
    let len = u32::from_le_bytes(buf[0..4].try_into().expect("4 bytes")) as usize;
    if len > FRAME_BODY_SIZE_BYTES_MAX {
        return Err(FrameError::TooLarge(len));
    }
    if buf[4] != FRAME_VERSION {
        return Err(FrameError::Version(buf[4]));
    }
    if buf[6] != 0 || buf[7] != 0 {
        return Err(FrameError::Reserved);
    }
    let Some(body) = buf.get(FRAME_HEADER_SIZE_BYTES..FRAME_HEADER_SIZE_BYTES + len) else {
        return Ok(None);
    };
    let crc = u32::from_le_bytes(buf[8..12].try_into().expect("4 bytes"));
    if crc32fast::hash(body) != crc {
        return Err(FrameError::Crc);
    }
    let frame = match buf[5] {
        KIND_HELLO => decode_hello(body)?,
        KIND_RAFT => decode_raft(body)?,
        KIND_CALL => {
            let mut r = Reader(body);
            let (id, group) = (r.u64()?, GroupId(r.u32()?));
            Frame::Call {
                id,
                group,
                body: r.0.to_vec(),
            }
        }
        KIND_ANSWER => {
            let mut r = Reader(body);
            let id = r.u64()?;
            Frame::Answer {
                id,
                body: r.0.to_vec(),
            }
        }
        k => return Err(FrameError::Kind(k)),
    };
    Ok(Some((frame, FRAME_HEADER_SIZE_BYTES + len)))
}

fn decode_hello(body: &[u8]) -> Result<Frame, FrameError> {
    let mut r = Reader(body);
    let cluster = r.u64()?;
    let node = NodeId(r.u64()?);
    let core = r.u32()?;
    if !r.0.is_empty() {
        return Err(FrameError::Malformed("bytes after hello"));
    }
    if node.0 == 0 {
        return Err(FrameError::Malformed("node id 0"));
    }
    Ok(Frame::Hello {
        cluster,
        node,
        core,
    })
}

fn decode_raft(body: &[u8]) -> Result<Frame, FrameError> {
    let mut r = Reader(body);
    let count = r.u32()? as usize;
    if count > FRAME_MESSAGES_MAX {
        return Err(FrameError::Malformed("too many messages"));
    }
    let mut msgs = Vec::with_capacity(count.min(body.len() / 8));
    for _ in 0..count {
        let group = GroupId(r.u32()?);
        let len = r.u32()? as usize;
        let bytes = r.take(len)?;
        let m = Message::parse_from_bytes(bytes).map_err(|e| FrameError::Message(e.to_string()))?;
        msgs.push((group, m));
    }
    if !r.0.is_empty() {
        return Err(FrameError::Malformed("bytes after the last message"));
    }
    Ok(Frame::Raft(msgs))
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], FrameError> {
        if self.0.len() < n {
            return Err(FrameError::Malformed("truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u32(&mut self) -> Result<u32, FrameError> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    fn u64(&mut self) -> Result<u64, FrameError> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use raft::eraftpb::{Entry, MessageType};

    fn sample() -> Frame {
        let mut m = Message::default();
        m.set_msg_type(MessageType::MsgAppend);
        m.to = 2;
        m.from = 1;
        m.term = 3;
        m.entries = vec![Entry {
            index: 7,
            term: 3,
            data: b"hello".to_vec().into(),
            ..Entry::default()
        }]
        .into();
        Frame::Raft(vec![(GroupId(4), m.clone()), (GroupId(0), m)])
    }

    #[test]
    fn many_full_appends_split_into_frames_that_fit() {
        let mut m = Message::default();
        m.set_msg_type(MessageType::MsgAppend);
        m.entries = vec![Entry {
            data: vec![7u8; 1024 * 1024].into(),
            ..Entry::default()
        }]
        .into();
        let msgs: Vec<(GroupId, Message)> = (0..40).map(|g| (GroupId(g), m.clone())).collect();
        let batches = raft_batches(msgs);
        assert!(batches.len() >= 5, "{} batches", batches.len());
        let mut next = 0;
        for batch in batches {
            let mut buf = Vec::new();
            for (g, _) in &batch {
                assert_eq!(g.0, next, "order kept");
                next += 1;
            }
            encode(&Frame::Raft(batch), &mut buf);
            assert!(buf.len() <= FRAME_HEADER_SIZE_BYTES + FRAME_BODY_SIZE_BYTES_MAX);
            assert!(decode(&buf).unwrap().is_some());
        }
        assert_eq!(next, 40);
        assert!(raft_batches(Vec::new()).is_empty());
    }

    #[test]
    fn frames_round_trip_and_split_reads_wait() {
        let mut buf = Vec::new();
        encode(
            &Frame::Hello {
                cluster: 9,
                node: NodeId(2),
                core: 1,
            },
            &mut buf,
        );
        encode(&sample(), &mut buf);
        let call = Frame::Call {
            id: 5,
            group: GroupId(3),
            body: b"x".to_vec(),
        };
        let answer = Frame::Answer {
            id: 5,
            body: Vec::new(),
        };
        let mut tail = Vec::new();
        encode(&call, &mut tail);
        encode(&answer, &mut tail);
        let (c, n) = decode(&tail).unwrap().unwrap();
        assert_eq!((c, decode(&tail[n..]).unwrap().unwrap().0), (call, answer));
        let (first, used) = decode(&buf).unwrap().unwrap();
        assert_eq!(
            first,
            Frame::Hello {
                cluster: 9,
                node: NodeId(2),
                core: 1
            }
        );
        assert_eq!(decode(&buf[used..used + 20]).unwrap(), None);
        let (second, used2) = decode(&buf[used..]).unwrap().unwrap();
        assert_eq!(second, sample());
        assert_eq!(used + used2, buf.len());
    }

    #[test]
    fn bad_headers_are_refused() {
        let mut buf = Vec::new();
        encode(&sample(), &mut buf);
        let mut v = buf.clone();
        v[4] = 9;
        assert_eq!(decode(&v), Err(FrameError::Version(9)));
        let mut v = buf.clone();
        v[5] = 77;
        assert_eq!(decode(&v), Err(FrameError::Kind(77)));
        let mut v = buf.clone();
        let last = v.len() - 1;
        v[last] ^= 1;
        assert_eq!(decode(&v), Err(FrameError::Crc));
        let mut v = buf.clone();
        v[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(decode(&v), Err(FrameError::TooLarge(_))));
    }

    /// A body with a valid CRC but lying lengths inside is refused.
    #[test]
    fn lying_inner_lengths_are_refused() {
        let body = [
            1u32.to_le_bytes(),
            0u32.to_le_bytes(),
            1000u32.to_le_bytes(),
        ]
        .concat();
        let mut buf = (body.len() as u32).to_le_bytes().to_vec();
        buf.extend_from_slice(&[FRAME_VERSION, KIND_RAFT, 0, 0]);
        buf.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
        buf.extend_from_slice(&body);
        assert_eq!(decode(&buf), Err(FrameError::Malformed("truncated")));
    }

    proptest! {
        /// Any bytes: an error, a wait, or a frame; never a panic.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode(&bytes);
        }

        /// Any single corruption of a valid frame is refused or waits.
        #[test]
        fn corrupted_frames_are_refused(pos in 0usize..200, bit in 0u8..8) {
            let mut buf = Vec::new();
            encode(&sample(), &mut buf);
            let pos = pos % buf.len();
            buf[pos] ^= 1 << bit;
            prop_assert!(!matches!(decode(&buf), Ok(Some((ref f, _))) if *f == sample() && pos >= 12));
        }
    }
}
