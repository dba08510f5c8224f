//! Why the machine refused a command or a query: a typed value the front
//! end turns into a protocol error (`front/errors.rs`), never a panic.
//!
//! Lives on: every core (plain values; they cross the mesh in replies).

use crate::machine::ids::{ConvId, DeviceId, Seq, UserId};

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum DomainError {
    /// The conversation does not exist, or the caller is not in it (the
    /// two are not told apart: existence is not revealed).
    NoConversation(ConvId),
    /// A socket event names a conversation the caller is not in.
    NotMember(ConvId),
    NoUser(UserId),
    NoUserWithPhone,
    NoDevice(DeviceId),
    /// A member operation names a user who is not in the group.
    NotAMember(UserId),
    NoMessage {
        conv: ConvId,
        seq: Seq,
    },
    /// `reply_to` names no message of the conversation.
    BadReplyTo {
        conv: ConvId,
        reply_to: u64,
    },
    AdminsOnly,
    DirectHasNoAdmins,
    CannotLeaveDirect,
    GroupFull {
        max: usize,
    },
    LastAdmin,
    TooManyDevices {
        max: usize,
    },
    /// An edit by someone other than the message's sender, or a delete by
    /// someone neither its sender nor a group admin.
    NotAuthor,
    /// An edit past `--edit-window-seconds` after the message's `ts`.
    EditWindowPassed {
        seconds: u64,
    },
    /// An edit of a deleted message.
    MessageDeleted,
    /// An edit beyond the most a message may have.
    TooManyEdits {
        max: u8,
    },
    /// A key upload that contradicts what is stored (another identity
    /// key, a reused key id, too many prekeys stored).
    KeyConflict(String),
    /// A key upload that is not complete (no signed prekey yet).
    BadKeys(String),
    TokenMalformed,
    TokenUnknown,
    TokenExpired,
    DeviceRevoked,
    /// The account behind a request is gone (the request is refused as
    /// unauthorized).
    AccountGone,
    /// The account a profile call names is gone.
    UserGone,
    /// OTP: a wrong, used or expired code.
    WrongCode,
    /// Media the caller may not read, or that does not exist (the same
    /// answer for both: it must not tell which).
    NoMedia(String),
    /// An account holds at most this many uploads.
    TooManyMedia {
        max: usize,
    },
    /// One upload is named in at most this many conversations.
    MediaTooWidelyShared {
        max: usize,
    },
    /// OTP: too many tries of one code, or too many codes for one phone.
    RateLimited {
        retry_after_ms: u64,
    },
}
