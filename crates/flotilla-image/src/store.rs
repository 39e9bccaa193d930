//! The image store: import, list, resolve and remove images under a data dir.

use crate::catalog::{init_layout, Catalog};
use crate::digest::{is_sha256_hex, sha256_hex, sha256_of};
use crate::error::{ImageError, Result};
use crate::formats::{self, ArchiveFormat, Plan};
use crate::ingest::{decoder, ingest_layer, Compression, LayerExpectations, StagedLayer};
use crate::reference::normalize_name;
use crate::source::{Source, TarSource};
use crate::unpack::remove_tree;
use nix::fcntl::{Flock, FlockArg};
use oci_spec::image::{
    ConfigBuilder, Descriptor, ImageConfiguration, ImageConfigurationBuilder, ImageManifest,
    ImageManifestBuilder, MediaType, RootFsBuilder,
};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

/// PATH given to images imported from a bare root filesystem (Docker's default).
const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A handle on the store under `<data-dir>`; cheap, holds only paths.
#[derive(Clone, Debug)]
pub struct ImageStore {
    data_dir: PathBuf,
    as_root: bool,
}

/// Options for [`ImageStore::import_with`].
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// Name to give the image (normalised: `busybox` → `busybox:latest`).
    /// Without it, the names carried by the archive are used, if any.
    pub name: Option<String>,
    /// Force the archive format instead of detecting it from the content.
    pub format: Option<ArchiveFormat>,
    /// Default command for an image made from a bare root filesystem.
    pub cmd: Option<Vec<String>>,
}

/// One image as listed by [`ImageStore::list`] and returned by imports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageSummary {
    /// `sha256:…` of the image config, like Docker's image ID.
    pub id: String,
    /// Normalised names (`busybox:latest`); empty for an unnamed image.
    pub names: Vec<String>,
    /// `sha256:…` of the stored OCI manifest.
    pub manifest_digest: String,
    /// Number of layers.
    pub layers: usize,
    /// Sum of the layer blob sizes in bytes (compressed where compressed).
    pub size: u64,
    /// Creation time from the image config (RFC 3339), if it says.
    pub created: Option<String>,
    pub os: String,
    pub architecture: String,
}

/// An image ready to run: its config and its unpacked layers.
#[derive(Clone, Debug, Serialize)]
pub struct ResolvedImage {
    /// `sha256:…` of the image config.
    pub id: String,
    pub names: Vec<String>,
    /// `sha256:…` of the stored OCI manifest.
    pub manifest_digest: String,
    /// The OCI image config (entrypoint, cmd, env, user, working dir…).
    pub config: ImageConfiguration,
    /// Unpacked layer directories, bottom first: overlayfs lowerdirs (note
    /// that overlayfs's `lowerdir=` option lists the TOP layer first).
    pub layers: Vec<PathBuf>,
}

/// What [`ImageStore::remove`] did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoveOutcome {
    /// Names removed.
    pub untagged: Vec<String>,
    /// The image ID deleted, when its last name went (or it was removed by ID).
    pub deleted: Option<String>,
}

impl ImageStore {
    /// Open (creating if needed) the store under `data_dir`:
    /// `images/` (OCI layout, `refs.json`), `layers/`, `tmp/`.
    pub fn open(data_dir: &Path) -> Result<ImageStore> {
        let store = ImageStore {
            data_dir: data_dir.to_path_buf(),
            as_root: nix::unistd::geteuid().is_root(),
        };
        for dir in [store.images_dir(), store.layers_dir(), store.tmp_dir()] {
            fs::create_dir_all(&dir).map_err(|e| ImageError::io_at("creating", &dir, e))?;
        }
        // Only a fresh store needs the lock (so opening, e.g. to resolve an
        // image for a container start, never waits behind a long import).
        let images = store.images_dir();
        let initialised = ["oci-layout", "index.json", "refs.json", "blobs/sha256"]
            .iter()
            .all(|p| images.join(p).exists());
        if !initialised {
            let _lock = store.lock()?;
            init_layout(&images)?;
        }
        Ok(store)
    }

    /// The data directory this store lives in.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Import an archive, detecting its format; see [`ImageStore::import_with`].
    pub fn import(&self, path: &Path, name: Option<&str>) -> Result<ImageSummary> {
        self.import_with(
            path,
            &ImportOptions {
                name: name.map(str::to_string),
                ..Default::default()
            },
        )
    }

