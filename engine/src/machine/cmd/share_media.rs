//! `message.send` with `media`: before the message is written, the
//! uploader's home records that the conversation may read the media, and
//! answers what the message will say of it.
//!
//! Who may name media in a message: its uploader, or a member of a
//! conversation that already holds it (forwarding). The second is proved
//! by the shell (membership lives on the conversation's home): `via` is a
//! conversation it checked the sender is a member of.

use crate::constants::MEDIA_CONVS_MAX;
use crate::machine::ctx::Ctx;
use crate::machine::effects::Effects;
use crate::machine::error::DomainError;
use crate::machine::ids::{ConvId, MediaId, UserId};
use crate::machine::records::Rec;
use crate::machine::state::{Lsn, MediaRef, State};

use super::Decision;

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShareMedia {
    pub media: MediaId,
    pub by: UserId,
    pub conv: ConvId,
    pub via: Option<ConvId>,
}

impl ShareMedia {
    pub fn decide(self, state: &State, _ctx: &Ctx) -> Result<Decision<MediaRef>, DomainError> {
        let id = self.media;
        let m = state
            .users
            .get(&id.user)
            .and_then(|u| u.media.get(&id.n))
            .ok_or(DomainError::NoMedia(id.to_string()))?;
        let may = self.by == id.user
            || m.convs.contains(&self.conv)
            || self.via.is_some_and(|v| m.convs.contains(&v));
        if !may {
            return Err(DomainError::NoMedia(id.to_string()));
        }
        let reply = MediaRef {
            id,
            size: m.size,
            sha256: m.sha256,
            mime: m.mime.clone(),
        };
        if m.convs.contains(&self.conv) {
            return Ok(Decision::nothing(reply));
        }
        if m.convs.len() >= MEDIA_CONVS_MAX {
            return Err(DomainError::MediaTooWidelyShared {
                max: MEDIA_CONVS_MAX,
            });
        }
        let rec = Rec::MediaShared {
            user: id.user,
            n: id.n,
            conv: self.conv,
        };
        Ok(Decision::write(vec![rec], reply))
    }
}

pub fn apply(state: &mut State, user: UserId, n: u64, conv: ConvId, at: Lsn) -> Effects {
    let Some(u) = state.user_at(user, at) else {
        return Effects::new();
    };
    let m = u.media.get_mut(&n).expect("a shared media exists");
    assert!(m.convs.insert(conv), "a conversation is added once");
    assert!(m.convs.len() <= MEDIA_CONVS_MAX);
    Effects::new()
}
