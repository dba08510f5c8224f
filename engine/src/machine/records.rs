//! The records of a shard's log: every durable change of chat state.
//!
//! Lives on: the shard's core. Made by the commands' `decide` (`cmd/`),
//! written by the shard runner, applied by `apply.rs`, read back by
//! recovery and by history and sync. Payloads are rkyv archives, validated
//! on every read.
//!
//! In-memory state is a function of these records (`apply`): replaying a
//! log rebuilds exactly what the live shard had. Every record carries the
//! times and ids it needs, so every replica applies it the same way.

use rkyv::{Archive, Deserialize, Serialize};

use crate::machine::ids::{ConvId, DeviceId, Millis, Seq, UserId};

/// The chat-log `Kind` of every record of the engine.
pub const KIND_CHAT: chat_log::Kind = chat_log::Kind(1);

#[derive(Archive, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub enum Privacy {
    Everyone,
    Contacts,
    Nobody,
}

impl Privacy {
    pub fn as_str(self) -> &'static str {
        match self {
            Privacy::Everyone => "everyone",
            Privacy::Contacts => "contacts",
            Privacy::Nobody => "nobody",
        }
    }

    pub fn parse(text: &str) -> Option<Privacy> {
        match text {
            "everyone" => Some(Privacy::Everyone),
            "contacts" => Some(Privacy::Contacts),
            "nobody" => Some(Privacy::Nobody),
            _ => None,
        }
    }
}

#[derive(Archive, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub enum ConvKind {
    Direct,
    Group,
}

impl ConvKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ConvKind::Direct => "direct",
            ConvKind::Group => "group",
        }
    }
}

#[derive(Archive, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub enum Role {
    Admin,
    Member,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "admin" => Some(Role::Admin),
            "member" => Some(Role::Member),
            _ => None,
        }
    }
}

/// Which watermark a cursor or receipt moves.
#[derive(Archive, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[rkyv(derive(Debug))]
pub enum Mark {
    Delivered,
    Read,
}

#[derive(Archive, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub enum BodyKind {
    Text,
    Ciphertext,
}

/// A device's signed prekey (E2EE): public parts only, base64 as the
/// client sent them.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct SignedPrekey {
    pub key_id: u64,
    pub public_key: String,
    pub signature: String,
}

/// A stored message: everything `message.new` and history show.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct MessageRec {
    pub conv: ConvId,
    pub seq: Seq,
    pub sender: UserId,
    pub device: DeviceId,
    pub client_msg_id: String,
    pub ts: Millis,
    pub body_kind: BodyKind,
    pub body: String,
    pub media: Option<String>,
    pub reply_to: Option<u64>,
}

