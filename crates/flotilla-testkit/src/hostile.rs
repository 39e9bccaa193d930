//! Hostile archives: one builder per attack. Each writes an archive into
//! `dir` and returns its path; [`hostile_archives`] lists them all with the
//! entry name an importer's error must mention.

use crate::oci::docker_save_from_parts;
use crate::tarball::{gzip, sha256, TarBuf};
use std::fs;
use std::path::{Path, PathBuf};

/// A hostile archive and the entry (or member) its refusal must name.
pub struct HostileArchive {
    pub attack: &'static str,
    pub path: PathBuf,
    pub entry: &'static str,
}

fn write(dir: &Path, file: &str, bytes: Vec<u8>) -> PathBuf {
    let path = dir.join(file);
    fs::write(&path, bytes).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    path
}

fn rootfs_with(dir: &Path, file: &str, build: impl FnOnce(&mut TarBuf)) -> PathBuf {
    let mut tar = TarBuf::new();
    tar.dir("bin").file("bin/ok", b"fine\n");
    build(&mut tar);
    write(dir, file, tar.finish())
}

/// `../escape.txt`: climbs out of the extraction root.
pub fn parent_dir_entry(dir: &Path) -> PathBuf {
    rootfs_with(dir, "parent-dir.tar", |t| {
        t.file("../escape.txt", b"x");
    })
}

/// `/etc/flotilla-evil`: an absolute path.
pub fn absolute_entry(dir: &Path) -> PathBuf {
    rootfs_with(dir, "absolute.tar", |t| {
        t.file("/etc/flotilla-evil", b"x");
    })
}

/// `evil-link -> ../../../../etc`: a relative symlink above the root.
pub fn escaping_symlink(dir: &Path) -> PathBuf {
    rootfs_with(dir, "symlink-escape.tar", |t| {
        t.symlink("evil-link", "../../../../etc");
    })
}

/// `sneaky -> /tmp`, then `sneaky/evil.txt`: writing through a symlink.
pub fn write_through_symlink(dir: &Path) -> PathBuf {
    rootfs_with(dir, "write-through-symlink.tar", |t| {
        t.symlink("sneaky", "/tmp").file("sneaky/evil.txt", b"x");
    })
}

/// `evil` hard-linked to `../../etc/passwd`.
pub fn escaping_hardlink(dir: &Path) -> PathBuf {
    rootfs_with(dir, "hardlink-escape.tar", |t| {
        t.hardlink("evil", "../../etc/passwd");
    })
}

/// `evil2` hard-linked to `/etc/passwd`.
pub fn absolute_hardlink(dir: &Path) -> PathBuf {
    rootfs_with(dir, "hardlink-absolute.tar", |t| {
        t.hardlink("evil2", "/etc/passwd");
    })
}

/// `big.bin` declares 4096 bytes; the archive ends after 1000.
pub fn truncated_entry(dir: &Path) -> PathBuf {
    let mut tar = TarBuf::new();
    tar.dir("bin")
        .file("bin/ok", b"fine\n")
        .file_declaring("big.bin", 4096, &[7u8; 1000]);
    write(dir, "truncated.tar", tar.finish_truncated())
}

/// The same truncated tar, gzip-compressed and then cut short.
pub fn truncated_gzip(dir: &Path) -> PathBuf {
    let mut tar = TarBuf::new();
    tar.dir("bin")
        .file("bin/ok", b"fine\n")
        .file("big.bin", &[7u8; 64 * 1024]);
    let compressed = gzip(&tar.finish());
    write(
        dir,
        "truncated.tar.gz",
        compressed[..compressed.len() / 2].to_vec(),
    )
}

/// `huge.bin` declares 1 TiB with 512 bytes of data.
pub fn huge_declared_size(dir: &Path) -> PathBuf {
    let mut tar = TarBuf::new();
    tar.dir("bin")
        .file_declaring("huge.bin", 1 << 40, &[0u8; 512]);
    write(dir, "huge.tar", tar.finish_truncated())
}

/// `dev/evil`: a character device node (1,3). Refused unless root.
pub fn device_node(dir: &Path) -> PathBuf {
    rootfs_with(dir, "device.tar", |t| {
        t.dir("dev").char_device("dev/evil", 1, 3);
    })
}

