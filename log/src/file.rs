//! One open segment or snapshot file: glommio DMA (O_DIRECT) where the
//! filesystem allows it, buffered I/O (still fdatasync'ed) where it does not.
//!
//! Lives on: the shard's core (glommio files are bound to their executor).

use std::io;
use std::path::{Path, PathBuf};

use glommio::io::{BufferedFile, DmaFile, OpenOptions, ReadResult};

use crate::constants::SECTOR_SIZE_BYTES;
use crate::error::{LogError, Result};

enum Io {
    Dma(DmaFile),
    Buffered(BufferedFile),
}

/// A file of the log. Writes are whole sectors at sector-aligned positions.
pub struct LogFile {
    path: PathBuf,
    io: Io,
}

fn to_io(err: glommio::GlommioError<()>) -> io::Error {
    err.into()
}

impl LogFile {
    /// Opens (and with `create`, creates) `path` for reading and writing.
    pub async fn open(path: &Path, create: bool) -> Result<LogFile> {
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(create);
        match options.dma_open(path).await {
            Ok(file) => Ok(LogFile {
                path: path.to_owned(),
                io: Io::Dma(file),
            }),
            Err(err) => {
                let err = to_io(err);
                if err.raw_os_error() != Some(libc::EINVAL) {
                    return Err(LogError::io("open", path, &err));
                }
                // The filesystem refuses O_DIRECT: fall back to buffered I/O.
                let file = options
                    .buffered_open(path)
                    .await
                    .map_err(|e| LogError::io("open", path, &to_io(e)))?;
                Ok(LogFile {
                    path: path.to_owned(),
                    io: Io::Buffered(file),
                })
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// True when this file bypasses the page cache.
    pub fn is_direct(&self) -> bool {
        matches!(self.io, Io::Dma(_))
    }

    /// Writes `data` (whole sectors) at the sector-aligned `pos`.
    pub async fn write_sectors(&self, pos: u64, data: &[u8]) -> Result<()> {
        assert_eq!(pos % SECTOR_SIZE_BYTES as u64, 0);
        assert_eq!(data.len() % SECTOR_SIZE_BYTES, 0);
        let mut done = 0usize;
        while done < data.len() {
            let chunk = &data[done..];
            let at = pos + done as u64;
            let written = match &self.io {
                Io::Dma(file) => {
                    let mut buf = file.alloc_dma_buffer(chunk.len());
                    buf.as_bytes_mut().copy_from_slice(chunk);
                    file.write_at(buf, at).await
                }
                Io::Buffered(file) => file.write_at(chunk.to_vec(), at).await,
            }
            .map_err(|e| LogError::io("write", &self.path, &to_io(e)))?;
            if written == 0 {
                let err = io::Error::new(io::ErrorKind::WriteZero, "short write");
                return Err(LogError::io("write", &self.path, &err));
            }
            // A short write is retried from the sector it stopped in.
            done += written;
            done -= done % SECTOR_SIZE_BYTES;
        }
        Ok(())
    }

    /// Reads up to `len` bytes at `pos` (fewer at the end of the file).
    pub async fn read(&self, pos: u64, len: usize) -> Result<ReadResult> {
        match &self.io {
            Io::Dma(file) => file.read_at(pos, len).await,
            Io::Buffered(file) => file.read_at(pos, len).await,
        }
        .map_err(|e| LogError::io("read", &self.path, &to_io(e)))
    }

    pub async fn sync(&self) -> Result<()> {
        match &self.io {
            Io::Dma(file) => file.fdatasync().await,
            Io::Buffered(file) => file.fdatasync().await,
        }
        .map_err(|e| LogError::io("fdatasync", &self.path, &to_io(e)))
    }

    pub async fn truncate(&self, len: u64) -> Result<()> {
        match &self.io {
            Io::Dma(file) => file.truncate(len).await,
            Io::Buffered(file) => file.truncate(len).await,
        }
        .map_err(|e| LogError::io("truncate", &self.path, &to_io(e)))
    }

    pub async fn size(&self) -> Result<u64> {
        match &self.io {
            Io::Dma(file) => file.file_size().await,
            Io::Buffered(file) => file.file_size().await,
        }
        .map_err(|e| LogError::io("stat", &self.path, &to_io(e)))
    }

    pub async fn close(self) -> Result<()> {
        match self.io {
            Io::Dma(file) => file.close().await,
            Io::Buffered(file) => file.close().await,
        }
        .map_err(|e| LogError::io("close", &self.path, &to_io(e)))
    }
}

/// fsyncs a directory so that created, renamed and removed names persist.
pub async fn sync_dir(dir: &Path) -> Result<()> {
    let handle = glommio::io::Directory::open(dir)
        .await
        .map_err(|e| LogError::io("open dir", dir, &to_io(e)))?;
    handle
        .sync()
        .await
        .map_err(|e| LogError::io("fsync dir", dir, &to_io(e)))?;
    handle
        .close()
        .await
        .map_err(|e| LogError::io("close dir", dir, &to_io(e)))
}

/// Writes `bytes` to `dir/name` atomically: temp file, fdatasync, rename,
/// directory fsync.
pub async fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let _ = std::fs::remove_file(&tmp);
    let file = LogFile::open(&tmp, true).await?;
    let mut padded = bytes.to_vec();
    padded.resize(
        bytes.len().div_ceil(SECTOR_SIZE_BYTES) * SECTOR_SIZE_BYTES,
        0,
    );
    file.write_sectors(0, &padded).await?;
    file.truncate(bytes.len() as u64).await?;
    file.sync().await?;
    file.close().await?;
    let target = dir.join(name);
    std::fs::rename(&tmp, &target).map_err(|e| LogError::io("rename", &target, &e))?;
    sync_dir(dir).await
}

/// Makes glommio decide correctly whether the poll ring (IOPOLL) works for
/// the device under `dir`.
///
/// glommio 0.9 probes a device once per process by reading the first DMA
/// file opened on it. When that file is empty the kernel returns "success"
/// without touching the device, glommio enables the poll ring, and every
/// later read on a device without poll queues fails with EOPNOTSUPP. So we
/// open a non-empty file first, before any segment.
pub async fn prime_iopoll_probe(dir: &Path) -> Result<()> {
    let path = dir.join(".iopoll-probe.tmp");
    std::fs::write(&path, [0u8; SECTOR_SIZE_BYTES])
        .map_err(|e| LogError::io("write", &path, &e))?;
    let file = LogFile::open(&path, false).await?;
    file.close().await?;
    std::fs::remove_file(&path).map_err(|e| LogError::io("remove", &path, &e))
}
