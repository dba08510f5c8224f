//! `message.ack` / `message.read` on the user's home: the device's cursor
//! moves (never past what exists); the effect tells the conversation.
//!
//! Lives on: the user's home shard.

use std::rc::Rc;

use crate::machine::cmd::cursor::Cursor;
use crate::machine::error::DomainError;
use crate::machine::ids::{ConvId, DeviceId, Seq, UserId};
use crate::machine::records::Mark;
use crate::shard::error::ShardResult;
use crate::shard::mesh::{Mesh, ShardOp};
use crate::shard::runner::Shard;

pub struct MoveCursor {
    pub user: UserId,
    pub device: DeviceId,
    pub conv: ConvId,
    pub mark: Mark,
    pub seq: Seq,
}

impl ShardOp for MoveCursor {
    type Reply = ();

    async fn run(self, shard: Rc<Shard>, mesh: Rc<dyn Mesh>) -> ShardResult<()> {
        let (last, joined) = {
            let soft = shard.soft.borrow();
            let p = soft
                .pointers
                .get(&self.user)
                .and_then(|p| p.get(&self.conv))
                .ok_or(DomainError::NotMember(self.conv))?;
            (p.last_seq, p.joined)
        };
        let cmd = Cursor {
            user: self.user,
            device: self.device,
            conv: self.conv,
            mark: self.mark,
            seq: self.seq,
            last,
            joined,
        };
        shard.submit(&mesh, cmd).await
    }
}