/// `bin/redirect` carrying an overlayfs-internal xattr in a PAX header.
pub fn overlay_xattr(dir: &Path) -> PathBuf {
    let mut builder = tar::Builder::new(Vec::new());
    builder
        .append_pax_extensions([("SCHILY.xattr.trusted.overlay.redirect", b"/etc".as_slice())])
        .expect("pax header");
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mode(0o644);
    header.set_size(1);
    header.set_path("bin/redirect").expect("path");
    header.set_cksum();
    builder.append(&header, &b"x"[..]).expect("append");
    write(
        dir,
        "overlay-xattr.tar",
        builder.into_inner().expect("finish"),
    )
}

/// A `docker save` archive whose `manifest.json` is not JSON.
pub fn malformed_manifest(dir: &Path) -> PathBuf {
    docker_save_from_parts(
        &dir.join("malformed-manifest.tar"),
        b"{ this is not json",
        &[],
    )
}

/// A `docker save` archive whose manifest names a config that is missing.
pub fn missing_config(dir: &Path) -> PathBuf {
    let config = format!("{}.json", "c".repeat(64));
    let manifest =
        format!(r#"[{{"Config":"{config}","RepoTags":["x:1"],"Layers":["l/layer.tar"]}}]"#);
    let mut layer = TarBuf::new();
    layer.file("a", b"a");
    docker_save_from_parts(
        &dir.join("missing-config.tar"),
        manifest.as_bytes(),
        &[("l/layer.tar", &layer.finish())],
    )
}

/// A `docker save` archive whose manifest points a layer at `../../etc/passwd`.
pub fn manifest_path_escape(dir: &Path) -> PathBuf {
    let mut layer = TarBuf::new();
    layer.file("a", b"a");
    let layer = layer.finish();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": { "type": "layers", "diff_ids": [sha256(&layer)] },
    }))
    .expect("config");
    let config_name = format!("{}.json", &sha256(&config)[7..]);
    let manifest = format!(
        r#"[{{"Config":"{config_name}","RepoTags":["x:1"],"Layers":["../../etc/passwd"]}}]"#
    );
    docker_save_from_parts(
        &dir.join("manifest-escape.tar"),
        manifest.as_bytes(),
        &[(&config_name, &config)],
    )
}

/// Every hostile archive that must be refused even as root.
pub fn hostile_archives(dir: &Path) -> Vec<HostileArchive> {
    vec![
        HostileArchive {
            attack: "parent dir",
            path: parent_dir_entry(dir),
            entry: "../escape.txt",
        },
        HostileArchive {
            attack: "absolute path",
            path: absolute_entry(dir),
            entry: "/etc/flotilla-evil",
        },
        HostileArchive {
            attack: "escaping symlink",
            path: escaping_symlink(dir),
            entry: "evil-link",
        },
        HostileArchive {
            attack: "write through symlink",
            path: write_through_symlink(dir),
            entry: "sneaky/evil.txt",
        },
        HostileArchive {
            attack: "escaping hardlink",
            path: escaping_hardlink(dir),
            entry: "evil",
        },
        HostileArchive {
            attack: "absolute hardlink",
            path: absolute_hardlink(dir),
            entry: "evil2",
        },
        HostileArchive {
            attack: "truncated entry",
            path: truncated_entry(dir),
            entry: "big.bin",
        },
        HostileArchive {
            attack: "truncated gzip",
            path: truncated_gzip(dir),
            entry: "truncated.tar.gz",
        },
        HostileArchive {
            attack: "huge declared size",
            path: huge_declared_size(dir),
            entry: "huge.bin",
        },
        HostileArchive {
            attack: "overlay xattr",
            path: overlay_xattr(dir),
            entry: "bin/redirect",
        },
        HostileArchive {
            attack: "malformed manifest",
            path: malformed_manifest(dir),
            entry: "manifest.json",
        },
        HostileArchive {
            attack: "missing config",
            path: missing_config(dir),
            entry: "cccccccc",
        },
        HostileArchive {
            attack: "manifest path escape",
            path: manifest_path_escape(dir),
            entry: "../../etc/passwd",
        },
    ]
}
