//! What a caller asks for: [`ContainerSpec`] and the small value types it is
//! made of, plus the parsers the CLI uses to build them from flags. Pure data,
//! no I/O.

use anyhow::{bail, Context as _, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

pub use flotilla_net::{BridgeNetwork, NetworkMode};

/// Which executor runs the container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Driver {
    /// Namespaces, cgroups, overlay rootfs through youki's libcontainer.
    #[default]
    Native,
    /// A plain host process: NO isolation at all (for hosts without root or
    /// namespaces). Env, workdir, logs, stop and exit codes still work.
    Process,
}

/// One mount requested by the caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "type")]
pub enum MountSpec {
    /// A host path bind-mounted into the container.
    Bind {
        source: PathBuf,
        target: String,
        read_only: bool,
    },
    /// A named volume: `<data-dir>/volumes/<name>/_data`, created on first use.
    Volume {
        name: String,
        target: String,
        read_only: bool,
    },
    /// A fresh tmpfs; `size_bytes` None means the kernel default (half of RAM).
    Tmpfs {
        target: String,
        size_bytes: Option<u64>,
    },
}

impl MountSpec {
    pub fn target(&self) -> &str {
        match self {
            MountSpec::Bind { target, .. }
            | MountSpec::Volume { target, .. }
            | MountSpec::Tmpfs { target, .. } => target,
        }
    }
}

/// Everything needed to create a container. Fields left empty fall back to
/// the image's config, like Docker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerSpec {
    /// Unique name; None picks one from the id.
    pub name: Option<String>,
    /// Image name or id in the local store (may be empty for the process driver).
    pub image: String,
    /// Replaces the image's Entrypoint (and then drops the image's Cmd).
    pub entrypoint: Option<Vec<String>>,
    /// Replaces the image's Cmd when non-empty.
    pub cmd: Vec<String>,
    /// `KEY=VALUE` entries, applied over the image's Env.
    pub env: Vec<String>,
    pub workdir: Option<String>,
    /// `user`, `uid`, `user:group` or `uid:gid`, resolved in the image's /etc/passwd.
    pub user: Option<String>,
    /// Defaults to the short id.
    pub hostname: Option<String>,
    pub mounts: Vec<MountSpec>,
    /// Mount the root filesystem read-only.
    pub read_only: bool,
    /// Memory limit in bytes.
    pub memory: Option<u64>,
    /// CPU quota in CPUs (0.5 = half a CPU).
    pub cpus: Option<f64>,
    pub pids_limit: Option<i64>,
    pub network: NetworkMode,
    /// Signal name or number; default: the image's StopSignal, else SIGTERM.
    pub stop_signal: Option<String>,
    /// Grace period before SIGKILL on stop; default 10 s.
    pub stop_grace: Option<Duration>,
    pub labels: BTreeMap<String, String>,
    pub driver: Driver,
}

impl ContainerSpec {
    /// A spec with Docker-like defaults: network none, native driver.
    pub fn new(image: impl Into<String>) -> Self {
        ContainerSpec {
            name: None,
            image: image.into(),
            entrypoint: None,
            cmd: Vec::new(),
            env: Vec::new(),
            workdir: None,
            user: None,
            hostname: None,
            mounts: Vec::new(),
            read_only: false,
            memory: None,
            cpus: None,
            pids_limit: None,
            network: NetworkMode::None,
            stop_signal: None,
            stop_grace: None,
            labels: BTreeMap::new(),
            driver: Driver::Native,
        }
    }
}

/// Default grace period between the stop signal and SIGKILL (Docker's).
pub const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(10);

/// Parses a size like `64M`, `1g`, `512k`, `1048576` (bytes; binary units like Docker).
pub fn parse_size(s: &str) -> Result<u64> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    let lower = lower
        .strip_suffix('b')
        .filter(|r| !r.is_empty())
        .unwrap_or(&lower);
    let (digits, mult) = match lower.chars().last() {
        Some('k') => (&lower[..lower.len() - 1], 1u64 << 10),
        Some('m') => (&lower[..lower.len() - 1], 1 << 20),
        Some('g') => (&lower[..lower.len() - 1], 1 << 30),
        Some('t') => (&lower[..lower.len() - 1], 1 << 40),
        _ => (lower, 1),
    };
    let n: u64 = digits.parse().map_err(|_| {
        anyhow::anyhow!(
            "invalid size {s:?}: expected a number with an optional unit k, m, g or t (e.g. 64M)"
        )
    })?;
    n.checked_mul(mult)
        .with_context(|| format!("size {s:?} is too large"))
}

/// Parses `--cpus` (a positive decimal number of CPUs).
pub fn parse_cpus(s: &str) -> Result<f64> {
    let v: f64 = s.trim().parse().map_err(|_| {
        anyhow::anyhow!("invalid --cpus {s:?}: expected a positive number like 0.5 or 2")
    })?;
    if !(v.is_finite() && v > 0.0 && v <= 1024.0) {
        bail!("invalid --cpus {s:?}: expected a number greater than 0 (and at most 1024)");
    }
    Ok(v)
}

