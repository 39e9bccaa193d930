//! A minimal root filesystem around Debian's static busybox.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where Debian's `busybox-static` package installs the static binary.
pub const BUSYBOX: &str = "/bin/busybox";

/// Build a busybox root filesystem in `dir/rootfs` and return that path
/// (so `dir` can be an OCI bundle: `dir/config.json` next to `dir/rootfs`).
///
/// Contents: `/bin/busybox`, a symlink to it for every applet busybox lists
/// (`sh`, `echo`, `true`, `sleep`, `cat`, `ps`, `httpd`, `ls`, `id`,
/// `hostname`, `wget`, `nc`, …) at its usual place (`/bin`, `/sbin`,
/// `/usr/bin`, `/usr/sbin`), empty `/proc /sys /dev /tmp /run /root /var`,
/// `/etc/passwd` and `/etc/group` (root and nobody), and empty
/// `/etc/hosts`, `/etc/resolv.conf`, `/etc/hostname` as bind-mount targets.
/// An existing `dir/rootfs` is replaced.
pub fn busybox_rootfs(dir: &Path) -> PathBuf {
    let root = dir.join("rootfs");
    if root.exists() {
        fs::remove_dir_all(&root)
            .unwrap_or_else(|e| panic!("removing old {}: {e}", root.display()));
    }
    for d in [
        "bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "tmp", "run", "root",
        "var", "home",
    ] {
        mkdir(&root.join(d));
    }
    fs::set_permissions(root.join("tmp"), fs::Permissions::from_mode(0o1777)).expect("chmod /tmp");
    fs::set_permissions(root.join("root"), fs::Permissions::from_mode(0o700)).expect("chmod /root");

    let busybox = root.join("bin/busybox");
    fs::copy(BUSYBOX, &busybox)
        .unwrap_or_else(|e| panic!("copying {BUSYBOX} (install Debian's busybox-static): {e}"));
    fs::set_permissions(&busybox, fs::Permissions::from_mode(0o755)).expect("chmod busybox");

    for applet in applet_paths() {
        let link = root.join(&applet);
        if applet == "bin/busybox" || link.exists() {
            continue;
        }
        if let Some(parent) = link.parent() {
            mkdir(parent);
        }
        symlink("/bin/busybox", &link)
            .unwrap_or_else(|e| panic!("symlink {}: {e}", link.display()));
    }

    write(
        &root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    );
    write(&root.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n");
    for empty in ["etc/hosts", "etc/resolv.conf", "etc/hostname"] {
        write(&root.join(empty), "");
    }
    root
}

/// Write the [`busybox_rootfs`] as an uncompressed tar at
/// `dir/busybox-rootfs.tar` (entries relative, `./` first, symlinks kept as
/// symlinks) and return its path. The rootfs itself is built in a scratch
/// directory under `dir` and removed afterwards.
pub fn busybox_rootfs_tar(dir: &Path) -> PathBuf {
    let scratch = dir.join(".busybox-rootfs-scratch");
    let root = busybox_rootfs(&scratch);
    let dest = dir.join("busybox-rootfs.tar");
    write_dir_tar(&root, &dest);
    fs::remove_dir_all(&scratch).expect("removing scratch rootfs");
    dest
}

/// Tar up a directory tree (not following symlinks) into `dest`.
pub(crate) fn write_dir_tar(root: &Path, dest: &Path) {
    let file =
        fs::File::create(dest).unwrap_or_else(|e| panic!("creating {}: {e}", dest.display()));
    let mut builder = tar::Builder::new(std::io::BufWriter::new(file));
    builder.follow_symlinks(false);
    builder
        .append_dir_all(".", root)
        .unwrap_or_else(|e| panic!("tarring {}: {e}", root.display()));
    builder
        .into_inner()
        .and_then(|mut w| std::io::Write::flush(&mut w))
        .unwrap_or_else(|e| panic!("finishing {}: {e}", dest.display()));
}

/// Every applet with its install path, as busybox itself reports them
/// (`usr/bin/wget`, `bin/sh`, …).
fn applet_paths() -> Vec<String> {
    let out = Command::new(BUSYBOX)
        .arg("--list-full")
        .output()
        .unwrap_or_else(|e| panic!("running {BUSYBOX} --list-full (install busybox-static): {e}"));
    assert!(out.status.success(), "{BUSYBOX} --list-full failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().trim_start_matches('/').to_string())
        .filter(|l| !l.is_empty() && !l.contains(".."))
        .collect()
}

fn mkdir(path: &Path) {
    fs::create_dir_all(path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
}

fn write(path: &Path, contents: &str) {
    fs::write(path, contents).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}
