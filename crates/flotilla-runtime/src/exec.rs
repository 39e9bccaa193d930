//! Running an extra process inside a running container (libcontainer's
//! tenant builder: joins its namespaces and cgroup), in the calling process.
//! [`crate::Runtime::exec`] runs this in a helper process so that callers
//! with threads (the orchestrator) never fork inside libcontainer.

use crate::record::{ContainerRecord, LIBCONTAINER_ROOT};
use crate::spec::Driver;
use anyhow::{Context as _, Result};
use nix::sys::wait::{waitpid, WaitStatus};
use std::collections::HashMap;
use std::os::fd::OwnedFd;

/// The captured result of [`crate::Runtime::exec`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    pub exit_code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Runs `argv` in the container with the given stdio; returns its exit code
/// (128+n for a death by signal n).
pub fn exec_with_stdio(
    record: &ContainerRecord,
    argv: &[String],
    env: &[String],
    stdin: OwnedFd,
    stdout: OwnedFd,
    stderr: OwnedFd,
) -> Result<i32> {
    if argv.is_empty() {
        anyhow::bail!("exec needs a command");
    }
    let mut env_map = HashMap::new();
    for e in env {
        let (k, v) = e
            .split_once('=')
            .with_context(|| format!("invalid environment entry {e:?}: expected KEY=VALUE"))?;
        env_map.insert(k.to_string(), v.to_string());
    }
    let pid = match record.driver {
        Driver::Native => {
            use libcontainer::container::builder::ContainerBuilder;
            use libcontainer::syscall::syscall::SyscallType;
            set_sigpipe(libc::SIG_DFL);
            let pid = ContainerBuilder::new(record.id.clone(), SyscallType::default())
                .with_root_path(LIBCONTAINER_ROOT)
                .context("libcontainer root path")?
                .with_stdin(stdin)
                .with_stdout(stdout)
                .with_stderr(stderr)
                .as_tenant()
                .with_container_args(argv.to_vec())
                .with_env(env_map)
                .with_detach(true)
                .build();
            set_sigpipe(libc::SIG_IGN);
            pid.map_err(|e| {
                anyhow::anyhow!(
                    "exec in container {}: {e}",
                    crate::record::short_id(&record.id)
                )
            })?
        }
        Driver::Process => {
            // No isolation to join: run beside the process, with its env.
            let mut cmd = std::process::Command::new(&argv[0]);
            cmd.args(&argv[1..])
                .env_clear()
                .stdin(stdin)
                .stdout(stdout)
                .stderr(stderr);
            for e in record.env.iter().chain(env) {
                if let Some((k, v)) = e.split_once('=') {
                    cmd.env(k, v);
                }
            }
            if let Some(wd) = &record.workdir {
                cmd.current_dir(wd);
            }
            let child = cmd
                .spawn()
                .with_context(|| format!("starting {:?}", argv[0]))?;
            nix::unistd::Pid::from_raw(child.id() as i32)
        }
    };
    loop {
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(128 + sig as i32),
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e).context("waiting for the exec'd process"),
        }
    }
}

fn set_sigpipe(handler: libc::sighandler_t) {
    // SAFETY: installing SIG_DFL/SIG_IGN is always sound.
    unsafe { libc::signal(libc::SIGPIPE, handler) };
}
