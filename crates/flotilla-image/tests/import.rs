//! Imports of real archives into a real store on disk.

mod common;

use common::{staging_leftovers, store_files, OverlayMount};
use flotilla_image::{ArchiveFormat, ImageError, ImageStore, ImportOptions};
use flotilla_testkit as kit;
use std::fs;

#[test]
fn imports_a_real_docker_save_archive() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = kit::docker_save_archive(tmp.path()).unwrap();
    let store = ImageStore::open(&tmp.path().join("data")).unwrap();
    let summary = store.import(&archive, None).unwrap();
    assert_eq!(summary.names, vec![kit::DOCKER_SAVE_NAME.to_string()]);
    assert_eq!(summary.layers, 1);
    let image = store.resolve(kit::DOCKER_SAVE_NAME).unwrap();
    assert_eq!(image.id, summary.id);
    let cmd = image
        .config
        .config()
        .as_ref()
        .and_then(|c| c.cmd().clone())
        .unwrap();
    assert_eq!(cmd, kit::DOCKER_SAVE_CMD.map(String::from).to_vec());
    assert!(image.layers[0].join("bin/busybox").is_file());
    assert!(image.layers[0]
        .join("bin/sh")
        .symlink_metadata()
        .unwrap()
        .file_type()
        .is_symlink());

    // Importing again changes nothing and keeps the ID.
    let files = store_files(&tmp.path().join("data"));
    assert_eq!(
        store.import(&archive, Some("busybox:again")).unwrap().id,
        summary.id
    );
    assert_eq!(store.list().unwrap().len(), 1);
    let after: Vec<_> = store_files(&tmp.path().join("data"))
        .difference(&files)
        .cloned()
        .collect();
    assert!(
        after.iter().all(|p| !p.starts_with("layers")),
        "re-import unpacked again: {after:?}"
    );

    // Docker 25+ also writes an OCI layout into `docker save`; import that view too.
    let has_oci = tar::Archive::new(fs::File::open(&archive).unwrap())
        .entries()
        .unwrap()
        .any(|e| e.unwrap().path().unwrap().to_string_lossy() == "oci-layout");
    if has_oci {
        let options = ImportOptions {
            format: Some(ArchiveFormat::OciLayout),
            ..Default::default()
        };
        assert_eq!(
            store.import_with(&archive, &options).unwrap().id,
            summary.id
        );
    }
    assert!(staging_leftovers(&tmp.path().join("data")).is_empty());
}

#[test]
fn imports_oci_layout_dir_and_tar_and_honours_whiteouts_through_overlayfs() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = kit::busybox_oci_layout(tmp.path());
    let layout_tar = kit::tar_dir(&layout, &tmp.path().join("layout.tar"));
    let store = ImageStore::open(&tmp.path().join("data")).unwrap();

    let from_dir = store.import(&layout, None).unwrap();
    assert_eq!(from_dir.names, vec![kit::OCI_LAYOUT_NAME.to_string()]);
    assert_eq!(from_dir.layers, 2);
    let from_tar = store.import(&layout_tar, Some("from-tar")).unwrap();
    assert_eq!(from_tar.id, from_dir.id);
    assert_eq!(store.list().unwrap().len(), 1);

    let image = store.resolve("from-tar:latest").unwrap();
    assert_eq!(image.layers.len(), 2);
    let mount = OverlayMount::new(&image.layers, &tmp.path().join("merged"));
    let root = &mount.target;
    assert!(root.join("bin/busybox").is_file());
    assert!(
        !root.join("etc/doomed").exists(),
        "whiteout did not hide etc/doomed"
    );
    assert!(root.join("etc/passwd").is_file());
    assert!(
        !root.join("data/old/keep.txt").exists(),
        "opaque dir did not hide keep.txt"
    );
    assert!(
        !root.join("data/old/sub").exists(),
        "opaque dir did not hide sub/"
    );
    assert_eq!(
        fs::read_to_string(root.join("data/old/new.txt")).unwrap(),
        "from layer 2\n"
    );
    assert_eq!(
        fs::read_to_string(root.join("data/stays.txt")).unwrap(),
        "still here\n"
    );
    use std::os::unix::fs::MetadataExt;
    let a = fs::metadata(root.join("data/upper.txt")).unwrap();
    let b = fs::metadata(root.join("data/upper-link.txt")).unwrap();
    assert_eq!(
        (a.ino(), a.nlink()),
        (b.ino(), 2),
        "hard link not preserved"
    );
}

