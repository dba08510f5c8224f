//! What cores say to each other: operations on a shard, their answers, and
//! the mesh envelope around them.
//!
//! Lives on: every core; values cross cores through the mesh rings (hence
//! `Send`: owned strings, `Arc<str>` for an event shared by many).

use std::sync::Arc;

use chat_net::protocol::{ApiError, Body, TypingState};
use serde_json::Value;

use crate::ids::{ConnId, ConnRef, ConvId, CoreId, DeviceId, Millis, Seq, ShardId, UserId};
use crate::records::{ConvKind, Mark, Privacy, Role};

/// An operation on one shard. Those marked "tell" want no answer.
#[derive(Debug)]
pub enum Op {
    // On the phone's (= the account's) home shard.
    OtpRequest {
        phone: String,
    },
    OtpVerify {
        phone: String,
        code: String,
        device_name: String,
    },
    LookupPhone {
        phone: String,
    },
    // On the user's home shard.
    Authenticate {
        token: String,
    },
    GetMe {
        user: UserId,
    },
    PatchMe {
        user: UserId,
        name: Option<String>,
        privacy: Option<Privacy>,
        read_receipts: Option<bool>,
    },
    RevokeDevice {
        user: UserId,
        device: DeviceId,
    },
    /// Answers `Missing` with the users of the list that do not exist.
    UsersExist {
        users: Vec<UserId>,
    },
    ListConvs {
        user: UserId,
    },
    /// A device's connection authenticated: mark it online, answer with
    /// the conversations it has missed messages in.
    Connect {
        user: UserId,
        device: DeviceId,
        conn: ConnRef,
    },
    /// Tell.
    Disconnect {
        user: UserId,
        device: DeviceId,
        conn: ConnRef,
    },
    /// A device acked or read up to `seq`.
    Cursor {
        user: UserId,
        device: DeviceId,
        conv: ConvId,
        mark: Mark,
        seq: Seq,
    },
    /// Tell: a durable message for these members (its home decides who).
    Deliver {
        users: Vec<UserId>,
        conv: ConvId,
        seq: Seq,
        ts: Millis,
        from: (UserId, DeviceId),
        event: Arc<str>,
        started: std::time::Instant,
    },
    /// Tell, to every shard: a durable message of a large group; each
    /// shard pushes it to the members it has online (fan-out on read).
    DeliverLarge {
        conv: ConvId,
        seq: Seq,
        ts: Millis,
        from: (UserId, DeviceId),
        event: Arc<str>,
        started: std::time::Instant,
    },
    /// Tell: an event for every online device of these users.
    Notify {
        users: Vec<UserId>,
        event: Arc<str>,
    },
    /// Tell: the user is a member of this conversation (startup and joins).
    Joined {
        user: UserId,
        info: ConvPointer,
    },
    /// Tell: the user is no longer a member.
    Left {
        user: UserId,
        conv: ConvId,
    },
    PresenceSubscribe {
        subject: UserId,
        subscriber: UserId,
        conn: ConnRef,
    },
    /// Tell.
    PresenceUnsubscribe {
        subject: UserId,
        conn: ConnRef,
    },
    // On the conversation's home shard.
    CreateDirect {
        a: UserId,
        b: UserId,
    },
    CreateGroup {
        creator: UserId,
        name: String,
        members: Vec<UserId>,
    },
    AddMember {
        conv: ConvId,
        by: UserId,
        user: UserId,
    },
    RemoveMember {
        conv: ConvId,
        by: UserId,
        user: UserId,
    },
    SetRole {
        conv: ConvId,
        by: UserId,
        user: UserId,
        role: Role,
    },
    Send(SendOp),
    /// Tell: a member's delivered/read watermark (from its user shard).
    Receipt {
        conv: ConvId,
        user: UserId,
        mark: Mark,
        seq: Seq,
        notify: bool,
    },
    Typing {
        conv: ConvId,
        user: UserId,
        state: TypingState,
    },
    History {
        conv: ConvId,
        user: UserId,
        before: Option<Seq>,
        after: Option<Seq>,
        limit: usize,
    },
    Receipts {
        conv: ConvId,
        user: UserId,
        seq: Seq,
    },
    /// Messages after `after` (for sync), at most `limit` examined; the
    /// device's own messages are skipped (it has them).
    Fetch {
        conv: ConvId,
        user: UserId,
        device: DeviceId,
        after: Seq,
        limit: usize,
    },
    ConvInfo {
        conv: ConvId,
        user: UserId,
    },
    /// Tell (startup): send `Joined` for every member of every conversation.
    Announce,
}

