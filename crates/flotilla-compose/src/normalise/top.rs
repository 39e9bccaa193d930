//! The top level: project name, services (filtered by profiles), networks,
//! volumes, secrets, configs and extensions.

use super::service::service;
use super::{dotted, Ctx};
use crate::keys;
use crate::yaml::Node;
use flotilla_spec::{Config, Ipam, IpamPool, Network, Secret, Service, Stack, Volume};
use std::collections::BTreeSet;

/// Result of normalising: the stack, plus the services disabled by profiles
/// (validation uses them for better messages).
pub struct Normalised {
    pub stack: Stack,
    pub inactive: BTreeSet<String>,
}

/// Normalise the merged root mapping.
pub fn stack(cx: &mut Ctx<'_>, root: &Node, profiles: &[String]) -> Normalised {
    let mut st = Stack {
        name: cx.project_name.clone(),
        project_dir: cx.project_dir.to_string_lossy().into_owned(),
        ..Stack::default()
    };
    let mut inactive = BTreeSet::new();
    let known: Vec<&str> = keys::TOP_ACTED
        .iter()
        .chain(keys::TOP_NOT_ACTED)
        .copied()
        .collect();
    let Some(entries) = root.as_map() else {
        cx.expected(root, "a mapping at the top of the file", "file");
        return Normalised {
            stack: st,
            inactive,
        };
    };
    for (k, v) in entries {
        let key = k.as_str().unwrap_or_default();
        match key {
            // Handled by the loader before normalisation.
            "name" | "include" => {}
            "version" => cx.warnings.push(
                k.pos
                    .warning("`version` is obsolete and ignored")
                    .with_help("remove it; the Compose Specification has no version"),
            ),
            "services" => {
                let Some(services) = v.as_map() else {
                    if !v.is_null() {
                        cx.expected(v, "a mapping of service names", "services");
                    }
                    continue;
                };
                for (name, svc) in all_services(cx, services) {
                    let Some(svc) = svc else { continue };
                    if is_active(&svc.profiles, profiles) {
                        st.services.insert(name.to_string(), svc);
                    } else {
                        inactive.insert(name.to_string());
                    }
                }
            }
            "networks" => each(cx, v, "networks", |cx, name, n| {
                st.networks.insert(name.to_string(), network(cx, name, n));
            }),
            "volumes" => each(cx, v, "volumes", |cx, name, n| {
                st.volumes.insert(name.to_string(), volume(cx, name, n));
            }),
            "secrets" => each(cx, v, "secrets", |cx, name, n| {
                st.secrets.insert(name.to_string(), secret(cx, name, n));
            }),
            "configs" => each(cx, v, "configs", |cx, name, n| {
                st.configs.insert(name.to_string(), config(cx, name, n));
            }),
            _ if key.starts_with("x-") => {
                st.extensions.insert(key.to_string(), v.to_json());
            }
            _ if keys::TOP_NOT_ACTED.contains(&key) => {
                cx.not_acted_on(k, key, "the top level");
                st.not_acted_on.insert(key.to_string(), v.to_json());
            }
            _ => cx.unknown_key(k, key, &known, "the top level"),
        }
    }
    let uses_default = st
        .services
        .values()
        .any(|s| s.networks.contains_key("default"));
    if uses_default && !st.networks.contains_key("default") {
        st.networks.insert(
            "default".into(),
            Network {
                name: cx.resource_name("default", None, false),
                ..Network::default()
            },
        );
    }
    Normalised {
        stack: st,
        inactive,
    }
}

/// From this many services on, they are normalised on several threads:
/// below it, starting a thread costs more than it saves.
const PARALLEL_FROM: usize = 256;
/// Threads for a big stack (each normalises a contiguous run of services).
const MAX_THREADS: usize = 4;

