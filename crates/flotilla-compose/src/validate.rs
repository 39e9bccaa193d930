//! Checks beyond the shape of each key: references between services and
//! top-level resources, dependency cycles, host port clashes and options
//! that contradict each other. Positions come from the merged tree.

use crate::normalise::top::Normalised;
use crate::normalise::Ctx;
use crate::yaml::{Node, Pos};
use flotilla_spec::{MountType, Stack};
use std::collections::{BTreeMap, HashMap};

pub fn validate(cx: &mut Ctx<'_>, root: &Node, n: &Normalised) {
    let st = &n.stack;
    let service_nodes: HashMap<&str, &Node> = root
        .get("services")
        .and_then(Node::as_map)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.as_str()?, v)))
                .collect()
        })
        .unwrap_or_default();
    for (name, svc) in &st.services {
        let node = service_nodes.get(name.as_str()).copied();
        let at = |keys: &[&str]| -> Option<Pos> {
            let mut cur = node?;
            let mut pos = cur.pos.clone();
            for k in keys {
                match cur.get(k) {
                    Some(next) => {
                        cur = next;
                        pos = cur.pos.clone();
                    }
                    None => break,
                }
            }
            Some(pos)
        };
        let fallback = || node.map(|n| n.pos.clone());
        let mut err = |pos: Option<Pos>, msg: String, help: Option<String>| {
            let mut d = match pos.or_else(fallback) {
                Some(p) => p.error(msg),
                None => crate::diag::Diagnostic::error(msg),
            };
            if let Some(h) = help {
                d = d.with_help(h);
            }
            cx.errors.push(d);
        };
        for net in svc.networks.keys() {
            if net != "default" && !st.networks.contains_key(net) {
                err(
                    at(&["networks", net]),
                    format!("service `{name}` uses network `{net}`, which is not defined"),
                    Some(format!(
                        "add it under the top-level `networks:` ({})",
                        defined(&st.networks)
                    )),
                );
            }
        }
        for m in &svc.volumes {
            if m.kind != MountType::Volume {
                continue;
            }
            if let Some(src) = &m.source {
                if !st.volumes.contains_key(src) {
                    err(
                        at(&["volumes"]),
                        format!("service `{name}` mounts volume `{src}`, which is not defined"),
                        Some(format!(
                            "add `{src}:` under the top-level `volumes:`, or write `./{src}` for a host directory"
                        )),
                    );
                }
            }
        }
        for g in &svc.secrets {
            if !st.secrets.contains_key(&g.source) {
                err(
                    at(&["secrets"]),
                    format!(
                        "service `{name}` uses secret `{}`, which is not defined",
                        g.source
                    ),
                    Some(format!(
                        "add it under the top-level `secrets:` ({})",
                        defined(&st.secrets)
                    )),
                );
            }
        }
        for g in &svc.configs {
            if !st.configs.contains_key(&g.source) {
                err(
                    at(&["configs"]),
                    format!(
                        "service `{name}` uses config `{}`, which is not defined",
                        g.source
                    ),
                    Some(format!(
                        "add it under the top-level `configs:` ({})",
                        defined(&st.configs)
                    )),
                );
            }
        }
        for (dep, d) in &svc.depends_on {
            if st.services.contains_key(dep) {
                continue;
            }
            if n.inactive.contains(dep) {
                if d.required {
                    err(
                        at(&["depends_on", dep]),
                        format!("service `{name}` depends on `{dep}`, which is disabled by its profiles"),
                        Some(format!("enable one of `{dep}`'s profiles with --profile, or mark the dependency `required: false`")),
                    );
                }
            } else {
                let known: Vec<&str> = st.services.keys().map(String::as_str).collect();
                let hint = crate::keys::suggest(dep, &known)
                    .map(|s| format!("did you mean `{s}`?"))
                    .unwrap_or_else(|| format!("defined services: {}", known.join(", ")));
                err(
                    at(&["depends_on", dep]),
                    format!("service `{name}` depends on undefined service `{dep}`"),
                    Some(hint),
                );
            }
        }
        if let Some(mode) = &svc.network_mode {
            if node.and_then(|n| n.get("networks")).is_some() {
                err(
                    at(&["network_mode"]),
                    format!("service `{name}` sets both `network_mode` and `networks`"),
                    Some("use one: `network_mode` replaces network attachment entirely".into()),
                );
            }
            if let Some(other) = mode.strip_prefix("service:") {
                if !st.services.contains_key(other) {
                    err(
                        at(&["network_mode"]),
                        format!(
                            "service `{name}` shares the network of undefined service `{other}`"
                        ),
                        None,
                    );
                }
            }
        }
        if svc.container_name.is_some() && svc.deploy.replicas.unwrap_or(1) > 1 {
            err(
                at(&["container_name"]),
                format!(
                    "service `{name}` sets `container_name` but runs {} replicas",
                    svc.deploy.replicas.unwrap_or(1)
                ),
                Some(
                    "a container name must be unique: remove `container_name` or use 1 replica"
                        .into(),
                ),
            );
        }
        if svc.container_name.is_some()
            && matches!(
                svc.deploy.mode,
                flotilla_spec::DeployMode::Global | flotilla_spec::DeployMode::GlobalJob
            )
        {
            err(
                at(&["container_name"]),
                format!("service `{name}` sets `container_name` with a global deploy mode"),
                Some("remove `container_name`".into()),
            );
        }
        if let (Some(r), Some(l)) = (
            svc.deploy.resources.reservations.memory,
            svc.deploy.resources.limits.memory,
        ) {
            if r > l {
                err(
                    at(&["deploy", "resources", "reservations", "memory"]),
                    format!("service `{name}` reserves more memory ({r} bytes) than its limit ({l} bytes)"),
                    None,
                );
            }
        }
        if svc.build.is_some() {
            let pos = at(&["build"]).or_else(fallback);
            if let Some(p) = pos {
                cx.warnings.push(
                    p.warning(format!(
                        "service `{name}`: `build` is recorded, but Flotilla does not build images"
                    ))
                    .with_help(
                        "build and import the image first; the service needs its image to run",
                    ),
                );
            }
        }
    }
    depends_on_cycles(cx, root, st);
    duplicate_ports(cx, root, st);
    duplicate_container_names(cx, root, st);
}