#[test]
fn imports_rootfs_tar_gzip_tar_and_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let rootfs_tar = kit::busybox_rootfs_tar(tmp.path());
    let store = ImageStore::open(&tmp.path().join("data")).unwrap();
    let plain = store.import(&rootfs_tar, Some("busybox:local")).unwrap();
    assert_eq!(plain.names, vec!["busybox:local".to_string()]);
    let image = store.resolve("busybox:local").unwrap();
    let config = image.config.config().clone().unwrap();
    assert!(config.env().clone().unwrap()[0].starts_with("PATH="));
    assert!(config.cmd().is_none());
    assert!(image.layers[0].join("bin/busybox").is_file());
    use std::os::unix::fs::PermissionsExt;
    let tmp_mode = fs::metadata(image.layers[0].join("tmp"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(tmp_mode & 0o7777, 0o1777, "directory mode not preserved");

    // Same content gzip-compressed: same diff ID, so the same unpacked layer.
    let gz = tmp.path().join("rootfs.tar.gz");
    fs::write(&gz, kit::tarball::gzip(&fs::read(&rootfs_tar).unwrap())).unwrap();
    let options = ImportOptions {
        name: Some("busybox:gz".into()),
        cmd: Some(vec!["/bin/sh".into()]),
        ..Default::default()
    };
    let compressed = store.import_with(&gz, &options).unwrap();
    let gz_image = store.resolve("busybox:gz").unwrap();
    assert_eq!(gz_image.layers, image.layers);
    assert_ne!(compressed.id, plain.id, "different Cmd, different config");
    assert_eq!(
        gz_image
            .config
            .config()
            .clone()
            .unwrap()
            .cmd()
            .clone()
            .unwrap(),
        vec!["/bin/sh".to_string()]
    );

    // A root filesystem directory.
    let dir = kit::busybox_rootfs(&tmp.path().join("dir"));
    store.import(&dir, Some("busybox:dir")).unwrap();
    assert!(store.resolve("busybox:dir").unwrap().layers[0]
        .join("bin/busybox")
        .is_file());
    // Content-addressed: the directory may hash to the same image as the plain
    // tar (same content and mtimes), so count names, not images.
    let names: Vec<String> = store
        .list()
        .unwrap()
        .into_iter()
        .flat_map(|i| i.names)
        .collect();
    for name in ["busybox:gz", "busybox:dir"] {
        assert!(
            names.iter().any(|n| n == name),
            "{name} missing from {names:?}"
        );
    }
    assert!(names.len() >= 3, "{names:?}");
}

#[test]
fn every_hostile_archive_is_refused_by_entry_and_leaves_the_store_unchanged() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let store = ImageStore::open(&data).unwrap();
    store
        .import(&kit::busybox_rootfs_tar(tmp.path()), Some("base"))
        .unwrap();
    let before = store_files(&data);
    for hostile in kit::hostile::hostile_archives(tmp.path()) {
        let err = store
            .import(&hostile.path, Some("evil"))
            .expect_err(&format!("{} was accepted", hostile.attack));
        let message = err.to_string();
        eprintln!("{}: {message}", hostile.attack);
        assert!(
            message.contains(hostile.entry),
            "{}: error does not name {:?}: {message}",
            hostile.attack,
            hostile.entry
        );
        assert_eq!(
            store_files(&data),
            before,
            "{} changed the store",
            hostile.attack
        );
        assert!(
            staging_leftovers(&data).is_empty(),
            "{} left staging files",
            hostile.attack
        );
    }
    assert!(!std::path::Path::new("/etc/flotilla-evil").exists());
    assert!(matches!(
        store.resolve("evil"),
        Err(ImageError::NotFound(_))
    ));
}

#[test]
fn corrupted_blob_is_a_digest_mismatch_naming_the_blob() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = kit::busybox_oci_layout(tmp.path());
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let manifest_digest = index["manifests"][0]["digest"].as_str().unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(
        &fs::read(layout.join("blobs/sha256").join(&manifest_digest[7..])).unwrap(),
    )
    .unwrap();
    let upper = manifest["layers"][1]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let blob = layout.join("blobs/sha256").join(&upper[7..]);
    let mut bytes = fs::read(&blob).unwrap();
    let last = bytes.len() - 2048; // inside the tar's data, before the end blocks
    bytes[last] ^= 0xff;
    fs::write(&blob, bytes).unwrap();

    let data = tmp.path().join("data");
    let store = ImageStore::open(&data).unwrap();
    let before = store_files(&data);
    let err = store.import(&layout, None).unwrap_err();
    assert!(matches!(err, ImageError::DigestMismatch { .. }), "{err}");
    assert!(err.to_string().contains(&upper[7..]), "{err}");
    assert_eq!(store_files(&data), before);
    assert!(staging_leftovers(&data).is_empty());
}