/// Normalise every service, in order; `None` for an invalid name. Big
/// stacks are split into runs normalised on their own threads, each with a
/// `Ctx` of its own; the diagnostics are appended run by run, so they come
/// out in the same order as from one thread.
fn all_services<'n>(
    cx: &mut Ctx<'_>,
    entries: &'n [(Node, Node)],
) -> Vec<(&'n str, Option<Service>)> {
    let threads = if entries.len() >= PARALLEL_FROM {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(MAX_THREADS)
    } else {
        1
    };
    if threads <= 1 {
        return services_run(cx, entries);
    }
    let run = entries.len().div_ceil(threads);
    let (project_dir, project_name, env) = (&cx.project_dir, &cx.project_name, cx.env);
    let own_ctx = || Ctx {
        project_dir: project_dir.clone(),
        project_name: project_name.clone(),
        env,
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    let runs: Vec<_> = std::thread::scope(|scope| {
        let others: Vec<_> = entries
            .chunks(run)
            .skip(1)
            .map(|part| {
                scope.spawn(move || {
                    let mut cx = own_ctx();
                    let out = services_run(&mut cx, part);
                    (out, cx.errors, cx.warnings)
                })
            })
            .collect();
        let mut first_cx = own_ctx();
        let first = services_run(&mut first_cx, &entries[..run]);
        let mut runs = vec![(first, first_cx.errors, first_cx.warnings)];
        for h in others {
            runs.push(h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
        }
        runs
    });
    let mut out = Vec::with_capacity(entries.len());
    for (services, errors, warnings) in runs {
        out.extend(services);
        cx.errors.extend(errors);
        cx.warnings.extend(warnings);
    }
    out
}

fn services_run<'n>(
    cx: &mut Ctx<'_>,
    entries: &'n [(Node, Node)],
) -> Vec<(&'n str, Option<Service>)> {
    entries
        .iter()
        .map(|(sk, sv)| {
            let name = sk.as_str().unwrap_or_default();
            if let Err(why) = check_name(name) {
                cx.error(
                    sk.pos
                        .error(format!("invalid service name {name:?}: {why}")),
                );
                return (name, None);
            }
            (name, Some(service(cx, name, sv)))
        })
        .collect()
}

/// A service is active when it has no profiles, or one of them is enabled
/// (`*` enables all).
fn is_active(service_profiles: &[String], enabled: &[String]) -> bool {
    service_profiles.is_empty()
        || enabled.iter().any(|p| p == "*")
        || service_profiles.iter().any(|p| enabled.contains(p))
}

fn check_name(name: &str) -> Result<(), &'static str> {
    let ok = !name.is_empty()
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err("names start with a letter or digit and contain only letters, digits, `_`, `.`, `-`")
    }
}

fn each(cx: &mut Ctx<'_>, node: &Node, what: &str, mut f: impl FnMut(&mut Ctx<'_>, &str, &Node)) {
    let Some(entries) = node.as_map() else {
        if !node.is_null() {
            cx.expected(node, "a mapping of names", what);
        }
        return;
    };
    for (k, v) in entries {
        let name = k.as_str().unwrap_or_default();
        f(cx, name, v);
    }
}

/// `external: true`, or the legacy `external: {name: x}` (returns the name).
fn external(cx: &mut Ctx<'_>, v: &Node, c: &str) -> (bool, Option<String>) {
    if v.as_map().is_some() {
        cx.warnings.push(
            v.pos
                .warning(format!("`{c}` as a mapping is deprecated"))
                .with_help("write `external: true` and put the name in `name:`"),
        );
        let name = v.get("name").and_then(|n| n.as_str()).map(str::to_string);
        return (true, name);
    }
    (cx.boolean(v, c).unwrap_or_default(), None)
}

fn network(cx: &mut Ctx<'_>, key: &str, node: &Node) -> Network {
    let c = format!("networks.{key}");
    let mut n = Network::default();
    let mut explicit = None;
    for (k, v) in cx.fields(node, keys::NETWORK, &c, true) {
        let c = dotted(&c, k);
        match k {
            "name" => explicit = cx.opt_string(v, &c),
            "driver" => n.driver = cx.opt_string(v, &c),
            "driver_opts" => n.driver_opts = cx.string_map(v, &c),
            "external" => {
                let (ext, name) = external(cx, v, &c);
                n.external = ext;
                explicit = explicit.or(name);
            }
            "internal" => n.internal = cx.boolean(v, &c).unwrap_or_default(),
            "attachable" => n.attachable = cx.boolean(v, &c).unwrap_or_default(),
            "enable_ipv4" => n.enable_ipv4 = cx.boolean(v, &c),
            "enable_ipv6" => n.enable_ipv6 = cx.boolean(v, &c).unwrap_or_default(),
            "labels" => n.labels = cx.string_map(v, &c),
            "ipam" => n.ipam = Some(ipam(cx, v, &c)),
            _ => {}
        }
    }
    n.name = cx.resource_name(key, explicit, n.external);
    n
}

