//! Media on the uploader's home (what an upload is, who may read it) and
//! the membership check the shell uses to prove a reader's right.
//!
//! In cluster mode, also the copies of the files between nodes (they go
//! through the replicator of the home shard's core).
//!
//! Lives on: the uploader's home shard (`IsMember`: the conversation's).

use std::rc::Rc;

use crate::machine::cmd::share_media::ShareMedia;
use crate::machine::cmd::store_media::StoreMedia;
use crate::machine::ids::{ConvId, MediaId, UserId};
use crate::machine::query::conv::member_conv;
use crate::machine::state::{Media, MediaRef};
use crate::media::replica;
use crate::media::store::{blob_path, Written};
use crate::shard::error::{unavailable, ShardResult};
use crate::shard::mesh::{Mesh, ShardOp};
use crate::shard::runner::Shard;

/// The bytes are durable: the upload gets its id.
pub struct Store(pub StoreMedia);

impl ShardOp for Store {
    type Reply = MediaId;

    async fn run(self, shard: Rc<Shard>, mesh: Rc<dyn Mesh>) -> ShardResult<MediaId> {
        shard.submit(&mesh, self.0).await
    }
}

/// A message is about to name the media.
pub struct Share(pub ShareMedia);

impl ShardOp for Share {
    type Reply = MediaRef;

    async fn run(self, shard: Rc<Shard>, mesh: Rc<dyn Mesh>) -> ShardResult<MediaRef> {
        shard.submit(&mesh, self.0).await
    }
}

/// What an upload is and which conversations hold it (`None`: no such
/// upload).
pub struct Describe(pub MediaId);

impl ShardOp for Describe {
    type Reply = Option<Media>;

    async fn run(self, shard: Rc<Shard>, _mesh: Rc<dyn Mesh>) -> ShardResult<Option<Media>> {
        shard.settled().await?;
        let id = self.0;
        let state = shard.state();
        Ok(state
            .users
            .get(&id.user)
            .and_then(|u| u.media.get(&id.n))
            .cloned())
    }
}

/// Whether `user` is a member of `conv` now.
pub struct IsMember {
    pub conv: ConvId,
    pub user: UserId,
}

impl ShardOp for IsMember {
    type Reply = bool;

    async fn run(self, shard: Rc<Shard>, _mesh: Rc<dyn Mesh>) -> ShardResult<bool> {
        shard.settled().await?;
        Ok(member_conv(&shard.state(), self.conv, self.user).is_ok())
    }
}

/// Cluster mode: copies an upload's file to the other replicas of this
/// shard's group; done once a majority holds it (a single node: at once).
pub struct Replicate(pub Written);

impl ShardOp for Replicate {
    type Reply = ();

    async fn run(self, shard: Rc<Shard>, _mesh: Rc<dyn Mesh>) -> ShardResult<()> {
        let Some(r) = shard.cluster() else {
            return Ok(());
        };
        let path = blob_path(&r.dir().join("media"), &self.0.sha256);
        replica::replicate(&r, shard.id.0, path, self.0).await
    }
}

/// Cluster mode: fetches a file this node lacks from a peer that holds it.
pub struct FetchMissing(pub Written);

impl ShardOp for FetchMissing {
    type Reply = ();

    async fn run(self, shard: Rc<Shard>, _mesh: Rc<dyn Mesh>) -> ShardResult<()> {
        let Some(r) = shard.cluster() else {
            return Err(unavailable("the media file is missing"));
        };
        replica::fetch(&r, shard.id.0, self.0).await
    }
}

/// Which of these files some account of this shard still holds as an
/// upload (the media sweep keeps those; `media/sweep.rs`).
pub struct HeldMedia {
    pub candidates: std::sync::Arc<std::collections::HashSet<[u8; 32]>>,
}

impl ShardOp for HeldMedia {
    type Reply = Vec<[u8; 32]>;

    async fn run(self, shard: Rc<Shard>, _mesh: Rc<dyn Mesh>) -> ShardResult<Self::Reply> {
        // Everything committed, applied here first: an upload whose
        // record was committed on another node counts.
        shard.settled().await?;
        let state = shard.state();
        let mut held: Vec<[u8; 32]> = state
            .users
            .values()
            .flat_map(|u| u.media.values())
            .map(|m| m.sha256)
            .filter(|sha| self.candidates.contains(sha))
            .collect();
        held.sort_unstable();
        held.dedup();
        Ok(held)
    }
}
