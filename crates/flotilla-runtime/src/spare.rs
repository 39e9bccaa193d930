//! Spare container directories, made ahead of time off a start's critical path.
//!
//! A container directory is a handful of inodes on the data dir's filesystem:
//! the directory, `rootfs/`, `upper/`, `work/`, the log, and the files its
//! records are written through (`record.json.tmp`, `monitor.json.tmp`,
//! `exit.json.tmp`: [`crate::record::write_json_atomic`] truncates and reuses
//! a temp file that exists). Allocating an inode is cheap on most hosts, but
//! on an ext4 without a journal (this VM's root filesystem) every allocation
//! first skips, one by one, the inodes of its group freed in the last 30 s
//! (`recently_deleted()`), so back-to-back containers made each other's
//! `create` slower: ~0.15-0.25 ms per inode measured here, eight of them
//! before init could start.
//!
//! So the process that deletes a removed container in the background
//! ([`crate::helper::delete_in_background`], used by `run --rm`) first tops
//! `<data-dir>/spare/` up to [`POOL`] empty skeletons, and `create` takes one
//! with a single rename into `containers/<id>`. The skeleton is exactly what
//! `create` would have made (same names, modes from the same umask, all
//! empty). No spare (the first container, or a threaded caller such as the
//! agent, which removes synchronously) means `create` makes the directory
//! itself, as before. A half-built skeleton has a `.new-` name that
//! [`claim`] never takes; the next top-up removes such leftovers.

use crate::record::{tmp_path, EXIT, LOG, MONITOR, RECORD, ROOTFS, UPPER, WORK};
use std::fs;
use std::path::{Path, PathBuf};

/// How many skeletons to keep ready: one for the next `create` and one for
/// the `create` that may come before the top-up after it.
pub const POOL: usize = 2;

const SPARE_DIR: &str = "spare";
const BUILDING: &str = ".new-";

fn spare_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(SPARE_DIR)
}

/// Moves a spare skeleton to `target` (which must not exist). False when
/// there is none (or another process took the last one first).
pub fn claim(data_dir: &Path, target: &Path) -> bool {
    let Ok(entries) = fs::read_dir(spare_dir(data_dir)) else {
        return false;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(BUILDING) {
            continue;
        }
        // Atomic: of two processes racing for one skeleton, one wins and
        // the other sees ENOENT and tries the next.
        if fs::rename(entry.path(), target).is_ok() {
            return true;
        }
    }
    false
}

/// Builds skeletons until [`POOL`] are ready. Best effort: any error stops
/// it, and `create` then makes its own directory.
pub fn top_up(data_dir: &Path) {
    let dir = spare_dir(data_dir);
    if fs::create_dir_all(&dir).is_err() {
        return;
    }
    let Ok(entries) = fs::read_dir(&dir) else {
        return;
    };
    let mut ready = 0;
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(BUILDING) {
            if is_stale(&entry.path()) {
                let _ = fs::remove_dir_all(entry.path());
            }
        } else {
            ready += 1;
        }
    }
    for _ in ready..POOL {
        let Ok(name) = crate::record::new_id() else {
            return;
        };
        let building = dir.join(format!("{BUILDING}{name}"));
        if build(&building).is_err() || fs::rename(&building, dir.join(&name)).is_err() {
            let _ = fs::remove_dir_all(&building);
            return;
        }
    }
}

/// The skeleton `create` would make, in `dir`.
fn build(dir: &Path) -> std::io::Result<()> {
    fs::create_dir(dir)?;
    for sub in [ROOTFS, UPPER, WORK] {
        fs::create_dir(dir.join(sub))?;
    }
    fs::File::create(dir.join(LOG))?;
    for record in [RECORD, MONITOR, EXIT] {
        fs::File::create(tmp_path(&dir.join(record)))?;
    }
    Ok(())
}

/// A `.new-` skeleton older than a minute was left by a builder that died.
fn is_stale(path: &Path) -> bool {
    fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age.as_secs() > 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claimed_skeleton_is_what_create_needs_and_the_pool_refills() {
        let data = tempfile::tempdir().unwrap();
        let target = data.path().join("c1");
        assert!(!claim(data.path(), &target), "nothing to claim yet");
        top_up(data.path());
        assert_eq!(fs::read_dir(spare_dir(data.path())).unwrap().count(), POOL);
        assert!(claim(data.path(), &target));
        for sub in [ROOTFS, UPPER, WORK] {
            assert!(target.join(sub).is_dir(), "{sub}");
        }
        assert_eq!(fs::read(target.join(LOG)).unwrap(), b"");
        assert!(tmp_path(&target.join(RECORD)).is_file());
        assert_eq!(
            fs::read_dir(spare_dir(data.path())).unwrap().count(),
            POOL - 1
        );
        top_up(data.path());
        assert_eq!(fs::read_dir(spare_dir(data.path())).unwrap().count(), POOL);
    }

    #[test]
    fn half_built_skeletons_are_never_claimed() {
        let data = tempfile::tempdir().unwrap();
        let building = spare_dir(data.path()).join(format!("{BUILDING}x"));
        fs::create_dir_all(&building).unwrap();
        assert!(!claim(data.path(), &data.path().join("c1")));
        assert!(building.exists(), "a fresh one is left to its builder");
    }
}
