//! The per-container monitor process (like conmon): `flotilla internal
//! monitor <container-dir>`. It detaches from its caller (setsid + fork, so
//! the container outlives whoever started it), creates and starts the
//! container through libcontainer (or spawns the plain process for the
//! process driver) so init becomes its child, copies stdout/stderr into the
//! log with timestamps, reaps init, records exit code / signal / OOM kill
//! atomically, removes the cgroup and exits.
//!
//! Protocol with the caller: fd 3 is the write end of a pipe. The monitor
//! writes `ok\n` once init runs, or `error: <why>\n` and exits. In attach
//! mode it also copies output to its own stdout/stderr and keeps fd 3 open
//! until the exit record is written, so the caller learns the end from EOF.

use crate::cgroup;
use crate::helper::HelperCommand;
use crate::logs::{LogWriter, Stream};
use crate::process::{is_same_process, start_time};
use crate::record::{
    now_rfc3339, write_json_atomic, ContainerDir, ContainerRecord, ExitRecord, MonitorRecord, EXIT,
    LIBCONTAINER_ROOT, LOG, MONITOR, MONITOR_LOG,
};
use crate::spec::Driver;
use anyhow::{Context as _, Result};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

/// The fd the caller hands over for the ready/exit handshake.
pub const STATUS_FD: RawFd = 3;

/// Entry point. Returns the process exit code of the monitor itself.
pub fn main(dir: &Path, attach: bool) -> i32 {
    main_with(dir, attach, None, false)
}

/// [`main`] with the command that re-executes the detached waiter: `None`
/// derives it from this process's argv (`<exe> <prefix…> monitor <dir>`);
/// a monitor forked from its caller (see [`crate::helper::fork_monitor`])
/// has the caller's argv and passes the helper command instead.
///
/// `remove` (attached only): the caller's `run --rm` hands the removal over:
/// see [`finish_removal`].
pub(crate) fn main_with(
    dir: &Path,
    attach: bool,
    waiter: Option<&HelperCommand>,
    remove: bool,
) -> i32 {
    // SAFETY: fd 3 is ours by protocol; the caller dup2'ed the pipe there.
    let status = unsafe { OwnedFd::from_raw_fd(STATUS_FD) };
    set_cloexec(status.as_raw_fd());
    let _ = std::env::set_current_dir("/");
    // Own session: no controlling terminal, no signals from the caller's
    // process group (Ctrl-C on `container run` must not kill the monitor).
    let _ = nix::unistd::setsid();
    // An exec'd monitor forks so the caller's child exits at once and the
    // monitor is reparented (the caller reaps that child; the container
    // outlives the caller). A monitor forked from its caller (`waiter` set)
    // already is that child and skips this: its caller does not wait for it
    // (see `crate::helper::fork_monitor`), so a second fork of the caller's
    // whole process image would only add to every start.
    if waiter.is_none() {
        // SAFETY: this process is single-threaded here (fresh exec, no threads yet).
        match unsafe { fork() } {
            Ok(ForkResult::Parent { .. }) => return 0,
            Ok(ForkResult::Child) => {}
            Err(e) => {
                report(&status, &format!("error: fork: {e}\n"));
                return 1;
            }
        }
    }
    let dir = ContainerDir(dir.to_path_buf());
    let mut status = Some(File::from(status));
    match supervise(&dir, attach, &mut status, waiter, remove && attach) {
        Ok(()) => 0,
        Err(err) => {
            let msg = format!("{err:#}");
            note(&dir, &msg);
            if let Some(s) = status.as_mut() {
                let _ = s.write_all(format!("error: {}\n", msg.replace('\n', " ")).as_bytes());
            }
            1
        }
    }
}

fn report(status: &OwnedFd, msg: &str) {
    let _ = nix::unistd::write(status, msg.as_bytes());
}

/// Appends a diagnostic to the container's monitor.log (the monitor has no terminal).
fn note(dir: &ContainerDir, msg: &str) {
    if let Ok(mut f) = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.file(MONITOR_LOG))
    {
        let _ = writeln!(f, "{} {msg}", now_rfc3339());
    }
}

fn set_cloexec(fd: RawFd) {
    // SAFETY: fcntl on an fd we own.
    unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("pipe2")
}

