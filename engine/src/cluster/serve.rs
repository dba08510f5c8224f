//! A call forwarded by a peer: decode it, run the command on this
//! replica if it leads the shard, and answer (refusals included).
//!
//! Lives on: the core of the call's group.

use std::rc::Rc;

use chat_replication::{GroupId, NodeId};
use tracing::warn;

use super::forward::{decode_forward, encode_answer, Answer};
use super::replicator::Replicator;
use crate::shard::error::unavailable;

pub fn serve_call(r: Rc<Replicator>, from: NodeId, id: u64, group: GroupId, body: Vec<u8>) {
    glommio::spawn_local(async move {
        let answer = match decode_forward(&body) {
            Err(e) => {
                warn!(peer = from.0, error = %e, "malformed forwarded call");
                Answer::Refused(unavailable(format!("malformed call: {e}")))
            }
            Ok(f) if f.shard as u32 != group.0 => {
                Answer::Refused(unavailable("call names another shard"))
            }
            Ok(f) => match r.shard(group) {
                None => Answer::Refused(unavailable("no replica of this shard here")),
                Some(shard) => {
                    let mesh = r.mesh_handle();
                    let cmd = f.cmd;
                    match shard.write(&mesh, |s, ctx| cmd.decide(s, ctx)).await {
                        Ok(reply) => Answer::Done {
                            reply,
                            index: shard.committed().0,
                        },
                        Err(e) => Answer::Refused(e),
                    }
                }
            },
        };
        r.answer(from, id, encode_answer(&answer));
    })
    .detach();
}
