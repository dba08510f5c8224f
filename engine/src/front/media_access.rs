//! Who may read an upload (PROTOCOL.md "Media"): its uploader, and the
//! members of a conversation holding a message that names it. The
//! uploader's home knows the conversations; each conversation's home
//! knows its members, so the front asks both.
//!
//! Lives on: every core (the one that serves the request or event).

use std::rc::Rc;

use chat_net::protocol::ApiError;

use super::errors::api_error;
use crate::machine::cmd::share_media::ShareMedia;
use crate::machine::error::DomainError;
use crate::machine::ids::{ConvId, MediaId, UserId};
use crate::machine::state::{Media, MediaRef};
use crate::node::core::Core;
use crate::shard::error::ShardResult;
use crate::shard::mesh::call;
use crate::shard::ops::media::{Describe, IsMember, Share};

/// The upload, if `reader` may read it; else `DomainError::NoMedia`
/// (whether or not it exists).
pub async fn readable(core: &Rc<Core>, reader: UserId, id: MediaId) -> ShardResult<Media> {
    let mesh = core.mesh();
    let gone = || DomainError::NoMedia(id.to_string()).into();
    let media = call(&mesh, core.shard_of(id.user.0), Describe(id))
        .await?
        .ok_or_else(gone)?;
    if reader == id.user || member_of_any(core, reader, &media).await?.is_some() {
        return Ok(media);
    }
    Err(gone())
}

/// A conversation holding `media` that `user` is a member of.
async fn member_of_any(
    core: &Rc<Core>,
    user: UserId,
    media: &Media,
) -> ShardResult<Option<ConvId>> {
    let mesh = core.mesh();
    for &conv in &media.convs {
        if call(&mesh, core.shard_of(conv.0), IsMember { conv, user }).await? {
            return Ok(Some(conv));
        }
    }
    Ok(None)
}

/// `message.send` names `media_id`: checked (`bad_request` when the
/// sender may not name it), recorded as held by `conv`, and described
/// as the message will show it (its record's string).
pub async fn share_for_send(
    core: &Rc<Core>,
    by: UserId,
    conv: ConvId,
    media_id: &str,
) -> Result<String, ApiError> {
    let no_media = || ApiError::bad_request(format!("no media {media_id} that you may send"));
    let id = MediaId::parse(media_id).ok_or_else(no_media)?;
    let mesh = core.mesh();
    let member = IsMember { conv, user: by };
    if !call(&mesh, core.shard_of(conv.0), member)
        .await
        .map_err(api_error)?
    {
        return Err(api_error(DomainError::NotMember(conv).into()));
    }
    let via = if by == id.user {
        None
    } else {
        let media = call(&mesh, core.shard_of(id.user.0), Describe(id))
            .await
            .map_err(api_error)?
            .ok_or_else(no_media)?;
        if media.convs.contains(&conv) {
            None
        } else {
            let via = member_of_any(core, by, &media).await.map_err(api_error)?;
            Some(via.ok_or_else(no_media)?)
        }
    };
    let share = Share(ShareMedia {
        media: id,
        by,
        conv,
        via,
    });
    match call(&mesh, core.shard_of(id.user.0), share).await {
        Ok(r) => Ok(MediaRef::encode(&r)),
        Err(crate::shard::error::ShardError::Domain(DomainError::NoMedia(_))) => Err(no_media()),
        Err(e) => Err(api_error(e)),
    }
}
