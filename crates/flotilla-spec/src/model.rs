//! The stack model types. Field docs say what the value means once
//! normalised and what default applies when the file left it out.

use crate::Duration;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// An arbitrary value carried through unchanged (`x-` extensions and keys
/// Flotilla parses but does not act on yet).
pub type Value = serde_json::Value;

/// A whole stack: one project made of one or more merged Compose files.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct Stack {
    /// Project name (`name:` in the file, `-p`, or the project directory's
    /// name), lower-cased and restricted to `[a-z0-9_-]` like Compose.
    pub name: String,
    /// Absolute project directory; relative paths were resolved against it.
    pub project_dir: String,
    /// Services that are active for the selected profiles, by name.
    pub services: BTreeMap<String, Service>,
    /// Networks by their key in the file. Includes `default` when a service
    /// uses the implicit default network.
    pub networks: BTreeMap<String, Network>,
    /// Named volumes by their key in the file.
    pub volumes: BTreeMap<String, Volume>,
    /// Secrets by their key in the file.
    pub secrets: BTreeMap<String, Secret>,
    /// Configs by their key in the file.
    pub configs: BTreeMap<String, Config>,
    /// Top-level `x-*` extensions (interpolated), by full key.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extensions: BTreeMap<String, Value>,
    /// Top-level keys parsed but not acted on (e.g. `models`), kept verbatim.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub not_acted_on: BTreeMap<String, Value>,
}

/// One service: the template for its tasks/containers.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct Service {
    /// Image reference. `None` only when `build` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Build information (recorded; Flotilla does not build images).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<Build>,
    /// Overrides the image's CMD. `None` = image default; `Some([])` = empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// Overrides the image's ENTRYPOINT. `None` = image default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// Environment after `env_file`s and `environment` are applied (the
    /// latter wins). `None` = variable named without value and not set in
    /// the interpolation environment: it is left unset in the container.
    #[serde(default)]
    pub environment: BTreeMap<String, Option<String>>,
    /// Published/exposed ports, one entry per container port (ranges expanded).
    #[serde(default)]
    pub ports: Vec<Port>,
    /// Ports exposed to other services only (`expose`), ranges expanded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expose: Vec<ExposedPort>,
    /// Mounts, long form, binds with absolute source paths.
    #[serde(default)]
    pub volumes: Vec<Mount>,
    /// Service-level `tmpfs` paths (short form: `path[:options]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tmpfs: Vec<String>,
    /// Health check; `None` = inherit the image's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
    /// Swarm deploy settings with Swarm's defaults filled in.
    pub deploy: Deploy,
    /// Services this one depends on, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub depends_on: BTreeMap<String, Dependency>,
    /// Networks this service joins, by network key. When the file names none
    /// (and sets no `network_mode`), this is `{default: {}}`.
    #[serde(default)]
    pub networks: BTreeMap<String, ServiceNetwork>,
    /// `network_mode` (`host`, `none`, `bridge`, `service:x`, `container:x`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_mode: Option<String>,
    /// Secrets granted, with targets defaulted to `/run/secrets/<source>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<FileGrant>,
    /// Configs granted, with targets defaulted to `/<source>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub configs: Vec<FileGrant>,
    /// Container labels (`labels` plus `label_file`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// OCI annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// `user[:group]` to run as; `None` = image default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Working directory; `None` = image default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domainname: Option<String>,
    /// Fixed container name (only valid with one replica).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_name: Option<String>,
    /// Signal sent to stop; `None` = image's STOPSIGNAL or SIGTERM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// Wait before SIGKILL. Default 10s.
    pub stop_grace_period: Duration,
    /// Compose `restart` policy (`no`, `always`, `on-failure[:N]`,
    /// `unless-stopped`), as written. Swarm uses `deploy.restart_policy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart: Option<String>,
    /// Run an init process as PID 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<bool>,
    #[serde(default)]
    pub read_only: bool,
    #[serde(default)]
    pub privileged: bool,
    #[serde(default)]
    pub tty: bool,
    #[serde(default)]
    pub stdin_open: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cap_add: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cap_drop: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_opt: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_search: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_opt: Vec<String>,
    /// Extra `/etc/hosts` entries: host name -> addresses.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra_hosts: BTreeMap<String, Vec<String>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sysctls: BTreeMap<String, String>,
    /// Resource limits by name (`nofile`, `nproc`, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ulimits: BTreeMap<String, Ulimit>,
    /// `/dev/shm` size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shm_size: Option<u64>,
    /// Service-level CPU limit (Compose `cpus`), in CPUs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    /// Service-level memory limit (`mem_limit`), bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_limit: Option<u64>,
    /// Service-level memory reservation (`mem_reservation`), bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_reservation: Option<u64>,
    /// Service-level pids limit (`pids_limit`); -1 = unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids_limit: Option<i64>,
    /// `pid` namespace mode (e.g. `host`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<String>,
    /// `ipc` namespace mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipc: Option<String>,
    /// Profiles this service belongs to (empty = always active).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub profiles: Vec<String>,
    /// `pull_policy` as written (`always`, `never`, `missing`, `build`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_policy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logging: Option<Logging>,
    /// Flotilla-only settings from `x-flotilla:`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x_flotilla: Option<FlotillaExt>,
    /// Other `x-*` extensions on the service, interpolated.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extensions: BTreeMap<String, Value>,
    /// Keys Flotilla parses but does not act on yet (a warning names each).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub not_acted_on: BTreeMap<String, Value>,
}