fn ipam(cx: &mut Ctx<'_>, node: &Node, c: &str) -> Ipam {
    let mut i = Ipam::default();
    for (k, v) in cx.fields(node, keys::IPAM, c, true) {
        let c = dotted(c, k);
        match k {
            "driver" => i.driver = cx.opt_string(v, &c),
            "options" => i.options = cx.string_map(v, &c),
            "config" => {
                let Some(items) = v.as_seq() else {
                    cx.expected(v, "a list of pools", &c);
                    continue;
                };
                for item in items {
                    let mut p = IpamPool::default();
                    for (pk, pv) in cx.fields(item, keys::IPAM_POOL, &c, true) {
                        let c = dotted(&c, pk);
                        match pk {
                            "subnet" => p.subnet = cx.opt_string(pv, &c),
                            "ip_range" => p.ip_range = cx.opt_string(pv, &c),
                            "gateway" => p.gateway = cx.opt_string(pv, &c),
                            "aux_addresses" => p.aux_addresses = cx.string_map(pv, &c),
                            _ => {}
                        }
                    }
                    i.config.push(p);
                }
            }
            _ => {}
        }
    }
    i
}

fn volume(cx: &mut Ctx<'_>, key: &str, node: &Node) -> Volume {
    let c = format!("volumes.{key}");
    let mut vol = Volume::default();
    let mut explicit = None;
    for (k, v) in cx.fields(node, keys::VOLUME, &c, true) {
        let c = dotted(&c, k);
        match k {
            "name" => explicit = cx.opt_string(v, &c),
            "driver" => vol.driver = cx.opt_string(v, &c),
            "driver_opts" => vol.driver_opts = cx.string_map(v, &c),
            "external" => {
                let (ext, name) = external(cx, v, &c);
                vol.external = ext;
                explicit = explicit.or(name);
            }
            "labels" => vol.labels = cx.string_map(v, &c),
            _ => {}
        }
    }
    vol.name = cx.resource_name(key, explicit, vol.external);
    vol
}

fn secret(cx: &mut Ctx<'_>, key: &str, node: &Node) -> Secret {
    let c = format!("secrets.{key}");
    let mut s = Secret::default();
    let mut explicit = None;
    for (k, v) in cx.fields(node, keys::SECRET, &c, true) {
        let c = dotted(&c, k);
        match k {
            "name" => explicit = cx.opt_string(v, &c),
            "file" => s.file = cx.opt_string(v, &c).map(|f| cx.host_path(&f)),
            "environment" => s.environment = cx.opt_string(v, &c),
            "external" => {
                let (ext, name) = external(cx, v, &c);
                s.external = ext;
                explicit = explicit.or(name);
            }
            "labels" => s.labels = cx.string_map(v, &c),
            "driver" => s.driver = cx.opt_string(v, &c),
            "driver_opts" => s.driver_opts = cx.string_map(v, &c),
            "template_driver" => s.template_driver = cx.opt_string(v, &c),
            _ => {}
        }
    }
    let sources = [s.file.is_some(), s.environment.is_some(), s.external]
        .iter()
        .filter(|b| **b)
        .count();
    if sources != 1 && !(s.driver.is_some() && sources == 0) {
        cx.error(
            node.pos
                .error(format!(
                    "secret `{key}` needs exactly one of `file`, `environment` or `external: true`"
                ))
                .with_help("e.g. `file: ./db_password.txt`"),
        );
    }
    s.name = cx.resource_name(key, explicit, s.external);
    s
}

fn config(cx: &mut Ctx<'_>, key: &str, node: &Node) -> Config {
    let c = format!("configs.{key}");
    let mut s = Config::default();
    let mut explicit = None;
    for (k, v) in cx.fields(node, keys::CONFIG, &c, true) {
        let c = dotted(&c, k);
        match k {
            "name" => explicit = cx.opt_string(v, &c),
            "file" => s.file = cx.opt_string(v, &c).map(|f| cx.host_path(&f)),
            "environment" => s.environment = cx.opt_string(v, &c),
            "content" => s.content = cx.opt_string(v, &c),
            "external" => {
                let (ext, name) = external(cx, v, &c);
                s.external = ext;
                explicit = explicit.or(name);
            }
            "labels" => s.labels = cx.string_map(v, &c),
            "template_driver" => s.template_driver = cx.opt_string(v, &c),
            _ => {}
        }
    }
    let sources = [
        s.file.is_some(),
        s.environment.is_some(),
        s.content.is_some(),
        s.external,
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if sources != 1 {
        cx.error(
            node.pos
                .error(format!("config `{key}` needs exactly one of `file`, `environment`, `content` or `external: true`"))
                .with_help("e.g. `file: ./nginx.conf`"),
        );
    }
    s.name = cx.resource_name(key, explicit, s.external);
    s
}
