//! What cores say to each other over the mesh rings, and the transport
//! behind a trait: glommio's full mesh of bounded SPSC rings in production,
//! in-thread queues in the simulation.
//!
//! Lives on: every core; `MeshMsg` values cross cores (hence `Send`).

use glommio::channels::channel_mesh::Senders;

use crate::machine::ids::ShardId;
use crate::node::stats::CoreStats;
use crate::shard::conn::{ConnId, CoreId};
use crate::shard::mesh::{Completion, Job, Push};
use crate::shard::storage::LocalBoxFuture;

/// The envelope on the rings.
pub enum MeshMsg {
    /// Run an operation on a shard of the receiving core.
    Run {
        shard: ShardId,
        job: Job,
    },
    /// A call's reply, handed to the caller on the receiving core.
    Complete(Completion),
    /// Events for connections of the receiving core.
    Push(Push),
    /// Close a connection (its device was revoked).
    Close {
        conn: ConnId,
        code: u16,
        reason: &'static str,
    },
    /// The sender has announced all its conversations (startup barrier).
    Announced,
    /// Ask a core for its stats; it answers `StatsReply`.
    StatsRequest {
        id: u64,
        from: CoreId,
    },
    StatsReply {
        id: u64,
        stats: Box<CoreStats>,
    },
}

/// The peer has gone (only at shutdown).
#[derive(Debug)]
pub struct Gone;

/// Sends to another core, waiting while its ring is full.
pub trait Transport {
    fn send(&self, to: CoreId, msg: MeshMsg) -> LocalBoxFuture<'_, Result<(), Gone>>;
}

/// glommio's channel mesh.
pub struct Rings(pub Senders<MeshMsg>);

impl Transport for Rings {
    fn send(&self, to: CoreId, msg: MeshMsg) -> LocalBoxFuture<'_, Result<(), Gone>> {
        Box::pin(async move { self.0.send_to(to.0 as usize, msg).await.map_err(|_| Gone) })
    }
}
