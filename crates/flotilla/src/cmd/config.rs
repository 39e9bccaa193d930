//! `flotilla config`: parse, validate and print the normalised model of a
//! stack, like `docker compose config`. Errors and warnings go to stderr,
//! rendered compiler-style; any error makes the exit code 1.

use crate::context::{Context, OutputFormat};
use flotilla_compose::{load, LoadOptions};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct ConfigArgs {
    /// Compose file(s), merged in order. Default: compose.yaml, compose.yml,
    /// docker-compose.yaml or docker-compose.yml in the current directory.
    #[arg(short = 'f', long = "file")]
    files: Vec<PathBuf>,
    /// Variables for interpolation. Default: `.env` in the project directory.
    #[arg(long = "env-file")]
    env_files: Vec<PathBuf>,
    /// Enable services of this profile (repeatable; `*` enables all).
    #[arg(long = "profile")]
    profiles: Vec<String>,
    /// Project name. Default: `name:` in the file, else the directory name.
    #[arg(short = 'p', long = "project-name")]
    project_name: Option<String>,
    /// Only validate: print nothing on success.
    #[arg(short = 'q', long)]
    quiet: bool,
}

pub fn run(ctx: &Context, args: ConfigArgs) -> anyhow::Result<u8> {
    let opts = LoadOptions {
        files: args.files,
        env_files: args.env_files,
        profiles: args.profiles,
        project_name: args.project_name,
        environment: process_env(),
        working_dir: Some(std::env::current_dir()?),
    };
    let color = std::io::stderr().is_terminal();
    match load(&opts) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                eprintln!("{}\n", w.render(color));
            }
            if !args.quiet {
                let text = match ctx.output {
                    OutputFormat::Json => flotilla_compose::to_json(&loaded.stack) + "\n",
                    OutputFormat::Text | OutputFormat::Yaml => {
                        flotilla_compose::to_yaml(&loaded.stack)
                    }
                };
                print!("{text}");
            }
            Ok(0)
        }
        Err(diags) => {
            eprintln!("{}", diags.render(color));
            Ok(1)
        }
    }
}

/// The process environment, skipping variables that are not valid UTF-8
/// (they cannot be referenced from a UTF-8 Compose file anyway).
fn process_env() -> BTreeMap<String, String> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}
