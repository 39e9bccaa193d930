//! Entry points of the helper processes, shared by `flotilla internal ...`
//! and the crate's own `flotilla-monitor` binary:
//!
//! - `monitor <container-dir> [--attach]`
//! - `exec <container-dir> [--env K=V]... -- <argv>...` (writes `exit <code>` on fd 3)

use crate::record::ContainerDir;
use anyhow::{bail, Context as _, Result};
use std::ffi::OsString;
use std::io::Write as _;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::PathBuf;

/// Runs the helper named by `args[0]`; returns the process exit code.
pub fn main_from_args(args: impl IntoIterator<Item = OsString>) -> i32 {
    let args: Vec<String> = args
        .into_iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    match args.first().map(String::as_str) {
        Some("monitor") => {
            let Some(dir) = args.get(1) else {
                eprintln!("usage: monitor <container-dir> [--attach]");
                return 2;
            };
            crate::monitor::main(&PathBuf::from(dir), args.iter().any(|a| a == "--attach"))
        }
        Some("monitor-wait") => crate::monitor::wait_main(&args[1..]),
        Some("exec") => match exec_helper(&args[1..]) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("{e:#}");
                125
            }
        },
        _ => {
            eprintln!("usage: monitor <container-dir> [--attach] | exec <container-dir> [--env K=V]... -- <argv>...");
            2
        }
    }
}

/// Parsed arguments of the exec helper.
pub struct ExecArgs {
    pub dir: PathBuf,
    pub env: Vec<String>,
    pub argv: Vec<String>,
}

pub fn parse_exec_args(args: &[String]) -> Result<ExecArgs> {
    let mut it = args.iter();
    let dir = it.next().context("exec: missing container directory")?;
    let mut env = Vec::new();
    let mut argv = Vec::new();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--env" => env.push(it.next().context("--env needs KEY=VALUE")?.clone()),
            "--" => {
                argv = it.by_ref().cloned().collect();
                break;
            }
            other => bail!("exec: unexpected argument {other:?}"),
        }
    }
    if argv.is_empty() {
        bail!("exec: missing command after --");
    }
    Ok(ExecArgs {
        dir: PathBuf::from(dir),
        env,
        argv,
    })
}

fn exec_helper(args: &[String]) -> Result<()> {
    let a = parse_exec_args(args)?;
    let record = ContainerDir(a.dir).read_record()?;
    let dup = |fd: i32| -> Result<OwnedFd> {
        let n = nix::unistd::dup(fd).context("dup stdio")?;
        // SAFETY: dup returned a fresh fd that we own.
        Ok(unsafe { OwnedFd::from_raw_fd(n) })
    };
    let code = crate::exec::exec_with_stdio(&record, &a.argv, &a.env, dup(0)?, dup(1)?, dup(2)?)?;
    // SAFETY: fd 3 is the status pipe by protocol.
    let mut status =
        std::fs::File::from(unsafe { OwnedFd::from_raw_fd(crate::monitor::STATUS_FD) });
    writeln!(status, "exit {code}").context("reporting the exit code")?;
    Ok(())
}
