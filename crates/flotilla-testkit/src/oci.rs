//! Hand-built OCI image layouts and `docker save`-shaped archives.

use crate::busybox::busybox_rootfs;
use crate::tarball::{gzip, sha256, TarBuf};
use serde_json::json;
use std::fs;
use std::path::{Path, PathBuf};

/// Name carried by [`busybox_oci_layout`]'s index annotation.
pub const OCI_LAYOUT_NAME: &str = "flotilla-test/busybox-oci:layers";

/// The layers of the two-layer test image, as tar bytes (not compressed).
///
/// Layer 1: the busybox rootfs plus `etc/doomed`, `data/old/keep.txt`,
/// `data/old/sub/deep.txt`, `data/stays.txt`.
/// Layer 2: `etc/.wh.doomed` (whiteout), `data/old/.wh..wh..opq` (opaque),
/// `data/old/new.txt`, and `data/link-to-stays` hard-linked to a new file.
/// Through an overlay mount: `etc/doomed`, `data/old/keep.txt` and
/// `data/old/sub` are gone; `data/old/new.txt` and `data/stays.txt` remain.
pub fn two_layer_tars(scratch: &Path) -> (Vec<u8>, Vec<u8>) {
    let root = busybox_rootfs(scratch);
    let mut lower = TarBuf::new();
    lower
        .dir_tree(".", &root)
        .file("etc/doomed", b"whited out by layer 2\n")
        .dir("data")
        .dir("data/old")
        .file("data/old/keep.txt", b"hidden by the opaque dir\n")
        .dir("data/old/sub")
        .file("data/old/sub/deep.txt", b"hidden too\n")
        .file("data/stays.txt", b"still here\n");
    let mut upper = TarBuf::new();
    upper
        .dir("etc")
        .file("etc/.wh.doomed", b"")
        .dir("data")
        .dir("data/old")
        .file("data/old/.wh..wh..opq", b"")
        .file("data/old/new.txt", b"from layer 2\n")
        .file("data/upper.txt", b"upper\n")
        .hardlink("data/upper-link.txt", "data/upper.txt");
    fs::remove_dir_all(&root).expect("removing scratch rootfs");
    (lower.finish(), upper.finish())
}

/// The image config JSON for the two-layer image.
fn config_json(diff_ids: &[String]) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "architecture": host_arch(),
        "os": "linux",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["/bin/sh"],
            "WorkingDir": "/",
        },
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
        "history": [{ "created_by": "flotilla-testkit layer 1" }, { "created_by": "flotilla-testkit layer 2" }],
    }))
    .expect("config json")
}

fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// Build an OCI image layout directory at `dir/busybox-oci` and return its
/// path: a gzip-compressed busybox layer, then an uncompressed layer with a
/// whiteout and an opaque directory (see [`two_layer_tars`]). The index
/// names it [`OCI_LAYOUT_NAME`].
pub fn busybox_oci_layout(dir: &Path) -> PathBuf {
    let (lower, upper) = two_layer_tars(&dir.join(".oci-scratch"));
    let _ = fs::remove_dir_all(dir.join(".oci-scratch"));
    let lower_gz = gzip(&lower);
    let layout = dir.join("busybox-oci");
    let blobs = layout.join("blobs/sha256");
    fs::create_dir_all(&blobs).expect("creating blobs dir");
    let put = |bytes: &[u8]| -> String {
        let digest = sha256(bytes);
        fs::write(blobs.join(&digest[7..]), bytes).expect("writing blob");
        digest
    };
    let config = config_json(&[sha256(&lower), sha256(&upper)]);
    let config_digest = put(&config);
    let lower_digest = put(&lower_gz);
    let upper_digest = put(&upper);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len() },
        "layers": [
            { "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": lower_digest, "size": lower_gz.len() },
            { "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": upper_digest, "size": upper.len() },
        ],
    }))
    .expect("manifest json");
    let manifest_digest = put(&manifest);
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest.len(),
            "annotations": {
                "io.containerd.image.name": OCI_LAYOUT_NAME,
                "org.opencontainers.image.ref.name": "layers",
            },
        }],
    });
    fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).expect("index json"),
    )
    .expect("index.json");
    fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .expect("oci-layout");
    layout
}

