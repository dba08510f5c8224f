//! A call forwarded by a peer: decode it, run the command on this
//! replica if it leads the shard, and answer (refusals included).
//!
//! Lives on: the core of the call's group.

use std::rc::Rc;

use chat_replication::{GroupId, NodeId};
use tracing::warn;

use super::forward::{decode_forward, encode_answer, Answer, AnyReply, Work};
use super::replicator::Replicator;
use crate::shard::error::{unavailable, ShardResult};
use crate::shard::mesh::{Mesh, ShardOp};

use crate::shard::ops::otp::{RequestCode, Verify};
use crate::shard::Shard;

/// Runs forwarded work on this replica (which must lead: a write refuses
/// otherwise, and OTP work is only forwarded to the leader).
async fn run(shard: &Rc<Shard>, mesh: &Rc<dyn Mesh>, work: Work) -> ShardResult<AnyReply> {
    match work {
        Work::Command(cmd) => shard.write(mesh, |s, ctx| cmd.decide(s, ctx)).await,
        Work::OtpRequest { phone } => Ok(AnyReply::OtpCode(RequestCode { phone }.mint(shard)?)),
        Work::OtpVerify {
            phone,
            code,
            device_name,
        } => {
            let op = Verify {
                phone,
                code,
                device_name,
            };
            Ok(AnyReply::Linked(op.run(shard.clone(), mesh.clone()).await?))
        }
        Work::FetchLog { from, upto } => super::catch_up::serve_fetch(shard, from, upto).await,
        Work::BlobPut {
            sha256,
            size,
            at,
            bytes,
        } => {
            let r = shard
                .cluster()
                .ok_or_else(|| unavailable("not in a cluster"))?;
            let done = r
                .blobs
                .put(sha256, size, at, bytes)
                .await
                .map_err(unavailable)?;
            Ok(AnyReply::Bool(done))
        }
        Work::BlobGet { sha256, at, len } => {
            let r = shard
                .cluster()
                .ok_or_else(|| unavailable("not in a cluster"))?;
            crate::media::replica::serve_get(r.dir(), sha256, at, len).await
        }
        Work::Attached { user, devices } => {
            let mut here = shard.soft.borrow().devices_online(user);
            here.retain(|d| devices.contains(d));
            Ok(AnyReply::Devices(here))
        }
    }
}

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
                Some(shard) => match run(&shard, &r.mesh_handle(), f.work).await {
                    Ok(reply) => Answer::Done {
                        reply,
                        index: shard.committed().0,
                    },
                    Err(e) => Answer::Refused(e),
                },
            },
        };
        r.answer(from, id, encode_answer(&answer));
    })
    .detach();
}