/// Build instructions (`build:`), recorded but not executed by Flotilla.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct Build {
    /// Absolute path of the context directory, or a URL (git/http) as written.
    pub context: String,
    /// Dockerfile path relative to the context. Default `Dockerfile`.
    pub dockerfile: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dockerfile_inline: Option<String>,
    /// Build args; `None` = named without value (taken from the builder's env).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub args: BTreeMap<String, Option<String>>,
    /// Multi-stage target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cache_from: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cache_to: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub platforms: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shm_size: Option<u64>,
    #[serde(default)]
    pub no_cache: bool,
    #[serde(default)]
    pub pull: bool,
    /// Other build keys, kept verbatim.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub other: BTreeMap<String, Value>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

/// How a published port is exposed. Swarm default: `ingress`.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum PortMode {
    #[default]
    Ingress,
    Host,
}

/// One container port, optionally published on the host.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Port {
    /// Container port.
    pub target: u16,
    /// Host port; `None` = not published at a fixed port (ephemeral).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published: Option<u16>,
    /// Host address to bind; `None` = all addresses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
    pub protocol: Protocol,
    pub mode: PortMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_protocol: Option<String>,
    /// Marked as HTTP by `x-flotilla.http_ports` (or `app_protocol: http`).
    #[serde(default)]
    pub http: bool,
}

/// A port exposed to other containers only.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ExposedPort {
    pub port: u16,
    pub protocol: Protocol,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MountType {
    Bind,
    Volume,
    Tmpfs,
    Npipe,
    Cluster,
    Image,
}

/// One mount in long form.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Mount {
    #[serde(rename = "type")]
    pub kind: MountType,
    /// Binds: absolute host path. Volumes: volume key (`None` = anonymous).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Absolute path in the container.
    pub target: String,
    #[serde(default)]
    pub read_only: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistency: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind: Option<BindOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<VolumeOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tmpfs: Option<TmpfsOptions>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct BindOptions {
    /// `rprivate` (default), `private`, `rshared`, `shared`, `rslave`, `slave`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub propagation: Option<String>,
    /// Create the host path if missing. Default true for short syntax.
    pub create_host_path: bool,
    /// SELinux relabel: `z` (shared) or `Z` (private).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selinux: Option<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct VolumeOptions {
    #[serde(default)]
    pub nocopy: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subpath: Option<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct TmpfsOptions {
    /// Size in bytes; `None` = unlimited (kernel default: half of RAM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// File mode (octal in files, e.g. `1777`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
}

/// What the health check runs.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "snake_case", tag = "kind", content = "args")]
pub enum HealthTest {
    /// Health checking disabled (`[NONE]` or `disable: true`).
    None,
    /// Exec the argv directly (`[CMD, ...]`).
    Cmd(Vec<String>),
    /// Run with the container's shell (`string` or `[CMD-SHELL, "..."]`).
    Shell(String),
    /// Probed from the node, not run in the container (`x-flotilla.probe`):
    /// an HTTP GET to the container's address; 2xx and 3xx are healthy.
    Http(HttpProbe),
    /// Probed from the node: a TCP connect to the container's address.
    Tcp(TcpProbe),
}

/// `x-flotilla.probe.http`: what Kubernetes calls an `httpGet` probe.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct HttpProbe {
    pub port: u16,
    /// Request path, default `/`.
    pub path: String,
}

