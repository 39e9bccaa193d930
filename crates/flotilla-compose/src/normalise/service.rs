//! One service: every key of the Compose `service` definition.

use super::deploy::deploy;
use super::{dotted, Ctx};
use crate::keys;
use crate::short;
use crate::yaml::{Node, Value};
use flotilla_spec::{
    Autoscaling, BindOptions, Build, DependCondition, Dependency, Duration, ExposedPort, FileGrant,
    FlotillaExt, HealthTest, Healthcheck, HttpProbe, Logging, Mount, MountType, Port, PortMode,
    Service, ServiceNetwork, TcpProbe, TmpfsOptions, Ulimit, VolumeOptions,
};
use std::collections::BTreeMap;
use std::sync::LazyLock;

/// Every service key, acted on or not, for "did you mean" (built once, not
/// per service).
static SERVICE_KEYS: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
    keys::SERVICE_ACTED
        .iter()
        .chain(keys::SERVICE_NOT_ACTED)
        .copied()
        .collect()
});

/// Normalise one service definition.
pub fn service(cx: &mut Ctx<'_>, name: &str, node: &Node) -> Service {
    let mut s = Service {
        stop_grace_period: Duration::from_secs(10),
        ..Service::default()
    };
    let known = &*SERVICE_KEYS;
    let ctx = format!("service `{name}`");
    let path = format!("services.{name}");
    let Some(map) = node.as_map() else {
        if !node.is_null() {
            cx.expected(node, "a mapping", &ctx);
        }
        return s;
    };
    let mut env_files: Vec<&Node> = Vec::new();
    let mut environment: Option<&Node> = None;
    let mut label_files: Vec<&Node> = Vec::new();
    let mut scale: Option<(u64, &Node)> = None;
    let mut deploy_node: Option<&Node> = None;
    // `image`/`build` present but of the wrong type: already reported, so
    // "has neither `image` nor `build`" would only be noise after it.
    let mut refused_image_or_build = false;
    for (k, v) in map {
        let key = k.as_str().unwrap_or_default();
        let c = dotted(&path, key);
        let c = c.as_str();
        match key {
            "image" => {
                s.image = cx.opt_string(v, c);
                refused_image_or_build |= s.image.is_none() && !v.is_null();
            }
            "build" => {
                s.build = build(cx, v, c);
                refused_image_or_build |= s.build.is_none() && !v.is_null();
            }
            "command" => s.command = command(cx, v, c),
            "entrypoint" => s.entrypoint = command(cx, v, c),
            "environment" => environment = Some(v),
            "env_file" => env_files.push(v),
            "label_file" => label_files.push(v),
            "ports" => s.ports = ports(cx, v, c),
            "expose" => s.expose = expose(cx, v, c),
            "volumes" => s.volumes = volumes(cx, v, c),
            "tmpfs" => s.tmpfs = cx.string_list(v, c, true),
            "healthcheck" => s.healthcheck = healthcheck(cx, v, c),
            "deploy" => deploy_node = Some(v),
            "depends_on" => s.depends_on = depends_on(cx, v, c),
            "networks" => s.networks = networks(cx, v, c),
            "network_mode" => s.network_mode = cx.opt_string(v, c),
            "secrets" => s.secrets = grants(cx, v, c, "/run/secrets/"),
            "configs" => s.configs = grants(cx, v, c, "/"),
            "labels" => s.labels.extend(cx.string_map(v, c)),
            "annotations" => s.annotations = cx.string_map(v, c),
            "user" => s.user = cx.opt_string(v, c),
            "working_dir" => s.working_dir = cx.opt_string(v, c),
            "hostname" => s.hostname = cx.opt_string(v, c),
            "domainname" => s.domainname = cx.opt_string(v, c),
            "container_name" => s.container_name = cx.opt_string(v, c),
            "stop_signal" => s.stop_signal = cx.opt_string(v, c),
            "stop_grace_period" => {
                if let Some(d) = cx.duration(v, c) {
                    s.stop_grace_period = d;
                }
            }
            "restart" => s.restart = cx.parse_with(v, c, restart),
            "init" => s.init = cx.boolean(v, c),
            "read_only" => s.read_only = cx.boolean(v, c).unwrap_or_default(),
            "privileged" => s.privileged = cx.boolean(v, c).unwrap_or_default(),
            "tty" => s.tty = cx.boolean(v, c).unwrap_or_default(),
            "stdin_open" => s.stdin_open = cx.boolean(v, c).unwrap_or_default(),
            "cap_add" => s.cap_add = cx.string_list(v, c, false),
            "cap_drop" => s.cap_drop = cx.string_list(v, c, false),
            "security_opt" => s.security_opt = cx.string_list(v, c, false),
            "dns" => s.dns = cx.string_list(v, c, true),
            "dns_search" => s.dns_search = cx.string_list(v, c, true),
            "dns_opt" => s.dns_opt = cx.string_list(v, c, false),
            "extra_hosts" => s.extra_hosts = extra_hosts(cx, v, c),
            "sysctls" => s.sysctls = cx.string_map(v, c),
            "ulimits" => s.ulimits = ulimits(cx, v, c),
            "shm_size" => s.shm_size = cx.size(v, c),
            "cpus" => s.cpus = cx.parse_with(v, c, short::cpus),
            "mem_limit" => s.mem_limit = cx.size(v, c),
            "mem_reservation" => s.mem_reservation = cx.size(v, c),
            "pids_limit" => s.pids_limit = cx.int(v, c),
            "pid" => s.pid = cx.opt_string(v, c),
            "ipc" => s.ipc = cx.opt_string(v, c),
            "profiles" => s.profiles = cx.string_list(v, c, false),
            "pull_policy" => s.pull_policy = cx.opt_string(v, c),
            "platform" => s.platform = cx.opt_string(v, c),
            "logging" => s.logging = logging(cx, v, c),
            "scale" => scale = cx.uint(v, c).map(|n| (n, v)),
            // Resolved before normalisation (see `project`).
            "extends" => {}
            "x-flotilla" => s.x_flotilla = flotilla_ext(cx, v, c),
            _ if key.starts_with("x-") => {
                s.extensions.insert(key.to_string(), v.to_json());
            }
            _ if keys::SERVICE_NOT_ACTED.contains(&key) => {
                cx.not_acted_on(k, key, &ctx);
                s.not_acted_on.insert(key.to_string(), v.to_json());
            }
            _ => cx.unknown_key(k, key, known, &ctx),
        }
    }
    for f in env_files {
        env_file_into(cx, f, &format!("{path}.env_file"), &mut s.environment);
    }
    if let Some(v) = environment {
        let c = format!("{path}.environment");
        for (key, value) in cx.list_or_dict(v, &c) {
            let value = value.or_else(|| cx.env.get(&key).cloned());
            s.environment.insert(key, value);
        }
    }
    for f in label_files {
        let mut labels = BTreeMap::new();
        env_file_into(cx, f, &format!("{path}.label_file"), &mut labels);
        for (k, v) in labels {
            s.labels.entry(k).or_insert(v.unwrap_or_default());
        }
    }
    s.deploy = deploy(cx, deploy_node, &path);
    if let Some((n, node)) = scale {
        match s.deploy.replicas {
            Some(r) if deploy_node.and_then(|d| d.get("replicas")).is_some() && r != n => {
                cx.error(
                    node.pos
                        .error(format!(
                            "`scale: {n}` conflicts with `deploy.replicas: {r}` in {ctx}"
                        ))
                        .with_help("set only one of them"),
                );
            }
            Some(_) => s.deploy.replicas = Some(n),
            None => cx.error(
                node.pos
                    .error(format!(
                        "`scale` cannot be used with a global deploy mode in {ctx}"
                    ))
                    .with_help("remove `scale`, or use `mode: replicated`"),
            ),
        }
    }
    if let Some(ext) = &s.x_flotilla {
        for p in &mut s.ports {
            if ext.http_ports.contains(&p.target) {
                p.http = true;
            }
        }
        if let Some(probe) = &ext.probe {
            // The probe replaces the test; timings stay those of
            // `healthcheck:` (Docker's defaults when there is none).
            let mut h = s.healthcheck.take().unwrap_or_else(default_healthcheck);
            if h.test != Some(HealthTest::None) {
                h.test = Some(probe.clone());
            }
            s.healthcheck = Some(h);
        }
    }
    if s.image.is_none() && s.build.is_none() && !refused_image_or_build && !has_extends(node) {
        cx.error(
            node.pos
                .error(format!("{ctx} has neither `image` nor `build`"))
                .with_help("add `image: <name>` (or `build:` with an image built beforehand)"),
        );
    }
    if s.networks.is_empty() && s.network_mode.is_none() {
        s.networks
            .insert("default".into(), ServiceNetwork::default());
    }
    s
}

