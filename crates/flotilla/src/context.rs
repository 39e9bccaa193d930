//! What every command needs: where the data lives and how to print results.

use std::path::PathBuf;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
    Yaml,
}

pub struct Context {
    pub data_dir: PathBuf,
    pub output: OutputFormat,
}

impl Context {
    pub fn new(data_dir: Option<PathBuf>, output: OutputFormat) -> Self {
        Context {
            data_dir: data_dir.unwrap_or_else(default_data_dir),
            output,
        }
    }

    /// Print a value as JSON when the user asked for `--output json`.
    /// Returns true when it printed, so callers fall back to their text view.
    pub fn print_json<T: serde::Serialize>(&self, value: &T) -> anyhow::Result<bool> {
        if self.output == OutputFormat::Json {
            println!("{}", serde_json::to_string_pretty(value)?);
            return Ok(true);
        }
        Ok(false)
    }
}

fn default_data_dir() -> PathBuf {
    // Root gets the system location, like Docker's /var/lib/docker.
    if is_root() {
        return PathBuf::from("/var/lib/flotilla");
    }
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME") {
        return PathBuf::from(xdg).join("flotilla");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into());
    PathBuf::from(home).join(".local/share/flotilla")
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}
