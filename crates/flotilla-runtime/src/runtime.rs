//! The library API: [`Runtime`] creates, starts, stops, inspects and removes
//! containers whose state lives in `<data-dir>/containers/<id>/`. Every call
//! reads that state afresh, so a new process re-adopts containers started
//! by one that died: nothing is kept in memory between calls.

use crate::cgroup::{self, Stats};
use crate::exec::ExecOutput;
use crate::helper::{status_pipe, HelperCommand};
use crate::logs::{LogOptions, LogStream};
use crate::oci::{self, NetNs, OciInputs, OciMount};
use crate::process::{open_pidfd, pidfd_signal, wait_pidfd};
use crate::record::{
    new_id, now_rfc3339, short_id, write_json_atomic, ContainerDir, ContainerRecord, ExitRecord,
    LIBCONTAINER_ROOT, LOG, OCI_CONFIG, RECORD,
};
use crate::resolve::{self, ImageFacts};
use crate::spec::{ContainerSpec, Driver, MountSpec, NetworkMode, DEFAULT_STOP_GRACE};
use crate::{ephemeral, image, network, rootfs};
use anyhow::{bail, Context as _, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// A container id (64 hex characters).
pub type ContainerId = String;

/// How a container ended (Docker's conventions: 128+n for signal n).
pub type ExitStatus = ExitRecord;

/// Errors callers may want to tell apart (downcast from `anyhow::Error`).
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("no such container: {0}")]
    NotFound(String),
    #[error("the name {0:?} is already in use by container {1}")]
    NameInUse(String, String),
    #[error("container {0} is running: stop it first or remove it with force")]
    Running(String),
    #[error(
        "containers need root (namespaces, cgroups and mounts): run as root, or use `--driver process` \
         (runs the command as a plain host process with NO isolation)"
    )]
    NotRoot,
}

/// Lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ContainerState {
    Created,
    Running,
    Exited,
    OomKilled,
    /// The monitor vanished without recording an exit.
    Dead,
}

impl ContainerState {
    pub fn as_str(self) -> &'static str {
        match self {
            ContainerState::Created => "created",
            ContainerState::Running => "running",
            ContainerState::Exited => "exited",
            ContainerState::OomKilled => "oom-killed",
            ContainerState::Dead => "dead",
        }
    }
}

/// What `inspect` and `list` return.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerInfo {
    pub id: String,
    pub name: String,
    pub image: String,
    pub image_id: String,
    pub driver: Driver,
    pub state: ContainerState,
    pub created: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// Host pid of the container's init while running.
    pub pid: Option<i32>,
    pub monitor_pid: Option<i32>,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub oom_killed: bool,
    pub args: Vec<String>,
    pub hostname: String,
    pub ipv4: Option<String>,
    pub cgroup_path: String,
    pub labels: BTreeMap<String, String>,
    pub log_path: PathBuf,
}

pub struct Runtime {
    data_dir: PathBuf,
    helper: HelperCommand,
    /// Start monitors by forking this process when it is single-threaded
    /// (see [`crate::helper::fork_monitor`]); otherwise by exec of `helper`.
    fork_monitor: bool,
}

impl Runtime {
    /// A runtime over `data_dir` that re-executes the current binary as
    /// `<exe> internal monitor|exec` (the `flotilla` binary).
    pub fn new(data_dir: impl Into<PathBuf>) -> Result<Runtime> {
        Self::with_helper(data_dir, HelperCommand::current_exe_internal()?)
    }

    /// Like [`Runtime::new`] with an explicit helper binary (tests, embedders).
    pub fn with_helper(data_dir: impl Into<PathBuf>, helper: HelperCommand) -> Result<Runtime> {
        let data_dir = data_dir.into();
        let containers = data_dir.join("containers");
        fs::create_dir_all(&containers)
            .with_context(|| format!("creating {}", containers.display()))?;
        Ok(Runtime {
            data_dir,
            helper,
            fork_monitor: true,
        })
    }

