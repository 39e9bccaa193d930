//! Which keys Flotilla knows, and which of those it acts on.
//!
//! "Acted on" means the normalised model carries the value in a typed field
//! for the orchestrator. "Parsed, not acted on" keys are part of the Compose
//! Specification but Flotilla does not implement them yet: they are kept
//! verbatim in `not_acted_on` and reported as warnings that name them. Any
//! other key is an error with a "did you mean" suggestion.

/// Top-level keys with a typed home in the model.
pub const TOP_ACTED: &[&str] = &[
    "name", "services", "networks", "volumes", "secrets", "configs", "include",
];
/// Top-level keys accepted but not acted on (`version` is obsolete).
pub const TOP_NOT_ACTED: &[&str] = &["version", "models"];

/// Service keys modelled as typed fields in `flotilla_spec::Service`.
pub const SERVICE_ACTED: &[&str] = &[
    "annotations",
    "build",
    "cap_add",
    "cap_drop",
    "command",
    "configs",
    "container_name",
    "cpus",
    "depends_on",
    "deploy",
    "dns",
    "dns_opt",
    "dns_search",
    "domainname",
    "entrypoint",
    "env_file",
    "environment",
    "expose",
    "extends",
    "extra_hosts",
    "healthcheck",
    "hostname",
    "image",
    "init",
    "ipc",
    "label_file",
    "labels",
    "logging",
    "mem_limit",
    "mem_reservation",
    "network_mode",
    "networks",
    "pid",
    "pids_limit",
    "platform",
    "ports",
    "privileged",
    "profiles",
    "pull_policy",
    "read_only",
    "restart",
    "scale",
    "secrets",
    "security_opt",
    "shm_size",
    "stdin_open",
    "stop_grace_period",
    "stop_signal",
    "sysctls",
    "tmpfs",
    "tty",
    "ulimits",
    "user",
    "volumes",
    "working_dir",
];

/// Service keys from the Compose Specification that Flotilla parses but
/// does not act on yet (each use produces a warning naming the key).
pub const SERVICE_NOT_ACTED: &[&str] = &[
    "attach",
    "blkio_config",
    "cgroup",
    "cgroup_parent",
    "cpu_count",
    "cpu_percent",
    "cpu_period",
    "cpu_quota",
    "cpu_rt_period",
    "cpu_rt_runtime",
    "cpu_shares",
    "cpuset",
    "credential_spec",
    "develop",
    "device_cgroup_rules",
    "devices",
    "external_links",
    "gpus",
    "group_add",
    "isolation",
    "links",
    "mac_address",
    "mem_swappiness",
    "memswap_limit",
    "models",
    "oom_kill_disable",
    "oom_score_adj",
    "post_start",
    "pre_stop",
    "provider",
    "pull_refresh_after",
    "runtime",
    "storage_opt",
    "use_api_socket",
    "userns_mode",
    "uts",
    "volumes_from",
];