fn has_extends(node: &Node) -> bool {
    node.get("extends").is_some()
}

fn restart(text: &str) -> Result<String, String> {
    let ok = match text.split_once(':') {
        Some(("on-failure", n)) => n.parse::<u64>().is_ok(),
        None => matches!(text, "no" | "always" | "on-failure" | "unless-stopped"),
        _ => false,
    };
    if ok {
        Ok(text.to_string())
    } else {
        Err(format!(
            "{text:?} is not a restart policy: expected no, always, on-failure[:N] or unless-stopped"
        ))
    }
}

fn command(cx: &mut Ctx<'_>, node: &Node, c: &str) -> Option<Vec<String>> {
    match &node.value {
        _ if node.is_null() => None,
        Value::Scalar { .. } => cx.parse_with(node, c, short::split_command),
        Value::Seq(items) => Some(items.iter().filter_map(|i| cx.string(i, c)).collect()),
        Value::Map(_) => {
            cx.expected(node, "a string or a list of strings", c);
            None
        }
    }
}

fn build(cx: &mut Ctx<'_>, node: &Node, c: &str) -> Option<Build> {
    let mut b = Build {
        dockerfile: "Dockerfile".into(),
        ..Build::default()
    };
    if let Value::Scalar { .. } = node.value {
        let ctx = cx.string(node, c)?;
        b.context = build_context(cx, &ctx);
        return Some(b);
    }
    b.context = cx.project_dir.to_string_lossy().into_owned();
    for (key, v) in cx.fields(node, keys::BUILD, c, true) {
        let c = dotted(c, key);
        let c = c.as_str();
        match key {
            "context" => {
                if let Some(ctx) = cx.string(v, c) {
                    b.context = build_context(cx, &ctx);
                }
            }
            "dockerfile" => b.dockerfile = cx.string(v, c).unwrap_or(b.dockerfile),
            "dockerfile_inline" => b.dockerfile_inline = cx.opt_string(v, c),
            "args" => b.args = cx.list_or_dict(v, c).into_iter().collect(),
            "target" => b.target = cx.opt_string(v, c),
            "labels" => b.labels = cx.string_map(v, c),
            "cache_from" => b.cache_from = cx.string_list(v, c, false),
            "cache_to" => b.cache_to = cx.string_list(v, c, false),
            "tags" => b.tags = cx.string_list(v, c, false),
            "platforms" => b.platforms = cx.string_list(v, c, false),
            "network" => b.network = cx.opt_string(v, c),
            "shm_size" => b.shm_size = cx.size(v, c),
            "no_cache" => b.no_cache = cx.boolean(v, c).unwrap_or_default(),
            "pull" => b.pull = cx.boolean(v, c).unwrap_or_default(),
            _ => {
                b.other.insert(key.to_string(), v.to_json());
            }
        }
    }
    Some(b)
}

