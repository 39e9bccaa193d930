//! flotilla-spec: the normalised stack model.
//!
//! This is what every part of Flotilla downstream of the stack-file reader
//! uses. It has no I/O and knows nothing about YAML: `flotilla-compose` reads
//! Compose files and produces a [`Stack`]; the orchestrator consumes it.
//!
//! Normalisation rules (what "normalised" means here):
//! - every short form is expanded (ports one entry per port, volumes long form,
//!   environment as a map, command/entrypoint as argv lists);
//! - variables are substituted and files merged;
//! - relative host paths are absolute (resolved against the project dir);
//! - durations are [`Duration`] (serialised like Go: `1m30s`), sizes are bytes;
//! - Swarm's defaults are filled in for `deploy` (see [`Deploy`]).
//!
//! Maps are `BTreeMap` so serialised output is deterministic.

mod duration;
mod model;

pub use duration::{Duration, DurationError};
pub use model::*;