pub const DEPLOY: &[&str] = &[
    "mode",
    "endpoint_mode",
    "replicas",
    "labels",
    "rollback_config",
    "update_config",
    "resources",
    "restart_policy",
    "placement",
];
pub const RESOURCES: &[&str] = &["limits", "reservations"];
pub const LIMITS: &[&str] = &["cpus", "memory", "pids"];
pub const RESERVATIONS: &[&str] = &["cpus", "memory", "generic_resources", "devices"];
pub const RESTART_POLICY: &[&str] = &["condition", "delay", "max_attempts", "window"];
pub const UPDATE_CONFIG: &[&str] = &[
    "parallelism",
    "delay",
    "failure_action",
    "monitor",
    "max_failure_ratio",
    "order",
];
pub const PLACEMENT: &[&str] = &["constraints", "preferences", "max_replicas_per_node"];
pub const HEALTHCHECK: &[&str] = &[
    "disable",
    "interval",
    "retries",
    "test",
    "timeout",
    "start_period",
    "start_interval",
];
pub const BUILD: &[&str] = &[
    "context",
    "dockerfile",
    "dockerfile_inline",
    "entitlements",
    "args",
    "ssh",
    "labels",
    "cache_from",
    "cache_to",
    "no_cache",
    "additional_contexts",
    "network",
    "provenance",
    "sbom",
    "pull",
    "target",
    "shm_size",
    "extra_hosts",
    "isolation",
    "privileged",
    "secrets",
    "tags",
    "ulimits",
    "platforms",
];
pub const PORT: &[&str] = &[
    "name",
    "mode",
    "host_ip",
    "target",
    "published",
    "protocol",
    "app_protocol",
];
pub const VOLUME_MOUNT: &[&str] = &[
    "type",
    "source",
    "target",
    "read_only",
    "consistency",
    "bind",
    "volume",
    "tmpfs",
    "image",
];
pub const BIND: &[&str] = &["propagation", "create_host_path", "recursive", "selinux"];
pub const VOLUME_OPTS: &[&str] = &["labels", "nocopy", "subpath"];
pub const TMPFS_OPTS: &[&str] = &["size", "mode"];
pub const DEPENDS_ON: &[&str] = &["condition", "restart", "required"];
pub const SERVICE_NETWORK: &[&str] = &[
    "aliases",
    "interface_name",
    "ipv4_address",
    "ipv6_address",
    "link_local_ips",
    "mac_address",
    "driver_opts",
    "priority",
    "gw_priority",
];
pub const FILE_GRANT: &[&str] = &["source", "target", "uid", "gid", "mode"];
pub const LOGGING: &[&str] = &["driver", "options"];
pub const ULIMIT: &[&str] = &["soft", "hard"];
pub const ENV_FILE: &[&str] = &["path", "required", "format"];
pub const EXTENDS: &[&str] = &["service", "file"];
pub const INCLUDE: &[&str] = &["path", "env_file", "project_directory"];
pub const NETWORK: &[&str] = &[
    "name",
    "driver",
    "driver_opts",
    "ipam",
    "external",
    "internal",
    "enable_ipv4",
    "enable_ipv6",
    "attachable",
    "labels",
];
pub const IPAM: &[&str] = &["driver", "config", "options"];
pub const IPAM_POOL: &[&str] = &["subnet", "ip_range", "gateway", "aux_addresses"];
pub const VOLUME: &[&str] = &["name", "driver", "driver_opts", "external", "labels"];
pub const SECRET: &[&str] = &[
    "name",
    "environment",
    "file",
    "external",
    "labels",
    "driver",
    "driver_opts",
    "template_driver",
];
pub const CONFIG: &[&str] = &[
    "name",
    "content",
    "environment",
    "file",
    "external",
    "labels",
    "template_driver",
];
pub const FLOTILLA: &[&str] = &["autoscaling", "http_ports", "probe"];
pub const PROBE: &[&str] = &["http", "tcp"];
pub const PROBE_HTTP: &[&str] = &["port", "path"];
pub const PROBE_TCP: &[&str] = &["port"];
pub const AUTOSCALING: &[&str] = &["min", "max", "target_cpu", "target_rps"];

/// The closest known key to `unknown`, if it is close enough to be a likely
/// typo (Jaro-Winkler similarity, which favours shared prefixes).
pub fn suggest<'a>(unknown: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (strsim::jaro_winkler(unknown, k), *k))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        let all: Vec<&str> = SERVICE_ACTED
            .iter()
            .chain(SERVICE_NOT_ACTED)
            .copied()
            .collect();
        assert_eq!(suggest("imgae", &all), Some("image"));
        assert_eq!(suggest("enviroment", &all), Some("environment"));
        assert_eq!(suggest("port", &all), Some("ports"));
        assert_eq!(suggest("helthcheck", &all), Some("healthcheck"));
        assert_eq!(suggest("zzzzzz", &all), None);
    }

    #[test]
    fn tables_do_not_overlap() {
        for k in SERVICE_NOT_ACTED {
            assert!(!SERVICE_ACTED.contains(k), "{k} in both tables");
        }
    }
}