    /// Import a `docker save` archive, an OCI layout (directory or tar), or a
    /// root filesystem (tar, gzip/zstd tar, or directory). Blobs are verified
    /// against their digests; each layer is unpacked once per diff ID. The
    /// import is atomic: on any error nothing new stays in the store.
    pub fn import_with(&self, path: &Path, options: &ImportOptions) -> Result<ImageSummary> {
        let explicit_name = options.name.as_deref().map(normalize_name).transpose()?;
        let _lock = self.lock()?;
        self.sweep_stale_staging();
        let staging = tempfile::Builder::new()
            .prefix("import-")
            .tempdir_in(self.tmp_dir())
            .map_err(|e| {
                ImageError::io_at("creating a staging directory in", &self.tmp_dir(), e)
            })?;
        let input = Input::prepare(path, options.format, staging.path())?;
        let (config_bytes, layers, archive_names) = match input {
            Input::Archive(source, format) => {
                let plan = match format {
                    ArchiveFormat::DockerSave => formats::plan_docker_save(&source)?,
                    _ => formats::plan_oci_layout(&source)?,
                };
                let layers = self.stage_archive_layers(&source, &plan, staging.path())?;
                (plan.config_bytes, layers, plan.names)
            }
            Input::Rootfs(file) => {
                let (config, layer) = self.stage_rootfs(&file, options, staging.path())?;
                (config, vec![layer], Vec::new())
            }
        };
        let names = match explicit_name {
            Some(name) => vec![name],
            None => archive_names
                .iter()
                .filter_map(|n| match normalize_name(n) {
                    Ok(n) => Some(n),
                    Err(e) => {
                        tracing::warn!(name = n.as_str(), error = %e, "ignoring a name carried by the archive");
                        None
                    }
                })
                .collect(),
        };
        let mut txn = Transaction::new(self.images_dir());
        let summary = self.commit(&mut txn, &config_bytes, &layers, &names, staging.path())?;
        txn.done();
        Ok(summary)
    }

    /// Copy, verify and unpack each layer an archive describes, skipping
    /// layers the store already holds.
    fn stage_archive_layers(
        &self,
        source: &Source,
        plan: &Plan,
        staging: &Path,
    ) -> Result<Vec<StagedLayer>> {
        let config = parse_config(&plan.config_bytes)?;
        let diff_ids = config.rootfs().diff_ids();
        if diff_ids.len() != plan.layers.len() {
            return Err(ImageError::malformed(
                "image config",
                format!(
                    "rootfs lists {} diff_ids but the manifest has {} layers",
                    diff_ids.len(),
                    plan.layers.len()
                ),
            ));
        }
        let mut staged = Vec::new();
        for (slot, (layer, diff_id)) in plan.layers.iter().zip(diff_ids).enumerate() {
            let diff_hex = sha256_hex(diff_id).ok_or_else(|| {
                ImageError::malformed(
                    "image config",
                    format!("diff_id {diff_id:?} is not a sha256 digest"),
                )
            })?;
            let unpacked = self.layers_dir().join(diff_hex).is_dir();
            // Already stored blob and layer: nothing to read (fast re-import).
            let known_blob = layer
                .expected_digest
                .clone()
                .or_else(|| Some(diff_id.clone()));
            if unpacked {
                if let Some(existing) = known_blob.and_then(|d| self.stored_layer(&d, diff_id)) {
                    staged.push(existing);
                    continue;
                }
            }
            let member = source.open_member(&layer.member)?;
            if let Some(expected) = layer.expected_size {
                if expected != member.size {
                    return Err(ImageError::malformed(
                        &layer.member,
                        format!(
                            "descriptor declares {expected} bytes, the archive holds {}",
                            member.size
                        ),
                    ));
                }
            }
            let expect = LayerExpectations {
                name: &layer.member,
                blob_digest: layer.expected_digest.as_deref(),
                diff_id: Some(diff_id),
                unpack: !unpacked,
                as_root: self.as_root,
                raw_size: Some(member.size),
            };
            staged.push(ingest_layer(member.reader, staging, slot, &expect)?);
        }
        Ok(staged)
    }

