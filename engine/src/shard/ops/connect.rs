//! A device's connection on its user's home: online/offline, and where the
//! device must catch up.
//!
//! Lives on: the user's home shard.

use std::rc::Rc;

use crate::machine::cmd::last_seen::LastSeen;
use crate::machine::error::DomainError;
use crate::machine::ids::{ConvId, DeviceId, Seq, UserId};
use crate::shard::conn::ConnRef;
use crate::shard::error::ShardResult;
use crate::shard::mesh::{Mesh, ShardOp};
use crate::shard::runner::Shard;
use crate::shard::soft::Online;

/// The connection authenticated: mark the device online; reply with the
/// conversations it has news in, and its delivered cursor in each.
pub struct Connect {
    pub user: UserId,
    pub device: DeviceId,
    pub conn: ConnRef,
}

impl Connect {
    fn plan(&self, shard: &Shard) -> Result<Vec<(ConvId, Seq)>, DomainError> {
        let state = shard.state();
        let d = state
            .users
            .get(&self.user)
            .and_then(|u| u.devices.get(&self.device))
            .ok_or(DomainError::DeviceRevoked)?;
        let soft = shard.soft.borrow();
        let Some(pointers) = soft.pointers.get(&self.user) else {
            return Ok(Vec::new());
        };
        let mut plan: Vec<(ConvId, Seq)> = pointers
            .values()
            .map(|p| {
                let cursor = d.cursors.get(&p.conv).map_or(p.joined, |c| c.delivered);
                (p, cursor.max(p.joined))
            })
            // Large groups do not move pointers per message: their news is
            // pulled at sync.
            .filter(|(p, cursor)| p.last_seq > *cursor || p.large)
            .map(|(p, cursor)| (p.conv, cursor))
            .collect();
        // The same order on every run (the map's is not).
        plan.sort_unstable();
        Ok(plan)
    }
}

impl ShardOp for Connect {
    type Reply = Vec<(ConvId, Seq)>;

    async fn run(self, shard: Rc<Shard>, mesh: Rc<dyn Mesh>) -> ShardResult<Self::Reply> {
        // In cluster mode this replica may trail the leader: a device made
        // a moment ago on another node, or news in a conversation, must be
        // here before the plan is read.
        shard.settled().await?;
        let plan = self.plan(&shard)?;
        let first = {
            let mut soft = shard.soft.borrow_mut();
            let first = !soft.is_online(self.user);
            let online = Online {
                device: self.device,
                conn: self.conn,
            };
            soft.online.entry(self.user).or_default().push(online);
            if first {
                for conv in soft.convs_of(self.user) {
                    soft.online_by_conv.entry(conv).or_default().push(self.user);
                }
            }
            first
        };
        if first {
            super::presence::changed(&shard, &mesh, self.user, true, None).await;
        }
        Ok(plan)
    }
}

/// The connection ended; the user's last one going records `last_seen`
/// (whose effect tells the watchers).
pub struct Disconnect {
    pub user: UserId,
    pub device: DeviceId,
    pub conn: ConnRef,
}

impl ShardOp for Disconnect {
    type Reply = ();

    async fn run(self, shard: Rc<Shard>, mesh: Rc<dyn Mesh>) -> ShardResult<()> {
        let now_offline = {
            let mut soft = shard.soft.borrow_mut();
            let Some(online) = soft.online.get_mut(&self.user) else {
                return Ok(());
            };
            online.retain(|o| !(o.conn == self.conn && o.device == self.device));
            let empty = online.is_empty();
            if empty {
                soft.online.remove(&self.user);
                for conv in soft.convs_of(self.user) {
                    soft.leave_conv(conv, self.user);
                }
            }
            empty
        };
        if now_offline {
            let cmd = LastSeen { user: self.user };
            shard.submit(&mesh, cmd).await?;
        }
        Ok(())
    }
}
