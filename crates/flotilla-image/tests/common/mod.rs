//! Shared helpers for the image store's integration tests.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Every path under `images/` and `layers/` (to prove a failed import left nothing).
pub fn store_files(data: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    for top in ["images", "layers"] {
        walk(&data.join(top), data, &mut out);
    }
    out
}

fn walk(dir: &Path, base: &Path, out: &mut BTreeSet<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        out.insert(path.strip_prefix(base).unwrap().to_path_buf());
        if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            walk(&path, base, out);
        }
    }
}

/// Entries left in the staging area (must be none between imports).
pub fn staging_leftovers(data: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(data.join("tmp"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

/// An overlayfs mount of image layers, unmounted on drop.
pub struct OverlayMount {
    pub target: PathBuf,
}

impl OverlayMount {
    /// Mount `layers` (bottom first, as `ResolvedImage::layers`) read-only at `target`.
    pub fn new(layers: &[PathBuf], target: &Path) -> OverlayMount {
        std::fs::create_dir_all(target).unwrap();
        let lower: Vec<String> = layers
            .iter()
            .rev()
            .map(|p| p.display().to_string())
            .collect();
        let options = format!("lowerdir={}", lower.join(":"));
        nix::mount::mount(
            Some("overlay"),
            target,
            Some("overlay"),
            nix::mount::MsFlags::MS_RDONLY,
            Some(options.as_str()),
        )
        .unwrap_or_else(|e| panic!("mounting overlay at {}: {e}", target.display()));
        OverlayMount {
            target: target.to_path_buf(),
        }
    }
}

impl Drop for OverlayMount {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.target, nix::mount::MntFlags::MNT_DETACH);
    }
}