/// A build context is a local directory (resolved) or a remote URL (kept).
fn build_context(cx: &Ctx<'_>, ctx: &str) -> String {
    let remote = ctx.contains("://") || ctx.starts_with("git@") || ctx.starts_with("github.com/");
    if remote {
        ctx.to_string()
    } else {
        cx.host_path(ctx)
    }
}

fn ports(cx: &mut Ctx<'_>, node: &Node, c: &str) -> Vec<Port> {
    let Some(items) = node.as_seq() else {
        if !node.is_null() {
            cx.expected(node, "a list of ports", c);
        }
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in items {
        match &item.value {
            Value::Scalar { .. } => {
                if let Some(p) = cx.parse_with(item, c, short::ports) {
                    out.extend(p);
                }
            }
            Value::Map(_) => out.extend(long_port(cx, item, c)),
            Value::Seq(_) => cx.expected(item, "a port string or mapping", c),
        }
    }
    out
}

fn long_port(cx: &mut Ctx<'_>, node: &Node, c: &str) -> Vec<Port> {
    let mut target = None;
    let mut published: Option<(u16, u16)> = None;
    let mut template = Port {
        target: 0,
        published: None,
        host_ip: None,
        protocol: flotilla_spec::Protocol::Tcp,
        mode: PortMode::Ingress,
        name: None,
        app_protocol: None,
        http: false,
    };
    for (key, v) in cx.fields(node, keys::PORT, c, true) {
        let c = dotted(c, key);
        let c = c.as_str();
        match key {
            "target" => {
                target = cx.parse_with(v, c, |t| match short::ports(t) {
                    Ok(p) if p.len() == 1 && p[0].published.is_none() => Ok(p[0].target),
                    Ok(_) => Err(format!("{t:?} must be a single port number")),
                    Err(e) => Err(e),
                })
            }
            "published" => {
                published = cx.parse_with(v, c, |t| {
                    // Reuse the short-form parser on "<published>:1-n" shape.
                    let probe = short::ports(&format!("{t}:1"));
                    match probe {
                        Ok(p) => Ok((p[0].published.unwrap_or(0), p[0].published.unwrap_or(0))),
                        Err(_) => {
                            let r =
                                short::ports(t).map_err(|e| e.replace("container", "published"))?;
                            Ok((r[0].target, r[r.len() - 1].target))
                        }
                    }
                })
            }
            "host_ip" => template.host_ip = cx.opt_string(v, c),
            "protocol" => {
                if let Some(p) = cx.parse_with(v, c, short::port_protocol) {
                    template.protocol = p;
                }
            }
            "mode" => {
                template.mode = match cx.string(v, c).as_deref() {
                    Some("host") => PortMode::Host,
                    Some("ingress") | None => PortMode::Ingress,
                    Some(other) => {
                        cx.error(v.pos.error(format!(
                            "invalid `{c}`: {other:?} is not a port mode (expected ingress or host)"
                        )));
                        PortMode::Ingress
                    }
                }
            }
            "name" => template.name = cx.opt_string(v, c),
            "app_protocol" => {
                template.app_protocol = cx.opt_string(v, c);
                template.http = matches!(
                    template.app_protocol.as_deref(),
                    Some("http" | "http2" | "h2c")
                );
            }
            _ => {}
        }
    }
    let Some(target) = target else {
        if node.get("target").is_none() {
            cx.error(
                node.pos
                    .error(format!("`{c}` entry has no `target` port"))
                    .with_help("add `target: <container port>`"),
            );
        }
        return Vec::new();
    };
    match published {
        Some((a, b)) if a != b => (a..=b)
            .map(|p| Port {
                target,
                published: Some(p),
                ..template.clone()
            })
            .collect(),
        other => vec![Port {
            target,
            published: other.map(|(a, _)| a),
            ..template
        }],
    }
}

fn expose(cx: &mut Ctx<'_>, node: &Node, c: &str) -> Vec<ExposedPort> {
    let Some(items) = node.as_seq() else {
        if !node.is_null() {
            cx.expected(node, "a list of ports", c);
        }
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in items {
        if let Some(ps) = cx.parse_with(item, c, short::expose) {
            out.extend(
                ps.into_iter()
                    .map(|(port, protocol)| ExposedPort { port, protocol }),
            );
        }
    }
    out
}

fn volumes(cx: &mut Ctx<'_>, node: &Node, c: &str) -> Vec<Mount> {
    let Some(items) = node.as_seq() else {
        if !node.is_null() {
            cx.expected(node, "a list of volumes", c);
        }
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in items {
        let mount = match &item.value {
            Value::Scalar { .. } => cx.parse_with(item, c, short::volume),
            Value::Map(_) => long_volume(cx, item, c),
            Value::Seq(_) => {
                cx.expected(item, "a volume string or mapping", c);
                None
            }
        };
        if let Some(mut m) = mount {
            if m.kind == MountType::Bind {
                m.source = m.source.map(|s| cx.host_path(&s));
            }
            out.push(m);
        }
    }
    out
}

fn long_volume(cx: &mut Ctx<'_>, node: &Node, c: &str) -> Option<Mount> {
    let mut kind = None;
    let mut m = Mount {
        kind: MountType::Volume,
        source: None,
        target: String::new(),
        read_only: false,
        consistency: None,
        bind: None,
        volume: None,
        tmpfs: None,
    };
    for (key, v) in cx.fields(node, keys::VOLUME_MOUNT, c, true) {
        let c = dotted(c, key);
        let c = c.as_str();
        match key {
            "type" => {
                kind = cx.parse_with(v, c, |t| {
                    Ok(match t {
                        "bind" => MountType::Bind,
                        "volume" => MountType::Volume,
                        "tmpfs" => MountType::Tmpfs,
                        "npipe" => MountType::Npipe,
                        "cluster" => MountType::Cluster,
                        "image" => MountType::Image,
                        _ => return Err(format!("{t:?} is not a mount type (expected bind, volume, tmpfs, npipe, cluster or image)")),
                    })
                })
            }
            "source" => m.source = cx.opt_string(v, c),
            "target" => m.target = cx.string(v, c).unwrap_or_default(),
            "read_only" => m.read_only = cx.boolean(v, c).unwrap_or_default(),
            "consistency" => m.consistency = cx.opt_string(v, c),
            "bind" => {
                let mut b = BindOptions {
                    create_host_path: true,
                    ..BindOptions::default()
                };
                for (bk, bv) in cx.fields(v, keys::BIND, c, true) {
                    let c = dotted(c, bk);
                    match bk {
                        "propagation" => b.propagation = cx.opt_string(bv, &c),
                        "create_host_path" => b.create_host_path = cx.boolean(bv, &c).unwrap_or(true),
                        "selinux" => b.selinux = cx.opt_string(bv, &c),
                        _ => {}
                    }
                }
                m.bind = Some(b);
            }
            "volume" => {
                let mut o = VolumeOptions::default();
                for (vk, vv) in cx.fields(v, keys::VOLUME_OPTS, c, true) {
                    let c = dotted(c, vk);
                    match vk {
                        "nocopy" => o.nocopy = cx.boolean(vv, &c).unwrap_or_default(),
                        "subpath" => o.subpath = cx.opt_string(vv, &c),
                        _ => {}
                    }
                }
                m.volume = Some(o);
            }
            "tmpfs" => {
                let mut o = TmpfsOptions::default();
                for (tk, tv) in cx.fields(v, keys::TMPFS_OPTS, c, true) {
                    let c = dotted(c, tk);
                    match tk {
                        "size" => o.size = cx.size(tv, &c),
                        "mode" => o.mode = cx.parse_with(tv, &c, octal_mode),
                        _ => {}
                    }
                }
                m.tmpfs = Some(o);
            }
            _ => {}
        }
    }
    let Some(kind) = kind else {
        if node.get("type").is_none() {
            cx.error(
                node.pos
                    .error(format!("`{c}` entry has no `type`"))
                    .with_help("add `type: bind`, `type: volume` or `type: tmpfs`"),
            );
        }
        return None;
    };
    m.kind = kind;
    if !m.target.starts_with('/') {
        cx.error(
            node.pos
                .error(format!(
                    "`{c}` entry needs an absolute `target` path, found {:?}",
                    m.target
                ))
                .with_help("the target is the path inside the container, e.g. /data"),
        );
        return None;
    }
    if kind == MountType::Bind {
        if m.source.is_none() {
            cx.error(node.pos.error(format!("`{c}` bind mount has no `source`")));
            return None;
        }
        m.bind.get_or_insert(BindOptions {
            create_host_path: true,
            ..BindOptions::default()
        });
    }
    Some(m)
}

/// File modes are octal in Compose (`0440`, `0o440`, or `"0440"`); a YAML
/// integer written without a leading 0 is taken as decimal, like Compose.
fn octal_mode(text: &str) -> Result<u32, String> {
    let t = text.trim();
    let parsed = if let Some(o) = t.strip_prefix("0o").or_else(|| t.strip_prefix("0O")) {
        u32::from_str_radix(o, 8)
    } else if t.len() > 1 && t.starts_with('0') {
        u32::from_str_radix(&t[1..], 8)
    } else {
        t.parse::<u32>()
    };
    match parsed {
        Ok(m) if m <= 0o7777 => Ok(m),
        _ => Err(format!(
            "{text:?} is not a file mode (expected octal such as 0440)"
        )),
    }
}

/// Docker's health check timings.
fn default_healthcheck() -> Healthcheck {
    Healthcheck {
        test: None,
        interval: Duration::from_secs(30),
        timeout: Duration::from_secs(30),
        retries: 3,
        start_period: Duration(0),
        start_interval: Duration::from_secs(5),
    }
}

fn healthcheck(cx: &mut Ctx<'_>, node: &Node, c: &str) -> Option<Healthcheck> {
    if node.is_null() {
        return None;
    }
    let mut h = default_healthcheck();
    let mut disabled = false;
    for (key, v) in cx.fields(node, keys::HEALTHCHECK, c, true) {
        let c = dotted(c, key);
        let c = c.as_str();
        match key {
            "test" => {
                h.test = match &v.value {
                    Value::Scalar { text, .. } if !v.is_null() => {
                        Some(HealthTest::Shell(text.clone()))
                    }
                    Value::Seq(_) => {
                        let items = cx.string_list(v, c, false);
                        let all_strings = v.as_seq().is_some_and(|s| s.len() == items.len());
                        match short::health_test_list(&items) {
                            _ if !all_strings => None,
                            Ok(t) => Some(t),
                            Err(e) => {
                                cx.error(v.pos.error(format!("invalid `{c}`: {e}")));
                                None
                            }
                        }
                    }
                    _ => {
                        cx.expected(v, "a string or a list", c);
                        None
                    }
                }
            }
            "interval" => h.interval = cx.duration(v, c).unwrap_or(h.interval),
            "timeout" => h.timeout = cx.duration(v, c).unwrap_or(h.timeout),
            "start_period" => h.start_period = cx.duration(v, c).unwrap_or(h.start_period),
            "start_interval" => h.start_interval = cx.duration(v, c).unwrap_or(h.start_interval),
            "retries" => h.retries = cx.uint(v, c).unwrap_or(h.retries),
            "disable" => disabled = cx.boolean(v, c).unwrap_or_default(),
            _ => {}
        }
    }
    if disabled {
        h.test = Some(HealthTest::None);
    }
    Some(h)
}

fn depends_on(cx: &mut Ctx<'_>, node: &Node, c: &str) -> BTreeMap<String, Dependency> {
    let default = Dependency {
        condition: DependCondition::ServiceStarted,
        restart: false,
        required: true,
    };
    let mut out = BTreeMap::new();
    match &node.value {
        Value::Seq(_) => {
            for name in cx.string_list(node, c, false) {
                out.insert(name, default.clone());
            }
        }
        Value::Map(entries) => {
            for (k, v) in entries {
                let name = k.as_str().unwrap_or_default().to_string();
                let c = dotted(c, &name);
                let mut d = default.clone();
                // The Compose schema requires `condition` in the long form and
                // `docker compose` validates against it before filling
                // defaults, so a missing condition is rejected, not defaulted.
                if v.as_map().is_some() && v.get("condition").is_none() {
                    cx.error(
                        v.pos
                            .error(format!("`{c}` has no `condition`"))
                            .with_help("add e.g. `condition: service_started`"),
                    );
                }
                for (key, fv) in cx.fields(v, keys::DEPENDS_ON, &c, true) {
                    let c = dotted(&c, key);
                    match key {
                        "condition" => {
                            d.condition = cx
                                .parse_with(fv, &c, |t| match t {
                                    "service_started" => Ok(DependCondition::ServiceStarted),
                                    "service_healthy" => Ok(DependCondition::ServiceHealthy),
                                    "service_completed_successfully" => {
                                        Ok(DependCondition::ServiceCompletedSuccessfully)
                                    }
                                    _ => Err(format!("{t:?} is not a condition (expected service_started, service_healthy or service_completed_successfully)")),
                                })
                                .unwrap_or(d.condition)
                        }
                        "restart" => d.restart = cx.boolean(fv, &c).unwrap_or_default(),
                        "required" => d.required = cx.boolean(fv, &c).unwrap_or(true),
                        _ => {}
                    }
                }
                out.insert(name, d);
            }
        }
        _ if node.is_null() => {}
        _ => cx.expected(node, "a list of service names or a mapping", c),
    }
    out
}

fn networks(cx: &mut Ctx<'_>, node: &Node, c: &str) -> BTreeMap<String, ServiceNetwork> {
    let mut out = BTreeMap::new();
    match &node.value {
        Value::Seq(_) => {
            for name in cx.string_list(node, c, false) {
                out.insert(name, ServiceNetwork::default());
            }
        }
        Value::Map(entries) => {
            for (k, v) in entries {
                let name = k.as_str().unwrap_or_default().to_string();
                let c = dotted(c, &name);
                let mut n = ServiceNetwork::default();
                for (key, fv) in cx.fields(v, keys::SERVICE_NETWORK, &c, true) {
                    let c = dotted(&c, key);
                    match key {
                        "aliases" => n.aliases = cx.string_list(fv, &c, false),
                        "ipv4_address" => n.ipv4_address = cx.opt_string(fv, &c),
                        "ipv6_address" => n.ipv6_address = cx.opt_string(fv, &c),
                        "link_local_ips" => n.link_local_ips = cx.string_list(fv, &c, false),
                        "mac_address" => n.mac_address = cx.opt_string(fv, &c),
                        "driver_opts" => n.driver_opts = cx.string_map(fv, &c),
                        "priority" => n.priority = cx.int(fv, &c).unwrap_or_default(),
                        "gw_priority" => n.gw_priority = cx.int(fv, &c).unwrap_or_default(),
                        "interface_name" => {
                            cx.warnings.push(fv.pos.warning(format!(
                                "`{c}` is parsed but not acted on by Flotilla yet"
                            )));
                        }
                        _ => {}
                    }
                }
                out.insert(name, n);
            }
        }
        _ if node.is_null() => {}
        _ => cx.expected(node, "a list of network names or a mapping", c),
    }
    out
}

fn grants(cx: &mut Ctx<'_>, node: &Node, c: &str, prefix: &str) -> Vec<FileGrant> {
    let Some(items) = node.as_seq() else {
        if !node.is_null() {
            cx.expected(node, "a list", c);
        }
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in items {
        let mut g = FileGrant {
            source: String::new(),
            target: String::new(),
            uid: None,
            gid: None,
            mode: 0o444,
        };
        match &item.value {
            Value::Scalar { .. } => g.source = cx.string(item, c).unwrap_or_default(),
            Value::Map(_) => {
                for (key, v) in cx.fields(item, keys::FILE_GRANT, c, true) {
                    let c = dotted(c, key);
                    match key {
                        "source" => g.source = cx.string(v, &c).unwrap_or_default(),
                        "target" => g.target = cx.string(v, &c).unwrap_or_default(),
                        "uid" => g.uid = cx.opt_string(v, &c),
                        "gid" => g.gid = cx.opt_string(v, &c),
                        "mode" => g.mode = cx.parse_with(v, &c, octal_mode).unwrap_or(g.mode),
                        _ => {}
                    }
                }
                if g.source.is_empty() && item.get("source").is_none() {
                    cx.error(item.pos.error(format!("`{c}` entry has no `source`")));
                    continue;
                }
            }
            Value::Seq(_) => {
                cx.expected(item, "a name or a mapping", c);
                continue;
            }
        }
        if g.target.is_empty() {
            g.target = format!("{prefix}{}", g.source);
        } else if !g.target.starts_with('/') {
            g.target = format!("{prefix}{}", g.target);
        }
        out.push(g);
    }
    out
}

fn extra_hosts(cx: &mut Ctx<'_>, node: &Node, c: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    match &node.value {
        Value::Seq(items) => {
            for item in items {
                if let Some((h, ip)) = cx.parse_with(item, c, short::extra_host) {
                    out.entry(h).or_default().push(ip);
                }
            }
        }
        Value::Map(entries) => {
            for (k, v) in entries {
                let host = k.as_str().unwrap_or_default().to_string();
                let ips = cx.string_list(v, c, true);
                out.entry(host).or_default().extend(ips);
            }
        }
        _ if node.is_null() => {}
        _ => cx.expected(node, "a list of \"host:ip\" or a mapping", c),
    }
    out
}

fn ulimits(cx: &mut Ctx<'_>, node: &Node, c: &str) -> BTreeMap<String, Ulimit> {
    let mut out = BTreeMap::new();
    let Some(entries) = node.as_map() else {
        if !node.is_null() {
            cx.expected(node, "a mapping", c);
        }
        return out;
    };
    for (k, v) in entries {
        let name = k.as_str().unwrap_or_default().to_string();
        let c = dotted(c, &name);
        let limit = match &v.value {
            Value::Scalar { .. } => cx.int(v, &c).map(|n| Ulimit { soft: n, hard: n }),
            Value::Map(_) => {
                let (mut soft, mut hard) = (None, None);
                for (key, fv) in cx.fields(v, keys::ULIMIT, &c, true) {
                    let c = dotted(&c, key);
                    match key {
                        "soft" => soft = cx.int(fv, &c),
                        "hard" => hard = cx.int(fv, &c),
                        _ => {}
                    }
                }
                match (soft, hard) {
                    (Some(soft), Some(hard)) if soft <= hard || hard == -1 => {
                        Some(Ulimit { soft, hard })
                    }
                    (Some(soft), Some(hard)) => {
                        cx.error(v.pos.error(format!(
                            "invalid `{c}`: soft limit {soft} is greater than hard limit {hard}"
                        )));
                        None
                    }
                    _ => {
                        cx.error(
                            v.pos
                                .error(format!("`{c}` needs both `soft` and `hard`"))
                                .with_help("or write a single integer for both"),
                        );
                        None
                    }
                }
            }
            Value::Seq(_) => {
                cx.expected(v, "an integer or {soft, hard}", &c);
                None
            }
        };
        if let Some(l) = limit {
            out.insert(name, l);
        }
    }
    out
}

fn logging(cx: &mut Ctx<'_>, node: &Node, c: &str) -> Option<Logging> {
    let mut l = Logging::default();
    for (key, v) in cx.fields(node, keys::LOGGING, c, true) {
        let c = dotted(c, key);
        match key {
            "driver" => l.driver = cx.opt_string(v, &c),
            "options" => l.options = cx.string_map(v, &c),
            _ => {}
        }
    }
    Some(l)
}

/// Read `env_file` entries (string, list of strings or `{path, required,
/// format}`) into `into`, keeping values already there (later files win
/// over earlier ones; `environment` is applied afterwards and wins).
fn env_file_into(
    cx: &mut Ctx<'_>,
    node: &Node,
    c: &str,
    into: &mut BTreeMap<String, Option<String>>,
) {
    let items: Vec<&Node> = match &node.value {
        Value::Seq(items) => items.iter().collect(),
        _ => vec![node],
    };
    for item in items {
        let (path, required) = match &item.value {
            Value::Scalar { .. } => (cx.string(item, c), true),
            Value::Map(_) => {
                let mut path = None;
                let mut required = true;
                for (key, v) in cx.fields(item, keys::ENV_FILE, c, true) {
                    let c = dotted(c, key);
                    match key {
                        "path" => path = cx.string(v, &c),
                        "required" => required = cx.boolean(v, &c).unwrap_or(true),
                        "format" => {
                            let f = cx.string(v, &c);
                            if f.as_deref() != Some("raw") {
                                cx.not_acted_on(v, "format", c.as_str());
                            }
                        }
                        _ => {}
                    }
                }
                (path, required)
            }
            Value::Seq(_) => {
                cx.expected(item, "a path or {path, required}", c);
                (None, true)
            }
        };
        let Some(path) = path else { continue };
        let full = cx.host_path(&path);
        match std::fs::read_to_string(&full) {
            Ok(text) => match crate::dotenv::parse(&text, cx.env) {
                Ok(vars) => {
                    for (k, v) in vars {
                        into.insert(k, Some(v));
                    }
                }
                Err(e) => cx.error(
                    item.pos
                        .error(format!("invalid `{c}` file {full}: line {}: {}", e.line, e.message)),
                ),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {}
            Err(e) => cx.error(
                item.pos
                    .error(format!("cannot read `{c}` file {full}: {e}"))
                    .with_help("fix the path (relative paths start at the project directory) or mark it `required: false`"),
            ),
        }
    }
}

fn flotilla_ext(cx: &mut Ctx<'_>, node: &Node, c: &str) -> Option<FlotillaExt> {
    let mut ext = FlotillaExt::default();
    for (key, v) in cx.fields(node, keys::FLOTILLA, c, false) {
        let c = dotted(c, key);
        match key {
            "http_ports" => {
                if let Some(items) = v.as_seq() {
                    for i in items {
                        if let Some(p) = cx.parse_with(i, &c, |t| {
                            t.parse::<u16>()
                                .ok()
                                .filter(|p| *p > 0)
                                .ok_or_else(|| format!("{t:?} is not a port number (1-65535)"))
                        }) {
                            ext.http_ports.push(p);
                        }
                    }
                } else {
                    cx.expected(v, "a list of container ports", &c);
                }
            }
            "probe" => ext.probe = probe(cx, v, &c),
            "autoscaling" => {
                let (mut min, mut max, mut cpu, mut rps) = (None, None, None, None);
                for (ak, av) in cx.fields(v, keys::AUTOSCALING, &c, false) {
                    let c = dotted(&c, ak);
                    match ak {
                        "min" => min = cx.uint(av, &c),
                        "max" => max = cx.uint(av, &c),
                        "target_cpu" => {
                            cpu = cx.float(av, &c);
                            if matches!(cpu, Some(p) if p <= 0.0 || p > 100.0) {
                                cx.error(av.pos.error(format!(
                                    "invalid `{c}`: a CPU target is a percentage in (0, 100]"
                                )));
                            }
                        }
                        "target_rps" => {
                            rps = cx.float(av, &c);
                            if matches!(rps, Some(r) if r <= 0.0) {
                                cx.error(av.pos.error(format!("invalid `{c}`: must be positive")));
                            }
                        }
                        _ => {}
                    }
                }
                match (min, max) {
                    (Some(min), Some(max)) if min <= max && max > 0 => {
                        if cpu.is_none() && rps.is_none() {
                            cx.error(
                                v.pos
                                    .error(format!("`{c}` has no target"))
                                    .with_help("set `target_cpu` (percent) and/or `target_rps`"),
                            );
                        }
                        ext.autoscaling = Some(Autoscaling {
                            min,
                            max,
                            target_cpu: cpu,
                            target_rps: rps,
                        });
                    }
                    (Some(min), Some(max)) => cx.error(v.pos.error(format!(
                        "invalid `{c}`: min ({min}) must be at most max ({max}) and max above 0"
                    ))),
                    _ => cx.error(
                        v.pos
                            .error(format!("`{c}` needs both `min` and `max`"))
                            .with_help("e.g. autoscaling: {min: 2, max: 10, target_cpu: 70}"),
                    ),
                }
            }
            _ => {}
        }
    }
    Some(ext)
}

/// `x-flotilla.probe`: exactly one of `http: {port, path}` or `tcp: {port}`.
fn probe(cx: &mut Ctx<'_>, node: &Node, c: &str) -> Option<HealthTest> {
    let mut found = Vec::new();
    for (kind, v) in cx.fields(node, keys::PROBE, c, false) {
        let c = dotted(c, kind);
        let known = if kind == "http" {
            keys::PROBE_HTTP
        } else {
            keys::PROBE_TCP
        };
        let (mut port, mut path) = (None, "/".to_string());
        for (key, fv) in cx.fields(v, known, &c, false) {
            let c = dotted(&c, key);
            match key {
                "port" => {
                    port = cx.parse_with(fv, &c, |t| {
                        t.parse::<u16>()
                            .ok()
                            .filter(|p| *p > 0)
                            .ok_or_else(|| format!("{t:?} is not a port number (1-65535)"))
                    })
                }
                "path" => {
                    if let Some(p) = cx.opt_string(fv, &c) {
                        if p.starts_with('/') {
                            path = p;
                        } else {
                            cx.error(fv.pos.error(format!(
                                "invalid `{c}`: {p:?} is not an absolute path (it must start with /)"
                            )));
                        }
                    }
                }
                _ => {}
            }
        }
        let Some(port) = port else {
            cx.error(
                v.pos
                    .error(format!("`{c}` has no `port`"))
                    .with_help("e.g. probe: {http: {port: 8080, path: /healthz}}"),
            );
            continue;
        };
        found.push(match kind {
            "http" => HealthTest::Http(HttpProbe { port, path }),
            _ => HealthTest::Tcp(TcpProbe { port }),
        });
    }
    match found.len() {
        0 if node.as_map().is_some_and(|m| m.is_empty()) => {
            cx.error(node.pos.error(format!("`{c}` is empty")).with_help(
                "e.g. probe: {http: {port: 8080, path: /healthz}} or probe: {tcp: {port: 5432}}",
            ));
            None
        }
        0 | 1 => found.pop(),
        _ => {
            cx.error(
                node.pos
                    .error(format!("`{c}` sets both `http` and `tcp`"))
                    .with_help("a service has one probe: keep one of them"),
            );
            None
        }
    }
}