#[derive(Debug)]
pub struct SendOp {
    pub conv: ConvId,
    pub sender: UserId,
    pub device: DeviceId,
    pub client_msg_id: String,
    pub body: Body,
    pub media: Option<String>,
    pub reply_to: Option<u64>,
    /// When the sender's core received it (for send→sent/delivered).
    pub started: std::time::Instant,
}

/// What a user's home knows of one of its conversations.
#[derive(Clone, Debug)]
pub struct ConvPointer {
    pub conv: ConvId,
    pub kind: ConvKind,
    pub name: String,
    /// The other member of a direct conversation.
    pub peer: Option<UserId>,
    /// Seq before the user joined.
    pub joined: Seq,
    pub last_seq: Seq,
    pub last_ts: Millis,
    /// Over the fan-out-on-read size: members' pointers are not moved per
    /// message (only online ones'); readers pull `last_seq` from the home.
    pub large: bool,
    /// The user's own latest message here (counts as read).
    pub own_last: Seq,
}

/// A successful answer.
#[derive(Debug)]
pub enum Answer {
    Done,
    Json(Value),
    /// JSON text built without a `Value` (history pages).
    Raw(String),
    /// REST: 201 when created, 200 when it existed.
    Created {
        created: bool,
        body: Value,
    },
    ExpiresIn(u64),
    Verified {
        user: UserId,
        device: DeviceId,
        token: String,
    },
    Authenticated {
        user: UserId,
        device: DeviceId,
    },
    Missing(Vec<UserId>),
    /// `ListConvs`: the pointers, with the user's read position in each.
    /// `Connect`: `cursors` = where the device must catch up.
    Pointers {
        pointers: Vec<(ConvPointer, Seq)>,
        cursors: Vec<(ConvId, Seq)>,
    },
    Sent {
        seq: Seq,
        ts: Millis,
    },
    /// `through`: the last seq examined (events may skip some).
    Fetched {
        events: Vec<(Seq, Arc<str>)>,
        through: Seq,
        last_seq: Seq,
    },
    Pointer(ConvPointer),
}

pub type Reply = Result<Answer, ApiError>;

/// The envelope on the mesh rings.
#[derive(Debug)]
pub enum MeshMsg {
    Call {
        id: u64,
        from: CoreId,
        shard: ShardId,
        op: Op,
    },
    Tell {
        shard: ShardId,
        op: Op,
    },
    Reply {
        id: u64,
        reply: Reply,
    },
    /// Events for connections of the receiving core. `tag` names the
    /// message (conversation, seq) so a syncing connection can order it.
    Push {
        conns: Vec<ConnId>,
        event: Arc<str>,
        tag: Option<(ConvId, Seq)>,
        started: Option<std::time::Instant>,
    },
    /// Close a connection (its device was revoked).
    Close {
        conn: ConnId,
        code: u16,
        reason: &'static str,
    },
    /// This core has announced all its conversations (startup barrier).
    Announced {
        from: CoreId,
    },
    /// Ask a core for its stats; it answers `StatsReply`.
    StatsRequest {
        id: u64,
        from: CoreId,
    },
    StatsReply {
        id: u64,
        stats: Box<crate::stats::CoreStats>,
    },
}
