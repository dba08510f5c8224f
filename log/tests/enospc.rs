//! A full disk: the failing append's future fails with ENOSPC, the log stays
//! readable, nothing acknowledged is lost, and appends work again once space
//! is back. Runs on a small tmpfs (buffered path) and on a small loop-mounted
//! ext4 (O_DIRECT path), both made by the test; skips with a printed reason
//! where it cannot mount them (it needs root).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use chat_log::{Entry, Kind, Log, LogError, Offset, Term};
use common::*;

const RECORD_BYTES: usize = 3000;
const APPENDS_MAX: u64 = 10_000;

/// A mounted filesystem, unmounted on drop.
struct Mount {
    dir: PathBuf,
    _parent: tempfile::TempDir,
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

fn mount(
    args: &[&str],
    prepare: impl FnOnce(&Path) -> Result<Vec<String>, String>,
) -> Result<Mount, String> {
    let parent = tempfile::tempdir().map_err(|e| e.to_string())?;
    let dir = parent.path().join("mnt");
    std::fs::create_dir(&dir).map_err(|e| e.to_string())?;
    let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    all.extend(prepare(parent.path())?);
    all.push(dir.to_string_lossy().into_owned());
    let out = Command::new("mount")
        .args(&all)
        .output()
        .map_err(|e| format!("mount: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "mount {all:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(Mount {
        dir,
        _parent: parent,
    })
}

fn tmpfs() -> Result<Mount, String> {
    mount(&["-t", "tmpfs", "-o", "size=2m"], |_| {
        Ok(vec!["tmpfs".into()])
    })
}

fn ext4_loop() -> Result<Mount, String> {
    mount(&["-o", "loop"], |parent| {
        let image = parent.join("disk.img");
        let file = std::fs::File::create(&image).map_err(|e| e.to_string())?;
        file.set_len(8 << 20).map_err(|e| e.to_string())?;
        let out = Command::new("mkfs.ext4")
            .args(["-q", "-F"])
            .arg(&image)
            .output();
        match out {
            Ok(o) if o.status.success() => Ok(vec![image.to_string_lossy().into_owned()]),
            Ok(o) => Err(format!(
                "mkfs.ext4: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            )),
            Err(e) => Err(format!("mkfs.ext4: {e}")),
        }
    })
}

/// Fills the disk under `mount` until an append fails, then frees space.
fn full_disk_loses_nothing(mount: &Mount, expect_direct: bool) {
    let root = mount.dir.clone();
    run(move || async move {
        // Room to free later: a filler file the log does not own.
        let filler = root.join("filler");
        std::fs::write(&filler, vec![1u8; 512 * 1024]).unwrap();
        let path = root.join("log");
        let log = Log::open(&path, small_config(64 * 1024)).await.unwrap();
        assert_eq!(log.is_direct(), expect_direct);
        let mut acked = Vec::new();
        let error = loop {
            let seed = acked.len() as u64 + 1;
            let bytes = payload(seed, RECORD_BYTES);
            let entry = Entry {
                kind: Kind(1),
                term: Term(1),
                payload: &bytes,
            };
            match log.append_durable(&[entry]).await {
                Ok((offset, _)) => acked.push((offset, seed)),
                Err(error) => break error,
            }
            assert!((acked.len() as u64) < APPENDS_MAX, "the disk never filled");
        };
        assert!(error.is_no_space(), "expected ENOSPC, got {error:?}");
        assert!(matches!(error, LogError::Io { .. }));
        assert!(acked.len() > 10);
        // Still readable, nothing acknowledged lost, offsets not advanced.
        assert_eq!(log.last_offset(), Offset(acked.len() as u64));
        for &(offset, seed) in &acked {
            assert_eq!(
                &log.read(offset).await.unwrap().payload[..],
                &payload(seed, RECORD_BYTES)[..]
            );
        }
        // Space comes back: appends work again, at the next offset.
        std::fs::remove_file(&filler).unwrap();
        let bytes = payload(999_999, RECORD_BYTES);
        let entry = Entry {
            kind: Kind(1),
            term: Term(1),
            payload: &bytes,
        };
        let (offset, _) = log.append_durable(&[entry]).await.unwrap();
        assert_eq!(offset, Offset(acked.len() as u64 + 1));
        log.close().await.unwrap();
        let log = Log::open(&path, small_config(64 * 1024)).await.unwrap();
        let all = read_all(&log).await;
        assert_eq!(all.len(), acked.len() + 1);
        for &(offset, seed) in &acked {
            assert_eq!(
                &all[offset.0 as usize - 1].payload[..],
                &payload(seed, RECORD_BYTES)[..]
            );
        }
        assert_eq!(&all.last().unwrap().payload[..], &bytes[..]);
        log.close().await.unwrap();
    });
}

#[test]
fn enospc_on_tmpfs_fails_the_append_and_loses_nothing() {
    match tmpfs() {
        Ok(mount) => full_disk_loses_nothing(&mount, true),
        Err(why) => println!("SKIPPED enospc on tmpfs: cannot mount one here: {why}"),
    }
}

#[test]
fn enospc_on_ext4_with_o_direct_fails_the_append_and_loses_nothing() {
    match ext4_loop() {
        Ok(mount) => full_disk_loses_nothing(&mount, true),
        Err(why) => println!("SKIPPED enospc on ext4: cannot mount a loop device here: {why}"),
    }
}
