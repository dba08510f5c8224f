//! Messages as readers see them now: the stored message with its latest
//! edit's body, or marked deleted; and whether a disappearing message has
//! vanished. History, sync and (later) search read through here.
//!
//! Lives on: the conversation's home shard.

use std::sync::Arc;

use chat_log::Offset;

use super::error::{unavailable, ShardResult};
use super::runner::Shard;
use crate::machine::ids::{ConvId, Seq, UserId};
use crate::machine::records::{self, MessageRec, Rec, KIND_CHAT};
use crate::machine::state::{Changed, Version};

/// A message now: `message` holds the current body (deleted: none).
#[derive(Clone, Debug)]
pub struct Shown {
    pub message: Arc<MessageRec>,
    pub version: Version,
}

impl Shard {
    /// What `seq`'s edits and delete say of it, if it has any.
    pub fn changed(&self, conv: ConvId, seq: Seq) -> Option<Changed> {
        let state = self.state();
        state.convs.get(&conv)?.changes.get(&seq).copied()
    }

    /// Whether `sender`'s account was deleted (its messages in `conv`
    /// show deleted).
    pub fn erased(&self, conv: ConvId, sender: UserId) -> bool {
        let state = self.state();
        state
            .convs
            .get(&conv)
            .is_some_and(|c| c.erased.contains(&sender))
    }

    /// Whether `m` has vanished by `now` (a disappearing message older
    /// than the setting it was sent under).
    pub fn expired(&self, m: &MessageRec, now: crate::machine::ids::Millis) -> bool {
        let state = self.state();
        let expires = state
            .convs
            .get(&m.conv)
            .and_then(|c| c.expires(m.seq, m.ts));
        expires.is_some_and(|at| now >= at)
    }

    /// Message `seq` of `conv` as it reads now.
    pub async fn read_current(&self, conv: ConvId, seq: Seq) -> ShardResult<Shown> {
        let message = self.read_message(conv, seq).await?;
        if self.erased(conv, message.sender) {
            let mut now = (*message).clone();
            now.body.clear();
            now.media = None;
            let message = Arc::new(now);
            let version = Version::Deleted;
            return Ok(Shown { message, version });
        }
        let Some(changed) = self.changed(conv, seq) else {
            let version = Version::Original;
            return Ok(Shown { message, version });
        };
        let version = changed.version();
        let mut now = (*message).clone();
        match version {
            Version::Original => {}
            Version::Deleted => {
                now.body.clear();
                now.media = None;
            }
            Version::Edited(_) => {
                let (kind, body) = self.read_edit(conv, seq, changed.body_at).await?;
                (now.body_kind, now.body) = (kind, body);
            }
        }
        let message = Arc::new(now);
        Ok(Shown { message, version })
    }

    /// The body of the `MessageEdited` record of `conv`/`seq` at `at`.
    pub async fn read_edit(
        &self,
        conv: ConvId,
        seq: Seq,
        at: u64,
    ) -> ShardResult<(records::BodyKind, String)> {
        let record = self.log.read(Offset(at)).await.map_err(unavailable)?;
        if record.kind != KIND_CHAT {
            return Err(unavailable(format!("offset {at} holds no chat record")));
        }
        match records::decode(&record.payload).map_err(unavailable)? {
            Rec::MessageEdited {
                conv: c,
                seq: s,
                body_kind,
                body,
                ..
            } if (c, s) == (conv, seq) => Ok((body_kind, body)),
            _ => Err(unavailable(format!(
                "offset {at} does not hold an edit of {conv}/{}",
                seq.0
            ))),
        }
    }
}
