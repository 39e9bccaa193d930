//! The store's list of images: `images/index.json` (the OCI layout's index:
//! every manifest held) and `images/refs.json` (name → manifest digest).
//! Both are replaced atomically (write a temp file, rename), so readers never
//! need the lock; writers hold the store lock.

use crate::error::{ImageError, Result};
use oci_spec::image::{Descriptor, ImageIndex, ImageIndexBuilder, MediaType};
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

const CONTAINERD_NAME: &str = "io.containerd.image.name";
const OCI_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Images in the store: manifests (with their sizes) and names.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Catalog {
    /// manifest digest → manifest size, in import order.
    pub manifests: Vec<(String, u64)>,
    /// normalised name → manifest digest.
    pub refs: BTreeMap<String, String>,
}

impl Catalog {
    pub(crate) fn load(images: &Path) -> Result<Catalog> {
        let index_path = images.join("index.json");
        let bytes =
            fs::read(&index_path).map_err(|e| ImageError::io_at("reading", &index_path, e))?;
        let index: ImageIndex = serde_json::from_slice(&bytes)
            .map_err(|e| ImageError::malformed(index_path.display().to_string(), e))?;
        let mut manifests: Vec<(String, u64)> = Vec::new();
        for descriptor in index.manifests() {
            let digest = descriptor.digest().to_string();
            if !manifests.iter().any(|(d, _)| *d == digest) {
                manifests.push((digest, descriptor.size()));
            }
        }
        let refs_path = images.join("refs.json");
        let bytes =
            fs::read(&refs_path).map_err(|e| ImageError::io_at("reading", &refs_path, e))?;
        let refs: BTreeMap<String, String> = serde_json::from_slice(&bytes)
            .map_err(|e| ImageError::malformed(refs_path.display().to_string(), e))?;
        Ok(Catalog { manifests, refs })
    }

    /// Write index.json, then refs.json (names last: a name never points at
    /// a manifest the index does not hold).
    pub(crate) fn save(&self, images: &Path) -> Result<()> {
        let index = serde_json::to_vec_pretty(&self.index()?)
            .map_err(|e| ImageError::malformed("index.json", e))?;
        write_atomic(&images.join("index.json"), &index)?;
        let refs = serde_json::to_vec_pretty(&self.refs)
            .map_err(|e| ImageError::malformed("refs.json", e))?;
        write_atomic(&images.join("refs.json"), &refs)
    }

    /// The OCI index: one descriptor per name (annotated, so other OCI tools
    /// see the names) and one per unnamed manifest.
    fn index(&self) -> Result<ImageIndex> {
        let mut descriptors = Vec::new();
        for (digest, size) in &self.manifests {
            let names = self.names_of(digest);
            let parsed: oci_spec::image::Digest = digest
                .parse()
                .map_err(|e| ImageError::malformed(format!("manifest digest {digest}"), e))?;
            if names.is_empty() {
                descriptors.push(Descriptor::new(MediaType::ImageManifest, *size, parsed));
                continue;
            }
            for name in names {
                let mut descriptor =
                    Descriptor::new(MediaType::ImageManifest, *size, parsed.clone());
                let tag = name.rsplit_once(':').map(|(_, t)| t).unwrap_or("latest");
                descriptor.set_annotations(Some(HashMap::from([
                    (CONTAINERD_NAME.to_string(), name.clone()),
                    (OCI_REF_NAME.to_string(), tag.to_string()),
                ])));
                descriptors.push(descriptor);
            }
        }
        ImageIndexBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageIndex)
            .manifests(descriptors)
            .build()
            .map_err(|e| ImageError::malformed("index.json", e))
    }

    pub(crate) fn names_of(&self, manifest: &str) -> Vec<String> {
        self.refs
            .iter()
            .filter(|(_, d)| *d == manifest)
            .map(|(n, _)| n.clone())
            .collect()
    }

    pub(crate) fn add(&mut self, manifest: &str, size: u64, names: &[String]) {
        if !self.manifests.iter().any(|(d, _)| d == manifest) {
            self.manifests.push((manifest.to_string(), size));
        }
        for name in names {
            self.refs.insert(name.clone(), manifest.to_string());
        }
    }

    /// Forget a manifest and every name pointing at it.
    pub(crate) fn remove_manifest(&mut self, manifest: &str) {
        self.manifests.retain(|(d, _)| d != manifest);
        self.refs.retain(|_, d| d != manifest);
    }
}

/// Replace `path` atomically: write a sibling temp file, fsync, rename.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(|e| ImageError::io_at("creating a temp file in", dir, e))?;
    tmp.write_all(bytes)
        .map_err(|e| ImageError::io_at("writing", tmp.path(), e))?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| ImageError::io_at("syncing", tmp.path(), e))?;
    tmp.persist(path)
        .map_err(|e| ImageError::io_at("replacing", path, e.error))?;
    Ok(())
}

/// Make sure the OCI layout skeleton exists under `images`.
pub(crate) fn init_layout(images: &Path) -> Result<()> {
    let blobs: PathBuf = images.join("blobs/sha256");
    fs::create_dir_all(&blobs).map_err(|e| ImageError::io_at("creating", &blobs, e))?;
    let layout = images.join("oci-layout");
    if !layout.exists() {
        write_atomic(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    }
    if !images.join("index.json").exists() || !images.join("refs.json").exists() {
        Catalog::default().save(images)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_names_and_unnamed_manifests() {
        let dir = tempfile::tempdir().unwrap();
        init_layout(dir.path()).unwrap();
        let a = format!("sha256:{}", "a".repeat(64));
        let b = format!("sha256:{}", "b".repeat(64));
        let mut catalog = Catalog::load(dir.path()).unwrap();
        assert_eq!(catalog, Catalog::default());
        catalog.add(&a, 10, &["x:latest".into(), "y:1".into()]);
        catalog.add(&b, 20, &[]);
        catalog.save(dir.path()).unwrap();
        let loaded = Catalog::load(dir.path()).unwrap();
        assert_eq!(loaded, catalog);
        assert_eq!(
            loaded.names_of(&a),
            vec!["x:latest".to_string(), "y:1".to_string()]
        );
        let mut removed = loaded.clone();
        removed.remove_manifest(&a);
        assert_eq!(removed.manifests, vec![(b, 20)]);
        assert!(removed.refs.is_empty());
    }
}
