//! Hidden entry points that Flotilla re-executes itself with: the
//! per-container monitor and the exec helper (see flotilla_runtime::entry).
//! They are processes of their own so containers outlive the CLI and
//! threaded callers never fork inside libcontainer.

use std::ffi::OsString;
use std::path::PathBuf;

#[derive(clap::Subcommand)]
#[command(defer = true)]
pub enum InternalCmd {
    /// Supervise one container: start it, log its output, record its exit.
    Monitor {
        /// The container's directory under <data-dir>/containers.
        dir: PathBuf,
        /// Also copy the container's output to this process's stdout/stderr.
        #[arg(long)]
        attach: bool,
    },
    /// The monitor's second stage, exec'd by the monitor itself once the
    /// container runs, so the long wait happens in a small fresh process image.
    MonitorWait {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Run a command inside a running container; reports `exit <code>` on fd 3.
    Exec {
        dir: PathBuf,
        #[arg(long = "env")]
        env: Vec<String>,
        #[arg(last = true, required = true)]
        argv: Vec<String>,
    },
    /// Run the node proxy alone on a ProxyConfig JSON file (SIGHUP re-reads it).
    Proxy {
        #[arg(long)]
        config: PathBuf,
    },
}

pub fn run(cmd: InternalCmd) -> anyhow::Result<u8> {
    let args: Vec<OsString> = match cmd {
        InternalCmd::Proxy { config } => return super::proxy::run(&config),
        InternalCmd::Monitor { dir, attach } => {
            let mut a: Vec<OsString> = vec!["monitor".into(), dir.into()];
            if attach {
                a.push("--attach".into());
            }
            a
        }
        InternalCmd::MonitorWait { args } => {
            let mut a: Vec<OsString> = vec!["monitor-wait".into()];
            a.extend(args.into_iter().map(OsString::from));
            a
        }
        InternalCmd::Exec { dir, env, argv } => {
            let mut a: Vec<OsString> = vec!["exec".into(), dir.into()];
            for e in env {
                a.push("--env".into());
                a.push(e.into());
            }
            a.push("--".into());
            a.extend(argv.into_iter().map(OsString::from));
            a
        }
    };
    let code = flotilla_runtime::entry::main_from_args(args);
    Ok(u8::try_from(code).unwrap_or(125))
}
