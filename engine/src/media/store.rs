//! The node's media files: content-addressed by SHA-256 under
//! `DATA_DIR/media/blobs/XX/SHA256` (XX: its first two hex digits), so
//! the same bytes are stored once however often they are uploaded.
//!
//! An upload streams into `media/tmp/CORE-N` in `MEDIA_WRITE_BYTES`
//! pieces while it is hashed, is made durable (`fdatasync`), then renamed
//! to its name and the directory synced: a file under `blobs/` is always
//! complete. Only then is its record written (`cmd/store_media.rs`), so a
//! record never names bytes that are not on disk. Leftovers in `tmp/`
//! (a crash mid-upload) are removed at startup.
//!
//! Memory: an upload holds one write buffer (`MEDIA_WRITE_BYTES`) besides
//! hyper's read buffer, and a core streams at most
//! `MEDIA_UPLOADS_PER_CORE_MAX` uploads at once; a download holds one read
//! piece (`MEDIA_READ_BYTES`) at a time.
//!
//! Lives on: every core has a `Store` handle (its own counters); the
//! files are the node's, and only ever created whole or read.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use bytes::Bytes;
use chat_net::body::{Chunks, Upload, UploadError};
use glommio::io::{BufferedFile, Directory};
use sha2::{Digest, Sha256};

use crate::constants::{MEDIA_READ_BYTES, MEDIA_UPLOADS_PER_CORE_MAX, MEDIA_WRITE_BYTES};
use crate::machine::state::hex;

/// Why an upload was not stored.
#[derive(Debug)]
pub enum StoreError {
    Upload(UploadError),
    Empty,
    Io(std::io::Error),
}

/// A stored upload's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Written {
    pub sha256: [u8; 32],
    pub size: u64,
}

/// One core's handle on the node's media files.
pub struct Store {
    dir: PathBuf,
    core: u16,
    next_tmp: Cell<u64>,
    uploads: Rc<Cell<usize>>,
}

/// An upload in progress on this core (counted until dropped).
pub struct Slot(Rc<Cell<usize>>);

impl Drop for Slot {
    fn drop(&mut self) {
        assert!(self.0.get() > 0);
        self.0.set(self.0.get() - 1);
    }
}

/// Makes `media/blobs/00..ff` and an empty `media/tmp` (startup, before
/// any core serves).
pub fn prepare(data_dir: &Path) -> Result<(), String> {
    let dir = data_dir.join("media");
    let io = |what: &Path, e: std::io::Error| format!("{}: {e}", what.display());
    let tmp = dir.join("tmp");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| io(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| io(&tmp, e))?;
    for b in 0..=255u8 {
        let sub = dir.join("blobs").join(format!("{b:02x}"));
        std::fs::create_dir_all(&sub).map_err(|e| io(&sub, e))?;
    }
    Ok(())
}

impl Store {
    pub fn new(data_dir: &Path, core: u16) -> Store {
        Store {
            dir: data_dir.join("media"),
            core,
            next_tmp: Cell::new(0),
            uploads: Rc::new(Cell::new(0)),
        }
    }

    /// Room for one more upload on this core, if there is.
    pub fn slot(&self) -> Option<Slot> {
        let n = self.uploads.get();
        if n >= MEDIA_UPLOADS_PER_CORE_MAX {
            return None;
        }
        self.uploads.set(n + 1);
        Some(Slot(self.uploads.clone()))
    }

    pub fn blob_path(&self, sha256: &[u8; 32]) -> PathBuf {
        blob_path(&self.dir, sha256)
    }

    /// Streams `upload` to disk; durable under its name when this returns.
    pub async fn write(&self, _slot: &Slot, upload: &mut Upload) -> Result<Written, StoreError> {
        let n = self.next_tmp.get();
        self.next_tmp.set(n + 1);
        let tmp = self.dir.join("tmp").join(format!("{}-{n}", self.core));
        let file = BufferedFile::create(&tmp).await.map_err(io)?;
        let written = fill(&file, upload).await;
        let synced = match written {
            Ok(w) => file.fdatasync().await.map(|()| w).map_err(io),
            Err(e) => Err(e),
        };
        let _ = file.close().await;
        let result = match synced {
            Ok(w) => publish(&self.dir, &tmp, w).await,
            Err(e) => Err(e),
        };
        if result.is_err() {
            let _ = glommio::io::remove(&tmp).await;
        }
        result
    }

