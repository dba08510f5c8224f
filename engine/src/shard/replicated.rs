//! The write path in cluster mode, and what every replica does with
//! committed entries.
//!
//! A leader decides, proposes each record (its index is its log offset)
//! and applies it at once, so the next decision sees it (seqs stay
//! gapless under pipelining); effects and the reply wait for commit on a
//! majority. A replica applies committed entries it did not propose and
//! carries out their effects for its own node's connections (fan-out
//! reaches devices on every node). A replica that applied past the commit
//! index and lost leadership rebuilds its state through the commit index:
//! another leader may replace that tail. A replica that does not lead
//! hands commands to the leader (`submit`).
//!
//! Lives on: the shard's core.

use std::future::poll_fn;
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

use chat_log::Offset;
use chat_replication::eraftpb::Entry;
use chat_replication::{GroupId, ProposeError, Role};
use glommio::sync::Permit;
use tracing::{error, warn};

use super::error::{unavailable, ShardError, ShardResult};
use super::mesh::Mesh;
use super::runner::{Health, Shard};
use crate::cluster::forward::{
    decode_answer, encode_forward, Answer, AnyReply, Command, Forward, Work,
};
use crate::cluster::replicator::{Fate, Replicator};
use crate::constants::{COMMIT_WAIT_MS, LEADER_POLL_MS, LEADER_WAIT_MS, REBUILD_WAIT_MS};
use crate::machine::records::{self, Rec, KIND_CHAT};

/// Where a command for this shard goes.
enum Route {
    Here,
    To(chat_replication::NodeId),
    Nowhere,
}

impl Shard {
    pub fn cluster(&self) -> Option<Rc<Replicator>> {
        self.cluster.borrow().clone()
    }

    pub fn group(&self) -> GroupId {
        GroupId(self.id.0 as u32)
    }

    /// Joins the cluster: `applied` is how far recovery replayed.
    pub fn join_cluster(&self, r: Rc<Replicator>, applied: Offset) {
        *self.cluster.borrow_mut() = Some(r);
        self.appended_set(applied);
        self.committed.set(applied);
    }

    /// A single node, or this replica leads: effects that write (a
    /// watermark on another shard) are carried out by the leader only.
    pub fn leads(&self) -> bool {
        self.cluster()
            .is_none_or(|r| r.lead_state(self.group()).0 == Role::Leader)
    }

    pub fn committed(&self) -> Offset {
        self.committed.get()
    }

    /// Leads the group, and the state holds every entry of its log (a new
    /// leader's first entry applied, no proposal left unapplied).
    pub(super) fn leads_ready(&self, r: &Replicator) -> bool {
        let (role, _, last) = r.lead_state(self.group());
        role == Role::Leader && self.appended_get().0 == last
    }

    /// Runs `cmd` here when this replica leads, else on the leader.
    pub async fn submit<C: Command>(
        self: &Rc<Self>,
        mesh: &Rc<dyn Mesh>,
        cmd: C,
    ) -> ShardResult<C::Reply> {
        let Some(r) = self.cluster() else {
            return self.write(mesh, |s, ctx| cmd.decide(s, ctx)).await;
        };
        match self.route(&r).await {
            Route::Here => self.write(mesh, |s, ctx| cmd.decide(s, ctx)).await,
            Route::Nowhere => Err(unavailable("no leader for this shard")),
            Route::To(node) => {
                let reply = self.forward(&r, node, Work::Command(cmd.wrap())).await?;
                C::unwrap_reply(reply)
                    .ok_or_else(|| unavailable("the leader answered another command"))
            }
        }
    }

    /// Cluster mode, when another node leads: `work` done there. `None`:
    /// do it here (a single node, or this replica leads).
    pub async fn on_leader(&self, make: impl FnOnce() -> Work) -> Option<ShardResult<AnyReply>> {
        let r = self.cluster()?;
        match self.route(&r).await {
            Route::Here => None,
            Route::Nowhere => Some(Err(unavailable("no leader for this shard"))),
            Route::To(node) => Some(self.forward(&r, node, make()).await),
        }
    }

    async fn forward(
        &self,
        r: &Replicator,
        node: chat_replication::NodeId,
        work: Work,
    ) -> ShardResult<AnyReply> {
        let body = encode_forward(&Forward {
            shard: self.id.0,
            work,
        });
        let bytes = r.call(node, self.group(), body).await?;
        match decode_answer(&bytes).map_err(unavailable)? {
            Answer::Done { reply, index } => {
                self.wait_committed(Offset(index), REBUILD_WAIT_MS).await?;
                Ok(reply)
            }
            Answer::Refused(e) => Err(e),
        }
    }

    /// Waits (bounded) for a leader that can take writes.
    async fn route(&self, r: &Replicator) -> Route {
        let mut waited = 0;
        loop {
            if self.leads_ready(r) {
                return Route::Here;
            }
            let (_, leader, _) = r.lead_state(self.group());
            if let Some(l) = leader.filter(|l| *l != r.node) {
                return Route::To(l);
            }
            if waited >= LEADER_WAIT_MS {
                return Route::Nowhere;
            }
            self.clock.sleep(LEADER_POLL_MS).await;
            waited += LEADER_POLL_MS;
        }
    }