    /// Whether a single-threaded caller forks monitors instead of executing
    /// the helper binary (the default; threaded callers always exec). Tests
    /// turn it off to cover the exec path.
    pub fn set_fork_monitor(&mut self, fork: bool) {
        self.fork_monitor = fork;
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    fn containers_dir(&self) -> PathBuf {
        self.data_dir.join("containers")
    }

    fn dir(&self, id: &str) -> ContainerDir {
        ContainerDir(self.containers_dir().join(id))
    }

    /// Finds a container by full id, name, or unique id prefix.
    pub fn lookup(&self, id_or_name: &str) -> Result<ContainerRecord> {
        if id_or_name.is_empty() {
            bail!(RuntimeError::NotFound(String::new()));
        }
        // A full id (what every internal caller passes) is a directory name:
        // read that one record instead of every container's.
        if is_full_id(id_or_name) {
            if let Ok(r) = self.dir(id_or_name).read_record() {
                return Ok(r);
            }
        }
        let records = self.records()?;
        if let Some(r) = records
            .iter()
            .find(|r| r.id == id_or_name || r.name == id_or_name)
        {
            return Ok(r.clone());
        }
        let matches: Vec<&ContainerRecord> = records
            .iter()
            .filter(|r| r.id.starts_with(id_or_name))
            .collect();
        match matches.as_slice() {
            [one] => Ok((*one).clone()),
            [] => bail!(RuntimeError::NotFound(id_or_name.to_string())),
            _ => bail!(
                "the id prefix {id_or_name:?} matches {} containers: give more characters",
                matches.len()
            ),
        }
    }

    fn records(&self) -> Result<Vec<ContainerRecord>> {
        let mut out = Vec::new();
        let entries = match fs::read_dir(self.containers_dir()) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e).context("listing containers"),
        };
        for entry in entries {
            let entry = entry?;
            let dir = ContainerDir(entry.path());
            // A directory without a record is a create in progress or a crash leftover.
            if let Ok(r) = dir.read_record() {
                out.push(r);
            }
        }
        out.sort_by(|a, b| a.created.cmp(&b.created));
        Ok(out)
    }

    /// Creates a container (root filesystem, network, OCI spec) without starting it.
    pub fn create(&self, spec: &ContainerSpec) -> Result<ContainerId> {
        if spec.driver == Driver::Native && !crate::process::is_root() {
            bail!(RuntimeError::NotRoot);
        }
        if spec.driver == Driver::Native {
            ephemeral::ensure_mounted()?;
        }
        let _lock = Lock::take(&self.containers_dir().join(".lock"))?;
        let id = new_id()?;
        let name = match &spec.name {
            Some(n) => {
                crate::spec::validate_name(n)?;
                n.clone()
            }
            None => format!("c-{}", short_id(&id)),
        };
        if let Some(other) = self.records()?.into_iter().find(|r| r.name == name) {
            bail!(RuntimeError::NameInUse(
                name,
                short_id(&other.id).to_string()
            ));
        }
        let dir = self.dir(&id);
        if !crate::spare::claim(&self.data_dir, dir.path()) {
            fs::create_dir(dir.path())
                .with_context(|| format!("creating {}", dir.path().display()))?;
        }
        let mut guard = CreateGuard {
            rt: self,
            id: id.clone(),
            armed: true,
            net: false,
        };
        let record = self.prepare(&id, name, spec, &dir, &mut guard)?;
        fs::File::create(dir.file(LOG)).context("creating the log file")?;
        // The record goes last: its presence means "fully created".
        write_json_atomic(&dir.file(RECORD), &record)?;
        guard.armed = false;
        Ok(id)
    }

    fn prepare(
        &self,
        id: &str,
        name: String,
        spec: &ContainerSpec,
        dir: &ContainerDir,
        guard: &mut CreateGuard,
    ) -> Result<ContainerRecord> {
        let facts = if spec.image.is_empty() && spec.driver == Driver::Process {
            ImageFacts::default()
        } else {
            image::resolve(&self.data_dir, &spec.image)?
        };
        let hostname = spec
            .hostname
            .clone()
            .unwrap_or_else(|| short_id(id).to_string());
        let args = resolve::resolve_args(spec, &facts)?;
        let env = resolve::resolve_env(spec, &facts, &hostname)?;
        let workdir = resolve::resolve_workdir(spec, &facts)?;
        let stop_signal = resolve::resolve_stop_signal(spec, &facts)?;
        let cgroup_path = cgroup::path_for(id);
        let mut record = ContainerRecord {
            id: id.to_string(),
            name,
            created: now_rfc3339(),
            spec: spec.clone(),
            driver: spec.driver,
            image_id: facts.id.clone(),
            args,
            env,
            workdir: Some(workdir.clone()),
            stop_signal,
            stop_grace_ms: spec.stop_grace.unwrap_or(DEFAULT_STOP_GRACE).as_millis() as u64,
            cgroup_path: cgroup_path.clone(),
            hostname: hostname.clone(),
            netns_path: None,
            ipv4: None,
        };
        if spec.driver == Driver::Process {
            // The process runs on the host: a workdir only applies if it exists there.
            if spec.workdir.is_none() {
                record.workdir = None;
            }
            return Ok(record);
        }
        let mut layers = facts.layers.clone();
        layers.extend(rootfs::mount_targets_layer(
            &self.data_dir,
            &facts.id,
            &facts.layers,
        ));
        let rootfs = rootfs::mount_overlay(dir.path(), &layers)?;
        let read = |p: &str| fs::read_to_string(rootfs.join(p)).unwrap_or_default();
        let user = resolve::resolve_user(
            spec.user.as_deref().or(facts.user.as_deref()),
            &read("etc/passwd"),
            &read("etc/group"),
        )?;
        let mut mounts = Vec::new();
        for m in &spec.mounts {
            mounts.push(match m {
                MountSpec::Bind {
                    source,
                    target,
                    read_only,
                } => {
                    if !source.exists() {
                        bail!("bind mount source {} does not exist", source.display());
                    }
                    OciMount::Bind {
                        source: source.clone(),
                        target: target.clone(),
                        read_only: *read_only,
                    }
                }
                MountSpec::Volume {
                    name,
                    target,
                    read_only,
                } => OciMount::Bind {
                    source: rootfs::volume_dir(&self.data_dir, name)?,
                    target: target.clone(),
                    read_only: *read_only,
                },
                MountSpec::Tmpfs { target, size_bytes } => OciMount::Tmpfs {
                    target: target.clone(),
                    size_bytes: *size_bytes,
                },
            });
        }
        // The start bundle (config.json and the /etc files) goes to the
        // runtime's tmpfs: only this container's start reads it.
        let bundle = ephemeral::bundle_dir(id);
        let att = if spec.network == NetworkMode::None {
            network::none(&hostname, &bundle)?
        } else {
            guard.net = true;
            network::attach(&self.data_dir, id, &spec.network, &hostname, &bundle)?
        };
        let user_targets: Vec<&str> = spec.mounts.iter().map(|m| m.target()).collect();
        // The caller's own mounts of /etc/hosts etc. win over the generated ones.
        let mut all_mounts: Vec<OciMount> = att
            .mounts
            .into_iter()
            .filter(|m| match m {
                OciMount::Bind { target, .. } | OciMount::Tmpfs { target, .. } => {
                    !user_targets.contains(&target.as_str())
                }
            })
            .collect();
        all_mounts.extend(mounts);
        record.netns_path = match &att.netns {
            NetNs::Path(p) => Some(p.clone()),
            _ => None,
        };
        record.ipv4 = att.ipv4;
        let netns = match &spec.network {
            NetworkMode::Host => NetNs::Host,
            _ => att.netns,
        };
        let oci = oci::build_spec(&OciInputs {
            rootfs,
            read_only_rootfs: spec.read_only,
            args: record.args.clone(),
            env: resolve::env_with_home(&record.env, &user),
            cwd: workdir,
            uid: user.uid,
            gid: user.gid,
            additional_gids: user.additional_gids,
            hostname,
            mounts: all_mounts,
            netns,
            memory: spec.memory,
            cpus: spec.cpus,
            pids_limit: spec.pids_limit,
            cgroup_path,
        })?;
        oci.save(bundle.join(OCI_CONFIG))
            .context("writing config.json")?;
        Ok(record)
    }

    /// Starts a created container in the background (its monitor detaches).
    pub fn start(&self, id_or_name: &str) -> Result<()> {
        let record = self.lookup(id_or_name)?;
        let mut status = self.spawn_monitor(&record, false)?;
        read_ready(&mut status, &record)
    }

    /// Starts a created container with its output copied live to this
    /// process's stdout/stderr, and waits for it to exit. Meanwhile this
    /// process forwards SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1/2 to the
    /// container's init (so call it from the CLI, not from a server).
    pub fn start_attached(&self, id_or_name: &str) -> Result<ExitStatus> {
        let record = self.lookup(id_or_name)?;
        let mut status = self.spawn_monitor(&record, true)?;
        read_ready(&mut status, &record)?;
        self.forward_signals_until_eof(&record, &mut status)?;
        self.wait(&record.id)
    }

    /// While an attached container runs: forwards Ctrl-C and friends to its
    /// init, as `docker run` does, and reads the status pipe to its EOF
    /// (the monitor closes it after writing the exit record). Returns what
    /// came down the pipe after "ok".
    fn forward_signals_until_eof(
        &self,
        record: &ContainerRecord,
        status: &mut BufReader<fs::File>,
    ) -> Result<String> {
        let _proxy = self
            .dir(&record.id)
            .read_monitor()?
            .and_then(|m| open_pidfd(m.init_pid, m.init_start))
            .map(crate::sigproxy::SignalProxy::install);
        // Through the BufReader: what it already buffered past "ok" (the
        // exit line of a container that ended at once) is part of the rest.
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(status, &mut rest);
        Ok(rest)
    }

    /// [`Runtime::start_attached`], then [`Runtime::remove_detached`]: what
    /// `container run --rm` does. A single-threaded caller hands the removal
    /// to the container's monitor, which moves the container out of
    /// `containers/` before reporting the exit over the status pipe and does
    /// the rest after this process has gone (see `monitor::hand_back_exit`):
    /// the unmount, the rename and the fork of a background delete were
    /// ~1 ms of every short `run --rm`. If the monitor reports no exit (it
    /// died, or could not move the directory), this process removes the
    /// container itself.
    pub fn start_attached_then_remove(&self, id_or_name: &str) -> Result<ExitStatus> {
        let record = self.lookup(id_or_name)?;
        let hand_over = self.fork_monitor
            && record.driver == Driver::Native
            && crate::process::single_threaded();
        if !hand_over {
            let result = self.start_attached(&record.id);
            self.remove_detached(&record.id)?;
            return result;
        }
        let started = self
            .spawn_monitor_with(&record, true, true)
            .and_then(|mut status| read_ready(&mut status, &record).map(|()| status));
        let mut status = match started {
            Ok(status) => status,
            Err(e) => {
                // Not started, so not handed over: remove it here.
                self.remove_detached(&record.id)?;
                return Err(e);
            }
        };
        let rest = self.forward_signals_until_eof(&record, &mut status)?;
        let handed_back = rest
            .lines()
            .find_map(|l| l.strip_prefix("exit "))
            .and_then(|json| serde_json::from_str::<ExitStatus>(json).ok());
        if let Some(exit) = handed_back {
            return Ok(exit);
        }
        let result = self.wait(&record.id);
        self.remove_detached(&record.id)?;
        result
    }

    /// Create + start.
    pub fn run(&self, spec: &ContainerSpec) -> Result<ContainerId> {
        let id = self.create(spec)?;
        if let Err(e) = self.start(&id) {
            let _ = self.remove(&id, true);
            return Err(e);
        }
        Ok(id)
    }

    fn spawn_monitor(&self, record: &ContainerRecord, attach: bool) -> Result<BufReader<fs::File>> {
        self.spawn_monitor_with(record, attach, false)
    }

    /// `remove`: hand `run --rm`'s removal to a forked monitor (see
    /// [`Runtime::start_attached_then_remove`]); callers check it can fork.
    fn spawn_monitor_with(
        &self,
        record: &ContainerRecord,
        attach: bool,
        remove: bool,
    ) -> Result<BufReader<fs::File>> {
        let dir = self.dir(&record.id);
        if dir.read_monitor()?.is_some() || dir.read_exit()?.is_some() {
            bail!(
                "container {} was already started (a container starts once)",
                short_id(&record.id)
            );
        }
        if self.fork_monitor && crate::process::single_threaded() {
            let read = crate::helper::fork_monitor(dir.path(), attach, remove, &self.helper)?;
            return Ok(BufReader::new(read));
        }
        let mut cmd = self.helper.command("monitor");
        cmd.arg(dir.path());
        if attach {
            cmd.arg("--attach")
                .stdout(Stdio::inherit())
                .stderr(Stdio::inherit());
        } else {
            cmd.stdout(Stdio::null()).stderr(Stdio::null());
        }
        cmd.stdin(Stdio::null());
        // libcgroups warns about every controller this host lacks; in attach
        // mode that would land on the user's terminal.
        if std::env::var_os("FLOTILLA_LOG").is_none() {
            cmd.env("FLOTILLA_LOG", "error");
        }
        let (read, write) = status_pipe(&mut cmd)?;
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting the monitor {}", self.helper.exe.display()))?;
        drop(write);
        // The first monitor process forks and exits at once; reap it.
        let _ = child.wait();
        Ok(BufReader::new(read))
    }

    /// The container's stop grace period (`stop_grace_period`), if it exists.
    pub fn stop_grace(&self, id_or_name: &str) -> Option<Duration> {
        let record = self.lookup(id_or_name).ok()?;
        Some(Duration::from_millis(record.stop_grace_ms))
    }

    /// Sends the stop signal, waits up to `grace` (default: the container's),
    /// then SIGKILL. Returns the exit status. A no-op for a stopped container.
    pub fn stop(&self, id_or_name: &str, grace: Option<Duration>) -> Result<ExitStatus> {
        let record = self.lookup(id_or_name)?;
        let dir = self.dir(&record.id);
        let grace = grace.unwrap_or(Duration::from_millis(record.stop_grace_ms));
        if let Some(exit) = dir.read_exit()? {
            return Ok(exit);
        }
        let Some(m) = dir.read_monitor()? else {
            bail!("container {} was never started", short_id(&record.id));
        };
        let Some(monitor) = open_pidfd(m.monitor_pid, m.monitor_start) else {
            return self.wait(&record.id);
        };
        if let Some(init) = open_pidfd(m.init_pid, m.init_start) {
            pidfd_signal(&init, record.stop_signal)?;
            if !wait_pidfd(&monitor, Some(grace))? {
                pidfd_signal(&init, libc::SIGKILL)?;
            }
        }
        wait_pidfd(&monitor, None)?;
        self.wait(&record.id)
    }

    /// Sends `signal` to the container's init.
    pub fn kill(&self, id_or_name: &str, signal: i32) -> Result<()> {
        let record = self.lookup(id_or_name)?;
        let dir = self.dir(&record.id);
        let m = match (dir.read_exit()?, dir.read_monitor()?) {
            (None, Some(m)) => m,
            _ => bail!("container {} is not running", short_id(&record.id)),
        };
        let init = open_pidfd(m.init_pid, m.init_start)
            .with_context(|| format!("container {} is not running", short_id(&record.id)))?;
        pidfd_signal(&init, signal)?;
        Ok(())
    }

    /// Waits until the container exits and returns how. Works for containers
    /// started by another (even dead) process: it waits on the monitor's pidfd.
    pub fn wait(&self, id_or_name: &str) -> Result<ExitStatus> {
        let record = self.lookup(id_or_name)?;
        let dir = self.dir(&record.id);
        if let Some(exit) = dir.read_exit()? {
            return Ok(exit);
        }
        let Some(m) = dir.read_monitor()? else {
            bail!("container {} was never started", short_id(&record.id));
        };
        if let Some(monitor) = open_pidfd(m.monitor_pid, m.monitor_start) {
            wait_pidfd(&monitor, None)?;
        }
        dir.read_exit()?.with_context(|| {
            format!(
                "container {} is dead: its monitor exited without recording an exit status",
                short_id(&record.id)
            )
        })
    }

    /// Removes a container: refuses a running one unless `force` (then SIGKILL).
    pub fn remove(&self, id_or_name: &str, force: bool) -> Result<()> {
        let record = self.lookup(id_or_name)?;
        let info = self.info(&record)?;
        if info.state == ContainerState::Running {
            if !force {
                bail!(RuntimeError::Running(short_id(&record.id).to_string()));
            }
            self.kill(&record.id, libc::SIGKILL).ok();
            self.wait(&record.id).ok();
        }
        self.cleanup(&record.id, Some(&record))
    }

    /// Like [`Runtime::remove`] with `force`, for `run --rm`: everything but
    /// the directory's contents is undone before returning, and the directory
    /// leaves `containers/` at once (one rename into `trash/`), so the
    /// container is gone for every later command. Deleting the files is left
    /// to a background `rm`: on a busy disk each unlink of the overlay's upper
    /// layer can wait on the journal, and that wait was the largest part of
    /// a short `run --rm`. Falls back to deleting in place if the rename fails.
    pub fn remove_detached(&self, id_or_name: &str) -> Result<()> {
        let record = self.lookup(id_or_name)?;
        if self.info(&record)?.state == ContainerState::Running {
            self.kill(&record.id, libc::SIGKILL).ok();
            self.wait(&record.id).ok();
        }
        let dir = self.dir(&record.id);
        // A monitor that recorded the exit removes the cgroups and the start
        // state right after telling us (see `monitor::wait_and_record`), so
        // not on this path; the background delete repeats that as a safety
        // net. Anything else (no exit record: a dead monitor; the process
        // driver; a threaded caller, which cannot fork) undoes it all here.
        let forked = crate::process::single_threaded();
        let monitor_cleans =
            forked && record.driver == Driver::Native && dir.read_exit()?.is_some();
        if monitor_cleans {
            self.undo_mounts_and_network(&record.id, Some(&record))?;
        } else {
            self.undo_host_state(&record.id, Some(&record))?;
        }
        let Ok(target) = move_to_trash(dir.path()) else {
            return remove_dir(dir.path());
        };
        if forked {
            let leftover = monitor_cleans.then_some(record);
            return crate::helper::delete_in_background(&target, &self.data_dir, move || {
                if let Some(r) = leftover {
                    crate::monitor::cleanup_reaped(&r);
                }
            });
        }
        // Not waited for: it is reparented to init when this process exits.
        // `--one-file-system`: nothing mounted below may be followed.
        let spawned = std::process::Command::new("rm")
            .args(["-rf", "--one-file-system", "--"])
            .arg(&target)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        match spawned {
            Ok(_) => Ok(()),
            Err(_) => remove_dir(&target),
        }
    }

    /// Undoes everything a container has on the host; each step is idempotent.
    fn cleanup(&self, id: &str, record: Option<&ContainerRecord>) -> Result<()> {
        self.undo_host_state(id, record)?;
        remove_dir(self.dir(id).path())
    }

    /// Everything [`Runtime::cleanup`] does except deleting the directory.
    fn undo_host_state(&self, id: &str, record: Option<&ContainerRecord>) -> Result<()> {
        let native = record.map(|r| r.driver == Driver::Native).unwrap_or(true);
        if native {
            if let Some(r) = record {
                // Left over when the monitor died before cleaning up.
                if Path::new(LIBCONTAINER_ROOT).join(id).exists() {
                    crate::monitor::cleanup_native(r);
                }
                cgroup::remove(&r.cgroup_path);
            }
            ephemeral::remove_bundle(id);
        }
        self.undo_mounts_and_network(id, record)
    }

    /// The part of [`Runtime::undo_host_state`] that only this process does:
    /// the root filesystem's mount and the network attachment.
    fn undo_mounts_and_network(&self, id: &str, record: Option<&ContainerRecord>) -> Result<()> {
        let native = record.map(|r| r.driver == Driver::Native).unwrap_or(true);
        if native {
            rootfs::unmount(self.dir(id).path())?;
            // `none` namespaces die with the container; nothing to detach.
            let private_ns = record.is_some_and(|r| r.spec.network == NetworkMode::None);
            if crate::process::is_root() && !private_ns {
                network::detach(&self.data_dir, id)?;
            }
        }
        Ok(())
    }

    /// All containers, oldest first.
    pub fn list(&self) -> Result<Vec<ContainerInfo>> {
        self.records()?.iter().map(|r| self.info(r)).collect()
    }

    pub fn inspect(&self, id_or_name: &str) -> Result<ContainerInfo> {
        let record = self.lookup(id_or_name)?;
        self.info(&record)
    }

    fn info(&self, r: &ContainerRecord) -> Result<ContainerInfo> {
        let dir = self.dir(&r.id);
        let monitor = dir.read_monitor()?;
        let exit = dir.read_exit()?;
        let state = match (&exit, &monitor) {
            (Some(e), _) if e.oom_killed => ContainerState::OomKilled,
            (Some(_), _) => ContainerState::Exited,
            (None, Some(m)) if crate::monitor::monitor_alive(m) => ContainerState::Running,
            // The monitor may have just written the exit record.
            (None, Some(_)) => match dir.read_exit()? {
                Some(e) if e.oom_killed => ContainerState::OomKilled,
                Some(_) => ContainerState::Exited,
                None => ContainerState::Dead,
            },
            (None, None) => ContainerState::Created,
        };
        let exit = if exit.is_none()
            && matches!(state, ContainerState::Exited | ContainerState::OomKilled)
        {
            dir.read_exit()?
        } else {
            exit
        };
        Ok(ContainerInfo {
            id: r.id.clone(),
            name: r.name.clone(),
            image: r.spec.image.clone(),
            image_id: r.image_id.clone(),
            driver: r.driver,
            state,
            created: r.created.clone(),
            started_at: monitor.as_ref().map(|m| m.started_at.clone()),
            finished_at: exit.as_ref().map(|e| e.finished_at.clone()),
            pid: monitor
                .as_ref()
                .filter(|_| state == ContainerState::Running)
                .map(|m| m.init_pid),
            monitor_pid: monitor
                .as_ref()
                .filter(|_| state == ContainerState::Running)
                .map(|m| m.monitor_pid),
            exit_code: exit.as_ref().map(|e| e.exit_code),
            signal: exit.as_ref().and_then(|e| e.signal),
            oom_killed: exit.as_ref().is_some_and(|e| e.oom_killed),
            args: r.args.clone(),
            hostname: r.hostname.clone(),
            ipv4: r.ipv4.clone(),
            cgroup_path: r.cgroup_path.clone(),
            labels: r.spec.labels.clone(),
            log_path: dir.file(LOG),
        })
    }

    /// The container's log entries; with `follow`, blocks for new ones until it exits.
    pub fn logs(&self, id_or_name: &str, opts: LogOptions) -> Result<LogStream> {
        let record = self.lookup(id_or_name)?;
        LogStream::open(self.dir(&record.id), opts)
    }

    /// CPU, memory and pids from the container's cgroup.
    pub fn stats(&self, id_or_name: &str) -> Result<Stats> {
        let record = self.lookup(id_or_name)?;
        if record.driver == Driver::Process {
            bail!("stats come from cgroups, and the process driver puts its process in none");
        }
        cgroup::stats(&record.cgroup_path).with_context(|| {
            format!(
                "container {} is not running (no cgroup)",
                short_id(&record.id)
            )
        })
    }

    /// Runs `argv` inside the running container (joining its namespaces and
    /// cgroup) with extra `env`, capturing its output and exit code.
    pub fn exec(&self, id_or_name: &str, argv: &[String], env: &[String]) -> Result<ExecOutput> {
        let record = self.lookup(id_or_name)?;
        self.require_running(&record)?;
        if argv.is_empty() {
            bail!("exec needs a command");
        }
        let mut cmd = self.exec_command(&record, argv, env)?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let (mut read, write) = status_pipe(&mut cmd)?;
        let child = cmd
            .spawn()
            .with_context(|| format!("starting the exec helper {}", self.helper.exe.display()))?;
        drop(write);
        let out = child
            .wait_with_output()
            .context("waiting for the exec helper")?;
        let mut status = String::new();
        let _ = std::io::Read::read_to_string(&mut read, &mut status);
        match parse_exit_line(&status) {
            Some(exit_code) => Ok(ExecOutput {
                exit_code,
                stdout: out.stdout,
                stderr: out.stderr,
            }),
            None => bail!(
                "exec failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        }
    }

    fn exec_command(
        &self,
        record: &ContainerRecord,
        argv: &[String],
        env: &[String],
    ) -> Result<std::process::Command> {
        if argv.is_empty() {
            bail!("exec needs a command");
        }
        let mut cmd = self.helper.command("exec");
        cmd.arg(self.dir(&record.id).path());
        for e in env {
            cmd.arg("--env").arg(e);
        }
        cmd.arg("--").args(argv);
        // Library diagnostics must not mix into the command's stderr.
        if std::env::var_os("FLOTILLA_LOG").is_none() {
            cmd.env("FLOTILLA_LOG", "off");
        }
        Ok(cmd)
    }

    fn require_running(&self, record: &ContainerRecord) -> Result<()> {
        let info = self.info(record)?;
        if info.state != ContainerState::Running {
            bail!(
                "container {} is {}, not running",
                short_id(&record.id),
                info.state.as_str()
            );
        }
        Ok(())
    }

    /// For the CLI: `exec` with this process's own stdio, streaming live;
    /// returns the command's exit code.
    pub fn exec_inherit(&self, id_or_name: &str, argv: &[String], env: &[String]) -> Result<i32> {
        let record = self.lookup(id_or_name)?;
        self.require_running(&record)?;
        let mut cmd = self.exec_command(&record, argv, env)?;
        let (mut read, write) = status_pipe(&mut cmd)?;
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting the exec helper {}", self.helper.exe.display()))?;
        drop(write);
        child.wait().context("waiting for the exec helper")?;
        let mut status = String::new();
        let _ = std::io::Read::read_to_string(&mut read, &mut status);
        parse_exit_line(&status).context("exec failed (see the error above)")
    }
}

/// 64 lowercase hex characters, the form of [`new_id`]'s ids.
fn is_full_id(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Moves a container directory from `containers/` into `trash/` (one
/// rename: every later command finds the container gone), returning where
/// it went.
pub(crate) fn move_to_trash(dir: &Path) -> std::io::Result<PathBuf> {
    let (target, _) = trashed(dir).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a container directory",
        )
    })?;
    fs::create_dir_all(target.parent().unwrap_or(Path::new("/")))?;
    fs::rename(dir, &target)?;
    Ok(target)
}