    /// Bytes `start..start + len` of the file of `sha256`, read as the
    /// client takes them.
    pub async fn read(&self, sha256: &[u8; 32], start: u64, len: u64) -> std::io::Result<Chunks> {
        let file = Rc::new(BufferedFile::open(self.blob_path(sha256)).await?);
        let state = (file, start, start + len);
        let chunks = futures_lite::stream::unfold(state, |(file, at, end)| async move {
            if at >= end {
                return None;
            }
            let want = (end - at).min(MEDIA_READ_BYTES as u64) as usize;
            match file.read_at(at, want).await {
                Ok(r) if r.is_empty() => {
                    let e = std::io::ErrorKind::UnexpectedEof.into();
                    Some((Err(e), (file, end, end)))
                }
                Ok(r) => {
                    let got = Bytes::copy_from_slice(&r);
                    let next = at + got.len() as u64;
                    Some((Ok(got), (file, next, end)))
                }
                Err(e) => Some((Err(e.into()), (file, end, end))),
            }
        });
        Ok(Box::pin(chunks))
    }
}

fn blob_dir(media_dir: &Path, sha256: &[u8; 32]) -> PathBuf {
    media_dir.join("blobs").join(format!("{:02x}", sha256[0]))
}

/// Where the file of `sha256` lives under `media_dir` (`DATA_DIR/media`).
pub fn blob_path(media_dir: &Path, sha256: &[u8; 32]) -> PathBuf {
    blob_dir(media_dir, sha256).join(hex(sha256))
}

/// Renames a durable temporary file to its content's name and syncs the
/// directory: from here on the file is there whole, also after a crash.
pub async fn publish(media_dir: &Path, tmp: &Path, w: Written) -> Result<Written, StoreError> {
    let path = blob_path(media_dir, &w.sha256);
    glommio::io::rename(tmp, &path).await.map_err(io)?;
    let dir = Directory::open(blob_dir(media_dir, &w.sha256))
        .await
        .map_err(io)?;
    dir.sync().await.map_err(io)?;
    let _ = dir.close().await;
    Ok(w)
}

fn io(e: glommio::GlommioError<()>) -> StoreError {
    StoreError::Io(e.into())
}

/// Writes the whole upload to `file` in `MEDIA_WRITE_BYTES` pieces,
/// hashing as it goes. One piece buffer at a time: it is filled to
/// exactly its size (a chunk is split across pieces), written, dropped.
async fn fill(file: &BufferedFile, upload: &mut Upload) -> Result<Written, StoreError> {
    let mut hasher = Sha256::new();
    let mut buf: Vec<u8> = Vec::new();
    let mut at = 0u64;
    while let Some(chunk) = upload.chunk().await.map_err(StoreError::Upload)? {
        hasher.update(&chunk);
        let mut rest: &[u8] = &chunk;
        while !rest.is_empty() {
            if buf.capacity() == 0 {
                buf.reserve_exact(MEDIA_WRITE_BYTES);
            }
            let room = MEDIA_WRITE_BYTES - buf.len();
            let (now, later) = rest.split_at(room.min(rest.len()));
            buf.extend_from_slice(now);
            rest = later;
            if buf.len() == MEDIA_WRITE_BYTES {
                at += write_piece(file, std::mem::take(&mut buf), at).await?;
            }
        }
    }
    if !buf.is_empty() {
        at += write_piece(file, buf, at).await?;
    }
    assert_eq!(
        at as usize,
        upload.read_bytes(),
        "every byte read is written"
    );
    if at == 0 {
        return Err(StoreError::Empty);
    }
    Ok(Written {
        sha256: hasher.finalize().into(),
        size: at,
    })
}

async fn write_piece(file: &BufferedFile, piece: Vec<u8>, at: u64) -> Result<u64, StoreError> {
    assert!(piece.len() <= MEDIA_WRITE_BYTES);
    let len = piece.len();
    let n = file.write_at(piece, at).await.map_err(io)?;
    if n != len {
        return Err(StoreError::Io(std::io::Error::other("a short write")));
    }
    Ok(len as u64)
}
