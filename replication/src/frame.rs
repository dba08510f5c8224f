//! Peer frames: what travels on a link between two nodes' cores.
//!
//! ```text
//! u32 body length (LE) | u8 version | u8 kind | u16 zero | u32 CRC32 of body | body
//! ```
//! Kinds: `Hello` (the first frame on a link: cluster id, sender node and
//! core; the accepting node answers an accepted hello with its own, and
//! only then does the dialer count the link as up), `Raft` (a batch of raft messages, each with its group; see
//! "Heartbeats" below), and
//! `Call`/`Answer` (an opaque request for a group's leader and its reply,
//! matched by id: the shell forwards work with them). Peer
//! bytes are untrusted: every length is bounded before anything is
//! allocated, and a bad frame is an error that closes the link, never a
//! panic. Plain functions; any core.
//!
//! Heartbeats: an idle cluster's traffic is one heartbeat and one response
//! per group per heartbeat interval, all of a peer's in one frame. A
//! heartbeat (or response) that carries nothing but from, to, term and
//! commit (no read-index context) travels as those four varints, about 10
//! bytes with its group and tag instead of about 20 as protobuf, and
//! decodes without the protobuf parser. Any other message is protobuf.
//!
//! ```text
//! raft batch: u32 count | count × (u32 group | u8 tag | message)
//! tag 0: u32 length | protobuf   tag 1/2: heartbeat/response, varints
//!                                from | to | term | commit
//! ```

use protobuf::Message as _;
use raft::eraftpb::{Message, MessageType};

use crate::constants::{
    FRAME_BODY_SIZE_BYTES_MAX, FRAME_HEADER_SIZE_BYTES, FRAME_MESSAGES_MAX, FRAME_VERSION,
};
use crate::ids::{GroupId, NodeId};

const KIND_HELLO: u8 = 1;
const KIND_RAFT: u8 = 2;
const KIND_CALL: u8 = 3;
const KIND_ANSWER: u8 = 4;

const TAG_PROTOBUF: u8 = 0;
const TAG_HEARTBEAT: u8 = 1;
const TAG_HEARTBEAT_RESPONSE: u8 = 2;

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
                out.extend_from_slice(&group.0.to_le_bytes());
                encode_message(m, out);
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

/// A raft batch's count; each message's group id, tag and length (the
/// compact heartbeats take less than their protobuf size: a bound).
const RAFT_BATCH_OVERHEAD_BYTES: usize = 4;
const RAFT_MESSAGE_OVERHEAD_BYTES: usize = 9;

/// The compact tag of a heartbeat (or response) with nothing but from,
/// to, term and commit set; `None` for every other message.
fn compact_tag(m: &Message) -> Option<u8> {
    let tag = match m.get_msg_type() {
        MessageType::MsgHeartbeat => TAG_HEARTBEAT,
        MessageType::MsgHeartbeatResponse => TAG_HEARTBEAT_RESPONSE,
        _ => return None,
    };
    (*m == heartbeat(m.get_msg_type(), m.from, m.to, m.term, m.commit)).then_some(tag)
}

fn heartbeat(kind: MessageType, from: u64, to: u64, term: u64, commit: u64) -> Message {
    let mut m = Message::default();
    m.set_msg_type(kind);
    (m.from, m.to, m.term, m.commit) = (from, to, term, commit);
    m
}

fn encode_message(m: &Message, out: &mut Vec<u8>) {
    if let Some(tag) = compact_tag(m) {
        out.push(tag);
        for v in [m.from, m.to, m.term, m.commit] {
            put_varint(v, out);
        }
        return;
    }
    let bytes = m.write_to_bytes().expect("raft messages always encode");
    out.push(TAG_PROTOBUF);
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(&bytes);
}

fn decode_message(r: &mut Reader<'_>) -> Result<Message, FrameError> {
    let kind = match r.take(1)?[0] {
        TAG_PROTOBUF => {
            let len = r.u32()? as usize;
            let bytes = r.take(len)?;
            return Message::parse_from_bytes(bytes)
                .map_err(|e| FrameError::Message(e.to_string()));
        }
        TAG_HEARTBEAT => MessageType::MsgHeartbeat,
        TAG_HEARTBEAT_RESPONSE => MessageType::MsgHeartbeatResponse,
        _ => return Err(FrameError::Malformed("unknown message tag")),
    };
    let (from, to, term, commit) = (r.varint()?, r.varint()?, r.varint()?, r.varint()?);
    Ok(heartbeat(kind, from, to, term, commit))
}

