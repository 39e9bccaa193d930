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

/// Files every native container gets bind-mounted over (see
/// [`crate::network`]); their mount targets must exist in the root filesystem.
const MOUNT_TARGETS: [&str; 3] = ["hosts", "resolv.conf", "hostname"];

/// A read-only layer, shared by every container of one store image, that
/// holds the empty `/etc/hosts`, `/etc/resolv.conf` and `/etc/hostname` the
/// image lacks, to go on top of the image's layers. Why: libcontainer
/// creates a missing bind-mount target in the container's root filesystem,
/// which for an overlay means copying `/etc` up into the private upper layer
/// and creating three files there: four inodes created (and deleted with the
/// container) per start on the host filesystem, where inode allocation is
/// the dearest step on a journal-less ext4 (see ARCHITECTURE.md). Docker
/// makes the same three files in a per-container init layer; here they are
/// made once per image.
///
/// What the container sees is unchanged: the three paths are always mount
/// targets (the generated files, or the caller's own mounts there), so the
/// empty files are never visible; a file is only added where no layer has
/// that name (nor a whiteout of it), and nothing at all when the image's
/// `/etc` is not a plain directory (a symlink, say) or hides lower layers
/// (opaque). Returns `None` (the container starts as before) for `dir:`
/// images, whose directory may change between starts, when the image has all
/// three, or on any error.
pub fn mount_targets_layer(data_dir: &Path, image_id: &str, layers: &[PathBuf]) -> Option<PathBuf> {
    let hex = image_id.strip_prefix("sha256:")?;
    if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let root = data_dir.join("mount-targets");
    let layer = root.join(hex);
    // The usual case: made by an earlier start of this image. An empty
    // marker file says "the image has them all".
    if layer.is_dir() {
        return Some(layer);
    }
    if root.join(format!("{hex}.none")).exists() {
        return None;
    }
    let missing = missing_etc_targets(layers)?;
    let made = if missing.is_empty() {
        std::fs::create_dir_all(&root)
            .and_then(|()| std::fs::write(root.join(format!("{hex}.none")), b""))
            .map(|()| None)
    } else {
        build_targets_layer(&root, &layer, hex, &missing).map(Some)
    };
    match made {
        Ok(l) => l,
        Err(e) => {
            tracing::debug!("mount targets layer for {image_id}: {e}");
            None
        }
    }
}

/// Deletes what [`mount_targets_layer`] made for an image that was removed
/// from the store (its layer, or its "has them all" marker). Nothing there
/// is fine; a failure is only logged: the few files left cost nothing.
pub fn remove_mount_targets(data_dir: &Path, image_id: &str) {
    let Some(hex) = image_id.strip_prefix("sha256:") else {
        return;
    };
    if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return;
    }
    let root = data_dir.join("mount-targets");
    for r in [
        std::fs::remove_dir_all(root.join(hex)),
        std::fs::remove_file(root.join(format!("{hex}.none"))),
    ] {
        if let Err(e) = r {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!("removing the mount targets of {image_id}: {e}");
            }
        }
    }
}

/// Which of [`MOUNT_TARGETS`] no layer has under `etc/`; `None` when `etc`
/// itself is not a plain, non-opaque directory wherever it first appears
/// from the top (then the layer is not used at all).
fn missing_etc_targets(layers: &[PathBuf]) -> Option<Vec<&'static str>> {
    use std::os::unix::fs::FileTypeExt as _;
    let mut missing: Vec<&'static str> = MOUNT_TARGETS.to_vec();
    // Top layer first, as overlayfs looks names up.
    for layer in layers.iter().rev() {
        let etc = layer.join("etc");
        let meta = match std::fs::symlink_metadata(&etc) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(_) => return None,
        };
        if meta.file_type().is_char_device() {
            // A whiteout: `etc` is deleted from the layers below.
            break;
        }
        if !meta.is_dir() {
            return None;
        }
        missing.retain(|name| {
            // Present in any form (file, symlink, whiteout), or unreadable:
            // not ours to add.
            std::fs::symlink_metadata(etc.join(name))
                .is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound)
        });
        if is_opaque(&etc) {
            break;
        }
    }
    Some(missing)
}