fn supervise(
    dir: &ContainerDir,
    attach: bool,
    status: &mut Option<File>,
    waiter: Option<&HelperCommand>,
    remove: bool,
) -> Result<()> {
    let record = dir.read_record()?;
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.file(LOG))
        .context("opening container log")?;
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let devnull = File::open("/dev/null").context("opening /dev/null")?;

    // Children must not inherit an ignored SIGPIPE (Rust ignores it at startup).
    set_sigpipe(libc::SIG_DFL);
    let init = match record.driver {
        Driver::Native => start_native(&record, devnull, out_w, err_w),
        Driver::Process => start_process(&record, devnull, out_w, err_w),
    };
    set_sigpipe(libc::SIG_IGN);
    let init = init?;
    let init_start = start_time(init.as_raw()).unwrap_or(0);
    let me = std::process::id() as i32;
    write_json_atomic(
        &dir.file(MONITOR),
        &MonitorRecord {
            monitor_pid: me,
            monitor_start: start_time(me).unwrap_or(0),
            init_pid: init.as_raw(),
            init_start,
            started_at: now_rfc3339(),
        },
    )?;
    if let Some(s) = status.as_mut() {
        let _ = s.write_all(b"ok\n");
    }
    if !attach {
        *status = None;
    }
    // libcontainer's setup touched megabytes of code and heap. Replace this
    // process image with a fresh one that only waits (exec keeps our pid, so
    // init stays our child, and keeps the fds we mark inheritable).
    // A foreground (attached) run waits in place instead: there the re-exec's
    // startup would sit on the latency-critical path of short containers.
    let status_fd = status.take().map(OwnedFd::from);
    if !attach {
        let err = reexec_waiter(
            dir,
            init,
            &out_r,
            &err_r,
            &log,
            status_fd.as_ref(),
            attach,
            waiter,
        );
        note(
            dir,
            &format!("re-exec of the waiter failed, waiting in place: {err:#}"),
        );
    }
    // SAFETY: glibc function without preconditions.
    unsafe { libc::malloc_trim(0) };
    let handed_over = wait_and_record(
        dir, &record, init, out_r, err_r, log, status_fd, attach, remove,
    )?;
    if handed_over {
        finish_removal(dir);
    }
    Ok(())
}

/// Execs `<exe> <prefix> monitor-wait <dir> <init> <out> <err> <log> <status|-> [--attach]`
/// (exe and prefix from `waiter`, or this process's own when it was exec'd as
/// the monitor). Only returns on failure.
#[allow(clippy::too_many_arguments)]
fn reexec_waiter(
    dir: &ContainerDir,
    init: Pid,
    out: &OwnedFd,
    err: &OwnedFd,
    log: &File,
    status: Option<&OwnedFd>,
    attach: bool,
    waiter: Option<&HelperCommand>,
) -> anyhow::Error {
    use std::os::unix::process::CommandExt as _;
    let mut cmd = match waiter {
        Some(h) => h.command("monitor-wait"),
        None => {
            let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
            let Some(verb) = args.iter().position(|a| a == "monitor") else {
                return anyhow::anyhow!("cannot find the monitor verb in argv");
            };
            let mut cmd = std::process::Command::new("/proc/self/exe");
            cmd.arg0(&args[0]).args(&args[1..verb]).arg("monitor-wait");
            cmd
        }
    };
    let mut fds = vec![out.as_raw_fd(), err.as_raw_fd(), log.as_raw_fd()];
    fds.extend(status.map(|s| s.as_raw_fd()));
    for fd in &fds {
        // SAFETY: clearing FD_CLOEXEC on fds we own so they survive exec.
        unsafe { libc::fcntl(*fd, libc::F_SETFD, 0) };
    }
    cmd.arg(dir.path());
    cmd.arg(init.as_raw().to_string())
        .arg(out.as_raw_fd().to_string())
        .arg(err.as_raw_fd().to_string())
        .arg(log.as_raw_fd().to_string())
        .arg(
            status
                .map(|s| s.as_raw_fd().to_string())
                .unwrap_or_else(|| "-".into()),
        );
    if attach {
        cmd.arg("--attach");
    }
    let e = cmd.exec();
    for fd in &fds {
        set_cloexec(*fd);
    }
    anyhow::Error::from(e)
}

/// The `monitor-wait` command line, parsed.
struct WaitArgs {
    dir: ContainerDir,
    init: Pid,
    out: RawFd,
    err: RawFd,
    log: RawFd,
    status: Option<RawFd>,
    attach: bool,
}