/// For `<data-dir>/containers/<id>`: where [`move_to_trash`] puts it, and
/// the data dir.
pub(crate) fn trashed(dir: &Path) -> Option<(PathBuf, PathBuf)> {
    let id = dir.file_name()?;
    let data_dir = dir.parent()?.parent()?;
    Some((data_dir.join(TRASH_DIR).join(id), data_dir.to_path_buf()))
}

/// Where `remove_detached` moves a container directory for background deletion.
const TRASH_DIR: &str = "trash";

/// Deletes a directory tree; already gone is fine.
fn remove_dir(path: &Path) -> Result<()> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {}", path.display())),
    }
}

fn parse_exit_line(status: &str) -> Option<i32> {
    status
        .trim()
        .strip_prefix("exit ")
        .and_then(|c| c.parse::<i32>().ok())
}

/// Reads the monitor's first status line: `ok`, or `error: why`.
fn read_ready(status: &mut BufReader<fs::File>, record: &ContainerRecord) -> Result<()> {
    let mut line = String::new();
    status
        .read_line(&mut line)
        .context("reading the monitor's status")?;
    match line.trim_end() {
        "ok" => Ok(()),
        "" => bail!(
            "the monitor of container {} exited without starting it",
            short_id(&record.id)
        ),
        other => bail!("{}", other.strip_prefix("error: ").unwrap_or(other)),
    }
}

/// Undoes a half-made create.
struct CreateGuard<'a> {
    rt: &'a Runtime,
    id: String,
    armed: bool,
    net: bool,
}

impl Drop for CreateGuard<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let dir = self.rt.dir(&self.id);
        let _ = rootfs::unmount(dir.path());
        ephemeral::remove_bundle(&self.id);
        if self.net {
            let _ = network::detach(&self.rt.data_dir, &self.id);
        }
        let _ = fs::remove_dir_all(dir.path());
    }
}

/// An exclusive flock held while checking names and creating a directory.
struct Lock {
    _file: fs::File,
}

impl Lock {
    fn take(path: &Path) -> Result<Lock> {
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        // SAFETY: flock on an fd we own.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(std::io::Error::last_os_error()).context("locking the container store");
        }
        Ok(Lock { _file: f })
    }
}
