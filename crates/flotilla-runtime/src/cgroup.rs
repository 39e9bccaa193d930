//! Reading a container's cgroup: stats, OOM-kill counter, cleanup. Handles
//! cgroup v1 (one hierarchy per controller, this host's layout) and v2.
//! libcontainer creates and configures the cgroups; this only reads them,
//! plus removes leftovers of containers whose monitor died.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

const ROOT: &str = "/sys/fs/cgroup";

/// Controllers libcontainer may create a directory in under v1.
const V1_CONTROLLERS: &[&str] = &[
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "devices",
    "freezer",
    "blkio",
    "pids",
    "net_cls",
    "net_prio",
    "perf_event",
    "hugetlb",
    "rdma",
    "misc",
];

/// Resource usage read from the cgroup.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Total CPU time used, nanoseconds.
    pub cpu_usage_ns: u64,
    pub memory_usage_bytes: u64,
    /// None when unlimited.
    pub memory_limit_bytes: Option<u64>,
    pub pids_current: u64,
    pub pids_limit: Option<u64>,
}

fn is_v2() -> bool {
    Path::new(ROOT).join("cgroup.controllers").exists()
}

fn v1_dir(controller: &str, cgroup_path: &str) -> PathBuf {
    Path::new(ROOT)
        .join(controller)
        .join(cgroup_path.trim_start_matches('/'))
}

fn v2_dir(cgroup_path: &str) -> PathBuf {
    Path::new(ROOT).join(cgroup_path.trim_start_matches('/'))
}

fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// "max" or a huge v1 sentinel means no limit.
fn read_limit(path: &Path) -> Option<u64> {
    let s = std::fs::read_to_string(path).ok()?;
    let v: u64 = s.trim().parse().ok()?;
    (v < (1u64 << 62)).then_some(v)
}

/// The value of `key` in a flat keyed file (`key value` lines).
fn keyed(path: &Path, key: &str) -> Option<u64> {
    let s = std::fs::read_to_string(path).ok()?;
    s.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// Reads the stats; None when the cgroup does not exist (container not running).
pub fn stats(cgroup_path: &str) -> Option<Stats> {
    if is_v2() {
        let d = v2_dir(cgroup_path);
        if !d.exists() {
            return None;
        }
        return Some(Stats {
            cpu_usage_ns: keyed(&d.join("cpu.stat"), "usage_usec").unwrap_or(0) * 1000,
            memory_usage_bytes: read_u64(&d.join("memory.current")).unwrap_or(0),
            memory_limit_bytes: read_limit(&d.join("memory.max")),
            pids_current: read_u64(&d.join("pids.current")).unwrap_or(0),
            pids_limit: read_limit(&d.join("pids.max")),
        });
    }
    let mem = v1_dir("memory", cgroup_path);
    if !mem.exists() {
        return None;
    }
    Some(Stats {
        cpu_usage_ns: read_u64(&v1_dir("cpuacct", cgroup_path).join("cpuacct.usage")).unwrap_or(0),
        memory_usage_bytes: read_u64(&mem.join("memory.usage_in_bytes")).unwrap_or(0),
        memory_limit_bytes: read_limit(&mem.join("memory.limit_in_bytes")),
        pids_current: read_u64(&v1_dir("pids", cgroup_path).join("pids.current")).unwrap_or(0),
        pids_limit: read_limit(&v1_dir("pids", cgroup_path).join("pids.max")),
    })
}

/// How many processes the kernel OOM-killed in this cgroup
/// (v1 `memory.oom_control` → `oom_kill`, v2 `memory.events` → `oom_kill`).
pub fn oom_kill_count(cgroup_path: &str) -> u64 {
    if is_v2() {
        keyed(&v2_dir(cgroup_path).join("memory.events"), "oom_kill").unwrap_or(0)
    } else {
        keyed(
            &v1_dir("memory", cgroup_path).join("memory.oom_control"),
            "oom_kill",
        )
        .unwrap_or(0)
    }
}

/// The CFS quota as the kernel holds it (v1 `cpu.cfs_quota_us`, v2 first field of `cpu.max`).
pub fn cpu_quota_us(cgroup_path: &str) -> Option<i64> {
    if is_v2() {
        let s = std::fs::read_to_string(v2_dir(cgroup_path).join("cpu.max")).ok()?;
        return s.split_whitespace().next()?.parse().ok();
    }
    std::fs::read_to_string(v1_dir("cpu", cgroup_path).join("cpu.cfs_quota_us"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Removes the container's (empty) cgroup directories. Best effort: used
/// after the processes are gone, e.g. when a monitor died without cleaning up.
pub fn remove(cgroup_path: &str) {
    if is_v2() {
        let _ = std::fs::remove_dir(v2_dir(cgroup_path));
        return;
    }
    for c in V1_CONTROLLERS {
        let _ = std::fs::remove_dir(v1_dir(c, cgroup_path));
    }
}

/// Removes the cgroup directories of a container whose init has been reaped.
/// With a PID namespace every process of the container is gone once init is
/// reaped, so rmdir succeeds; a straggler (EBUSY: a process that left the
/// namespace's view, or a kernel still finishing an exit) is killed and the
/// rmdir retried a few times, as libcgroups does (bounded: < 0.2 s).
pub fn remove_reaped(cgroup_path: &str) {
    let dirs: Vec<PathBuf> = if is_v2() {
        vec![v2_dir(cgroup_path)]
    } else {
        V1_CONTROLLERS
            .iter()
            .map(|c| v1_dir(c, cgroup_path))
            .collect()
    };
    for dir in dirs {
        let mut delay = std::time::Duration::from_millis(10);
        for attempt in 0..4 {
            match std::fs::remove_dir(&dir) {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                Err(_) if attempt < 3 => {
                    kill_all(&dir);
                    std::thread::sleep(delay);
                    delay *= 2;
                }
                Err(e) => tracing::warn!("removing cgroup {}: {e}", dir.display()),
            }
        }
    }
}

/// SIGKILLs every process listed in a cgroup directory.
fn kill_all(dir: &Path) {
    let Ok(procs) = std::fs::read_to_string(dir.join("cgroup.procs")) else {
        return;
    };
    for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
        // SAFETY: kill(2) with plain integers.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

/// The cgroup path a container gets: one directory per container under `/flotilla`.
pub fn path_for(id: &str) -> String {
    format!("/flotilla/{id}")
}