/// Whether overlayfs treats `dir` as opaque (it hides the layers below).
fn is_opaque(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt as _;
    let Ok(path) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return true;
    };
    let mut value = [0u8; 4];
    // SAFETY: lgetxattr(2) into a buffer we own, with valid C strings.
    let n = unsafe {
        libc::lgetxattr(
            path.as_ptr(),
            c"trusted.overlay.opaque".as_ptr(),
            value.as_mut_ptr().cast(),
            value.len(),
        )
    };
    n > 0 && value[0] == b'y'
}

/// Builds the layer in a temporary directory and renames it into place, so
/// a concurrent start sees either nothing or the whole layer; the loser of a
/// race deletes its copy and uses the winner's.
fn build_targets_layer(
    root: &Path,
    layer: &Path,
    hex: &str,
    missing: &[&str],
) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
    std::fs::create_dir_all(root)?;
    let tmp = root.join(format!(".{hex}.{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let etc = tmp.join("etc");
    std::fs::DirBuilder::new()
        .mode(0o755)
        .recursive(true)
        .create(&etc)?;
    for name in missing {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(etc.join(name))?;
    }
    match std::fs::rename(&tmp, layer) {
        Ok(()) => Ok(layer.to_path_buf()),
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            if layer.is_dir() {
                Ok(layer.to_path_buf())
            } else {
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(root: &Path, name: &str, files: &[&str]) -> PathBuf {
        let l = root.join(name);
        std::fs::create_dir_all(&l).unwrap();
        for f in files {
            let p = l.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            if !f.ends_with('/') {
                std::fs::write(p, b"x").unwrap();
            }
        }
        l
    }

    #[test]
    fn only_names_no_layer_has_are_missing() {
        let t = tempfile::tempdir().unwrap();
        let none = layer(t.path(), "a", &["bin/sh"]);
        assert_eq!(
            missing_etc_targets(std::slice::from_ref(&none)).unwrap(),
            MOUNT_TARGETS.to_vec()
        );
        let lower = layer(t.path(), "b", &["etc/hosts"]);
        let upper = layer(t.path(), "c", &["etc/hostname", "etc/passwd"]);
        assert_eq!(
            missing_etc_targets(&[lower, upper]).unwrap(),
            vec!["resolv.conf"]
        );
    }

    #[test]
    fn an_etc_that_is_not_a_plain_directory_gets_no_layer() {
        let t = tempfile::tempdir().unwrap();
        let lower = layer(t.path(), "a", &["usr/etc/"]);
        let upper = layer(t.path(), "b", &[]);
        std::os::unix::fs::symlink("usr/etc", upper.join("etc")).unwrap();
        assert_eq!(missing_etc_targets(&[lower, upper]), None);
        let file = layer(t.path(), "c", &["etc"]);
        assert_eq!(missing_etc_targets(&[file]), None);
    }

    #[test]
    fn store_images_only_and_the_layer_is_made_once() {
        let t = tempfile::tempdir().unwrap();
        let img = layer(t.path(), "img", &["etc/passwd"]);
        let data = t.path().join("data");
        let layers = vec![img];
        assert_eq!(mount_targets_layer(&data, "dir:/x", &layers), None);
        assert_eq!(mount_targets_layer(&data, "sha256:zz", &layers), None);
        let id = format!("sha256:{}", "ab".repeat(32));
        let made = mount_targets_layer(&data, &id, &layers).unwrap();
        for name in MOUNT_TARGETS {
            let m = std::fs::metadata(made.join("etc").join(name)).unwrap();
            assert_eq!(m.len(), 0);
        }
        assert_eq!(mount_targets_layer(&data, &id, &layers), Some(made.clone()));
        remove_mount_targets(&data, &id);
        assert!(!made.exists());
    }
}
