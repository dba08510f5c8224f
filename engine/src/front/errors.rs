//! Domain and storage errors as protocol errors: the code and the exact
//! message clients see (PROTOCOL.md "Errors").
//!
//! Lives on: every core (pure functions).

use chat_net::protocol::{ApiError, ErrorCode};

use crate::machine::error::DomainError;
use crate::shard::error::ShardError;

pub fn api_error(e: ShardError) -> ApiError {
    match e {
        ShardError::Domain(d) => domain(d),
        ShardError::Unavailable(why) => ApiError::new(
            ErrorCode::Unavailable,
            format!("storage unavailable: {why}"),
        ),
    }
}

impl From<ShardError> for FrontError {
    fn from(e: ShardError) -> FrontError {
        FrontError(api_error(e))
    }
}

/// An `ApiError` that `?` can make from a `ShardError` (the two crates'
/// types meet here only).
pub struct FrontError(pub ApiError);

impl From<ApiError> for FrontError {
    fn from(e: ApiError) -> FrontError {
        FrontError(e)
    }
}

fn domain(e: DomainError) -> ApiError {
    use DomainError as D;
    use ErrorCode as C;
    let (code, message) = match e {
        D::NoConversation(conv) => (C::NotFound, format!("no conversation {conv}")),
        D::NotMember(conv) => (C::NotMember, format!("not a member of {conv}")),
        D::NoUser(user) => (C::NotFound, format!("no user {user}")),
        D::NoUserWithPhone => (C::NotFound, "no user with that phone".into()),
        D::NoDevice(device) => (C::NotFound, format!("no device {device}")),
        D::NotAMember(user) => (C::NotFound, format!("{user} is not a member")),
        D::NoMessage { conv, seq } => (C::NotFound, format!("no message {} in {conv}", seq.0)),
        D::BadReplyTo { conv, reply_to } => (
            C::BadRequest,
            format!("reply_to {reply_to} names no message of {conv}"),
        ),
        D::AdminsOnly => (C::Forbidden, "admins only".into()),
        D::DirectHasNoAdmins => (C::Forbidden, "a direct conversation has no admins".into()),
        D::CannotLeaveDirect => (
            C::Forbidden,
            "one cannot leave a direct conversation".into(),
        ),
        D::GroupFull { max } => (C::Conflict, format!("a group has at most {max} members")),
        D::LastAdmin => (C::Conflict, "a group keeps at least one admin".into()),
        D::TooManyDevices { max } => (C::Conflict, format!("at most {max} devices per account")),
        D::NotAuthor => (
            C::Forbidden,
            "only its sender (or a group admin, to delete) may".into(),
        ),
        D::EditWindowPassed { seconds } => (
            C::Forbidden,
            format!("a message may be edited within {seconds} s of its ts"),
        ),
        D::MessageDeleted => (C::Forbidden, "the message is deleted".into()),
        D::TooManyEdits { max } => (C::Conflict, format!("a message may be edited {max} times")),
        D::KeyConflict(why) => (C::Conflict, why),
        D::BadKeys(why) => (C::BadRequest, why),
        D::TokenMalformed => (C::Unauthorized, "malformed token".into()),
        D::TokenUnknown => (C::Unauthorized, "unknown or revoked token".into()),
        D::TokenExpired => (C::Unauthorized, "token expired".into()),
        D::DeviceRevoked => (C::Unauthorized, "device revoked".into()),
        D::AccountGone => (C::Unauthorized, "no such user".into()),
        D::UserGone => (C::NotFound, "no such user".into()),
        D::WrongCode => (C::Unauthorized, "wrong, used or expired code".into()),
        D::NoMedia(id) => (C::NotFound, format!("no media {id}")),
        D::TooManyMedia { max } => (
            C::Conflict,
            format!("an account holds at most {max} uploads"),
        ),
        D::MediaTooWidelyShared { max } => (
            C::Conflict,
            format!("one upload may be sent to at most {max} conversations (upload it again)"),
        ),
        D::RateLimited { retry_after_ms } => return ApiError::rate_limited(retry_after_ms),
    };
    ApiError::new(code, message)
}
