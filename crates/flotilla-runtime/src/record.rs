//! The files that make up a container's state in `<data-dir>/containers/<id>/`
//! and how they are written (atomically: temp file + rename, so a reader or a
//! crash never sees half a record). Whoever restarts reads these to re-adopt.
//!
//! - `record.json`  [`ContainerRecord`]: written once by `create`.
//! - `monitor.json` [`MonitorRecord`]: written by the monitor once the
//!   container's init runs.
//! - `exit.json`    [`ExitRecord`]: written by the monitor after reaping init.
//! - `container.log` JSON lines `{"log","stream","time"}` like Docker's json-file.
//! - `rootfs/`, `upper/`, `work/` the overlay (native driver).
//!
//! The OCI `config.json` and the generated /etc files a native container
//! starts with are not here but in its bundle on the runtime's tmpfs
//! ([`crate::ephemeral::bundle_dir`]): only its start reads them.

use crate::spec::{ContainerSpec, Driver};
use anyhow::{Context as _, Result};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::fs;
use std::path::{Path, PathBuf};

pub const RECORD: &str = "record.json";
pub const OCI_CONFIG: &str = "config.json";
pub const MONITOR: &str = "monitor.json";
pub const EXIT: &str = "exit.json";
pub const LOG: &str = "container.log";
pub const MONITOR_LOG: &str = "monitor.log";
pub const ROOTFS: &str = "rootfs";
pub const UPPER: &str = "upper";
pub const WORK: &str = "work";

/// Where libcontainer keeps its own per-container state (notify socket and
/// state.json): on the runtime's tmpfs, see [`crate::ephemeral`].
pub use crate::ephemeral::LIBCONTAINER_ROOT;

/// Facts fixed at create time.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub id: String,
    pub name: String,
    pub created: String,
    pub spec: ContainerSpec,
    pub driver: Driver,
    /// Store id of the image (empty for the process driver without image).
    pub image_id: String,
    /// The resolved argv (entrypoint + cmd).
    pub args: Vec<String>,
    /// The resolved environment.
    pub env: Vec<String>,
    pub workdir: Option<String>,
    /// Signal number sent by stop.
    pub stop_signal: i32,
    pub stop_grace_ms: u64,
    /// cgroup path relative to each hierarchy root, e.g. `/flotilla/<id>`.
    pub cgroup_path: String,
    pub hostname: String,
    /// Network namespace path and address from the net crate (bridge).
    pub netns_path: Option<PathBuf>,
    pub ipv4: Option<String>,
}

/// Written by the monitor once the container's init process runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MonitorRecord {
    pub monitor_pid: i32,
    /// `/proc/<pid>/stat` start time, so a recycled pid is never mistaken for ours.
    pub monitor_start: u64,
    pub init_pid: i32,
    pub init_start: u64,
    pub started_at: String,
}

/// Written by the monitor once init has been reaped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitRecord {
    /// Docker-style: the exit status, or 128+n for a death by signal n.
    pub exit_code: i32,
    pub signal: Option<i32>,
    pub oom_killed: bool,
    pub finished_at: String,
}

/// The paths of one container's directory.
#[derive(Debug, Clone)]
pub struct ContainerDir(pub PathBuf);

impl ContainerDir {
    pub fn path(&self) -> &Path {
        &self.0
    }
    pub fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
    pub fn read_record(&self) -> Result<ContainerRecord> {
        read_json(&self.file(RECORD))
    }
    pub fn read_monitor(&self) -> Result<Option<MonitorRecord>> {
        read_json_opt(&self.file(MONITOR))
    }
    pub fn read_exit(&self) -> Result<Option<ExitRecord>> {
        read_json_opt(&self.file(EXIT))
    }
}

pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))
}

pub fn read_json_opt<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(
            serde_json::from_slice(&bytes)
                .with_context(|| format!("parsing {}", path.display()))?,
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Writes JSON via a temp file and rename. No fsync: these records describe
/// processes, which do not survive a power loss either, and the foreground
/// run path must stay lean. Serialised in memory first: `to_writer` on a bare
/// `File` makes one write(2) per JSON token (~350 for a record).
pub fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let tmp = tmp_path(path);
    let mut buf = serde_json::to_vec_pretty(value)?;
    buf.push(b'\n');
    fs::write(&tmp, &buf).with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("renaming {} into place", tmp.display()))
}

/// The temp file [`write_json_atomic`] writes `path` through. An existing
/// one is truncated and reused ([`crate::spare`] makes them ahead of time).
pub fn tmp_path(path: &Path) -> PathBuf {
    path.with_extension("json.tmp")
}

/// Current UTC time in RFC 3339 with nanoseconds, as Docker logs use.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// A new random container id: 64 hex chars from the kernel's CSPRNG.
pub fn new_id() -> Result<String> {
    let mut buf = [0u8; 32];
    getrandom(&mut buf)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

fn getrandom(buf: &mut [u8]) -> Result<()> {
    // SAFETY: the pointer/length pair describes `buf`, which outlives the call.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n != buf.len() as isize {
        return Err(std::io::Error::last_os_error()).context("getrandom");
    }
    Ok(())
}

/// The 12-character form shown to people.
pub fn short_id(id: &str) -> &str {
    &id[..id.len().min(12)]
}
