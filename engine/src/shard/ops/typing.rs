//! `typing` on the conversation's home: the other members' devices hear it.
//!
//! Lives on: the conversation's home shard.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

use crate::machine::ids::{ConvId, ShardId, UserId};
use crate::machine::query::conv::others;
use crate::shard::error::ShardResult;
use crate::shard::mesh::{shard_of, tell, Mesh, ShardOp};
use crate::shard::runner::Shard;
use crate::wire::typing_event;

use super::deliver::Notify;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TypingState {
    Start,
    Stop,
}

impl TypingState {
    pub fn as_str(self) -> &'static str {
        match self {
            TypingState::Start => "start",
            TypingState::Stop => "stop",
        }
    }
}

pub struct Typing {
    pub conv: ConvId,
    pub user: UserId,
    pub state: TypingState,
}

impl ShardOp for Typing {
    type Reply = ();

    async fn run(self, shard: Rc<Shard>, mesh: Rc<dyn Mesh>) -> ShardResult<()> {
        // The members as the leader knows them (one removed a moment ago
        // through another node hears nothing).
        shard.settled().await?;
        let others = others(&shard.state(), self.conv, self.user)?;
        let event: Arc<str> = typing_event(self.conv, self.user, self.state.as_str()).into();
        let mut by_home: BTreeMap<ShardId, Vec<UserId>> = BTreeMap::new();
        for u in others {
            by_home.entry(shard_of(&*mesh, u.0)).or_default().push(u);
        }
        for (home, users) in by_home {
            let notify = Notify {
                users,
                event: event.clone(),
            };
            tell(&mesh, home, notify).await;
        }
        Ok(())
    }
}
