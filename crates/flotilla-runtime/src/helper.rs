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

/// Starts the monitor of the container in `dir` by forking this process
/// instead of re-executing the binary; returns the read end of its status
/// pipe. Only for a single-threaded caller (the `container` CLI): after a
/// fork only the calling thread exists, so in a threaded process another
/// thread's lock (malloc's, tracing's) could be held forever. Saves an exec
/// of the whole `flotilla` binary per container (dynamic loading and ~52,000
/// relocations, ~1 ms of CPU) on the start path. The forked child is the
/// monitor itself (an exec'd monitor double-forks instead): it starts its own
/// session, the container is its child, not the caller's, and a detached one
/// still re-executes `waiter` into the small waiting stage.
pub(crate) fn fork_monitor(
    dir: &std::path::Path,
    attach: bool,
    remove: bool,
    waiter: &HelperCommand,
) -> Result<File> {
    use nix::unistd::{fork, ForkResult};
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("pipe2")?;
    let devnull = File::options()
        .read(true)
        .write(true)
        .open("/dev/null")
        .context("opening /dev/null")?;
    // Without FLOTILLA_LOG the exec'd monitor logs errors only; here the
    // caller's subscriber (warnings and up) is inherited, and libcgroups warns
    // about every controller this host lacks, which in attach mode would land
    // on the user's terminal. Errors also reach the caller through the status
    // pipe and monitor.log, so the forked monitor drops its diagnostics.
    let quiet = std::env::var_os("FLOTILLA_LOG").is_none();
    // SAFETY: the caller checked that this process has one thread, so the
    // child may run ordinary code. It never returns into the caller's code:
    // it ends in _exit without running the caller's destructors or atexit.
    match unsafe { fork() }.context("forking the monitor")? {
        ForkResult::Parent { .. } => {
            drop(w);
            // The child setsid()s and is the monitor: not waited for here
            // (its readiness comes through the pipe). It stays this process's
            // child until this process exits, then init (or a subreaper)
            // adopts it, as it would an exec'd monitor's grandchild; the
            // single-threaded callers that fork (the `container` CLI) end
            // when the container ends or right after starting it.
            Ok(File::from(r))
        }
        ForkResult::Child => {
            drop(r);
            let code = match child_stdio(&w, &devnull, attach) {
                Ok(()) => {
                    // The status pipe is on fd 3 now; everything else the
                    // caller had open is closed, as exec would (CLOEXEC) and
                    // more: the monitor lives as long as the container.
                    // (Forgotten, not dropped: close_from closes them.)
                    std::mem::forget(w);
                    std::mem::forget(devnull);
                    close_from(crate::monitor::STATUS_FD + 1);
                    let run = || crate::monitor::main_with(dir, attach, Some(waiter), remove);
                    if quiet {
                        tracing::subscriber::with_default(
                            tracing::subscriber::NoSubscriber::default(),
                            run,
                        )
                    } else {
                        run()
                    }
                }
                Err(e) => {
                    let _ = nix::unistd::write(&w, format!("error: {e:#}\n").as_bytes());
                    1
                }
            };
            // SAFETY: ends the child without unwinding into the caller.
            unsafe { libc::_exit(code) }
        }
    }
}

/// In the forked monitor: the status pipe on fd 3, stdin from /dev/null,
/// and stdout/stderr kept (attach) or sent to /dev/null.
fn child_stdio(status: &OwnedFd, devnull: &File, attach: bool) -> Result<()> {
    let check = |r: i32| -> Result<i32> {
        if r < 0 {
            return Err(std::io::Error::last_os_error()).context("dup");
        }
        Ok(r)
    };
    // SAFETY (all four calls): fcntl/dup2 on fds owned by this process.
    // Copies above the stdio and status numbers first, so no dup2 below can
    // overwrite a source (a caller started with fd 0 closed gets its pipe there).
    let status = check(unsafe { libc::fcntl(status.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 10) })?;
    let devnull = check(unsafe { libc::fcntl(devnull.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 10) })?;
    check(unsafe { libc::dup2(devnull, 0) })?;
    if !attach {
        check(unsafe { libc::dup2(devnull, 1) })?;
        check(unsafe { libc::dup2(devnull, 2) })?;
    }
    check(unsafe { libc::dup2(status, crate::monitor::STATUS_FD) })?;
    Ok(())
}

