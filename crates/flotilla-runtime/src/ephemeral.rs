//! Per-host runtime state that only has to outlive the process that wrote it,
//! not a reboot: libcontainer's state directories (state.json, its config
//! copy, the notify socket) and each container's start-time bundle (the OCI
//! `config.json` and the generated `hosts`, `resolv.conf` and `hostname`
//! that are bind-mounted into it). It lives on a tmpfs at
//! [`EPHEMERAL_ROOT`], as runc's `/run/runc` and containerd's
//! `/run/containerd` do on systemd machines, where `/run` is a tmpfs.
//!
//! Why: where `/run` is not a tmpfs (this project's VM: `/run` is the root
//! ext4, which has no journal), every inode a start creates there costs an
//! inode-table search that grows with recently freed inodes
//! (`find_inode_bit` skips those freed in the last minutes), and a start
//! created ~25 such inodes; these are 8 of them. [`ensure_mounted`] mounts a
//! tmpfs there once if the directory is not on one already.
//!
//! What stays on disk (`<data-dir>/containers/<id>/`): the record, the
//! monitor's and exit records, the log and the overlay's upper layer:
//! everything a process re-adopting containers after a crash reads, and the
//! exit status of a container that ended while nobody watched (written by
//! its monitor; after a reboot it still tells "exited with 3" from "dead").
//!
//! After a reboot the tmpfs is empty: a container that was running has a
//! monitor record but no exit record and no live monitor, so it reads as
//! `dead`; removing it finds nothing here to delete (every removal here
//! accepts "already gone"). A created, never started container cannot start
//! after a reboot anyway (its overlay mount is gone too): its start fails
//! with the missing bundle named, and `rm` removes it.

use anyhow::{Context as _, Result};
use nix::mount::{mount, MsFlags};
use nix::sys::statfs::{statfs, TMPFS_MAGIC};
use std::os::fd::AsRawFd as _;
use std::path::{Path, PathBuf};

/// The tmpfs. A directory of its own below `/run/flotilla`, not that
/// directory itself: `/run/flotilla/netns` is the net crate's mount point for
/// named network namespaces, which a tmpfs over its parent would hide.
pub const EPHEMERAL_ROOT: &str = "/run/flotilla/state";

/// libcontainer's root (`<id>/` with state.json, config, notify socket). Its
/// length matters: the notify socket's path must fit in a `sun_path` (108
/// bytes); `<root>/<64 hex>/notify.sock` is 102.
pub const LIBCONTAINER_ROOT: &str = "/run/flotilla/state/youki";

/// Compiled seccomp programs, one per profile (libcontainer's
/// `seccomp::precompiled`, a Flotilla patch): on the tmpfs because a program
/// depends on the running kernel, which a reboot may change.
pub const SECCOMP_CACHE: &str = "/run/flotilla/state/seccomp";

/// Where each container's start bundle lives: `<root>/<id>/`.
const BUNDLES: &str = "/run/flotilla/state/bundles";

/// Serialises the check-and-mount between concurrent processes. Beside the
/// mount point, not in it (a lock inside would be hidden by the mount).
const MOUNT_LOCK: &str = "/run/flotilla/state.lock";

/// A container's start bundle directory: `config.json` (libcontainer reads it
/// as the bundle) and the /etc files bind-mounted into the container.
pub fn bundle_dir(id: &str) -> PathBuf {
    Path::new(BUNDLES).join(id)
}

/// Deletes a container's bundle; already gone (after a reboot, or after the
/// monitor removed it) is fine.
pub fn remove_bundle(id: &str) {
    if let Err(e) = std::fs::remove_dir_all(bundle_dir(id)) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!("removing {}: {e}", bundle_dir(id).display());
        }
    }
}

/// Makes sure [`EPHEMERAL_ROOT`] is on a tmpfs: already one (one `statfs`, the
/// usual case after the first start), or one mounted now. Race-safe between
/// concurrent CLI processes: the mount happens under an exclusive `flock`
/// and only after re-checking, so two starts never stack two tmpfs (the
/// second would hide the first's files). If the mount is refused (no
/// CAP_SYS_ADMIN), the state stays on the directory's own filesystem, which
/// works, only slower on some filesystems: a warning, not an error.
pub fn ensure_mounted() -> Result<()> {
    let root = Path::new(EPHEMERAL_ROOT);
    if is_tmpfs(root) {
        return Ok(());
    }
    std::fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(MOUNT_LOCK)
        .with_context(|| format!("opening {MOUNT_LOCK}"))?;
    // SAFETY: flock on an fd we own; released when `lock` is dropped.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("locking {MOUNT_LOCK}"));
    }
    if is_tmpfs(root) {
        return Ok(()); // another process mounted it while we waited
    }
    // mode 0755 like /run; nosuid/nodev/noexec: nothing here is executed,
    // and no device node belongs here. No size limit beyond tmpfs' default
    // (half of RAM): a running container keeps ~8 small files here.
    let mounted = mount(
        Some("tmpfs"),
        root,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("mode=0755"),
    );
    if let Err(e) = mounted {
        tracing::warn!(
            "could not mount a tmpfs at {EPHEMERAL_ROOT} ({e}); runtime state stays on its filesystem"
        );
    }
    Ok(())
}

fn is_tmpfs(path: &Path) -> bool {
    statfs(path).is_ok_and(|s| s.filesystem_type() == TMPFS_MAGIC)
}
