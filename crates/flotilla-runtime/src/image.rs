//! Turning an image reference into [`ImageFacts`]: through the image store,
//! or `dir:<path>` for an already unpacked root filesystem directory used as
//! the single read-only layer (handy for tests and benchmarks; no config).

use crate::resolve::ImageFacts;
use anyhow::{bail, Context as _, Result};
use std::path::{Path, PathBuf};

pub const DIR_PREFIX: &str = "dir:";

pub fn resolve(data_dir: &Path, reference: &str) -> Result<ImageFacts> {
    if let Some(path) = reference.strip_prefix(DIR_PREFIX) {
        let p = PathBuf::from(path);
        if !p.is_absolute() || !p.is_dir() {
            bail!("image {reference:?}: {path:?} is not an absolute path to a directory");
        }
        return Ok(ImageFacts {
            id: reference.to_string(),
            layers: vec![p],
            ..Default::default()
        });
    }
    let store = flotilla_image::ImageStore::open(data_dir)
        .with_context(|| format!("opening the image store in {}", data_dir.display()))?;
    let img = store
        .resolve(reference)
        .with_context(|| format!("image {reference:?}"))?;
    let cfg = img.config.config().clone().unwrap_or_default();
    Ok(ImageFacts {
        id: img.id.clone(),
        layers: img.layers.clone(),
        entrypoint: cfg.entrypoint().clone().unwrap_or_default(),
        cmd: cfg.cmd().clone().unwrap_or_default(),
        env: cfg.env().clone().unwrap_or_default(),
        workdir: cfg.working_dir().clone(),
        user: cfg.user().clone(),
        stop_signal: cfg.stop_signal().clone(),
    })
}