    pub(super) async fn write_replicated<R>(
        self: &Rc<Self>,
        r: &Replicator,
        mesh: &Rc<dyn Mesh>,
        recs: Vec<Rec>,
        reply: R,
        permit: Permit<'_>,
    ) -> ShardResult<R> {
        let payloads = recs
            .iter()
            .map(|rec| records::encode(rec).to_vec())
            .collect();
        let mut waits = match r.propose_all(self.group(), payloads) {
            Ok(w) => w,
            Err((e, 0)) => return Err(refused(e)),
            Err((e, _)) => {
                // Some records are in the log, the rest are not: the
                // state must come from the log again.
                self.rebuild_from_commit();
                return Err(refused(e));
            }
        };
        self.apply_appended(&recs, Offset(waits[0].0));
        drop(permit);
        self.maybe_snapshot();
        let (last, rx) = waits.pop().expect("a write proposes at least one record");
        let give_up = async {
            glommio::timer::sleep(Duration::from_millis(COMMIT_WAIT_MS)).await;
            Err(futures_channel::oneshot::Canceled)
        };
        match futures_lite::future::or(rx, give_up).await {
            Ok(Fate::Committed(_)) => {
                self.release(mesh, Offset(last)).await;
                Ok(reply)
            }
            Ok(Fate::Lost) => Err(unavailable(
                "leadership changed before the write committed; retry",
            )),
            Err(_) => Err(unavailable(
                "no majority acknowledged the write in time (it may still be kept: resend to dedupe)",
            )),
        }
    }

    /// Committed entries, in order (the pump hands them over).
    pub fn apply_committed(self: &Rc<Self>, mesh: &Rc<dyn Mesh>, entries: &[Entry]) {
        if self.health() == Health::Rebuilding {
            self.apply_buffer.borrow_mut().extend_from_slice(entries);
            return;
        }
        let Some(last) = entries.last().map(|e| e.index) else {
            return;
        };
        for e in entries {
            if e.index <= self.appended_get().0 {
                continue; // proposed and applied here
            }
            assert_eq!(
                e.index,
                self.appended_get().0 + 1,
                "committed entries are dense"
            );
            if crate::cluster::raft_log::kind_of(e) == KIND_CHAT {
                match records::decode(&e.data) {
                    Ok(rec) => self.apply_one(&rec, Offset(e.index)),
                    Err(err) => {
                        error!(shard = self.id.0, index = e.index, %err, "committed entry does not decode");
                        std::process::exit(1);
                    }
                }
            }
            self.appended_set(Offset(e.index));
        }
        self.committed.set(self.committed.get().max(Offset(last)));
        for w in self.commit_waiters.borrow_mut().drain(..) {
            w.wake();
        }
        let (me, mesh) = (self.clone(), mesh.clone());
        glommio::spawn_local(async move { me.release(&mesh, Offset(last)).await }).detach();
    }

    /// After a rebuild: the entries that committed meanwhile.
    pub(super) fn apply_buffered(self: &Rc<Self>) {
        let buffered = std::mem::take(&mut *self.apply_buffer.borrow_mut());
        if buffered.is_empty() {
            return;
        }
        if let Some(mesh) = self.cluster().map(|r| r.mesh_handle()) {
            self.apply_committed(&mesh, &buffered);
        }
    }

    /// The replica no longer leads: drop what it applied past the commit.
    pub fn demoted(self: &Rc<Self>) {
        if self.appended_get() > self.committed.get() && self.health() == Health::Serving {
            warn!(
                shard = self.id.0,
                applied = self.appended_get().0,
                committed = self.committed.get().0,
                "lost leadership with uncommitted entries: rebuilding through the commit index"
            );
            self.rebuild_from_commit();
        }
    }

    fn rebuild_from_commit(self: &Rc<Self>) {
        self.discard_effects_after(self.committed.get());
        self.start_rebuild();
    }

    /// Cluster mode: a read sees every write acknowledged before it began
    /// (a read index from the leader, then wait until applied through it).
    pub async fn read_barrier(&self) -> ShardResult<()> {
        let Some(r) = self.cluster() else {
            return Ok(());
        };
        let index = r.read_index(self.group()).await?;
        self.wait_committed(Offset(index), REBUILD_WAIT_MS).await
    }

    /// Waits (bounded) until this replica applied through `index`.
    pub async fn wait_committed(&self, index: Offset, limit_ms: u64) -> ShardResult<()> {
        let wait = poll_fn(|cx| {
            if self.committed.get() >= index && self.health() == Health::Serving {
                Poll::Ready(Ok(()))
            } else {
                self.commit_waiters.borrow_mut().push(cx.waker().clone());
                Poll::Pending
            }
        });
        let give_up = async {
            glommio::timer::sleep(Duration::from_millis(limit_ms)).await;
            Err(unavailable("this replica is behind the leader"))
        };
        futures_lite::future::or(wait, give_up).await
    }

    /// Reads wait for a rebuild, and in cluster mode for the read index.
    pub async fn settled(&self) -> ShardResult<()> {
        if self.health() != Health::Serving {
            self.settled_locally().await?;
        }
        self.read_barrier().await
    }
}

fn refused(e: ProposeError) -> ShardError {
    match e {
        ProposeError::TooLarge => unavailable("the write is too large to replicate"),
        ProposeError::NotLeader { .. } => unavailable("this replica does not lead the shard"),
        ProposeError::UnknownGroup => unavailable("no replica of this shard here"),
        ProposeError::Dropped => unavailable("the leader is busy (leadership moving); retry"),
    }
}
