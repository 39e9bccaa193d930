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
//! So the process that deletes a removed container in the background (the
//! monitor of a `run --rm`, or [`crate::helper::delete_in_background`]) first
//! tops `<data-dir>/spare/` up to [`POOL`] empty skeletons, and `create`
//! takes one with a single rename into `containers/<id>`. The skeleton is
//! exactly what `create` would have made (same names, modes from the same
//! umask, all empty). No spare (the first container, or a threaded caller
//! such as the agent, which removes synchronously) means `create` makes the
//! directory itself, as before.
//!
//! Skeletons are built inside a directory only the builder uses (the removed
//! container's own, about to be deleted) and renamed into `spare/` when
//! complete, so [`claim`] never sees half of one, and the builder, which runs
//! in the idle CPU class, never holds the lock of `spare/` while it waits
//! for an inode: a preempted idle-class holder would stall the next
//! `create`'s rename behind it.

use crate::record::{tmp_path, EXIT, LOG, MONITOR, RECORD, ROOTFS, UPPER, WORK};
use std::fs;
use std::path::{Path, PathBuf};

/// How many skeletons to keep ready: one for the next `create` and one for
/// the `create` that may come before the top-up after it.
pub const POOL: usize = 2;

const SPARE_DIR: &str = "spare";

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
        // Atomic: of two processes racing for one skeleton, one wins and
        // the other sees ENOENT and tries the next.
        if fs::rename(entry.path(), target).is_ok() {
            return true;
        }
    }
    false
}

/// Builds skeletons in `scratch` (a directory on the data dir's filesystem
/// that only this process uses) and moves them into `spare/` until [`POOL`]
/// are there. Best effort: any error stops it (what is left in `scratch`
/// goes with it), and `create` then makes its own directory.
pub fn top_up(data_dir: &Path, scratch: &Path) {
    let dir = spare_dir(data_dir);
    if fs::create_dir_all(&dir).is_err() {
        return;
    }
    let Ok(entries) = fs::read_dir(&dir) else {
        return;
    };
    let ready = entries.count();
    for _ in ready..POOL {
        let Ok(name) = crate::record::new_id() else {
            return;
        };
        let building = scratch.join(format!(".spare-{name}"));
        if build(&building).is_err() || fs::rename(&building, dir.join(&name)).is_err() {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claimed_skeleton_is_what_create_needs_and_the_pool_refills() {
        let data = tempfile::tempdir().unwrap();
        let scratch = data.path().join("scratch");
        fs::create_dir(&scratch).unwrap();
        let target = data.path().join("c1");
        assert!(!claim(data.path(), &target), "nothing to claim yet");
        top_up(data.path(), &scratch);
        assert_eq!(fs::read_dir(spare_dir(data.path())).unwrap().count(), POOL);
        assert_eq!(fs::read_dir(&scratch).unwrap().count(), 0, "all moved");
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
        top_up(data.path(), &scratch);
        assert_eq!(fs::read_dir(spare_dir(data.path())).unwrap().count(), POOL);
    }

    #[test]
    fn a_failed_build_leaves_nothing_in_the_pool() {
        let data = tempfile::tempdir().unwrap();
        // The scratch directory does not exist: nothing can be built.
        top_up(data.path(), &data.path().join("missing"));
        assert_eq!(fs::read_dir(spare_dir(data.path())).unwrap().count(), 0);
        assert!(!claim(data.path(), &data.path().join("c1")));
    }
}