    /// A layer whose blob and unpacked directory are both in the store already.
    fn stored_layer(&self, blob_digest: &str, diff_id: &str) -> Option<StagedLayer> {
        let blob = self.blob_path(blob_digest)?;
        let size = fs::metadata(&blob).ok()?.len();
        let mut head = [0u8; 4];
        let n = File::open(&blob).and_then(|mut f| f.read(&mut head)).ok()?;
        Some(StagedLayer {
            blob_digest: blob_digest.to_string(),
            blob_size: size,
            diff_id: diff_id.to_string(),
            media_type: Compression::sniff(&head[..n]).layer_media_type(),
            blob_file: None,
            layer_dir: None,
        })
    }

    /// A bare root filesystem becomes one layer and a synthesised config.
    fn stage_rootfs(
        &self,
        file: &Path,
        options: &ImportOptions,
        staging: &Path,
    ) -> Result<(Vec<u8>, StagedLayer)> {
        let input = File::open(file).map_err(|e| ImageError::io_at("opening", file, e))?;
        let size = input
            .metadata()
            .map_err(|e| ImageError::io_at("reading", file, e))?
            .len();
        let name = file.display().to_string();
        let expect = LayerExpectations {
            name: &name,
            blob_digest: None,
            diff_id: None,
            unpack: true,
            as_root: self.as_root,
            raw_size: Some(size),
        };
        let layer = ingest_layer(input, staging, 0, &expect)?;
        let mut config = ConfigBuilder::default().env(vec![DEFAULT_PATH.to_string()]);
        if let Some(cmd) = &options.cmd {
            config = config.cmd(cmd.clone());
        }
        let config = config
            .build()
            .map_err(|e| ImageError::malformed("synthesised image config", e))?;
        let rootfs = RootFsBuilder::default()
            .typ("layers")
            .diff_ids(vec![layer.diff_id.clone()])
            .build()
            .map_err(|e| ImageError::malformed("synthesised image config", e))?;
        let image = ImageConfigurationBuilder::default()
            .config(config)
            .rootfs(rootfs)
            .build()
            .map_err(|e| ImageError::malformed("synthesised image config", e))?;
        let bytes = serde_json::to_vec(&image)
            .map_err(|e| ImageError::malformed("synthesised image config", e))?;
        Ok((bytes, layer))
    }

    /// Move staged blobs and layers into place, write config and manifest
    /// blobs, then the index and names (last). Everything added is recorded
    /// in `txn` so a failure removes it again.
    fn commit(
        &self,
        txn: &mut Transaction,
        config_bytes: &[u8],
        layers: &[StagedLayer],
        names: &[String],
        staging: &Path,
    ) -> Result<ImageSummary> {
        for layer in layers {
            if let Some(file) = &layer.blob_file {
                let dest = self.blob_dest(&layer.blob_digest)?;
                if !dest.exists() {
                    fs::rename(file, &dest)
                        .map_err(|e| ImageError::io_at("storing blob", &dest, e))?;
                    txn.added.push(dest);
                }
            }
            if let Some(dir) = &layer.layer_dir {
                let hex = sha256_hex(&layer.diff_id).expect("diff IDs are computed as sha256");
                let dest = self.layers_dir().join(hex);
                if !dest.exists() {
                    fs::rename(dir, &dest)
                        .map_err(|e| ImageError::io_at("storing layer", &dest, e))?;
                    txn.added.push(dest);
                }
            }
        }
        let config_digest = sha256_of(config_bytes);
        self.write_blob(txn, &config_digest, config_bytes, staging)?;
        let manifest = build_manifest(&config_digest, config_bytes.len() as u64, layers)?;
        let manifest_bytes =
            serde_json::to_vec(&manifest).map_err(|e| ImageError::malformed("manifest", e))?;
        let manifest_digest = sha256_of(&manifest_bytes);
        self.write_blob(txn, &manifest_digest, &manifest_bytes, staging)?;

        let mut catalog = Catalog::load(&self.images_dir())?;
        txn.previous_catalog = Some(catalog.clone());
        catalog.add(&manifest_digest, manifest_bytes.len() as u64, names);
        catalog.save(&self.images_dir())?;
        let config = parse_config(config_bytes)?;
        Ok(summary(
            &config_digest,
            &manifest_digest,
            catalog.names_of(&manifest_digest),
            &config,
            &manifest,
        ))
    }

