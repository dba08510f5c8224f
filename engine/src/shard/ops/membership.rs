//! What a user's home knows of the user's conversations (soft pointers):
//! joins and leaves announced by the conversations' homes, and the
//! startup announcement of every membership.
//!
//! Lives on: `Joined`/`Left` on the user's home; `Announce` on each
//! conversation shard at startup.

use std::rc::Rc;

use crate::machine::ids::{ConvId, UserId};
use crate::machine::state::ConvPointer;
use crate::shard::error::ShardResult;
use crate::shard::mesh::{shard_of, tell, Mesh, ShardOp};
use crate::shard::runner::Shard;

/// The user is a member of this conversation (startup and joins).
pub struct Joined {
    pub user: UserId,
    pub info: ConvPointer,
}

impl ShardOp for Joined {
    type Reply = ();

    async fn run(self, shard: Rc<Shard>, _mesh: Rc<dyn Mesh>) -> ShardResult<()> {
        let mut info = self.info;
        let mut soft = shard.soft.borrow_mut();
        let online = soft.is_online(self.user);
        let pointers = soft.pointers.entry(self.user).or_default();
        if let Some(p) = pointers.get(&info.conv) {
            if p.last_seq > info.last_seq {
                (info.last_seq, info.last_ts) = (p.last_seq, p.last_ts);
                info.last_from = p.last_from;
            }
            info.own_last = info.own_last.max(p.own_last);
        }
        let (conv, large) = (info.conv, info.large);
        let new = pointers.insert(conv, info).is_none();
        soft.set_large_member(conv, self.user, large);
        if new && online {
            soft.online_by_conv.entry(conv).or_default().push(self.user);
        }
        Ok(())
    }
}

/// The user is no longer a member.
pub struct Left {
    pub user: UserId,
    pub conv: ConvId,
}

impl ShardOp for Left {
    type Reply = ();

    async fn run(self, shard: Rc<Shard>, _mesh: Rc<dyn Mesh>) -> ShardResult<()> {
        let mut soft = shard.soft.borrow_mut();
        if let Some(p) = soft.pointers.get_mut(&self.user) {
            p.remove(&self.conv);
        }
        soft.leave_conv(self.conv, self.user);
        soft.set_large_member(self.conv, self.user, false);
        Ok(())
    }
}

/// Startup: every membership of this shard, to the users' homes.
pub struct Announce;

impl ShardOp for Announce {
    type Reply = ();

    async fn run(self, shard: Rc<Shard>, mesh: Rc<dyn Mesh>) -> ShardResult<()> {
        let large = shard.config.fanout_on_read_members;
        let joins: Vec<Joined> = {
            let state = shard.state();
            state
                .convs
                .iter()
                .flat_map(|(id, c)| {
                    c.members.keys().map(move |u| Joined {
                        user: *u,
                        info: c.pointer(*id, *u, large),
                    })
                })
                .collect()
        };
        for join in joins {
            tell(&mesh, shard_of(&*mesh, join.user.0), join).await;
        }
        Ok(())
    }
}
