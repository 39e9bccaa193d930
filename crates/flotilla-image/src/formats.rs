//! Reading the structure of an import archive (which members hold the
//! config and the layers, which names it carries) for the two archive
//! formats: `docker save` (`manifest.json` at the root) and OCI image layout
//! (`oci-layout` + `index.json`). Blob contents are verified elsewhere while
//! they are copied; here only the small JSON documents are read and checked.

use crate::digest::{sha256_hex, sha256_of};
use crate::error::{ImageError, Result};
use crate::source::{member_name, Source};
use oci_spec::image::{Arch, Descriptor, ImageIndex, ImageManifest, MediaType, Os};
use serde::Deserialize;

/// Largest JSON document (manifest, index, config) an archive may carry.
pub(crate) const MAX_JSON_BYTES: u64 = 8 * 1024 * 1024;

const DOCKER_MANIFEST_V2: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Full image name annotation written by containerd and Docker 25+.
const CONTAINERD_NAME: &str = "io.containerd.image.name";
/// OCI ref name annotation: usually only a tag, sometimes a full name.
const OCI_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// A layer as the archive describes it.
pub(crate) struct PlannedLayer {
    /// Archive member holding the (possibly compressed) layer tar.
    pub member: String,
    /// The blob digest the archive promises, when it names one.
    pub expected_digest: Option<String>,
    /// The blob size the archive promises (OCI descriptors).
    pub expected_size: Option<u64>,
}

/// Everything needed to import one image from an archive.
pub(crate) struct Plan {
    /// The config blob, verified against the digest the archive names.
    pub config_bytes: Vec<u8>,
    pub layers: Vec<PlannedLayer>,
    /// Names the archive itself carries (RepoTags, name annotations); raw.
    pub names: Vec<String>,
}

/// The shape of an import archive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ArchiveFormat {
    /// `docker save` output: `manifest.json` at the root.
    DockerSave,
    /// OCI image layout: `oci-layout` and `index.json` at the root.
    OciLayout,
    /// A plain root filesystem (tar, compressed tar or directory): one layer.
    Rootfs,
}

impl std::str::FromStr for ArchiveFormat {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "docker-save" | "docker" => Ok(ArchiveFormat::DockerSave),
            "oci-layout" | "oci" => Ok(ArchiveFormat::OciLayout),
            "rootfs" => Ok(ArchiveFormat::Rootfs),
            other => Err(format!(
                "unknown archive format {other:?}; expected docker-save, oci-layout or rootfs"
            )),
        }
    }
}