/// One durable change. User-side records live in the user's home shard,
/// conversation-side records in the conversation's home shard.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub enum Rec {
    /// A phone number's first verify made an account.
    UserCreated {
        user: UserId,
        phone: String,
        ts: Millis,
    },
    /// A verify linked a device; its cursors start at the ends given.
    DeviceLinked {
        user: UserId,
        device: DeviceId,
        name: String,
        token_hash: [u8; 32],
        expires: Millis,
        ts: Millis,
        cursors: Vec<(ConvId, Seq)>,
    },
    DeviceRevoked {
        user: UserId,
        device: DeviceId,
    },
    ProfileSet {
        user: UserId,
        name: Option<String>,
        privacy: Option<Privacy>,
        read_receipts: Option<bool>,
    },
    /// A device acked (delivered) or read up to `seq`.
    Cursor {
        user: UserId,
        device: DeviceId,
        conv: ConvId,
        mark: Mark,
        seq: Seq,
    },
    /// The user's last device went offline.
    LastSeen {
        user: UserId,
        ts: Millis,
    },
    ConvCreated {
        conv: ConvId,
        kind: ConvKind,
        name: String,
        members: Vec<(UserId, Role)>,
        ts: Millis,
    },
    MemberAdded {
        conv: ConvId,
        user: UserId,
        role: Role,
    },
    MemberRemoved {
        conv: ConvId,
        user: UserId,
    },
    RoleSet {
        conv: ConvId,
        user: UserId,
        role: Role,
    },
    Message(MessageRec),
    /// A member's delivered or read watermark advanced.
    Receipt {
        conv: ConvId,
        user: UserId,
        mark: Mark,
        seq: Seq,
        ts: Millis,
    },
    // New variants go last: a variant's place is its tag in the log.
    /// The sender gave message `seq` a new body (the record holds it; the
    /// message's own record stays as it was).
    MessageEdited {
        conv: ConvId,
        seq: Seq,
        by: UserId,
        device: DeviceId,
        ts: Millis,
        body_kind: BodyKind,
        body: String,
    },
    /// Message `seq` was deleted by its sender or a group admin.
    MessageDeleted {
        conv: ConvId,
        seq: Seq,
        by: UserId,
        device: DeviceId,
        ts: Millis,
    },
    /// Messages of `conv` sent from now on vanish `seconds` after their
    /// `ts` (0: they stay).
    DisappearingSet {
        conv: ConvId,
        by: UserId,
        seconds: u64,
    },
    /// A device uploaded keys: its identity key (the first time), a new
    /// signed prekey, more one-time prekeys `(key_id, public_key)`.
    KeysPut {
        user: UserId,
        device: DeviceId,
        identity_key: String,
        signed_prekey: Option<SignedPrekey>,
        one_time: Vec<(u64, String)>,
    },
    /// A key fetch handed out these one-time prekeys (each the front one
    /// of its device): they are never handed out again.
    PrekeysTaken {
        user: UserId,
        taken: Vec<(DeviceId, u64)>,
    },
    /// An upload's bytes are on disk (`media/`, by SHA-256; in a cluster
    /// on a majority of nodes): the uploader's `n`-th media.
    MediaStored {
        user: UserId,
        n: u64,
        sha256: [u8; 32],
        size: u64,
        mime: String,
        ts: Millis,
    },
    /// A message of `conv` is about to name the uploader's `n`-th media:
    /// the members of `conv` may read it.
    MediaShared {
        user: UserId,
        n: u64,
        conv: ConvId,
    },
    /// `DELETE /v1/me`, on the user's home: devices, keys, uploads, phone
    /// and name gone; the phone may sign up again as a new user.
    UserDeleted {
        user: UserId,
    },
    /// On a conversation's home, before `UserDeleted`: the user's
    /// messages there show deleted (it left the group first, if one).
    SenderErased {
        conv: ConvId,
        user: UserId,
    },
    /// `PUT /v1/devices/{id}/push`: the device's push token (`None`:
    /// removed); no other device of the user keeps the same token.
    PushTokenSet {
        user: UserId,
        device: DeviceId,
        token: Option<String>,
    },
    /// The push gateway took a notification of `conv` up to `seq` for
    /// these devices, and refused the tokens in `rejected` (removed).
    PushDone {
        user: UserId,
        conv: ConvId,
        seq: Seq,
        devices: Vec<DeviceId>,
        rejected: Vec<String>,
    },
}

/// Encodes a record, checked before it leaves: it must decode to itself.
pub fn encode(rec: &Rec) -> rkyv::util::AlignedVec {
    let bytes = rkyv::to_bytes::<rkyv::rancor::Error>(rec).expect("a record always serializes");
    debug_assert_eq!(decode_bytes(&bytes).as_ref(), Ok(rec));
    bytes
}

/// Decodes the payload of a `KIND_CHAT` record read back from the log,
/// validating the archive (bytes from disk are never trusted).
pub fn decode(bytes: &[u8]) -> Result<Rec, String> {
    decode_bytes(bytes)
}

fn decode_bytes(bytes: &[u8]) -> Result<Rec, String> {
    rkyv::from_bytes::<Rec, rkyv::rancor::Error>(bytes).map_err(|e| format!("invalid archive: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let rec = Rec::Message(MessageRec {
            conv: ConvId(7),
            seq: Seq(3),
            sender: UserId(1),
            device: DeviceId(2),
            client_msg_id: "abc".into(),
            ts: Millis(99),
            body_kind: BodyKind::Text,
            body: "héllo".into(),
            media: None,
            reply_to: Some(2),
        });
        let bytes = encode(&rec);
        assert_eq!(decode_bytes(&bytes).unwrap(), rec);
        assert!(decode_bytes(&bytes[..bytes.len() / 2]).is_err());
    }
}