/// Parses `-v source:target[:ro|rw]`. A source with no `/` is a named volume,
/// otherwise a host path (which must be absolute).
pub fn parse_volume(s: &str) -> Result<MountSpec> {
    let parts: Vec<&str> = s.split(':').collect();
    let (source, target, read_only) = match parts.as_slice() {
        [src, dst] => (*src, *dst, false),
        [src, dst, "ro"] => (*src, *dst, true),
        [src, dst, "rw"] => (*src, *dst, false),
        [_, _, opt] => bail!("invalid volume {s:?}: unknown option {opt:?}, expected ro or rw"),
        _ => bail!("invalid volume {s:?}: expected SOURCE:TARGET[:ro], e.g. data:/data or /srv/www:/www:ro"),
    };
    if !target.starts_with('/') {
        bail!(
            "invalid volume {s:?}: target {target:?} must be an absolute path inside the container"
        );
    }
    if source.is_empty() {
        bail!("invalid volume {s:?}: empty source");
    }
    if source.contains('/') {
        if !source.starts_with('/') {
            bail!("invalid volume {s:?}: host path {source:?} must be absolute");
        }
        return Ok(MountSpec::Bind {
            source: PathBuf::from(source),
            target: target.to_string(),
            read_only,
        });
    }
    validate_volume_name(source)?;
    Ok(MountSpec::Volume {
        name: source.to_string(),
        target: target.to_string(),
        read_only,
    })
}

/// Parses `--tmpfs target[:size=64m]`.
pub fn parse_tmpfs(s: &str) -> Result<MountSpec> {
    let (target, opts) = s.split_once(':').unwrap_or((s, ""));
    if !target.starts_with('/') {
        bail!("invalid --tmpfs {s:?}: target must be an absolute path");
    }
    let mut size_bytes = None;
    for opt in opts.split(',').filter(|o| !o.is_empty()) {
        match opt.split_once('=') {
            Some(("size", v)) => size_bytes = Some(parse_size(v)?),
            _ => bail!("invalid --tmpfs option {opt:?}: only size=N is supported"),
        }
    }
    Ok(MountSpec::Tmpfs {
        target: target.to_string(),
        size_bytes,
    })
}

/// Volume names become directory names: keep them to a safe alphabet.
pub fn validate_volume_name(name: &str) -> Result<()> {
    validate_docker_name("volume", name)
}

/// Container names: the same alphabet as Docker's.
pub fn validate_name(name: &str) -> Result<()> {
    validate_docker_name("container", name)
}

/// Docker's rule for container and volume names: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`, at most 128 characters.
fn validate_docker_name(what: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !ok {
        bail!("invalid {what} name {name:?}: expected [a-zA-Z0-9][a-zA-Z0-9_.-]* (at most 128 characters)");
    }
    Ok(())
}

/// Parses a signal given as `SIGTERM`, `TERM`, `term` or a number.
pub fn parse_signal(s: &str) -> Result<i32> {
    let t = s.trim();
    if let Ok(n) = t.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
        bail!("invalid signal {s:?}: numbers must be between 1 and 64");
    }
    let upper = t.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse::<nix::sys::signal::Signal>()
        .map(|sig| sig as i32)
        .map_err(|_| {
            anyhow::anyhow!("invalid signal {s:?}: expected a name like SIGTERM or a number")
        })
}

/// Parses a `--since` value: RFC 3339 time or a duration ago like `10m`, `2h`, `30s`.
pub fn parse_since(
    s: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<chrono::DateTime<chrono::Utc>> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s.trim()) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    let d = parse_duration(s).map_err(|_| {
        anyhow::anyhow!("invalid --since {s:?}: expected an RFC 3339 time (2024-01-02T15:04:05Z) or a duration like 10m")
    })?;
    let d = chrono::Duration::from_std(d).context("--since duration too large")?;
    Ok(now - d)
}

/// [`parse_since`] relative to the current time.
pub fn parse_since_now(s: &str) -> Result<chrono::DateTime<chrono::Utc>> {
    parse_since(s, chrono::Utc::now())
}

/// Parses `1500ms`, `10s`, `5m`, `2h` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration> {
    let t = s.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| {
        anyhow::anyhow!("invalid duration {s:?}: expected a number with unit ms, s, m or h")
    })?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => bail!("invalid duration {s:?}: unknown unit {unit:?}, expected ms, s, m or h"),
    };
    if !secs.is_finite() || !(0.0..=1e9).contains(&secs) {
        bail!("invalid duration {s:?}: out of range");
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64M").unwrap(), 64 << 20);
        assert_eq!(parse_size("1g").unwrap(), 1 << 30);
        assert_eq!(parse_size("512kb").unwrap(), 512 << 10);
        assert_eq!(parse_size("100").unwrap(), 100);
        assert!(parse_size("lots").unwrap_err().to_string().contains("64M"));
    }

    #[test]
    fn volumes() {
        assert_eq!(
            parse_volume("data:/data").unwrap(),
            MountSpec::Volume {
                name: "data".into(),
                target: "/data".into(),
                read_only: false
            }
        );
        assert_eq!(
            parse_volume("/srv:/srv:ro").unwrap(),
            MountSpec::Bind {
                source: "/srv".into(),
                target: "/srv".into(),
                read_only: true
            }
        );
        assert!(parse_volume("rel/x:/y").is_err());
        assert!(parse_volume("data:rel").is_err());
        assert!(parse_volume("../x:/y").is_err());
        assert!(parse_volume("data:/d:xx").is_err());
    }

    #[test]
    fn signals_and_cpus() {
        assert_eq!(parse_signal("SIGTERM").unwrap(), 15);
        assert_eq!(parse_signal("kill").unwrap(), 9);
        assert_eq!(parse_signal("2").unwrap(), 2);
        assert!(parse_signal("SIGNOPE").is_err());
        assert_eq!(parse_cpus("0.5").unwrap(), 0.5);
        assert!(parse_cpus("-1").is_err());
        assert!(parse_cpus("nan").is_err());
    }

    #[test]
    fn durations_and_tmpfs() {
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(
            parse_duration("1500ms").unwrap(),
            Duration::from_millis(1500)
        );
        assert!(parse_duration("5y").is_err());
        assert_eq!(
            parse_tmpfs("/run:size=1m").unwrap(),
            MountSpec::Tmpfs {
                target: "/run".into(),
                size_bytes: Some(1 << 20)
            }
        );
    }
}
