//! Re-executing Flotilla's own binary for the monitor and exec helpers.
//! Plain `std::process::Command` from synchronous code: the child execs at
//! once, so forking from a multi-threaded caller is safe (only dup2/fcntl run
//! between fork and exec). A pipe on the child's fd 3 carries the status.

use anyhow::{Context as _, Result};
use std::ffi::OsString;
use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::Command;

/// How to start `<exe> <prefix...> monitor|exec ...`.
#[derive(Debug, Clone)]
pub struct HelperCommand {
    pub exe: PathBuf,
    /// Arguments before the helper verb, e.g. `["internal"]` for the flotilla binary.
    pub prefix: Vec<OsString>,
}

impl HelperCommand {
    /// The running binary itself with `internal` (what the `flotilla` CLI uses).
    pub fn current_exe_internal() -> Result<Self> {
        Ok(HelperCommand {
            exe: std::env::current_exe()
                .context("finding the flotilla executable to re-execute")?,
            prefix: vec!["internal".into()],
        })
    }

    pub(crate) fn command(&self, verb: &str) -> Command {
        let mut c = Command::new(&self.exe);
        c.args(&self.prefix).arg(verb);
        c
    }
}

/// Arranges for the child to get the write end of a new pipe as fd 3 and
/// returns the read end. Call before spawning; drop the returned guard
/// after spawning so the parent's copy of the write end closes.
pub(crate) fn status_pipe(cmd: &mut Command) -> Result<(File, OwnedFd)> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("pipe2")?;
    let raw = w.as_raw_fd();
    // SAFETY: only async-signal-safe calls (fcntl, dup2) run in the child.
    unsafe {
        cmd.pre_exec(move || {
            if raw == crate::monitor::STATUS_FD {
                if libc::fcntl(raw, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if libc::dup2(raw, crate::monitor::STATUS_FD) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Ok((File::from(r), w))
}