    fn write_blob(
        &self,
        txn: &mut Transaction,
        digest: &str,
        bytes: &[u8],
        staging: &Path,
    ) -> Result<()> {
        let dest = self.blob_dest(digest)?;
        if dest.exists() {
            return Ok(());
        }
        let tmp = staging.join(format!("blob-{}", &digest[7..]));
        fs::write(&tmp, bytes).map_err(|e| ImageError::io_at("writing", &tmp, e))?;
        fs::rename(&tmp, &dest).map_err(|e| ImageError::io_at("storing blob", &dest, e))?;
        txn.added.push(dest);
        Ok(())
    }

    /// Every image in the store, in import order.
    pub fn list(&self) -> Result<Vec<ImageSummary>> {
        let catalog = Catalog::load(&self.images_dir())?;
        catalog
            .manifests
            .iter()
            .map(|(digest, _)| {
                let (manifest, config_digest, config) = self.load_image(digest)?;
                Ok(summary(
                    &config_digest,
                    digest,
                    catalog.names_of(digest),
                    &config,
                    &manifest,
                ))
            })
            .collect()
    }

    /// Find an image by name (`busybox` means `busybox:latest`), by ID
    /// (`sha256:…` of the config, or a unique hex prefix of it), or by
    /// manifest digest (or prefix), and return what a runtime needs.
    pub fn resolve(&self, reference: &str) -> Result<ResolvedImage> {
        let catalog = Catalog::load(&self.images_dir())?;
        let manifest_digest = self.find(&catalog, reference)?;
        let (manifest, id, config) = self.load_image(&manifest_digest)?;
        let _ = manifest;
        let mut layers = Vec::new();
        for diff_id in config.rootfs().diff_ids() {
            let hex = sha256_hex(diff_id).ok_or_else(|| {
                ImageError::malformed(
                    format!("config of image {id}"),
                    format!("bad diff_id {diff_id:?}"),
                )
            })?;
            let dir = self.layers_dir().join(hex);
            if !dir.is_dir() {
                return Err(ImageError::malformed(
                    format!("image {id}"),
                    format!("unpacked layer {} is missing from the store; remove and re-import the image", dir.display()),
                ));
            }
            layers.push(dir);
        }
        Ok(ResolvedImage {
            id,
            names: catalog.names_of(&manifest_digest),
            manifest_digest,
            config,
            layers,
        })
    }

    /// Remove a name; when it was the image's last name (or `reference` is an
    /// ID), delete the image and the blobs and unpacked layers no other image
    /// uses. Callers must not remove an image a running container uses: its
    /// layers are that container's overlayfs lowerdirs.
    pub fn remove(&self, reference: &str) -> Result<RemoveOutcome> {
        let _lock = self.lock()?;
        self.sweep_stale_staging();
        let mut catalog = Catalog::load(&self.images_dir())?;
        let by_name = normalize_name(reference)
            .ok()
            .filter(|n| catalog.refs.contains_key(n));
        let manifest_digest = self.find(&catalog, reference)?;
        let (manifest, id, config) = self.load_image(&manifest_digest)?;
        let mut outcome = RemoveOutcome {
            untagged: Vec::new(),
            deleted: None,
        };
        if let Some(name) = by_name {
            catalog.refs.remove(&name);
            outcome.untagged.push(name);
            if !catalog.names_of(&manifest_digest).is_empty() {
                catalog.save(&self.images_dir())?;
                return Ok(outcome);
            }
        } else {
            outcome.untagged = catalog.names_of(&manifest_digest);
        }
        catalog.remove_manifest(&manifest_digest);
        catalog.save(&self.images_dir())?;
        self.collect_garbage(&catalog, &manifest_digest, &manifest, &config)?;
        outcome.deleted = Some(id);
        Ok(outcome)
    }

