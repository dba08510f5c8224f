//! Media bytes between the nodes of a cluster. An upload's bytes reach a
//! majority of its home group's nodes before its record is proposed (so
//! a 201 survives the loss of any minority, like a `message.sent`): the
//! node that took the upload sends the file to every other replica in
//! `MEDIA_BLOB_CHUNK_BYTES` calls (`Work::BlobPut`) and waits for enough
//! of them; the rest finish in the background. A node asked for media it
//! lacks (it was down, or its copy was still in flight) fetches the file
//! from a peer first (`Work::BlobGet`), checks its digest, and keeps it.
//!
//! The receiving side (`Inbound`) writes each file as an upload is
//! written: a temporary file, hashed as it grows, `fdatasync`, renamed
//! to its content's name; a file whose digest does not match is thrown
//! away.
//!
//! Lives on: every core (the core of the upload's home shard sends and
//! receives; each core has its own `Inbound`).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use glommio::io::BufferedFile;
use sha2::{Digest, Sha256};

use super::store::{publish, Written};
use crate::cluster::forward::{call_node, AnyReply, Work};
use crate::cluster::replicator::Replicator;
use crate::constants::{MEDIA_BLOBS_RECEIVING_MAX, MEDIA_BLOB_CHUNK_BYTES, MEDIA_RECEIVE_IDLE_MS};
use crate::shard::error::{unavailable, ShardError, ShardResult};

/// A file arriving from a peer.
struct Receiving {
    tmp: PathBuf,
    file: BufferedFile,
    hasher: Sha256,
    next: u64,
    size: u64,
    touched: Instant,
}

/// One core's files arriving from peers.
pub struct Inbound {
    dir: PathBuf,
    core: u16,
    next_tmp: Cell<u64>,
    open: RefCell<HashMap<[u8; 32], Receiving>>,
}

impl Inbound {
    pub fn new(data_dir: &std::path::Path, core: u16) -> Inbound {
        Inbound {
            dir: data_dir.join("media"),
            core,
            next_tmp: Cell::new(0),
            open: RefCell::new(HashMap::new()),
        }
    }

    fn blob_path(&self, sha256: &[u8; 32]) -> PathBuf {
        super::store::blob_path(&self.dir, sha256)
    }

    /// One piece of a file: `true` when the file is complete here (also
    /// when it already was: the sender may stop).
    pub async fn put(
        &self,
        sha256: [u8; 32],
        size: u64,
        at: u64,
        bytes: Vec<u8>,
    ) -> Result<bool, String> {
        if at == 0 && BufferedFile::open(self.blob_path(&sha256)).await.is_ok() {
            return Ok(true);
        }
        let entry = self.open.borrow_mut().remove(&sha256);
        let mut r = match entry {
            Some(r) if r.next == at && r.size == size => r,
            Some(stale) => {
                self.discard(stale).await;
                return Err("a piece out of order".into());
            }
            None if at == 0 => self.begin(size).await?,
            None => return Err("a piece of a file not begun".into()),
        };
        let end = at + bytes.len() as u64;
        if end > size {
            self.discard(r).await;
            return Err("a piece past the file's size".into());
        }
        r.hasher.update(&bytes);
        if let Err(e) = write(&r.file, bytes, at).await {
            self.discard(r).await;
            return Err(e);
        }
        r.next = end;
        r.touched = Instant::now();
        if end < size {
            self.open.borrow_mut().insert(sha256, r);
            return Ok(false);
        }
        self.finish(r, sha256).await.map(|()| true)
    }

    async fn begin(&self, size: u64) -> Result<Receiving, String> {
        self.evict_idle().await;
        if self.open.borrow().len() >= MEDIA_BLOBS_RECEIVING_MAX {
            return Err("too many files arriving at once".into());
        }
        let n = self.next_tmp.get();
        self.next_tmp.set(n + 1);
        let tmp = self.dir.join("tmp").join(format!("{}-peer-{n}", self.core));
        let file = BufferedFile::create(&tmp)
            .await
            .map_err(|e| e.to_string())?;
        Ok(Receiving {
            tmp,
            file,
            hasher: Sha256::new(),
            next: 0,
            size,
            touched: Instant::now(),
        })
    }

    async fn finish(&self, r: Receiving, sha256: [u8; 32]) -> Result<(), String> {
        let digest: [u8; 32] = r.hasher.clone().finalize().into();
        if digest != sha256 {
            self.discard(r).await;
            return Err("the file's digest does not match".into());
        }
        if let Err(e) = r.file.fdatasync().await {
            self.discard(r).await;
            return Err(e.to_string());
        }
        let (tmp, size) = (r.tmp.clone(), r.size);
        let _ = r.file.close().await;
        let w = Written { sha256, size };
        if let Err(e) = publish(&self.dir, &tmp, w).await {
            let _ = glommio::io::remove(&tmp).await;
            return Err(format!("{e:?}"));
        }
        Ok(())
    }

    async fn discard(&self, r: Receiving) {
        let _ = r.file.close().await;
        let _ = glommio::io::remove(&r.tmp).await;
    }