/// LEB128, 7 bits a byte, low first.
fn put_varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

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
        msgs.push((group, decode_message(&mut r)?));
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

    /// At most 10 bytes; bits past 64 are refused, not wrapped.
    fn varint(&mut self) -> Result<u64, FrameError> {
        let mut v = 0u64;
        for i in 0..10 {
            let b = self.take(1)?[0];
            let bits = u64::from(b & 0x7f);
            if i == 9 && bits > 1 {
                return Err(FrameError::Malformed("varint over 64 bits"));
            }
            v |= bits << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(FrameError::Malformed("varint over 10 bytes"))
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
        let mut body = [1u32.to_le_bytes(), 0u32.to_le_bytes()].concat();
        body.push(TAG_PROTOBUF);
        body.extend_from_slice(&1000u32.to_le_bytes());
        let mut buf = (body.len() as u32).to_le_bytes().to_vec();
        buf.extend_from_slice(&[FRAME_VERSION, KIND_RAFT, 0, 0]);
        buf.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
        buf.extend_from_slice(&body);
        assert_eq!(decode(&buf), Err(FrameError::Malformed("truncated")));
    }

    fn raft_frame_bytes(msgs: Vec<(GroupId, Message)>) -> Vec<u8> {
        let mut buf = Vec::new();
        encode(&Frame::Raft(msgs), &mut buf);
        buf
    }

    #[test]
    fn plain_heartbeats_travel_compact_and_come_back_equal() {
        let beat = heartbeat(MessageType::MsgHeartbeat, 1, 2, 7, 123_456);
        let answer = heartbeat(MessageType::MsgHeartbeatResponse, 2, 1, 7, u64::MAX);
        let msgs: Vec<(GroupId, Message)> = (0..256)
            .map(|g| (GroupId(g), if g % 2 == 0 { &beat } else { &answer }.clone()))
            .collect();
        let buf = raft_frame_bytes(msgs.clone());
        let (frame, used) = decode(&buf).unwrap().unwrap();
        assert_eq!((frame, used), (Frame::Raft(msgs), buf.len()));
        // 256 groups' heartbeats in about 3 KiB (protobuf: about 5 KiB).
        let per = (buf.len() - FRAME_HEADER_SIZE_BYTES - 4) / 256;
        assert!(per <= 16, "{per} bytes per heartbeat");
    }

    #[test]
    fn a_heartbeat_with_a_read_index_context_stays_protobuf() {
        let mut m = heartbeat(MessageType::MsgHeartbeat, 1, 3, 2, 9);
        m.context = b"read-7".to_vec().into();
        assert_eq!(compact_tag(&m), None);
        let mut r = heartbeat(MessageType::MsgHeartbeatResponse, 3, 1, 2, 9);
        r.reject = true;
        assert_eq!(compact_tag(&r), None);
        let msgs = vec![(GroupId(1), m), (GroupId(2), r)];
        let buf = raft_frame_bytes(msgs.clone());
        assert_eq!(decode(&buf).unwrap().unwrap().0, Frame::Raft(msgs));
    }

    #[test]
    fn varints_past_64_bits_are_refused() {
        for bad in [vec![0xff; 11], [vec![0xff; 9], vec![0x02]].concat()] {
            let mut body = [1u32.to_le_bytes(), 0u32.to_le_bytes()].concat();
            body.push(TAG_HEARTBEAT);
            body.extend_from_slice(&bad);
            let mut buf = (body.len() as u32).to_le_bytes().to_vec();
            buf.extend_from_slice(&[FRAME_VERSION, KIND_RAFT, 0, 0]);
            buf.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
            buf.extend_from_slice(&body);
            assert!(matches!(decode(&buf), Err(FrameError::Malformed(_))));
        }
    }

    proptest! {
        /// Every heartbeat field value round-trips.
        #[test]
        fn heartbeat_fields_round_trip(from in any::<u64>(), to in any::<u64>(), term in any::<u64>(), commit in any::<u64>()) {
            let m = heartbeat(MessageType::MsgHeartbeat, from, to, term, commit);
            let buf = raft_frame_bytes(vec![(GroupId(3), m.clone())]);
            prop_assert_eq!(decode(&buf).unwrap().unwrap().0, Frame::Raft(vec![(GroupId(3), m)]));
        }


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
