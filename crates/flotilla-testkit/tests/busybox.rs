//! The busybox rootfs really runs: chroot into it and use a few applets.

use std::process::Command;

#[test]
fn rootfs_has_applets_and_runs_under_chroot() {
    let tmp = tempfile::tempdir().unwrap();
    let root = flotilla_testkit::busybox_rootfs(tmp.path());
    assert_eq!(root, tmp.path().join("rootfs"));
    for p in [
        "bin/sh",
        "bin/echo",
        "bin/sleep",
        "usr/bin/wget",
        "usr/sbin/httpd",
        "etc/passwd",
        "etc/group",
    ] {
        assert!(root.join(p).symlink_metadata().is_ok(), "{p} missing");
    }
    for d in ["proc", "sys", "dev", "tmp", "run", "etc"] {
        assert!(root.join(d).is_dir(), "{d} missing");
    }
    let out = Command::new("chroot")
        .arg(&root)
        .args(["/bin/sh", "-c", "echo hello; id -u; ls /bin/sh"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout, "hello\n0\n/bin/sh\n");
}

#[test]
fn rootfs_tar_lists_busybox_and_symlinks() {
    let tmp = tempfile::tempdir().unwrap();
    let tar_path = flotilla_testkit::busybox_rootfs_tar(tmp.path());
    let mut archive = tar::Archive::new(std::fs::File::open(&tar_path).unwrap());
    let mut saw_busybox = false;
    let mut saw_sh_link = false;
    for entry in archive.entries().unwrap() {
        let entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        let path = path.trim_start_matches("./").to_string();
        if path == "bin/busybox" {
            saw_busybox = entry.header().entry_type().is_file();
        }
        if path == "bin/sh" {
            saw_sh_link = entry.header().entry_type().is_symlink();
        }
    }
    assert!(saw_busybox && saw_sh_link);
    assert!(!tmp.path().join(".busybox-rootfs-scratch").exists());
}