/// `x-flotilla.probe.tcp`: healthy when a connection is accepted.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct TcpProbe {
    pub port: u16,
}

/// Health check with Docker's defaults filled in.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Healthcheck {
    /// `None` = keep the image's test and override only the timings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<HealthTest>,
    /// Default 30s.
    pub interval: Duration,
    /// Default 30s.
    pub timeout: Duration,
    /// Consecutive failures before unhealthy. Default 3.
    pub retries: u64,
    /// Grace period during which failures do not count. Default 0s.
    pub start_period: Duration,
    /// Interval during the start period. Default 5s.
    pub start_interval: Duration,
}

/// `deploy.mode`.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum DeployMode {
    /// A fixed number of replicas (default).
    #[default]
    Replicated,
    /// One task per eligible node.
    Global,
    /// Run `replicas` tasks to completion.
    ReplicatedJob,
    /// Run one task per node to completion.
    GlobalJob,
}

/// `deploy.endpoint_mode`. Default `vip`.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum EndpointMode {
    #[default]
    Vip,
    Dnsrr,
}

/// Swarm's `deploy:` section with Swarm's defaults applied.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct Deploy {
    pub mode: DeployMode,
    /// Replicas for `replicated`/`replicated-job` (default 1; `scale:` is
    /// used when set); `None` for global modes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u64>,
    pub endpoint_mode: EndpointMode,
    /// Labels on the service (not the containers).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    pub resources: Resources,
    pub restart_policy: RestartPolicy,
    pub update_config: UpdateConfig,
    pub rollback_config: UpdateConfig,
    pub placement: Placement,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct Resources {
    pub limits: ResourceLimits,
    pub reservations: ResourceReservations,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct ResourceLimits {
    /// CPUs (fractional). `None` = unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    /// Bytes. `None` = unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<u64>,
    /// Max processes. `None` = unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids: Option<i64>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct ResourceReservations {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<u64>,
    /// Parsed, not acted on (warning).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generic_resources: Option<Value>,
    /// Parsed, not acted on (warning).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub devices: Option<Value>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum RestartCondition {
    None,
    OnFailure,
    /// Swarm default.
    #[default]
    Any,
}

/// `deploy.restart_policy`. Swarm defaults: condition `any`, delay 5s,
/// unlimited attempts, window 0s (every restart counts).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct RestartPolicy {
    pub condition: RestartCondition,
    pub delay: Duration,
    /// `None` = unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u64>,
    pub window: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            condition: RestartCondition::Any,
            delay: Duration::from_secs(5),
            max_attempts: None,
            window: Duration(0),
        }
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum FailureAction {
    Continue,
    Rollback,
    /// Swarm default.
    #[default]
    Pause,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum UpdateOrder {
    StartFirst,
    /// Swarm default.
    #[default]
    StopFirst,
}

/// `deploy.update_config` / `deploy.rollback_config`. Swarm defaults:
/// parallelism 1 (0 = all at once), delay 0s, failure_action pause,
/// monitor 5s, max_failure_ratio 0, order stop-first.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct UpdateConfig {
    pub parallelism: u64,
    pub delay: Duration,
    pub failure_action: FailureAction,
    pub monitor: Duration,
    pub max_failure_ratio: f64,
    pub order: UpdateOrder,
}

