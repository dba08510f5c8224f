//! `message.edit` and `message.delete` on the conversation's home: read
//! the stored message (its sender and time never change), then decide on
//! the shard's leader like every other command.
//!
//! Lives on: the conversation's home shard.

use std::rc::Rc;

use crate::machine::cmd::delete::Delete;
use crate::machine::cmd::edit::{changeable, Edit, Edited, Target};
use crate::machine::ids::{ConvId, DeviceId, Seq, UserId};
use crate::machine::records::BodyKind;
use crate::shard::error::ShardResult;
use crate::shard::mesh::{Mesh, ShardOp};
use crate::shard::runner::Shard;

pub struct EditMessage {
    pub conv: ConvId,
    pub seq: Seq,
    pub by: (UserId, DeviceId),
    pub body_kind: BodyKind,
    pub body: String,
}

impl ShardOp for EditMessage {
    type Reply = Edited;

    async fn run(self, shard: Rc<Shard>, mesh: Rc<dyn Mesh>) -> ShardResult<Edited> {
        let target = target(&shard, self.conv, self.seq, self.by.0).await?;
        let cmd = Edit {
            conv: self.conv,
            seq: self.seq,
            by: self.by.0,
            device: self.by.1,
            body_kind: self.body_kind,
            body: self.body,
            target,
        };
        shard.submit(&mesh, cmd).await
    }
}

pub struct DeleteMessage {
    pub conv: ConvId,
    pub seq: Seq,
    pub by: (UserId, DeviceId),
}

impl ShardOp for DeleteMessage {
    type Reply = ();

    async fn run(self, shard: Rc<Shard>, mesh: Rc<dyn Mesh>) -> ShardResult<()> {
        let target = target(&shard, self.conv, self.seq, self.by.0).await?;
        let cmd = Delete {
            conv: self.conv,
            seq: self.seq,
            by: self.by.0,
            device: self.by.1,
            target,
        };
        shard.submit(&mesh, cmd).await
    }
}

/// The message a change names, read once this replica is up to date (a
/// member's check first: an outsider learns nothing of it).
async fn target(shard: &Shard, conv: ConvId, seq: Seq, by: UserId) -> ShardResult<Target> {
    shard.settled().await?;
    changeable(&shard.state(), conv, seq, by)?;
    let m = shard.read_message(conv, seq).await?;
    Ok(Target {
        sender: m.sender,
        ts: m.ts,
    })
}
