//! The one root filesystem every container-start contender runs: Debian's
//! static busybox plus the few files a container runtime expects. Built as a
//! directory (an OCI bundle rootfs for crun/runc) and as a tar (imported into
//! Flotilla and into Docker), so all contenders start the same bytes.

use anyhow::{bail, Context as _, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

pub const BUSYBOX: &str = "/bin/busybox";

pub struct Rootfs {
    pub dir: PathBuf,
    pub tar: PathBuf,
}

/// Builds `<parent>/rootfs/` and `<parent>/rootfs.tar`.
pub fn build(parent: &Path) -> Result<Rootfs> {
    let busybox = Path::new(BUSYBOX);
    if !busybox.exists() {
        bail!("{BUSYBOX} is missing: install Debian's busybox-static (bench/run does)");
    }
    let dir = parent.join("rootfs");
    for d in ["bin", "dev", "etc", "proc", "sys", "tmp", "root"] {
        std::fs::create_dir_all(dir.join(d))
            .with_context(|| format!("creating {}", dir.join(d).display()))?;
    }
    std::fs::copy(busybox, dir.join("bin/busybox")).context("copying busybox into the rootfs")?;
    for applet in ["sh", "true", "sleep"] {
        std::os::unix::fs::symlink("busybox", dir.join("bin").join(applet))?;
    }
    std::fs::write(dir.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n")?;
    std::fs::write(dir.join("etc/group"), "root:x:0:\n")?;
    let tar = parent.join("rootfs.tar");
    crate::procutil::output(
        Command::new("tar")
            .arg("--numeric-owner")
            .arg("-C")
            .arg(&dir)
            .arg("-cf")
            .arg(&tar)
            .arg("."),
    )?;
    Ok(Rootfs { dir, tar })
}
