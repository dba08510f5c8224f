//! `message.send` on the conversation's home: sequence and store it (the
//! effect of the stored message fans it out once durable).
//!
//! Lives on: the conversation's home shard.

use std::rc::Rc;
use std::time::Instant;

use crate::machine::cmd::send::{Send, Sent};
use crate::machine::ids::{Millis, Seq};
use crate::shard::error::ShardResult;
use crate::shard::mesh::{Mesh, ShardOp};
use crate::shard::runner::Shard;

pub struct SendMessage {
    pub cmd: Send,
    /// When the sender's core received it (for send→delivered).
    pub started: Instant,
}

impl ShardOp for SendMessage {
    /// The message's seq and server time.
    type Reply = (Seq, Millis);

    async fn run(self, shard: Rc<Shard>, mesh: Rc<dyn Mesh>) -> ShardResult<(Seq, Millis)> {
        let (conv, started) = (self.cmd.conv, self.started);
        let tagger = shard.clone();
        let sent = if shard.cluster().is_some() {
            shard.submit(&mesh, self.cmd).await?
        } else {
            shard
                .write(&mesh, |state, ctx| {
                    let decision = self.cmd.decide(state, ctx)?;
                    if let Sent::New { seq, .. } = decision.reply {
                        tagger.note_started(conv, seq, started);
                    }
                    Ok(decision)
                })
                .await?
        };
        match sent {
            Sent::New { seq, ts } => Ok((seq, ts)),
            // The original may still be on its way to disk: reading it
            // waits until it is durable.
            Sent::Duplicate { seq } => Ok((seq, shard.read_message(conv, seq).await?.ts)),
        }
    }
}