    /// Delete the removed image's blobs and layers that no remaining image uses.
    fn collect_garbage(
        &self,
        catalog: &Catalog,
        manifest_digest: &str,
        manifest: &ImageManifest,
        config: &ImageConfiguration,
    ) -> Result<()> {
        let mut kept_blobs = HashSet::new();
        let mut kept_layers = HashSet::new();
        for (digest, _) in &catalog.manifests {
            let (other, config_digest, other_config) = self.load_image(digest)?;
            kept_blobs.insert(digest.clone());
            kept_blobs.insert(config_digest);
            kept_blobs.extend(other.layers().iter().map(|l| l.digest().to_string()));
            kept_layers.extend(other_config.rootfs().diff_ids().iter().cloned());
        }
        let mut blobs = vec![
            manifest_digest.to_string(),
            manifest.config().digest().to_string(),
        ];
        blobs.extend(manifest.layers().iter().map(|l| l.digest().to_string()));
        for blob in blobs.iter().filter(|b| !kept_blobs.contains(*b)) {
            if let Some(path) = self.blob_path(blob) {
                fs::remove_file(&path).map_err(|e| ImageError::io_at("removing", &path, e))?;
            }
        }
        for diff_id in config
            .rootfs()
            .diff_ids()
            .iter()
            .filter(|d| !kept_layers.contains(*d))
        {
            let Some(hex) = sha256_hex(diff_id) else {
                continue;
            };
            let dir = self.layers_dir().join(hex);
            if !dir.exists() {
                continue;
            }
            // Rename first so the layer disappears atomically, then delete at leisure.
            let doomed = self
                .tmp_dir()
                .join(format!("removed-{hex}-{}", std::process::id()));
            fs::rename(&dir, &doomed).map_err(|e| ImageError::io_at("removing layer", &dir, e))?;
            remove_tree(&doomed).map_err(|e| ImageError::io_at("removing", &doomed, e))?;
        }
        Ok(())
    }

    /// Manifest digest for a name, an ID (prefix) or a manifest digest (prefix).
    fn find(&self, catalog: &Catalog, reference: &str) -> Result<String> {
        if let Ok(name) = normalize_name(reference) {
            if let Some(digest) = catalog.refs.get(&name) {
                return Ok(digest.clone());
            }
        }
        let prefix = reference.strip_prefix("sha256:").unwrap_or(reference);
        let is_hex_prefix = !prefix.is_empty()
            && prefix.len() <= 64
            && prefix
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !is_hex_prefix {
            return Err(ImageError::NotFound(reference.to_string()));
        }
        let mut matches = Vec::new();
        for (digest, _) in &catalog.manifests {
            let (_, id, _) = self.load_image(digest)?;
            if id[7..].starts_with(prefix) || digest[7..].starts_with(prefix) {
                matches.push((digest.clone(), id));
            }
        }
        match matches.len() {
            0 => Err(ImageError::NotFound(reference.to_string())),
            1 => Ok(matches.remove(0).0),
            _ => Err(ImageError::Ambiguous {
                reference: reference.to_string(),
                matches: matches.into_iter().map(|(_, id)| id).collect(),
            }),
        }
    }

    /// Read a stored manifest and its config: `(manifest, config digest, config)`.
    fn load_image(
        &self,
        manifest_digest: &str,
    ) -> Result<(ImageManifest, String, ImageConfiguration)> {
        let manifest_bytes = self.read_blob(manifest_digest)?;
        let manifest: ImageManifest = serde_json::from_slice(&manifest_bytes)
            .map_err(|e| ImageError::malformed(format!("stored manifest {manifest_digest}"), e))?;
        let config_digest = manifest.config().digest().to_string();
        let config = parse_config(&self.read_blob(&config_digest)?)?;
        Ok((manifest, config_digest, config))
    }

    fn read_blob(&self, digest: &str) -> Result<Vec<u8>> {
        let path = self.blob_path(digest).ok_or_else(|| {
            ImageError::malformed(format!("blob {digest}"), "missing from the store")
        })?;
        fs::read(&path).map_err(|e| ImageError::io_at("reading", &path, e))
    }

    /// Path of a stored blob, if present.
    fn blob_path(&self, digest: &str) -> Option<PathBuf> {
        let path = self.blob_dest(digest).ok()?;
        path.is_file().then_some(path)
    }

    fn blob_dest(&self, digest: &str) -> Result<PathBuf> {
        let hex = sha256_hex(digest)
            .filter(|h| is_sha256_hex(h))
            .ok_or_else(|| {
                ImageError::malformed(
                    format!("digest {digest:?}"),
                    "expected sha256:<64 hex digits>",
                )
            })?;
        Ok(self.images_dir().join("blobs/sha256").join(hex))
    }

