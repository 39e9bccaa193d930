//! Swarm's `deploy:` section, with Swarm's defaults filled in (see the
//! `Default` impls in `flotilla_spec`: replicas 1, restart condition any with
//! 5s delay, update/rollback parallelism 1, failure_action pause, monitor 5s,
//! order stop-first, endpoint_mode vip).

use super::{dotted, Ctx};
use crate::keys;
use crate::short;
use crate::yaml::Node;
use flotilla_spec::{
    Deploy, DeployMode, EndpointMode, FailureAction, RestartCondition, UpdateConfig, UpdateOrder,
};

pub fn deploy(cx: &mut Ctx<'_>, node: Option<&Node>, service_ctx: &str) -> Deploy {
    let mut d = Deploy::default();
    let c = format!("{service_ctx}.deploy");
    let mut replicas = None;
    if let Some(node) = node {
        for (key, v) in cx.fields(node, keys::DEPLOY, &c, true) {
            let c = dotted(&c, key);
            let c = c.as_str();
            match key {
                "mode" => {
                    d.mode = cx
                        .parse_with(v, c, |t| match t {
                            "replicated" => Ok(DeployMode::Replicated),
                            "global" => Ok(DeployMode::Global),
                            "replicated-job" => Ok(DeployMode::ReplicatedJob),
                            "global-job" => Ok(DeployMode::GlobalJob),
                            _ => Err(format!("{t:?} is not a deploy mode (expected replicated, global, replicated-job or global-job)")),
                        })
                        .unwrap_or_default()
                }
                "replicas" => replicas = cx.uint(v, c).map(|n| (n, v)),
                "endpoint_mode" => {
                    d.endpoint_mode = cx
                        .parse_with(v, c, |t| match t {
                            "vip" => Ok(EndpointMode::Vip),
                            "dnsrr" => Ok(EndpointMode::Dnsrr),
                            _ => Err(format!("{t:?} is not an endpoint mode (expected vip or dnsrr)")),
                        })
                        .unwrap_or_default()
                }
                "labels" => d.labels = cx.string_map(v, c),
                "resources" => resources(cx, v, c, &mut d),
                "restart_policy" => restart_policy(cx, v, c, &mut d),
                "update_config" => update_config(cx, v, c, &mut d.update_config),
                "rollback_config" => update_config(cx, v, c, &mut d.rollback_config),
                "placement" => placement(cx, v, c, &mut d),
                _ => {}
            }
        }
    }
    let global = matches!(d.mode, DeployMode::Global | DeployMode::GlobalJob);
    d.replicas = match (global, replicas) {
        (false, Some((n, _))) => Some(n),
        (false, None) => Some(1),
        (true, None) => None,
        (true, Some((_, v))) => {
            cx.error(
                v.pos
                    .error(format!("`replicas` cannot be used with a global deploy mode in {service_ctx}"))
                    .with_label("conflicts with the global mode")
                    .with_help("global services run one task per node; remove `replicas` or use `mode: replicated`"),
            );
            None
        }
    };
    d
}

