//! flotilla-compose: reads Compose files (Compose Specification plus Swarm's
//! `deploy:` and Flotilla's `x-flotilla:`) into the normalised
//! [`flotilla_spec::Stack`], with compiler-style diagnostics.
//!
//! Pipeline, one module per step:
//! 1. [`yaml`]: parse each file into a spanned tree (anchors, merge keys,
//!    tags, limits);
//! 2. [`interp`]: substitute variables in values (`.env` via [`dotenv`]);
//! 3. [`project`]: `include`, `extends`, multi-file merge ([`merge`]);
//! 4. [`normalise`]: typed model, short forms expanded ([`short`]), unknown
//!    keys refused and not-yet-acted-on keys warned ([`keys`]);
//! 5. [`validate`]: cross-references and conflicts.

pub mod diag;
pub mod dotenv;
pub mod emit;
pub mod interp;
pub mod keys;
pub mod merge;
pub mod normalise;
pub mod project;
pub mod short;
pub mod validate;
pub mod yaml;

pub use diag::{Diagnostic, Diagnostics, Severity};
pub use emit::{to_json, to_yaml};

use std::collections::BTreeMap;
use std::path::PathBuf;

/// What to load and with which inputs.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// `-f` files, merged in order. Empty = discover `compose.yaml`,
    /// `compose.yml`, `docker-compose.yaml`, `docker-compose.yml` in
    /// `working_dir`.
    pub files: Vec<PathBuf>,
    /// `--env-file`; empty = `.env` in the project dir if present.
    pub env_files: Vec<PathBuf>,
    /// `--profile`: services with these profiles are enabled too.
    pub profiles: Vec<String>,
    /// `-p`; default: `name:` in the file, else the project directory name.
    pub project_name: Option<String>,
    /// Variables for interpolation (the CLI passes the process env). They
    /// take precedence over env files.
    pub environment: BTreeMap<String, String>,
    /// Where relative `-f` paths and discovery start. Default `.`.
    pub working_dir: Option<PathBuf>,
}

/// A successfully loaded stack and the warnings found on the way.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub stack: flotilla_spec::Stack,
    pub warnings: Vec<Diagnostic>,
}

/// Load, merge, validate and normalise the files named in `opts`.
pub fn load(opts: &LoadOptions) -> Result<Loaded, Diagnostics> {
    project::load_files(opts)
}

/// Load one in-memory file (tests, fuzzing). `name` is used in diagnostics;
/// relative paths resolve against `opts.working_dir` or `.`.
pub fn load_str(name: &str, source: &str, opts: &LoadOptions) -> Result<Loaded, Diagnostics> {
    project::load_source(name, source, opts)
}

#[cfg(test)]
mod tests;
