//! OCI runtime spec generation: image config + caller overrides → the
//! `config.json` libcontainer runs. Pure: every host fact (rootfs path, netns
//! path, resolved uid/gid, host sources of mounts) arrives in [`OciInputs`].
//!
//! Defaults follow Docker's: own PID, mount, UTS, IPC and network namespaces,
//! Docker's default capability set, no-new-privileges, masked and read-only
//! /proc paths, a device cgroup allow-list, the default seccomp profile.

use crate::seccomp;
use anyhow::{Context as _, Result};
use oci_spec::runtime::Spec;
use serde_json::{json, Value};
use std::path::PathBuf;

/// Docker's default capability set.
pub const DEFAULT_CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Docker's masked paths: hidden behind /dev/null or an empty read-only tmpfs.
pub const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Docker's read-only /proc paths.
pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// CFS period used to express `--cpus` as a quota, as Docker does.
pub const CPU_PERIOD_US: u64 = 100_000;

/// Which network namespace the container gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetNs {
    /// A fresh namespace created by the runtime.
    New,
    /// Share the host's.
    Host,
    /// Join a namespace prepared by the net crate (bind-mounted at this path).
    Path(PathBuf),
}

/// A mount with its host side resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OciMount {
    Bind {
        source: PathBuf,
        target: String,
        read_only: bool,
    },
    Tmpfs {
        target: String,
        size_bytes: Option<u64>,
    },
}

/// Everything the generator needs, already resolved against the host.
#[derive(Debug, Clone)]
pub struct OciInputs {
    pub rootfs: PathBuf,
    pub read_only_rootfs: bool,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub hostname: String,
    pub mounts: Vec<OciMount>,
    pub netns: NetNs,
    pub memory: Option<u64>,
    pub cpus: Option<f64>,
    pub pids_limit: Option<i64>,
    pub cgroup_path: String,
}

/// Builds the OCI runtime spec and checks it parses as one.
pub fn build_spec(i: &OciInputs) -> Result<Spec> {
    let value = build_value(i);
    serde_json::from_value(value).context("generated OCI runtime spec is invalid (bug)")
}

fn build_value(i: &OciInputs) -> Value {
    let caps: Vec<&str> = DEFAULT_CAPABILITIES.to_vec();
    let mut namespaces = vec![
        json!({"type": "pid"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "mount"}),
    ];
    match &i.netns {
        NetNs::New => namespaces.push(json!({"type": "network"})),
        NetNs::Host => {}
        NetNs::Path(p) => namespaces.push(json!({"type": "network", "path": p})),
    }
    let mut mounts = default_mounts();
    for m in &i.mounts {
        mounts.push(match m {
            OciMount::Bind { source, target, read_only } => {
                let mut options = vec!["rbind", "rprivate"];
                if *read_only {
                    options.push("ro");
                }
                json!({"destination": target, "type": "bind", "source": source, "options": options})
            }
            OciMount::Tmpfs { target, size_bytes } => {
                let mut options = vec!["nosuid".to_string(), "nodev".to_string(), "mode=1777".to_string()];
                if let Some(size) = size_bytes {
                    options.push(format!("size={size}"));
                }
                json!({"destination": target, "type": "tmpfs", "source": "tmpfs", "options": options})
            }
        });
    }
    json!({
        "ociVersion": "1.0.2",
        "root": {"path": i.rootfs, "readonly": i.read_only_rootfs},
        "hostname": i.hostname,
        "process": {
            "terminal": false,
            "user": {"uid": i.uid, "gid": i.gid, "additionalGids": i.additional_gids},
            "args": i.args,
            "env": i.env,
            "cwd": i.cwd,
            "capabilities": {
                "bounding": caps, "effective": caps, "permitted": caps,
                "inheritable": [], "ambient": [],
            },
            "noNewPrivileges": true,
        },
        "mounts": mounts,
        "linux": {
            "cgroupsPath": i.cgroup_path,
            "namespaces": namespaces,
            "resources": resources(i),
            "maskedPaths": MASKED_PATHS,
            "readonlyPaths": READONLY_PATHS,
            "seccomp": seccomp::default_profile(),
        },
    })
}