fn resources(cx: &mut Ctx<'_>, node: &Node, c: &str, d: &mut Deploy) {
    for (key, v) in cx.fields(node, keys::RESOURCES, c, true) {
        let c = dotted(c, key);
        let c = c.as_str();
        match key {
            "limits" => {
                for (k, lv) in cx.fields(v, keys::LIMITS, c, true) {
                    let c = dotted(c, k);
                    match k {
                        "cpus" => d.resources.limits.cpus = cx.parse_with(lv, &c, short::cpus),
                        "memory" => d.resources.limits.memory = cx.size(lv, &c),
                        "pids" => d.resources.limits.pids = cx.int(lv, &c),
                        _ => {}
                    }
                }
            }
            "reservations" => {
                for (k, rv) in cx.fields(v, keys::RESERVATIONS, c, true) {
                    let c = dotted(c, k);
                    let r = &mut d.resources.reservations;
                    match k {
                        "cpus" => r.cpus = cx.parse_with(rv, &c, short::cpus),
                        "memory" => r.memory = cx.size(rv, &c),
                        "generic_resources" => {
                            cx.not_acted_on(rv, k, c.as_str());
                            d.resources.reservations.generic_resources = Some(rv.to_json());
                        }
                        "devices" => {
                            cx.not_acted_on(rv, k, c.as_str());
                            d.resources.reservations.devices = Some(rv.to_json());
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
}

fn restart_policy(cx: &mut Ctx<'_>, node: &Node, c: &str, d: &mut Deploy) {
    let p = &mut d.restart_policy;
    for (key, v) in cx.fields(node, keys::RESTART_POLICY, c, true) {
        let c = dotted(c, key);
        match key {
            "condition" => {
                p.condition = cx
                    .parse_with(v, &c, |t| match t {
                        "none" => Ok(RestartCondition::None),
                        "on-failure" => Ok(RestartCondition::OnFailure),
                        "any" => Ok(RestartCondition::Any),
                        _ => Err(format!(
                            "{t:?} is not a restart condition (expected none, on-failure or any)"
                        )),
                    })
                    .unwrap_or(p.condition)
            }
            "delay" => p.delay = cx.duration(v, &c).unwrap_or(p.delay),
            "max_attempts" => p.max_attempts = cx.uint(v, &c),
            "window" => p.window = cx.duration(v, &c).unwrap_or(p.window),
            _ => {}
        }
    }
}

fn update_config(cx: &mut Ctx<'_>, node: &Node, c: &str, u: &mut UpdateConfig) {
    for (key, v) in cx.fields(node, keys::UPDATE_CONFIG, c, true) {
        let c = dotted(c, key);
        match key {
            "parallelism" => u.parallelism = cx.uint(v, &c).unwrap_or(u.parallelism),
            "delay" => u.delay = cx.duration(v, &c).unwrap_or(u.delay),
            "monitor" => u.monitor = cx.duration(v, &c).unwrap_or(u.monitor),
            "max_failure_ratio" => {
                let r = cx.float(v, &c).unwrap_or(u.max_failure_ratio);
                if !(0.0..=1.0).contains(&r) {
                    cx.error(v.pos.error(format!(
                        "invalid `{c}`: a ratio goes from 0 to 1, found {r}"
                    )));
                }
                u.max_failure_ratio = r;
            }
            "failure_action" => {
                u.failure_action = cx
                    .parse_with(v, &c, |t| match t {
                        "continue" => Ok(FailureAction::Continue),
                        "rollback" => Ok(FailureAction::Rollback),
                        "pause" => Ok(FailureAction::Pause),
                        _ => Err(format!(
                            "{t:?} is not a failure action (expected continue, rollback or pause)"
                        )),
                    })
                    .unwrap_or(u.failure_action)
            }
            "order" => {
                u.order = cx
                    .parse_with(v, &c, |t| match t {
                        "start-first" => Ok(UpdateOrder::StartFirst),
                        "stop-first" => Ok(UpdateOrder::StopFirst),
                        _ => Err(format!(
                            "{t:?} is not an update order (expected start-first or stop-first)"
                        )),
                    })
                    .unwrap_or(u.order)
            }
            _ => {}
        }
    }
}

fn placement(cx: &mut Ctx<'_>, node: &Node, c: &str, d: &mut Deploy) {
    let p = &mut d.placement;
    for (key, v) in cx.fields(node, keys::PLACEMENT, c, true) {
        let c = dotted(c, key);
        match key {
            "constraints" => p.constraints = cx.string_list(v, &c, false),
            "max_replicas_per_node" => p.max_replicas_per_node = cx.uint(v, &c),
            "preferences" => {
                let Some(items) = v.as_seq() else {
                    cx.expected(v, "a list of {spread: ...}", &c);
                    continue;
                };
                for item in items {
                    for (pk, pv) in cx.fields(item, &["spread"], &c, true) {
                        if pk == "spread" {
                            if let Some(s) = cx.string(pv, &c) {
                                p.preferences.push(s);
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
}