/// Closes every fd from `first` up.
fn close_from(first: i32) {
    // SAFETY: close_range(2) with plain integers; nothing below uses those fds.
    let r = unsafe { libc::syscall(libc::SYS_close_range, first as u32, u32::MAX, 0u32) };
    if r != 0 {
        // Kernels before 5.9: close the usual range one by one.
        for fd in first..4096 {
            // SAFETY: as above.
            unsafe { libc::close(fd) };
        }
    }
}

/// Deletes a container directory (already moved out of `containers/`) in a
/// forked child that the caller does not wait for, like the `rm -rf` a
/// threaded caller spawns but without executing anything: the `rm` process's
/// own startup was ~0.8 ms of CPU per `run --rm`, competing with the next
/// container on a small machine. Single-threaded callers only (see
/// [`fork_monitor`]). The child drops the caller's stdio, so a caller whose
/// output is a pipe (a shell's `$(...)`) sees EOF when it exits, not when the
/// files are gone. Like `rm --one-file-system`, it refuses to descend into a
/// root filesystem that is still a mount point.
///
/// It runs `before_delete` (the caller's leftover cleanup) first, then, in
/// the idle classes, tops up the spare container directories
/// ([`crate::spare`]) of `data_dir` and deletes.
pub(crate) fn delete_in_background(
    dir: &std::path::Path,
    data_dir: &std::path::Path,
    before_delete: impl FnOnce(),
) -> Result<()> {
    use nix::unistd::{fork, ForkResult};
    let devnull = File::options()
        .read(true)
        .write(true)
        .open("/dev/null")
        .context("opening /dev/null")?;
    // SAFETY: the caller checked that this process has one thread; the child
    // ends in _exit without returning into the caller's code.
    match unsafe { fork() }.context("forking the background delete")? {
        // Not waited for: it is reparented to init when the caller exits.
        ForkResult::Parent { .. } => Ok(()),
        ForkResult::Child => {
            for fd in 0..3 {
                // SAFETY: dup2 onto our own stdio numbers.
                unsafe { libc::dup2(devnull.as_raw_fd(), fd) };
            }
            std::mem::forget(devnull);
            close_from(3);
            // The caller's leftover cleanup removes cgroups (cgroup_mutex):
            // at normal priority, like every step that takes a shared lock.
            before_delete();
            lowest_priority();
            crate::spare::top_up(data_dir, dir);
            delete_tree(dir);
            // SAFETY: ends the child without unwinding into the caller.
            unsafe { libc::_exit(0) }
        }
    }
}

/// Deletes a container directory that has left `containers/`, like
/// `rm -rf --one-file-system`: nothing below a root filesystem that is still
/// a mount point is touched.
pub(crate) fn delete_tree(dir: &std::path::Path) {
    use std::os::unix::fs::MetadataExt as _;
    let same_fs = |p: &std::path::Path| match (std::fs::metadata(dir), std::fs::symlink_metadata(p))
    {
        (Ok(d), Ok(m)) => d.dev() == m.dev(),
        (Ok(_), Err(_)) => true,
        _ => false,
    };
    if same_fs(&dir.join(crate::record::ROOTFS)) {
        // Holding the directory open defers freeing its inode (and its
        // block) from the `rmdir` to the `close`: `rmdir` holds the lock of
        // `trash/`, which the next `run --rm` needs for its rename, and on a
        // filesystem mounted with `discard` (this host's root ext4) freeing a
        // block waits for a synchronous discard. Measured: a `run --rm`
        // blocked ~30 ms behind an idle-class delete holding that lock.
        let keep = File::open(dir);
        let _ = std::fs::remove_dir_all(dir);
        drop(keep);
    }
}

/// Puts this process in the idle CPU and I/O classes: deleting an old
/// container's files can wait, the next container's start should not (on a
/// two-core machine the delete ran beside the next `run`'s overlay mount and
/// libcontainer setup). SCHED_IDLE still gets a small share, so it finishes
/// on a busy machine too. Best effort.
pub(crate) fn lowest_priority() {
    const IOPRIO_WHO_PROCESS: libc::c_int = 1;
    const IOPRIO_CLASS_IDLE: libc::c_int = 3;
    const IOPRIO_CLASS_SHIFT: libc::c_int = 13;
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: plain syscalls on this process with a valid sched_param.
    unsafe {
        libc::sched_setscheduler(0, libc::SCHED_IDLE, &param);
        libc::syscall(
            libc::SYS_ioprio_set,
            IOPRIO_WHO_PROCESS,
            0,
            IOPRIO_CLASS_IDLE << IOPRIO_CLASS_SHIFT,
        );
    }
}