fn defined<T>(m: &BTreeMap<String, T>) -> String {
    if m.is_empty() {
        "none are defined".into()
    } else {
        format!(
            "defined: {}",
            m.keys().cloned().collect::<Vec<_>>().join(", ")
        )
    }
}

fn service_pos(root: &Node, name: &str, key: &str) -> Option<Pos> {
    let svc = root.get("services")?.get(name)?;
    Some(svc.get(key).unwrap_or(svc).pos.clone())
}

/// Report each dependency cycle once (iterative DFS with colours).
fn depends_on_cycles(cx: &mut Ctx<'_>, root: &Node, st: &Stack) {
    #[derive(Clone, Copy, PartialEq)]
    enum Colour {
        White,
        Grey,
        Black,
    }
    let mut colour: HashMap<&str, Colour> = st
        .services
        .keys()
        .map(|k| (k.as_str(), Colour::White))
        .collect();
    for start in st.services.keys() {
        if colour[start.as_str()] != Colour::White {
            continue;
        }
        // Stack of (service, iterator index into its deps).
        let mut stack: Vec<(&str, Vec<&str>, usize)> = Vec::new();
        let deps = |s: &str| -> Vec<&str> {
            st.services[s]
                .depends_on
                .keys()
                .map(String::as_str)
                .filter(|d| st.services.contains_key(*d))
                .collect()
        };
        colour.insert(start, Colour::Grey);
        stack.push((start, deps(start), 0));
        while let Some((node, children, i)) = stack.last_mut() {
            if *i < children.len() {
                let child = children[*i];
                *i += 1;
                match colour[child] {
                    Colour::White => {
                        colour.insert(child, Colour::Grey);
                        let d = deps(child);
                        stack.push((child, d, 0));
                    }
                    Colour::Grey => {
                        let from = stack.iter().position(|(n, _, _)| *n == child).unwrap_or(0);
                        let mut cycle: Vec<&str> =
                            stack[from..].iter().map(|(n, _, _)| *n).collect();
                        cycle.push(child);
                        let last = stack.last().map(|(n, _, _)| *n).unwrap_or(child);
                        let pos = service_pos(root, last, "depends_on");
                        let msg = format!("dependency cycle: {}", cycle.join(" -> "));
                        let d = match pos {
                            Some(p) => p.error(msg),
                            None => crate::diag::Diagnostic::error(msg),
                        };
                        cx.errors.push(d.with_help("services cannot depend on each other in a loop; remove one `depends_on` entry"));
                    }
                    Colour::Black => {}
                }
            } else {
                colour.insert(node, Colour::Black);
                stack.pop();
            }
        }
    }
}

/// Two published ports clash when port and protocol match and the host
/// addresses are equal or either is unspecified (all addresses).
fn duplicate_ports(cx: &mut Ctx<'_>, root: &Node, st: &Stack) {
    type Binding<'a> = (&'a str, &'a str);
    let mut seen: HashMap<(u16, flotilla_spec::Protocol), Vec<Binding<'_>>> = HashMap::new();
    let unspecified = |ip: &str| matches!(ip, "" | "0.0.0.0" | "::");
    for (name, svc) in &st.services {
        for p in &svc.ports {
            let Some(published) = p.published else {
                continue;
            };
            let ip = p.host_ip.as_deref().unwrap_or("");
            let bound = seen.entry((published, p.protocol)).or_default();
            let clash = bound
                .iter()
                .find(|(other_ip, _)| *other_ip == ip || unspecified(ip) || unspecified(other_ip))
                .map(|(_, svc)| *svc);
            match clash {
                Some(first) => {
                    let proto = serde_json::to_value(p.protocol).ok();
                    let proto = proto.as_ref().and_then(|v| v.as_str()).unwrap_or("tcp");
                    let shown = if ip.is_empty() { "0.0.0.0" } else { ip };
                    let msg = if first == name.as_str() {
                        format!("service `{name}` publishes host port {shown}:{published}/{proto} twice")
                    } else {
                        format!("host port {shown}:{published}/{proto} is published by both `{first}` and `{name}`")
                    };
                    let d = match service_pos(root, name, "ports") {
                        Some(pos) => pos.error(msg),
                        None => crate::diag::Diagnostic::error(msg),
                    };
                    cx.errors.push(d.with_help(
                        "each host address/port/protocol can be published once; change one of them",
                    ));
                }
                None => bound.push((ip, name)),
            }
        }
    }
}

fn duplicate_container_names(cx: &mut Ctx<'_>, root: &Node, st: &Stack) {
    let mut seen: HashMap<&str, &str> = HashMap::new();
    for (name, svc) in &st.services {
        if let Some(cn) = &svc.container_name {
            if let Some(first) = seen.insert(cn, name) {
                let msg = format!("container name `{cn}` is used by both `{first}` and `{name}`");
                let d = match service_pos(root, name, "container_name") {
                    Some(pos) => pos.error(msg),
                    None => crate::diag::Diagnostic::error(msg),
                };
                cx.errors.push(d);
            }
        }
    }
}