    fn images_dir(&self) -> PathBuf {
        self.data_dir.join("images")
    }

    fn layers_dir(&self) -> PathBuf {
        self.data_dir.join("layers")
    }

    fn tmp_dir(&self) -> PathBuf {
        self.data_dir.join("tmp")
    }

    /// Remove what interrupted imports or removals left in `tmp/`. Only
    /// called with the store lock held: every import and removal holds it for
    /// its whole run, so nothing in `tmp/` can be in use now.
    fn sweep_stale_staging(&self) {
        let Ok(entries) = fs::read_dir(self.tmp_dir()) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let stale = entry
                .file_name()
                .to_str()
                .is_some_and(|n| n.starts_with("import-") || n.starts_with("removed-"));
            if stale {
                if let Err(e) = remove_tree(&path) {
                    tracing::warn!(path = %path.display(), error = %e, "could not remove stale staging files");
                }
            }
        }
    }

    /// Exclusive store lock (flock on `images/lock`): one writer at a time,
    /// across threads and processes. Released when the guard drops.
    fn lock(&self) -> Result<Flock<File>> {
        let path = self.images_dir().join("lock");
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| ImageError::io_at("opening lock file", &path, e))?;
        Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, errno)| ImageError::io_at("locking", &path, io::Error::from(errno)))
    }
}

/// What an import reads from: a structured archive, or a root filesystem
/// tar (possibly compressed) that becomes a single layer.
enum Input {
    Archive(Source, ArchiveFormat),
    Rootfs(PathBuf),
}

impl Input {
    fn prepare(path: &Path, forced: Option<ArchiveFormat>, staging: &Path) -> Result<Input> {
        let meta = fs::metadata(path).map_err(|e| ImageError::io_at("reading", path, e))?;
        if meta.is_dir() {
            let source = Source::open(path)?;
            let format = forced.unwrap_or_else(|| formats::detect(&source));
            if format != ArchiveFormat::Rootfs {
                return Ok(Input::Archive(source, format));
            }
            // A root filesystem directory: tar it (symlinks as symlinks) into one layer.
            let tar_path = staging.join("rootfs.tar");
            tar_directory(path, &tar_path)?;
            return Ok(Input::Rootfs(tar_path));
        }
        if forced == Some(ArchiveFormat::Rootfs) {
            return Ok(Input::Rootfs(path.to_path_buf()));
        }
        let compression = sniff_file(path)?;
        if compression == Compression::None {
            let source = Source::Tar(TarSource::index(path)?);
            let format = forced.unwrap_or_else(|| formats::detect(&source));
            return Ok(match format {
                ArchiveFormat::Rootfs => Input::Rootfs(path.to_path_buf()),
                format => Input::Archive(source, format),
            });
        }
        // Compressed: a compressed rootfs layer, or a compressed archive
        // (`docker save | gzip`). Look at the member names before deciding.
        let format = match forced {
            Some(format) => format,
            None => compressed_archive_format(path, compression)?,
        };
        if format == ArchiveFormat::Rootfs {
            return Ok(Input::Rootfs(path.to_path_buf()));
        }
        let plain = staging.join("archive.tar");
        let input =
            BufReader::new(File::open(path).map_err(|e| ImageError::io_at("opening", path, e))?);
        let mut reader = decoder(compression, input, &path.display().to_string())?;
        let mut out = File::create(&plain).map_err(|e| ImageError::io_at("creating", &plain, e))?;
        io::copy(&mut reader, &mut out).map_err(|e| {
            ImageError::malformed(
                path.display().to_string(),
                format!("broken compressed stream: {e}"),
            )
        })?;
        Ok(Input::Archive(
            Source::Tar(TarSource::index(&plain)?),
            format,
        ))
    }
}

fn sniff_file(path: &Path) -> Result<Compression> {
    let mut head = [0u8; 4];
    let mut file = File::open(path).map_err(|e| ImageError::io_at("opening", path, e))?;
    let mut n = 0;
    while n < head.len() {
        match file.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(ImageError::io_at("reading", path, e)),
        }
    }
    if n == 0 {
        return Err(ImageError::malformed(
            path.display().to_string(),
            "empty file; expected a tar archive",
        ));
    }
    Ok(Compression::sniff(&head[..n]))
}