impl WaitArgs {
    fn parse(args: &[String]) -> Result<WaitArgs> {
        let [dir, init, out, err, log, status, rest @ ..] = args else {
            anyhow::bail!(
                "usage: monitor-wait <dir> <init> <out> <err> <log> <status|-> [--attach]"
            );
        };
        let fd = |s: &String| s.parse::<RawFd>().with_context(|| format!("bad fd {s:?}"));
        Ok(WaitArgs {
            dir: ContainerDir(dir.into()),
            init: Pid::from_raw(init.parse().context("bad init pid")?),
            out: fd(out)?,
            err: fd(err)?,
            log: fd(log)?,
            status: if status == "-" {
                None
            } else {
                Some(fd(status)?)
            },
            attach: rest.iter().any(|a| a == "--attach"),
        })
    }
}

/// Entry point of the re-executed waiter: `monitor-wait` arguments as above.
pub fn wait_main(args: &[String]) -> i32 {
    let WaitArgs {
        dir,
        init,
        out,
        err,
        log,
        status,
        attach,
    } = match WaitArgs::parse(args) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e:#}");
            return 2;
        }
    };
    // SAFETY: these fds were handed over by the monitor that exec'd us.
    let (out, err, log, status) = unsafe {
        (
            OwnedFd::from_raw_fd(out),
            OwnedFd::from_raw_fd(err),
            File::from_raw_fd(log),
            status.map(|s| OwnedFd::from_raw_fd(s)),
        )
    };
    for fd in [out.as_raw_fd(), err.as_raw_fd(), log.as_raw_fd()]
        .into_iter()
        .chain(status.as_ref().map(|s| s.as_raw_fd()))
    {
        set_cloexec(fd);
    }
    let result = dir.read_record().and_then(|record| {
        wait_and_record(&dir, &record, init, out, err, log, status, attach, false).map(|_| ())
    });
    match result {
        Ok(()) => 0,
        Err(e) => {
            note(&dir, &format!("{e:#}"));
            1
        }
    }
}

/// Copies output until init exits, reaps it, records the exit, cleans up.
/// True when `remove` and the container was handed over (see
/// [`hand_back_exit`]): then [`finish_removal`] is ours to do.
#[allow(clippy::too_many_arguments)]
fn wait_and_record(
    dir: &ContainerDir,
    record: &ContainerRecord,
    init: Pid,
    out_r: OwnedFd,
    err_r: OwnedFd,
    log: File,
    status: Option<OwnedFd>,
    attach: bool,
    remove: bool,
) -> Result<bool> {
    let mut writer = LogWriter::new(log);
    pump(&mut writer, out_r, err_r, init, attach);
    let wait = waitpid(init, None);
    let (exit_code, signal) = match wait {
        Ok(WaitStatus::Exited(_, code)) => (code, None),
        Ok(WaitStatus::Signaled(_, sig, _)) => (128 + sig as i32, Some(sig as i32)),
        other => {
            note(dir, &format!("unexpected wait result for init: {other:?}"));
            (255, None)
        }
    };
    let oom_killed =
        record.driver == Driver::Native && cgroup::oom_kill_count(&record.cgroup_path) > 0;
    let exit = ExitRecord {
        exit_code,
        signal,
        oom_killed,
        finished_at: now_rfc3339(),
    };
    let recorded = write_json_atomic(&dir.file(EXIT), &exit);
    let handed_over = match (&status, remove, &recorded) {
        (Some(status), true, Ok(())) => hand_back_exit(dir, record, &exit, status),
        _ => false,
    };
    // Closing fd 3 tells an attached caller we are done. The cleanup comes
    // after, off a foreground run's path: nothing of it is visible to the
    // caller (empty cgroups, start state on the tmpfs), and a `run --rm`
    // caller leaves it to us (see `Runtime::remove_detached`).
    drop(status);
    if record.driver == Driver::Native {
        cleanup_reaped(record);
    }
    recorded.map(|()| handed_over)
}

