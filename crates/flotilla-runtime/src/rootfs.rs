//! The container's root filesystem: an overlayfs snapshot per container with
//! the image layers as read-only lowers and a private upper, removed with the
//! container. Also named volumes (`<data-dir>/volumes/<name>/_data`).

use anyhow::{bail, Context as _, Result};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use std::path::{Path, PathBuf};

/// Mounts the overlay at `dir/rootfs` (upper and work dirs beside it).
/// `layers` are bottom first, as the image store returns them.
pub fn mount_overlay(dir: &Path, layers: &[PathBuf]) -> Result<PathBuf> {
    if layers.is_empty() {
        bail!("the image has no layers: nothing to use as a root filesystem");
    }
    let rootfs = dir.join(crate::record::ROOTFS);
    let upper = dir.join(crate::record::UPPER);
    let work = dir.join(crate::record::WORK);
    for d in [&rootfs, &upper, &work] {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    for l in layers {
        let s = l.to_string_lossy();
        if s.contains(':') || s.contains(',') {
            bail!(
                "layer path {} contains ':' or ',' which overlayfs options cannot carry",
                l.display()
            );
        }
    }
    // overlayfs wants the topmost lower first.
    let lower: Vec<String> = layers
        .iter()
        .rev()
        .map(|l| l.to_string_lossy().into_owned())
        .collect();
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        upper.display(),
        work.display()
    );
    if options.len() >= 4096 {
        bail!(
            "too many image layers for one overlay mount ({} layers, options exceed a page)",
            layers.len()
        );
    }
    // `volatile` (Linux 5.10+) drops overlayfs' syncs of the upper
    // filesystem: without it the unmount at the end of every container runs
    // sync_filesystem() on the whole host filesystem holding the upper dir,
    // which waits for everybody's dirty data on a busy disk. The upper layer
    // is private to this container and discarded with it (a container starts
    // once and is never remounted), so its durability buys nothing: after a
    // host crash the container is dead either way. Volumes are bind mounts of
    // their own and keep fsync. Older kernels refuse the option: mount without.
    let volatile = format!("{options},volatile");
    let mounted = if volatile.len() < 4096 {
        overlay_mount(&rootfs, &volatile)
    } else {
        Err(nix::errno::Errno::EINVAL)
    };
    match mounted {
        Ok(()) => {}
        Err(nix::errno::Errno::EINVAL) => overlay_mount(&rootfs, &options)
            .with_context(|| format!("mounting overlay root filesystem at {}", rootfs.display()))?,
        Err(e) => {
            return Err(e).with_context(|| {
                format!("mounting overlay root filesystem at {}", rootfs.display())
            })
        }
    }
    Ok(rootfs)
}

fn overlay_mount(target: &Path, options: &str) -> nix::Result<()> {
    mount(
        Some("overlay"),
        target,
        Some("overlay"),
        MsFlags::empty(),
        Some(options),
    )
}

/// Unmounts the rootfs if mounted (lazy, so a stray open file cannot block removal).
pub fn unmount(dir: &Path) -> Result<()> {
    let rootfs = dir.join(crate::record::ROOTFS);
    match umount2(&rootfs, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => Ok(()),
        Err(e) => Err(e).with_context(|| format!("unmounting {}", rootfs.display())),
    }
}

/// The host directory of a named volume, created on first use.
pub fn volume_dir(data_dir: &Path, name: &str) -> Result<PathBuf> {
    crate::spec::validate_volume_name(name)?;
    let d = data_dir.join("volumes").join(name).join("_data");
    std::fs::create_dir_all(&d)
        .with_context(|| format!("creating volume {name:?} at {}", d.display()))?;
    Ok(d)
}