    /// Drops files whose sender went quiet.
    async fn evict_idle(&self) {
        let idle = Duration::from_millis(MEDIA_RECEIVE_IDLE_MS);
        let stale: Vec<[u8; 32]> = self
            .open
            .borrow()
            .iter()
            .filter(|(_, r)| r.touched.elapsed() > idle)
            .map(|(k, _)| *k)
            .collect();
        for k in stale {
            let r = self.open.borrow_mut().remove(&k);
            if let Some(r) = r {
                self.discard(r).await;
            }
        }
    }
}

async fn write(file: &BufferedFile, bytes: Vec<u8>, at: u64) -> Result<(), String> {
    let len = bytes.len();
    match file.write_at(bytes, at).await {
        Ok(n) if n == len => Ok(()),
        Ok(_) => Err("a short write".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// Sends the local file of `w` to `node`, piece by piece.
async fn send_to(
    r: Rc<Replicator>,
    node: chat_replication::NodeId,
    shard: u16,
    path: PathBuf,
    w: Written,
) -> ShardResult<()> {
    let file = BufferedFile::open(&path)
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    let mut at = 0;
    while at < w.size {
        let want = (w.size - at).min(MEDIA_BLOB_CHUNK_BYTES as u64) as usize;
        let piece = file
            .read_at(at, want)
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        if piece.is_empty() {
            return Err(unavailable("the local file is shorter than its size"));
        }
        let work = Work::BlobPut {
            sha256: w.sha256,
            size: w.size,
            at,
            bytes: piece.to_vec(),
        };
        at += piece.len() as u64;
        if let AnyReply::Bool(true) = call_node(&r, node, shard, work).await? {
            break;
        }
    }
    let _ = file.close().await;
    Ok(())
}

/// Copies the local file of `w` to the other replicas of `shard`'s group;
/// returns once a majority of the group holds it (this node counted),
/// the other copies going on in the background.
pub async fn replicate(
    r: &Rc<Replicator>,
    shard: u16,
    path: PathBuf,
    w: Written,
) -> ShardResult<()> {
    let group = chat_replication::GroupId(u32::from(shard));
    let replicas = r.membership.replicas(group).to_vec();
    let peers: Vec<_> = replicas.iter().copied().filter(|n| *n != r.node).collect();
    let needed = replicas.len() / 2; // besides this node
    let (tx, rx) = futures_channel::mpsc::unbounded::<ShardResult<()>>();
    for node in peers.iter().copied() {
        let (r, path, tx) = (r.clone(), path.clone(), tx.clone());
        glommio::spawn_local(async move {
            let _ = tx.unbounded_send(send_to(r, node, shard, path, w).await);
        })
        .detach();
    }
    drop(tx);
    let (mut ok, mut last_error) = (0, None);
    let mut rx = rx;
    while ok < needed {
        match futures_lite::StreamExt::next(&mut rx).await {
            Some(Ok(())) => ok += 1,
            Some(Err(e)) => last_error = Some(e),
            None => {
                let why = last_error.map_or_else(|| "no peer".to_string(), |e| format!("{e:?}"));
                return Err(unavailable(format!("media reached too few nodes: {why}")));
            }
        }
    }
    Ok(())
}

/// Fetches the file of `w` from a peer that has it into the local store.
pub async fn fetch(r: &Rc<Replicator>, shard: u16, w: Written) -> ShardResult<()> {
    let group = chat_replication::GroupId(u32::from(shard));
    let inbound = &r.blobs;
    let mut last: ShardError = unavailable("no peer holds the media");
    for node in r
        .membership
        .replicas(group)
        .iter()
        .copied()
        .filter(|n| *n != r.node)
    {
        match fetch_from(r, inbound, node, shard, w).await {
            Ok(()) => return Ok(()),
            Err(e) => last = e,
        }
    }
    Err(last)
}

async fn fetch_from(
    r: &Replicator,
    inbound: &Inbound,
    node: chat_replication::NodeId,
    shard: u16,
    w: Written,
) -> ShardResult<()> {
    let mut at = 0;
    while at < w.size {
        let len = (w.size - at).min(MEDIA_BLOB_CHUNK_BYTES as u64);
        let work = Work::BlobGet {
            sha256: w.sha256,
            at,
            len,
        };
        let AnyReply::Blob(bytes) = call_node(r, node, shard, work).await? else {
            return Err(unavailable("the peer answered another call"));
        };
        if bytes.is_empty() || bytes.len() as u64 > len {
            return Err(unavailable("the peer's piece has the wrong size"));
        }
        let n = bytes.len() as u64;
        let done = inbound
            .put(w.sha256, w.size, at, bytes)
            .await
            .map_err(unavailable)?;
        at += n;
        if done {
            return Ok(());
        }
    }
    Err(unavailable("the file ended early"))
}

/// A peer's `BlobGet`: bytes `at..at + len` of a local file.
pub async fn serve_get(
    data_dir: &std::path::Path,
    sha256: [u8; 32],
    at: u64,
    len: u64,
) -> ShardResult<AnyReply> {
    let len = len.min(MEDIA_BLOB_CHUNK_BYTES as u64) as usize;
    let path = super::store::blob_path(&data_dir.join("media"), &sha256);
    let file = BufferedFile::open(&path)
        .await
        .map_err(|_| unavailable("no such media file here"))?;
    let piece = file
        .read_at(at, len)
        .await
        .map_err(|e| unavailable(e.to_string()));
    let _ = file.close().await;
    Ok(AnyReply::Blob(piece?.to_vec()))
}