/// For `run --rm` handed over to the monitor: before the caller's EOF, the
/// container leaves `containers/` (one rename into `trash/`, so every later
/// command finds it gone, as when the caller removed it) and its exit status
/// goes down the status pipe as `exit <json>`, since the caller can no longer
/// read `exit.json`. Our copies of the caller's stdout/stderr are closed
/// first: a caller whose output is a pipe (`$(...)`) must see EOF when it
/// exits, not when we are done deleting. A bridge attachment is released
/// here too, so its address is free when the caller returns, as it was when
/// the caller removed the container. If the rename fails nothing is sent,
/// the caller removes the container itself, and this returns false.
fn hand_back_exit(
    dir: &ContainerDir,
    record: &ContainerRecord,
    exit: &ExitRecord,
    status: &OwnedFd,
) -> bool {
    if let Ok(devnull) = OpenOptions::new().write(true).open("/dev/null") {
        for fd in [1, 2] {
            // SAFETY: dup2 onto our own stdio numbers.
            unsafe { libc::dup2(devnull.as_raw_fd(), fd) };
        }
    }
    let Ok(line) = serde_json::to_string(exit) else {
        return false;
    };
    if record.spec.network != crate::spec::NetworkMode::None {
        if let Some((_, data_dir)) = crate::runtime::trashed(dir.path()) {
            if let Err(e) = crate::network::detach(&data_dir, &record.id) {
                note(dir, &format!("detaching the network: {e:#}"));
            }
        }
    }
    if crate::runtime::move_to_trash(dir.path()).is_err() {
        return false;
    }
    report(status, &format!("exit {line}\n"));
    true
}

/// The rest of a handed-over `run --rm`, after the caller has gone: what
/// `Runtime::remove_detached` and its background delete would have done,
/// at the lowest CPU and I/O priority.
fn finish_removal(dir: &ContainerDir) {
    let Some((trashed, data_dir)) = crate::runtime::trashed(dir.path()) else {
        return;
    };
    // At normal priority: the unmount takes the kernel's global mount lock,
    // which the next container's mounts need; an idle-class process
    // preempted while holding it would stall everybody behind it.
    let _ = crate::rootfs::unmount(&trashed);
    crate::helper::lowest_priority();
    crate::spare::top_up(&data_dir, &trashed);
    crate::helper::delete_tree(&trashed);
}

fn set_sigpipe(handler: libc::sighandler_t) {
    // SAFETY: installing SIG_DFL/SIG_IGN is always sound.
    unsafe { libc::signal(libc::SIGPIPE, handler) };
}

fn start_native(record: &ContainerRecord, stdin: File, out: OwnedFd, err: OwnedFd) -> Result<Pid> {
    use libcontainer::container::builder::ContainerBuilder;
    use libcontainer::syscall::syscall::SyscallType;
    let bundle = crate::ephemeral::bundle_dir(&record.id);
    if !bundle.join(crate::record::OCI_CONFIG).exists() {
        // The tmpfs is emptied by a reboot, which also took the overlay mount.
        anyhow::bail!(
            "the container's start bundle {} is gone (was the host rebooted since it was created?): remove the container and create it again",
            bundle.display()
        );
    }
    let mut container = ContainerBuilder::new(record.id.clone(), SyscallType::default())
        .with_root_path(LIBCONTAINER_ROOT)
        .context("libcontainer root path")?
        .with_stdin(OwnedFd::from(stdin))
        .with_stdout(out)
        .with_stderr(err)
        .as_init(&bundle)
        .with_systemd(false)
        .with_detach(true)
        // Create and start in one step: init execs the workload as soon as
        // it is ready (a fresh network namespace got its `lo` up from init
        // itself), instead of waiting for a start message from here.
        .with_immediate_start(true)
        // The seccomp profile is compiled once per boot, not in every init.
        .with_seccomp_cache(crate::ephemeral::SECCOMP_CACHE)
        .build()
        .map_err(|e| anyhow::anyhow!("creating the container: {e}"))?;
    if let Err(e) = container.record_immediate_start() {
        let _ = container.delete(true);
        return Err(anyhow::anyhow!("starting the container: {e}"));
    }
    // Init is on its way to exec the workload; what is left here (records,
    // the caller's "ok") can wait. When both share a CPU the scheduler let
    // init wait for this bookkeeping (~0.5 ms traced), so give way once.
    // SAFETY: sched_yield(2) has no preconditions.
    unsafe { libc::sched_yield() };
    container
        .pid()
        .context("libcontainer did not report the init pid")
}

fn start_process(record: &ContainerRecord, stdin: File, out: OwnedFd, err: OwnedFd) -> Result<Pid> {
    let (prog, rest) = record.args.split_first().context("no command")?;
    let mut cmd = std::process::Command::new(prog);
    cmd.args(rest)
        .env_clear()
        .stdin(stdin)
        .stdout(out)
        .stderr(err);
    for e in &record.env {
        if let Some((k, v)) = e.split_once('=') {
            cmd.env(k, v);
        }
    }
    if let Some(wd) = &record.workdir {
        cmd.current_dir(wd);
    }
    let child = cmd.spawn().with_context(|| format!("starting {prog:?}"))?;
    // We reap it ourselves with waitpid; std's Child does not wait on drop.
    Ok(Pid::from_raw(child.id() as i32))
}