/// Which format the archive is, from its root members. `docker save` of
/// Docker 25+ writes both layouts; `manifest.json` wins then, as in `docker load`.
pub(crate) fn detect(source: &Source) -> ArchiveFormat {
    if source.has_root_member("manifest.json") {
        ArchiveFormat::DockerSave
    } else if source.has_root_member("oci-layout") && source.has_root_member("index.json") {
        ArchiveFormat::OciLayout
    } else {
        ArchiveFormat::Rootfs
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifestEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// Plan the import of a `docker save` archive.
pub(crate) fn plan_docker_save(source: &Source) -> Result<Plan> {
    let bytes = source.read_small("manifest.json", MAX_JSON_BYTES)?;
    let entries: Vec<DockerManifestEntry> = serde_json::from_slice(&bytes).map_err(|e| {
        ImageError::malformed(
            "manifest.json",
            format!("not a docker save manifest (expected a JSON list of images): {e}"),
        )
    })?;
    let entry = match entries.len() {
        1 => entries.into_iter().next().expect("one entry"),
        0 => return Err(ImageError::malformed("manifest.json", "lists no image")),
        n => {
            return Err(ImageError::malformed(
                "manifest.json",
                format!("lists {n} images; import one image per archive"),
            ))
        }
    };
    let config_member = member_name(&entry.config)?;
    let config_bytes = source.read_small(&config_member, MAX_JSON_BYTES)?;
    if let Some(expected) = digest_named_by(&config_member) {
        check_digest(&config_member, &expected, &config_bytes)?;
    }
    let layers = entry
        .layers
        .iter()
        .map(|layer| {
            let member = member_name(layer)?;
            Ok(PlannedLayer {
                expected_digest: digest_named_by(&member),
                member,
                expected_size: None,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Plan {
        config_bytes,
        layers,
        names: entry.repo_tags.unwrap_or_default(),
    })
}

/// The digest a member's name promises: `blobs/sha256/<hex>` (Docker 25+,
/// OCI) or `<hex>.json` (older `docker save` configs).
fn digest_named_by(member: &str) -> Option<String> {
    let hex = member
        .strip_prefix("blobs/sha256/")
        .or_else(|| member.strip_suffix(".json"))?;
    sha256_hex(&format!("sha256:{hex}")).map(|h| format!("sha256:{h}"))
}

/// Plan the import of an OCI image layout.
pub(crate) fn plan_oci_layout(source: &Source) -> Result<Plan> {
    let layout = source.read_small("oci-layout", MAX_JSON_BYTES)?;
    let layout: serde_json::Value =
        serde_json::from_slice(&layout).map_err(|e| ImageError::malformed("oci-layout", e))?;
    if layout
        .get("imageLayoutVersion")
        .and_then(|v| v.as_str())
        .is_none()
    {
        return Err(ImageError::malformed(
            "oci-layout",
            "missing imageLayoutVersion",
        ));
    }
    let index_bytes = source.read_small("index.json", MAX_JSON_BYTES)?;
    let index: ImageIndex = serde_json::from_slice(&index_bytes)
        .map_err(|e| ImageError::malformed("index.json", format!("not an OCI image index: {e}")))?;
    let top = choose_manifest(index.manifests(), "index.json")?;
    let names = descriptor_names(top);
    let manifest_descriptor = if is_index(top.media_type()) {
        let nested_bytes = read_blob(source, top)?;
        let nested: ImageIndex = serde_json::from_slice(&nested_bytes)
            .map_err(|e| ImageError::malformed(format!("image index {}", top.digest()), e))?;
        let chosen = choose_manifest(nested.manifests(), top.digest().as_ref())?;
        if is_index(chosen.media_type()) {
            return Err(ImageError::malformed(
                format!("image index {}", top.digest()),
                "nests indexes more than one level deep",
            ));
        }
        chosen.clone()
    } else {
        top.clone()
    };
    if !is_manifest(manifest_descriptor.media_type()) {
        return Err(ImageError::malformed(
            format!("descriptor {}", manifest_descriptor.digest()),
            format!(
                "media type {} is not an image manifest",
                manifest_descriptor.media_type()
            ),
        ));
    }
    let manifest_bytes = read_blob(source, &manifest_descriptor)?;
    let manifest: ImageManifest = serde_json::from_slice(&manifest_bytes).map_err(|e| {
        ImageError::malformed(format!("manifest {}", manifest_descriptor.digest()), e)
    })?;
    let config_bytes = read_blob(source, manifest.config())?;
    let layers = manifest
        .layers()
        .iter()
        .map(|layer| {
            Ok(PlannedLayer {
                member: blob_member(layer)?,
                expected_digest: Some(layer.digest().to_string()),
                expected_size: Some(layer.size()),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Plan {
        config_bytes,
        layers,
        names,
    })
}

fn is_index(media_type: &MediaType) -> bool {
    matches!(media_type, MediaType::ImageIndex) || media_type.to_string() == DOCKER_MANIFEST_LIST
}

fn is_manifest(media_type: &MediaType) -> bool {
    matches!(media_type, MediaType::ImageManifest) || media_type.to_string() == DOCKER_MANIFEST_V2
}

/// Pick the one image an index describes: skip attestations and other
/// platforms; refuse an index that still holds several images.
fn choose_manifest<'a>(manifests: &'a [Descriptor], what: &str) -> Result<&'a Descriptor> {
    let candidates: Vec<&Descriptor> = manifests
        .iter()
        .filter(|d| is_index(d.media_type()) || is_manifest(d.media_type()))
        .filter(|d| {
            d.platform()
                .as_ref()
                .is_none_or(|p| *p.os() == Os::default() && *p.architecture() == Arch::default())
        })
        .collect();
    let mut distinct: Vec<&Descriptor> = Vec::new();
    for candidate in candidates {
        if !distinct.iter().any(|d| d.digest() == candidate.digest()) {
            distinct.push(candidate);
        }
    }
    match distinct.len() {
        1 => Ok(distinct[0]),
        0 => Err(ImageError::malformed(
            what,
            format!(
                "lists no image manifest for {}/{}",
                Os::default(),
                Arch::default()
            ),
        )),
        n => Err(ImageError::malformed(
            what,
            format!("lists {n} images; import one image per archive"),
        )),
    }
}

/// Names carried by annotations: containerd's full name, or an OCI ref name
/// that is a full reference (a bare tag has no repository to attach to).
fn descriptor_names(descriptor: &Descriptor) -> Vec<String> {
    let Some(annotations) = descriptor.annotations() else {
        return Vec::new();
    };
    if let Some(name) = annotations.get(CONTAINERD_NAME) {
        return vec![name.clone()];
    }
    match annotations.get(OCI_REF_NAME) {
        Some(name) if name.contains(':') || name.contains('/') => vec![name.clone()],
        _ => Vec::new(),
    }
}

/// `blobs/sha256/<hex>` for a descriptor; only sha256 is supported.
fn blob_member(descriptor: &Descriptor) -> Result<String> {
    let digest = descriptor.digest().to_string();
    let hex = sha256_hex(&digest).ok_or_else(|| {
        ImageError::malformed(
            format!("descriptor {digest}"),
            "only sha256 digests are supported",
        )
    })?;
    Ok(format!("blobs/sha256/{hex}"))
}

/// Read a small blob named by a descriptor and verify its size and digest.
fn read_blob(source: &Source, descriptor: &Descriptor) -> Result<Vec<u8>> {
    let member = blob_member(descriptor)?;
    if descriptor.size() > MAX_JSON_BYTES {
        return Err(ImageError::hostile(
            &member,
            format!(
                "descriptor declares {} bytes; a JSON document may have at most {MAX_JSON_BYTES}",
                descriptor.size()
            ),
        ));
    }
    let bytes = source.read_small(&member, MAX_JSON_BYTES)?;
    if bytes.len() as u64 != descriptor.size() {
        return Err(ImageError::malformed(
            &member,
            format!(
                "descriptor declares {} bytes, blob has {}",
                descriptor.size(),
                bytes.len()
            ),
        ));
    }
    check_digest(&member, descriptor.digest().as_ref(), &bytes)?;
    Ok(bytes)
}

fn check_digest(blob: &str, expected: &str, bytes: &[u8]) -> Result<()> {
    let actual = sha256_of(bytes);
    if actual != expected {
        return Err(ImageError::DigestMismatch {
            blob: blob.to_string(),
            expected: expected.to_string(),
            actual,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_from_member_names() {
        let hex = "a".repeat(64);
        assert_eq!(
            digest_named_by(&format!("blobs/sha256/{hex}")),
            Some(format!("sha256:{hex}"))
        );
        assert_eq!(
            digest_named_by(&format!("{hex}.json")),
            Some(format!("sha256:{hex}"))
        );
        assert_eq!(digest_named_by("abc/layer.tar"), None);
        assert_eq!(digest_named_by("config.json"), None);
    }

    #[test]
    fn format_names_parse() {
        assert_eq!(
            "oci".parse::<ArchiveFormat>().unwrap(),
            ArchiveFormat::OciLayout
        );
        assert!("zip"
            .parse::<ArchiveFormat>()
            .unwrap_err()
            .contains("expected docker-save"));
    }
}
