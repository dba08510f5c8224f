//! The shard's view of the rest of the node: run an operation on another
//! shard, push events to connections, close a connection. `node::Core`
//! implements it over glommio's mesh rings; the simulation over in-thread
//! queues. Operations are typed (`ShardOp`): a call returns the op's own
//! reply type, so no answer ever needs to be matched at run time.
//!
//! Lives on: each core has one (its `Core`); what crosses cores is a `Job`
//! (an op and where its reply goes: `Send` values only).

use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use futures_channel::oneshot;

use super::conn::{ConnId, ConnRef, CoreId};
use super::error::{unavailable, ShardResult};
use super::runner::Shard;
use super::storage::LocalBoxFuture;
use crate::machine::ids::{home_shard, ConvId, Seq, ShardId};

/// An operation that runs on the shard that owns what it names.
pub trait ShardOp: Send + 'static {
    type Reply: Send + 'static;
    /// Runs on `shard`'s own core.
    fn run(
        self,
        shard: Rc<Shard>,
        mesh: Rc<dyn Mesh>,
    ) -> impl Future<Output = ShardResult<Self::Reply>>;
}

/// Work for a shard on another core; it runs there and, for a call, ends
/// by sending a `Completion` back.
pub type Job = Box<dyn FnOnce(Rc<Shard>, Rc<dyn Mesh>) -> LocalBoxFuture<'static, ()> + Send>;
/// Run on the caller's core: hands the reply to the waiting task.
pub type Completion = Box<dyn FnOnce() + Send>;

/// Events for connections of one core. `tag` names the message
/// (conversation, seq) so that a syncing connection can order it.
#[derive(Debug)]
pub struct Push {
    pub conns: Vec<ConnId>,
    pub event: Arc<str>,
    pub tag: Option<(ConvId, Seq)>,
    pub started: Option<Instant>,
}

pub trait Mesh {
    fn core(&self) -> CoreId;
    fn shards(&self) -> u16;
    /// The shard, if it lives on this core.
    fn local(&self, shard: ShardId) -> Option<Rc<Shard>>;
    /// Runs `job` on `shard`, which lives on another core.
    fn run_remote(&self, shard: ShardId, job: Job) -> LocalBoxFuture<'_, ()>;
    /// Runs `done` on `core` (this one included).
    fn complete_on(&self, core: CoreId, done: Completion) -> LocalBoxFuture<'_, ()>;
    fn push(&self, core: CoreId, push: Push) -> LocalBoxFuture<'_, ()>;
    fn close(&self, conn: ConnRef, code: u16, reason: &'static str) -> LocalBoxFuture<'_, ()>;
    /// A call to another core started (+1) or got its answer (-1).
    fn calls_pending(&self, delta: i64);
}

/// The home shard of an id.
pub fn shard_of(mesh: &dyn Mesh, id: u64) -> ShardId {
    home_shard(id, mesh.shards())
}

/// Runs `op` on `shard` and waits for its reply (inline when the shard is
/// on this core).
pub async fn call<O: ShardOp>(mesh: &Rc<dyn Mesh>, shard: ShardId, op: O) -> ShardResult<O::Reply> {
    if let Some(local) = mesh.local(shard) {
        return op.run(local, mesh.clone()).await;
    }
    let (tx, rx) = oneshot::channel();
    let from = mesh.core();
    let job: Job = Box::new(move |shard, mesh| {
        Box::pin(async move {
            let reply = op.run(shard, mesh.clone()).await;
            let done: Completion = Box::new(move || {
                let _ = tx.send(reply);
            });
            mesh.complete_on(from, done).await;
        })
    });
    mesh.calls_pending(1);
    mesh.run_remote(shard, job).await;
    let reply = rx
        .await
        .unwrap_or_else(|_| Err(unavailable("shutting down")));
    mesh.calls_pending(-1);
    reply
}

/// Runs `op` on `shard` without waiting for it (a task of its own when the
/// shard is on this core).
pub async fn tell<O: ShardOp>(mesh: &Rc<dyn Mesh>, shard: ShardId, op: O) {
    if let Some(local) = mesh.local(shard) {
        let mesh = mesh.clone();
        glommio::spawn_local(async move {
            let _ = op.run(local, mesh).await;
        })
        .detach();
        return;
    }
    let job: Job = Box::new(move |shard, mesh| {
        Box::pin(async move {
            let _ = op.run(shard, mesh).await;
        })
    });
    mesh.run_remote(shard, job).await;
}