/// Stream a compressed tar's headers to see which archive format it holds.
fn compressed_archive_format(path: &Path, compression: Compression) -> Result<ArchiveFormat> {
    let input =
        BufReader::new(File::open(path).map_err(|e| ImageError::io_at("opening", path, e))?);
    let reader = decoder(compression, input, &path.display().to_string())?;
    let mut archive = tar::Archive::new(reader);
    let broken = |e: io::Error| {
        ImageError::malformed(
            path.display().to_string(),
            format!("not a readable tar archive: {e}"),
        )
    };
    let (mut manifest, mut layout, mut index) = (false, false, false);
    for entry in archive.entries().map_err(broken)? {
        let entry = entry.map_err(broken)?;
        let raw = entry.path_bytes();
        let name = raw.strip_prefix(b"./").unwrap_or(&raw);
        match name {
            b"manifest.json" => manifest = true,
            b"oci-layout" => layout = true,
            b"index.json" => index = true,
            _ => {}
        }
    }
    Ok(if manifest {
        ArchiveFormat::DockerSave
    } else if layout && index {
        ArchiveFormat::OciLayout
    } else {
        ArchiveFormat::Rootfs
    })
}

fn tar_directory(dir: &Path, dest: &Path) -> Result<()> {
    let file = File::create(dest).map_err(|e| ImageError::io_at("creating", dest, e))?;
    let mut builder = tar::Builder::new(io::BufWriter::new(file));
    builder.follow_symlinks(false);
    builder
        .append_dir_all(".", dir)
        .map_err(|e| ImageError::io_at("archiving root filesystem directory", dir, e))?;
    builder
        .into_inner()
        .and_then(|mut w| io::Write::flush(&mut w))
        .map_err(|e| ImageError::io_at("writing", dest, e))
}

fn parse_config(bytes: &[u8]) -> Result<ImageConfiguration> {
    serde_json::from_slice(bytes).map_err(|e| {
        ImageError::malformed("image config", format!("not a valid OCI image config: {e}"))
    })
}

fn build_manifest(
    config_digest: &str,
    config_size: u64,
    layers: &[StagedLayer],
) -> Result<ImageManifest> {
    let digest = |d: &str| -> Result<oci_spec::image::Digest> {
        d.parse()
            .map_err(|e| ImageError::malformed(format!("digest {d}"), e))
    };
    let layer_descriptors = layers
        .iter()
        .map(|l| {
            Ok(Descriptor::new(
                l.media_type.clone(),
                l.blob_size,
                digest(&l.blob_digest)?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(Descriptor::new(
            MediaType::ImageConfig,
            config_size,
            digest(config_digest)?,
        ))
        .layers(layer_descriptors)
        .build()
        .map_err(|e| ImageError::malformed("manifest", e))
}

fn summary(
    id: &str,
    manifest_digest: &str,
    names: Vec<String>,
    config: &ImageConfiguration,
    manifest: &ImageManifest,
) -> ImageSummary {
    ImageSummary {
        id: id.to_string(),
        names,
        manifest_digest: manifest_digest.to_string(),
        layers: manifest.layers().len(),
        size: manifest.layers().iter().map(|l| l.size()).sum(),
        created: config.created().clone(),
        os: config.os().to_string(),
        architecture: config.architecture().to_string(),
    }
}

/// Undo log of an import: paths it added to the store and the catalog
/// before it. Dropped without `done()`, it removes them (the store lock is
/// still held, so nothing else can have started using them).
struct Transaction {
    images: PathBuf,
    added: Vec<PathBuf>,
    previous_catalog: Option<Catalog>,
    finished: bool,
}

impl Transaction {
    fn new(images: PathBuf) -> Self {
        Transaction {
            images,
            added: Vec::new(),
            previous_catalog: None,
            finished: false,
        }
    }

    fn done(mut self) {
        self.finished = true;
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        if let Some(catalog) = &self.previous_catalog {
            if let Err(e) = catalog.save(&self.images) {
                tracing::error!(error = %e, "could not restore the image index after a failed import");
            }
        }
        for path in self.added.iter().rev() {
            let result = if path.is_dir() {
                remove_tree(path)
            } else {
                fs::remove_file(path)
            };
            if let Err(e) = result {
                tracing::error!(path = %path.display(), error = %e, "could not remove a file of a failed import");
            }
        }
    }
}
