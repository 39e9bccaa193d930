//! The stack-level verbs: `up`, `down`, `ps`, `services`, `logs`, `scale`,
//! `restart`, `inspect`, `events`. They talk to a server through
//! flotilla-client; `up` starts one (embedded or in the background) when none
//! answers. One module per verb group; pure views live in `status`.

pub mod connect;
mod down;
mod logs;
mod scale;
pub mod status;
mod up;
mod view;
mod watch;

use crate::context::Context;
use connect::ApiArgs;
use flotilla_compose::{load, LoadOptions};
use std::path::PathBuf;

#[derive(clap::Subcommand)]
#[command(defer = true)]
pub enum StackCmd {
    /// Deploy a stack file and keep it running (embedded server + agent when
    /// no server answers). Ctrl-C stops the stack; -d leaves it running.
    Up(up::UpArgs),
    /// Remove a stack and wait for its tasks to stop (-v: and its volumes).
    Down(down::DownArgs),
    /// List the stack's tasks (-a: also ended ones).
    Ps(view::PsArgs),
    /// List the stack's services with replica and health counts.
    Services(view::ServicesArgs),
    /// Print the logs of a service's tasks or of one task.
    Logs(logs::LogsArgs),
    /// Set replica counts: `scale web=5 api=2`.
    Scale(scale::ScaleArgs),
    /// Replace every task of a service with a new one.
    Restart(scale::RestartArgs),
    /// Show a service or a task as JSON.
    Inspect(view::InspectArgs),
    /// Show what happened (-f: keep following).
    Events(view::EventsArgs),
}

/// Which stack file(s) to read, as `flotilla config` takes them.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct StackFileArgs {
    /// Compose file(s), merged in order. Default: compose.yaml, compose.yml,
    /// docker-compose.yaml or docker-compose.yml in the current directory.
    #[arg(short = 'f', long = "file")]
    pub files: Vec<PathBuf>,
    /// Variables for interpolation. Default: `.env` in the project directory.
    #[arg(long = "env-file")]
    pub env_files: Vec<PathBuf>,
    /// Enable services of this profile (repeatable; `*` enables all).
    #[arg(long = "profile")]
    pub profiles: Vec<String>,
}

/// `-p NAME`: the stack (project) name.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct ProjectArg {
    /// Stack name. Default: `name:` in the stack file, else its directory's name.
    #[arg(short = 'p', long = "project-name")]
    pub project: Option<String>,
}

pub fn run(ctx: &Context, cmd: StackCmd) -> anyhow::Result<u8> {
    match cmd {
        // `up` builds its own runtime: it may become a long-running server.
        StackCmd::Up(a) => up::run(ctx, a),
        StackCmd::Down(a) => block_on(down::run(ctx, a)),
        StackCmd::Ps(a) => block_on(view::ps(ctx, a)),
        StackCmd::Services(a) => block_on(view::services(ctx, a)),
        StackCmd::Logs(a) => block_on(logs::run(ctx, a)),
        StackCmd::Scale(a) => block_on(scale::scale(ctx, a)),
        StackCmd::Restart(a) => block_on(scale::restart(ctx, a)),
        StackCmd::Inspect(a) => block_on(view::inspect(ctx, a)),
        StackCmd::Events(a) => block_on(view::events(ctx, a)),
    }
}

pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn block_on(f: impl std::future::Future<Output = anyhow::Result<u8>>) -> anyhow::Result<u8> {
    runtime()?.block_on(f)
}

/// Load the stack file(s) like `flotilla config`; warnings go to stderr and
/// errors become one error carrying the rendered diagnostics.
pub fn load_stack(
    files: &StackFileArgs,
    project: Option<&str>,
) -> anyhow::Result<flotilla_spec::Stack> {
    let opts = LoadOptions {
        files: files.files.clone(),
        env_files: files.env_files.clone(),
        profiles: files.profiles.clone(),
        project_name: project.map(str::to_string),
        environment: process_env(),
        working_dir: Some(std::env::current_dir()?),
    };
    let color = std::io::IsTerminal::is_terminal(&std::io::stderr());
    match load(&opts) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                eprintln!("{}\n", w.render(color));
            }
            Ok(loaded.stack)
        }
        Err(diags) => anyhow::bail!("the stack file has errors:\n{}", diags.render(color)),
    }
}

/// The stack a command is about: `-p`, else the stack file's name when one is
/// given or found in the current directory, else none (commands then show
/// every stack and take full service ids).
pub fn project_of(
    project: &ProjectArg,
    files: Option<&StackFileArgs>,
) -> anyhow::Result<Option<String>> {
    if let Some(p) = &project.project {
        return Ok(Some(p.clone()));
    }
    let files = files.cloned().unwrap_or_default();
    let explicit = !files.files.is_empty();
    let opts = LoadOptions {
        files: files.files.clone(),
        env_files: files.env_files.clone(),
        profiles: files.profiles.clone(),
        project_name: None,
        environment: process_env(),
        working_dir: Some(std::env::current_dir()?),
    };
    match load(&opts) {
        Ok(loaded) => Ok(Some(loaded.stack.name)),
        Err(diags) if explicit => anyhow::bail!(
            "the stack file has errors:\n{}",
            diags.render(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        ),
        Err(_) => Ok(None),
    }
}

/// The process environment, skipping variables that are not valid UTF-8.
fn process_env() -> std::collections::BTreeMap<String, String> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}

/// Options every API-talking stack command shares.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct Common {
    #[command(flatten)]
    pub api: ApiArgs,
    #[command(flatten)]
    pub project: ProjectArg,
}
