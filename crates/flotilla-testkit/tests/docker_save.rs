//! The private dockerd really produces a `docker save` archive.

#[test]
fn docker_save_archive_has_manifest_and_layer() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = flotilla_testkit::docker_save_archive(tmp.path()).unwrap();
    let mut names = Vec::new();
    let mut tar = tar::Archive::new(std::fs::File::open(&archive).unwrap());
    for entry in tar.entries().unwrap() {
        names.push(
            entry
                .unwrap()
                .path()
                .unwrap()
                .to_string_lossy()
                .into_owned(),
        );
    }
    assert!(names.iter().any(|n| n == "manifest.json"), "{names:?}");
    assert!(
        names
            .iter()
            .any(|n| n.ends_with("layer.tar") || n.starts_with("blobs/")),
        "{names:?}"
    );
}
