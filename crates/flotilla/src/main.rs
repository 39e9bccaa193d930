//! The `flotilla` binary: one executable, several roles. This file only parses
//! the command line and dispatches; each verb lives in its own module under
//! `cmd/` and talks to the library crates.

mod cmd;
mod context;
mod progress;

use clap::{Parser, Subcommand};
use context::{Context, OutputFormat};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "flotilla",
    version,
    about = "A container platform for highly available services"
)]
struct Cli {
    /// Where images, containers, volumes and state live.
    /// Default: /var/lib/flotilla as root, $XDG_DATA_HOME/flotilla otherwise.
    #[arg(long, global = true, env = "FLOTILLA_DATA_DIR")]
    data_dir: Option<PathBuf>,

    /// Output format for scripts (`json`) or people (`text`, the default).
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = OutputFormat::Text)]
    output: OutputFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
// Build a subcommand's arguments only when it is the one invoked: building
// the whole tree cost ~0.3 ms of every CLI start (container run included).
#[command(defer = true)]
enum Command {
    /// Parse, validate and print the normalised model of a stack file.
    Config(cmd::config::ConfigArgs),
    /// Manage images in the local content-addressed store.
    #[command(subcommand)]
    Image(cmd::image::ImageCmd),
    /// Run and manage single containers (low level, like `ctr`).
    #[command(subcommand)]
    Container(cmd::container::ContainerCmd),
    /// Stack verbs: up, down, ps, services, logs, scale, restart, inspect, events.
    #[command(flatten)]
    Stack(cmd::stack::StackCmd),
    /// Long-running roles: server, agent.
    #[command(flatten)]
    Server(cmd::server::ServerCmd),
    /// Internal entry points re-executed by Flotilla itself (container monitor).
    #[command(subcommand, hide = true)]
    Internal(cmd::internal::InternalCmd),
}

fn main() -> ExitCode {
    // The runtime re-executes this binary as `flotilla internal <verb> …` for
    // every container (monitor) and every exec. Dispatch those before clap and
    // tracing: it keeps the long-lived monitor's memory small and the start
    // path short.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // `internal proxy` is a long-running role of its own: it goes through clap.
    if args.len() >= 3 && args[1] == "internal" && args[2] != "proxy" {
        if std::env::var_os("FLOTILLA_LOG").is_some() {
            init_tracing();
        }
        let code = flotilla_runtime::entry::main_from_args(args.into_iter().skip(2));
        return ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    let cli = Cli::parse();
    init_tracing();
    let ctx = Context::new(cli.data_dir, cli.output);
    let result = match cli.command {
        Command::Config(args) => cmd::config::run(&ctx, args),
        Command::Image(c) => cmd::image::run(&ctx, c),
        Command::Container(c) => cmd::container::run(&ctx, c),
        Command::Internal(c) => cmd::internal::run(c),
        Command::Stack(c) => cmd::stack::run(&ctx, c),
        Command::Server(c) => cmd::server::run(&ctx, c),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(125)
        }
    }
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("FLOTILLA_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