impl Default for UpdateConfig {
    fn default() -> Self {
        UpdateConfig {
            parallelism: 1,
            delay: Duration(0),
            failure_action: FailureAction::Pause,
            monitor: Duration::from_secs(5),
            max_failure_ratio: 0.0,
            order: UpdateOrder::StopFirst,
        }
    }
}

/// `deploy.placement`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct Placement {
    /// Constraint expressions as written, e.g. `node.role == manager`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub constraints: Vec<String>,
    /// Spread preferences: the `spread` descriptor of each, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preferences: Vec<String>,
    /// `None` = unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_replicas_per_node: Option<u64>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum DependCondition {
    /// Default.
    #[default]
    ServiceStarted,
    ServiceHealthy,
    ServiceCompletedSuccessfully,
}

/// One `depends_on` entry. Defaults: `service_started`, restart false,
/// required true.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Dependency {
    pub condition: DependCondition,
    pub restart: bool,
    pub required: bool,
}

/// A service's attachment to one network.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct ServiceNetwork {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6_address: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub link_local_ips: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac_address: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub driver_opts: BTreeMap<String, String>,
    /// Connection order priority (higher first). Default 0.
    #[serde(default)]
    pub priority: i64,
    /// Default-gateway priority. Default 0.
    #[serde(default)]
    pub gw_priority: i64,
}

/// A secret or config granted to a service.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct FileGrant {
    /// Key of the top-level secret/config.
    pub source: String,
    /// Absolute path in the container.
    pub target: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<String>,
    /// File mode. Default 0o444.
    pub mode: u32,
}

/// A ulimit: soft and hard values (equal when written as one integer).
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ulimit {
    pub soft: i64,
    pub hard: i64,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct Logging {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
}

/// `x-flotilla:` on a service.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct FlotillaExt {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<Autoscaling>,
    /// Container ports that speak HTTP (also sets `Port::http`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http_ports: Vec<u16>,
    /// A health probe the node runs against the container's address instead
    /// of exec'ing `healthcheck.test` in it (also sets `healthcheck.test`;
    /// the timings still come from `healthcheck:`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<HealthTest>,
}

/// Horizontal autoscaling bounds and targets.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Autoscaling {
    pub min: u64,
    pub max: u64,
    /// Target average CPU use per replica, percent of its limit (0-100].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_cpu: Option<f64>,
    /// Target requests per second per replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_rps: Option<f64>,
}

/// A top-level network.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct Network {
    /// Actual name: `name:` if given, else `<project>_<key>` (external: key).
    pub name: String,
    /// Default `None` = the platform default (bridge / overlay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub driver_opts: BTreeMap<String, String>,
    #[serde(default)]
    pub external: bool,
    #[serde(default)]
    pub internal: bool,
    #[serde(default)]
    pub attachable: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_ipv4: Option<bool>,
    #[serde(default)]
    pub enable_ipv6: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipam: Option<Ipam>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct Ipam {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config: Vec<IpamPool>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct IpamPool {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_range: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub aux_addresses: BTreeMap<String, String>,
}

/// A top-level named volume.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct Volume {
    /// Actual name: `name:` if given, else `<project>_<key>` (external: key).
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub driver_opts: BTreeMap<String, String>,
    #[serde(default)]
    pub external: bool,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// A top-level secret.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct Secret {
    /// Actual name: `name:` if given, else `<project>_<key>` (external: key).
    pub name: String,
    /// Absolute path of the file holding the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Name of the environment variable holding the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    #[serde(default)]
    pub external: bool,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub driver_opts: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_driver: Option<String>,
}

/// A top-level config.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct Config {
    /// Actual name: `name:` if given, else `<project>_<key>` (external: key).
    pub name: String,
    /// Absolute path of the file holding the content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Name of the environment variable holding the content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// Inline content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(default)]
    pub external: bool,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_driver: Option<String>,
}