fn resources(i: &OciInputs) -> Value {
    let mut r = json!({ "devices": device_allow_list() });
    if let Some(limit) = i.memory {
        r["memory"] = json!({"limit": limit});
    }
    if let Some(cpus) = i.cpus {
        let quota = (cpus * CPU_PERIOD_US as f64).round() as i64;
        r["cpu"] = json!({"quota": quota.max(1000), "period": CPU_PERIOD_US});
    }
    if let Some(pids) = i.pids_limit {
        r["pids"] = json!({"limit": pids});
    }
    r
}

/// Deny every device node, then allow the ones every container needs (the
/// same list as runc/Docker). Matters because CAP_MKNOD is in the default set.
fn device_allow_list() -> Value {
    let allow = |typ: &str, major: Option<i64>, minor: Option<i64>, access: &str| json!({"allow": true, "type": typ, "major": major, "minor": minor, "access": access});
    json!([
        {"allow": false, "access": "rwm"},
        allow("c", None, None, "m"),
        allow("b", None, None, "m"),
        allow("c", Some(1), Some(3), "rwm"),   // null
        allow("c", Some(1), Some(5), "rwm"),   // zero
        allow("c", Some(1), Some(7), "rwm"),   // full
        allow("c", Some(1), Some(8), "rwm"),   // random
        allow("c", Some(1), Some(9), "rwm"),   // urandom
        allow("c", Some(5), Some(0), "rwm"),   // tty
        allow("c", Some(5), Some(1), "rwm"),   // console
        allow("c", Some(5), Some(2), "rwm"),   // ptmx
        allow("c", Some(136), None, "rwm"),    // pts/*
    ])
}

fn default_mounts() -> Vec<Value> {
    vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts",
               "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
               "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
               "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> OciInputs {
        OciInputs {
            rootfs: "/x/rootfs".into(),
            read_only_rootfs: true,
            args: vec!["/bin/sh".into()],
            env: vec!["PATH=/bin".into()],
            cwd: "/".into(),
            uid: 0,
            gid: 0,
            additional_gids: vec![],
            hostname: "h".into(),
            mounts: vec![OciMount::Tmpfs {
                target: "/t".into(),
                size_bytes: Some(1024),
            }],
            netns: NetNs::Path("/run/netns/x".into()),
            memory: Some(64 << 20),
            cpus: Some(0.5),
            pids_limit: Some(64),
            cgroup_path: "/flotilla/abc".into(),
        }
    }

    #[test]
    fn spec_has_docker_defaults_and_limits() {
        let spec = build_spec(&inputs()).unwrap();
        let linux = spec.linux().as_ref().unwrap();
        let res = linux.resources().as_ref().unwrap();
        assert_eq!(res.memory().as_ref().unwrap().limit(), Some(64 << 20));
        assert_eq!(res.cpu().as_ref().unwrap().quota(), Some(50_000));
        assert_eq!(res.pids().as_ref().unwrap().limit(), 64);
        let ns = linux.namespaces().as_ref().unwrap();
        assert_eq!(ns.len(), 5);
        assert!(ns
            .iter()
            .any(|n| n.path().as_deref() == Some(std::path::Path::new("/run/netns/x"))));
        let process = spec.process().as_ref().unwrap();
        assert_eq!(process.no_new_privileges(), Some(true));
        assert!(spec.root().as_ref().unwrap().readonly().unwrap());
        assert!(linux.seccomp().is_some());
    }

    #[test]
    fn host_network_has_no_netns() {
        let mut i = inputs();
        i.netns = NetNs::Host;
        let spec = build_spec(&i).unwrap();
        assert_eq!(
            spec.linux()
                .as_ref()
                .unwrap()
                .namespaces()
                .as_ref()
                .unwrap()
                .len(),
            4
        );
    }
}