/// Copies both pipes into the log (and to our stdout/stderr when attached)
/// until both reach EOF, or init has exited and the pipes are drained
/// (a daemonised grandchild of the process driver may hold them open).
fn pump(writer: &mut LogWriter, out: OwnedFd, err: OwnedFd, init: Pid, attach: bool) {
    let init_fd = crate::process::open_pidfd(init.as_raw(), start_time(init.as_raw()).unwrap_or(0));
    let mut fds: Vec<Option<(OwnedFd, Stream)>> =
        vec![Some((out, Stream::Stdout)), Some((err, Stream::Stderr))];
    let mut buf = vec![0u8; 64 * 1024];
    let mut init_exited = init_fd.is_none();
    loop {
        let mut pfds: Vec<libc::pollfd> = fds
            .iter()
            .flatten()
            .map(|(fd, _)| libc::pollfd {
                fd: fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        if pfds.is_empty() {
            break;
        }
        if let (Some(p), false) = (&init_fd, init_exited) {
            pfds.push(libc::pollfd {
                fd: p.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        let timeout = if init_exited { 0 } else { -1 };
        // SAFETY: pfds is a valid array of pollfd.
        let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, timeout) };
        if n < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            break;
        }
        if n == 0 && init_exited {
            break; // drained after init's exit
        }
        if let Some(p) = &init_fd {
            if pfds.iter().any(|x| x.fd == p.as_raw_fd() && x.revents != 0) {
                init_exited = true;
            }
        }
        for slot in fds.iter_mut() {
            let Some((fd, stream)) = slot else { continue };
            let ready = pfds
                .iter()
                .any(|x| x.fd == fd.as_raw_fd() && x.revents != 0);
            if !ready {
                continue;
            }
            match nix::unistd::read(fd.as_raw_fd(), &mut buf) {
                Ok(0) | Err(_) => {
                    let _ = writer.finish(*stream);
                    *slot = None;
                }
                Ok(k) => {
                    let _ = writer.push(*stream, &buf[..k]);
                    if attach {
                        let target = if *stream == Stream::Stdout { 1 } else { 2 };
                        // SAFETY: writing our own stdout/stderr; errors (closed terminal) are ignored.
                        let _ = unsafe { libc::write(target, buf.as_ptr().cast(), k) };
                    }
                }
            }
        }
    }
    let _ = writer.finish(Stream::Stdout);
    let _ = writer.finish(Stream::Stderr);
}

/// What libcontainer's `delete` does for one of our containers once init has
/// been reaped (status stopped; we set no hooks and no Intel RDT): remove the
/// cgroups and libcontainer's state directory. Done directly because
/// `Container::load` + `delete` re-read `/proc/self/mountinfo` once per cgroup
/// controller through fresh procfs handles (~30 procfs opens, ~0.6 ms of CPU),
/// on the critical path of every foreground run.
pub(crate) fn cleanup_reaped(record: &ContainerRecord) {
    cgroup::remove_reaped(&record.cgroup_path);
    // A container starts once: its bundle is not read again.
    crate::ephemeral::remove_bundle(&record.id);
    let state = Path::new(LIBCONTAINER_ROOT).join(&record.id);
    if let Err(e) = std::fs::remove_dir_all(&state) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!("removing {}: {e}", state.display());
        }
    }
}

/// Removes libcontainer's state and the cgroup of a container whose monitor
/// may have died (init possibly still running): libcontainer's own delete,
/// which kills what is left.
pub fn cleanup_native(record: &ContainerRecord) {
    let state = Path::new(LIBCONTAINER_ROOT).join(&record.id);
    if state.exists() {
        match libcontainer::container::Container::load(state.clone()) {
            Ok(mut c) => {
                if c.delete(true).is_err() {
                    let _ = std::fs::remove_dir_all(&state);
                }
            }
            Err(_) => {
                let _ = std::fs::remove_dir_all(&state);
            }
        }
    }
    cgroup::remove(&record.cgroup_path);
    crate::ephemeral::remove_bundle(&record.id);
}

/// Whether the monitor recorded in `dir` is still alive.
pub fn monitor_alive(m: &MonitorRecord) -> bool {
    is_same_process(m.monitor_pid, m.monitor_start)
}
