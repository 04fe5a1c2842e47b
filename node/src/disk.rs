//! Free space on the file system that holds the store.
//!
//! RocksDB that runs out of room mid-write turns read-only, and a decided block that cannot be
//! written leaves the node unable to go on with consensus. So the node watches the free space
//! ([`CHECK_EVERY`]) and acts before that happens:
//! - below `storage.min_free_mb` it refuses new submissions with 4006 ("node busy", retry
//!   later — at another node), saying why. Everything else goes on: blocks decided by the
//!   network are still committed, and bundles from peers are still taken, since they are
//!   included by the others whatever this node does. What this node adds to the chain's
//!   growth is what its users submit, and that is what stops;
//! - below `storage.stop_free_mb` it shuts down with an error that says so, rather than fail a
//!   write half-way. It refuses to start below that level too. Freeing space and starting it
//!   again resumes it (consensus WAL replay, then value sync).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How often the free space is read.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);
/// Default `storage.min_free_mb`: below it, submissions are refused.
pub const DEFAULT_MIN_FREE_MB: u64 = 1024;
/// Default `storage.stop_free_mb`: below it, the node stops.
pub const DEFAULT_STOP_FREE_MB: u64 = 256;

const MB: u64 = 1024 * 1024;

/// Bytes available to this (unprivileged) process on the file system holding `path`.
pub fn free_bytes(path: &Path) -> std::io::Result<u64> {
    let s = nix::sys::statvfs::statvfs(path).map_err(std::io::Error::from)?;
    Ok((s.blocks_available() as u64).saturating_mul(s.fragment_size() as u64))
}

/// The last reading of the free space, shared with admission.
#[derive(Debug)]
pub struct DiskSpace {
    free: AtomicU64,
    /// Submissions are refused below this many free bytes (0: never).
    refuse_below: u64,
    path: PathBuf,
}

impl DiskSpace {
    /// Reads the free space on `path` now; submissions are refused below `min_free_mb`.
    pub fn new(path: &Path, min_free_mb: u64) -> std::io::Result<Arc<DiskSpace>> {
        let free = free_bytes(path)?;
        Ok(Arc::new(DiskSpace {
            free: AtomicU64::new(free),
            refuse_below: min_free_mb.saturating_mul(MB),
            path: path.to_path_buf(),
        }))
    }

    /// A reading that never refuses anything (for tools and tests without a store).
    pub fn unlimited() -> Arc<DiskSpace> {
        Arc::new(DiskSpace {
            free: AtomicU64::new(u64::MAX),
            refuse_below: 0,
            path: PathBuf::new(),
        })
    }

    pub fn free(&self) -> u64 {
        self.free.load(Ordering::Relaxed)
    }

    fn set(&self, free: u64) {
        self.free.store(free, Ordering::Relaxed);
    }

    /// Why a new submission is refused now, if it is.
    pub fn refusal(&self) -> Option<String> {
        let free = self.free();
        (free < self.refuse_below).then(|| {
            format!(
                "node busy: its disk is nearly full ({} MB free on {}, below storage.min_free_mb \
                 {}); submit to another node or retry later",
                free / MB,
                self.path.display(),
                self.refuse_below / MB
            )
        })
    }
}

/// Why the node must stop (or not start) with `free` bytes left, if it must.
pub fn stop_reason(path: &Path, free: u64, stop_free_mb: u64) -> Option<String> {
    (free < stop_free_mb.saturating_mul(MB)).then(|| {
        format!(
            "only {} MB free on the file system of {}, below storage.stop_free_mb {} (the \
             store must not run out of space mid-write); free some space, then start the node",
            free / MB,
            path.display(),
            stop_free_mb
        )
    })
}

/// Reads the free space every [`CHECK_EVERY`], keeps `space` up to date and the
/// `lockstep_disk_free_bytes` gauge set, and returns the reason once the node must stop.
pub async fn watch(space: Arc<DiskSpace>, stop_free_mb: u64) -> String {
    let mut tick = tokio::time::interval(CHECK_EVERY);
    let mut refusing = false;
    loop {
        tick.tick().await;
        let free = match free_bytes(&space.path) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(
                    "cannot read the free space on {}: {e}",
                    space.path.display()
                );
                continue;
            }
        };
        space.set(free);
        metrics::gauge!(crate::metrics::DISK_FREE).set(free as f64);
        if let Some(reason) = stop_reason(&space.path, free, stop_free_mb) {
            return reason;
        }
        match (space.refusal(), refusing) {
            (Some(why), false) => {
                tracing::error!("refusing submissions: {why}");
                refusing = true;
            }
            (None, true) => {
                tracing::info!(
                    free_mb = free / MB,
                    "disk space is back above storage.min_free_mb; taking submissions again"
                );
                refusing = false;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_space_of_an_existing_directory_is_read() {
        let dir = tempfile::tempdir().unwrap();
        assert!(free_bytes(dir.path()).unwrap() > 0);
        assert!(free_bytes(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn submissions_are_refused_below_the_minimum_and_say_why() {
        let dir = tempfile::tempdir().unwrap();
        let space = DiskSpace::new(dir.path(), 100).unwrap();
        space.set(101 * MB);
        assert_eq!(space.refusal(), None);
        space.set(100 * MB - 1);
        let why = space.refusal().unwrap();
        assert!(why.contains("99 MB free"), "{why}");
        assert!(why.contains("storage.min_free_mb 100"), "{why}");
        assert_eq!(DiskSpace::unlimited().refusal(), None);
    }

    #[test]
    fn the_node_stops_only_below_the_stop_level() {
        let p = Path::new("/data");
        assert_eq!(stop_reason(p, 256 * MB, 256), None);
        let why = stop_reason(p, 256 * MB - 1, 256).unwrap();
        assert!(why.contains("storage.stop_free_mb 256"), "{why}");
        assert_eq!(stop_reason(p, 0, 0), None, "0 turns the stop off");
    }
}
