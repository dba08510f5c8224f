//! `POST /v1/media`, once the bytes are on disk: the upload becomes the
//! uploader's next media id.

use std::collections::BTreeSet;

use crate::constants::MEDIA_PER_USER_MAX;
use crate::machine::ctx::Ctx;
use crate::machine::effects::Effects;
use crate::machine::error::DomainError;
use crate::machine::ids::{MediaId, Millis, UserId};
use crate::machine::records::Rec;
use crate::machine::state::{Lsn, Media, State};

use super::Decision;

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct StoreMedia {
    pub user: UserId,
    pub sha256: [u8; 32],
    pub size: u64,
    pub mime: String,
}

impl StoreMedia {
    pub fn decide(self, state: &State, ctx: &Ctx) -> Result<Decision<MediaId>, DomainError> {
        let u = state
            .users
            .get(&self.user)
            .ok_or(DomainError::AccountGone)?;
        if u.media.len() >= MEDIA_PER_USER_MAX {
            return Err(DomainError::TooManyMedia {
                max: MEDIA_PER_USER_MAX,
            });
        }
        let n = u.media_minted + 1;
        let rec = Rec::MediaStored {
            user: self.user,
            n,
            sha256: self.sha256,
            size: self.size,
            mime: self.mime,
            ts: ctx.now,
        };
        let id = MediaId { user: self.user, n };
        Ok(Decision::write(vec![rec], id))
    }
}

/// A `MediaStored` record, as `apply` hands it over.
pub struct Stored<'a> {
    pub user: UserId,
    pub n: u64,
    pub sha256: [u8; 32],
    pub size: u64,
    pub mime: &'a str,
    pub ts: Millis,
}

pub fn apply(state: &mut State, s: Stored<'_>, at: Lsn) -> Effects {
    let Some(u) = state.user_at(s.user, at) else {
        return Effects::new();
    };
    assert_eq!(s.n, u.media_minted + 1, "media are numbered without gaps");
    u.media_minted = s.n;
    let media = Media {
        sha256: s.sha256,
        size: s.size,
        mime: s.mime.to_string(),
        created: s.ts,
        convs: BTreeSet::new(),
    };
    assert!(u.media.insert(s.n, media).is_none());
    Effects::new()
}