#[test]
fn concurrent_imports_of_the_same_image_agree() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = kit::busybox_oci_layout(tmp.path());
    let layout_tar = kit::tar_dir(&layout, &tmp.path().join("layout.tar"));
    let data = tmp.path().join("data");
    let ids: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..3)
            .map(|i| {
                let (data, source) = (&data, if i % 2 == 0 { &layout_tar } else { &layout });
                scope.spawn(move || {
                    ImageStore::open(data)
                        .unwrap()
                        .import(source, Some("same"))
                        .unwrap()
                        .id
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "{ids:?}");
    let store = ImageStore::open(&data).unwrap();
    assert_eq!(store.list().unwrap().len(), 1);
    assert_eq!(fs::read_dir(data.join("layers")).unwrap().count(), 2);
    assert!(staging_leftovers(&data).is_empty());
}

#[test]
fn resolve_by_name_id_prefix_and_not_found_says_how_to_import() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&tmp.path().join("data")).unwrap();
    let (archive, config_digest) = kit::tiny_docker_save(tmp.path());
    let summary = store.import(&archive, None).unwrap();
    assert_eq!(summary.id, config_digest);
    assert_eq!(summary.names, vec!["tiny:1".to_string()]);
    assert_eq!(
        store.resolve("docker.io/library/tiny:1").unwrap().id,
        config_digest
    );
    assert_eq!(store.resolve(&config_digest).unwrap().id, config_digest);
    assert_eq!(
        store.resolve(&config_digest[7..19]).unwrap().id,
        config_digest
    );
    let err = store.resolve("nope").unwrap_err();
    assert!(matches!(err, ImageError::NotFound(_)));
    assert!(err.to_string().contains("flotilla image import"), "{err}");
}

#[test]
fn remove_untags_then_deletes_unshared_blobs_and_layers() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let store = ImageStore::open(&data).unwrap();
    let rootfs = kit::busybox_rootfs_tar(tmp.path());
    let first = store.import(&rootfs, Some("a")).unwrap();
    store.import(&rootfs, Some("b")).unwrap();
    let (tiny, _) = kit::tiny_docker_save(tmp.path());
    store.import(&tiny, None).unwrap();

    let outcome = store.remove("a").unwrap();
    assert_eq!(outcome.untagged, vec!["a:latest".to_string()]);
    assert_eq!(outcome.deleted, None, "b still names the image");
    let outcome = store.remove("b:latest").unwrap();
    assert_eq!(outcome.deleted, Some(first.id.clone()));
    assert_eq!(store.list().unwrap().len(), 1);
    assert_eq!(
        fs::read_dir(data.join("layers")).unwrap().count(),
        1,
        "busybox layer not deleted"
    );
    // tiny's manifest, config and layer blobs remain.
    assert_eq!(
        fs::read_dir(data.join("images/blobs/sha256"))
            .unwrap()
            .count(),
        3
    );
    assert!(matches!(store.remove("a"), Err(ImageError::NotFound(_))));
    store.remove("tiny:1").unwrap();
    assert_eq!(
        fs::read_dir(data.join("images/blobs/sha256"))
            .unwrap()
            .count(),
        0
    );
    assert!(staging_leftovers(&data).is_empty());
}

#[test]
fn leftovers_of_an_interrupted_import_are_swept_by_the_next_one() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let store = ImageStore::open(&data).unwrap();
    let stale = data.join("tmp/import-killed/layer-0/bin");
    fs::create_dir_all(&stale).unwrap();
    fs::write(stale.join("half-written"), b"x").unwrap();
    let (tiny, _) = kit::tiny_docker_save(tmp.path());
    store.import(&tiny, None).unwrap();
    assert!(staging_leftovers(&data).is_empty());
}

#[test]
fn imports_a_multi_frame_zstd_rootfs_to_the_same_layer_as_the_plain_tar() {
    use ruzstd::encoding::{compress_to_vec, CompressionLevel};
    let tmp = tempfile::tempdir().unwrap();
    let rootfs_tar = kit::busybox_rootfs_tar(tmp.path());
    let bytes = fs::read(&rootfs_tar).unwrap();
    let (first, second) = bytes.split_at(bytes.len() / 2);
    let mut zst = compress_to_vec(first, CompressionLevel::Fastest);
    zst.extend(compress_to_vec(second, CompressionLevel::Fastest));
    let zst_path = tmp.path().join("rootfs.tar.zst");
    fs::write(&zst_path, zst).unwrap();

    let store = ImageStore::open(&tmp.path().join("data")).unwrap();
    store.import(&rootfs_tar, Some("plain")).unwrap();
    store.import(&zst_path, Some("zstd")).unwrap();
    let plain = store.resolve("plain").unwrap();
    let zstd = store.resolve("zstd").unwrap();
    assert_eq!(
        zstd.layers, plain.layers,
        "zstd layer decoded to different content"
    );
    assert_eq!(zstd.id, plain.id, "same rootfs, same synthesised config");
}

#[test]
fn docker25_shaped_save_imports_both_as_docker_save_and_as_oci_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = kit::busybox_docker25_archive(tmp.path());
    let store = ImageStore::open(&tmp.path().join("data")).unwrap();
    let as_docker = store.import(&archive, None).unwrap();
    assert_eq!(as_docker.names, vec![kit::DOCKER25_NAME.to_string()]);
    let options = ImportOptions {
        format: Some(ArchiveFormat::OciLayout),
        ..Default::default()
    };
    let as_oci = store.import_with(&archive, &options).unwrap();
    assert_eq!(as_oci.id, as_docker.id);
    assert_eq!(
        as_oci.names.len(),
        2,
        "both names now point at the one image: {:?}",
        as_oci.names
    );
    assert_eq!(store.list().unwrap().len(), 1);
    assert_eq!(store.resolve(kit::OCI_LAYOUT_NAME).unwrap().layers.len(), 2);
}