/// Tar up an OCI layout (or any archive directory) into `dest` with its
/// members at the tar root, and return `dest`.
pub fn tar_dir(dir: &Path, dest: &Path) -> PathBuf {
    crate::busybox::write_dir_tar(dir, dest);
    dest.to_path_buf()
}

/// A `docker save`-shaped archive (legacy layout: `<id>/layer.tar`,
/// `<config-hex>.json`, `manifest.json`) built by hand from raw parts, for
/// the malformed-archive tests. `manifest` is written verbatim.
pub fn docker_save_from_parts(dest: &Path, manifest: &[u8], members: &[(&str, &[u8])]) -> PathBuf {
    let mut tar = TarBuf::new();
    for (name, data) in members {
        tar.file(name, data);
    }
    tar.file("manifest.json", manifest);
    fs::write(dest, tar.finish()).expect("writing archive");
    dest.to_path_buf()
}

/// A valid hand-built single-layer `docker save` archive (legacy layout)
/// of a tiny image: one file `hello.txt`. Returns (archive, config digest).
pub fn tiny_docker_save(dir: &Path) -> (PathBuf, String) {
    let mut layer = TarBuf::new();
    layer.file("hello.txt", b"hello\n");
    let layer = layer.finish();
    let config = serde_json::to_vec(&json!({
        "architecture": host_arch(), "os": "linux",
        "config": { "Cmd": ["/hello"] },
        "rootfs": { "type": "layers", "diff_ids": [sha256(&layer)] },
    }))
    .expect("config");
    let config_digest = sha256(&config);
    let config_name = format!("{}.json", &config_digest[7..]);
    let manifest = serde_json::to_vec(&json!([{
        "Config": config_name, "RepoTags": ["tiny:1"], "Layers": ["aaaa/layer.tar"],
    }]))
    .expect("manifest");
    let path = docker_save_from_parts(
        &dir.join("tiny-docker-save.tar"),
        &manifest,
        &[(&config_name, &config), ("aaaa/layer.tar", &layer)],
    );
    (path, config_digest)
}

/// Name carried by [`busybox_docker25_archive`]'s `manifest.json`.
pub const DOCKER25_NAME: &str = "flotilla-test/busybox-oci:docker25";

/// An archive shaped like Docker 25+'s `docker save`: an OCI layout (the
/// image of [`busybox_oci_layout`]) plus a `manifest.json` whose Config and
/// Layers point into `blobs/sha256/`. Written to `dir/docker25-save.tar`.
/// (The dockerd packaged in Debian 12 is 20.10, which writes the legacy
/// layout only; this covers the newer shape.)
pub fn busybox_docker25_archive(dir: &Path) -> PathBuf {
    let layout = busybox_oci_layout(&dir.join(".docker25"));
    let read_json = |path: PathBuf| -> serde_json::Value {
        serde_json::from_slice(
            &fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display())),
        )
        .expect("json")
    };
    let index = read_json(layout.join("index.json"));
    let manifest_digest = index["manifests"][0]["digest"]
        .as_str()
        .expect("manifest digest")
        .to_string();
    let manifest = read_json(layout.join("blobs/sha256").join(&manifest_digest[7..]));
    let blob_path =
        |d: &serde_json::Value| format!("blobs/sha256/{}", &d.as_str().expect("digest")[7..]);
    let docker_manifest = json!([{
        "Config": blob_path(&manifest["config"]["digest"]),
        "RepoTags": [DOCKER25_NAME],
        "Layers": manifest["layers"].as_array().expect("layers").iter().map(|l| blob_path(&l["digest"])).collect::<Vec<_>>(),
    }]);
    fs::write(
        layout.join("manifest.json"),
        serde_json::to_vec(&docker_manifest).expect("json"),
    )
    .expect("manifest.json");
    let dest = tar_dir(&layout, &dir.join("docker25-save.tar"));
    fs::remove_dir_all(dir.join(".docker25")).expect("removing scratch layout");
    dest
}
