//! Stack networks and service VIPs: allocated when a stack is deployed,
//! released when its services go, and served to agents as one "networking"
//! view from which every node computes its DNS answers and proxy listeners.
//!
//! Allocation is claim-by-create (compare-and-swap on an absent key), so two
//! deploys racing for the same subnet or VIP cannot both win.

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::extract::State;
use axum::Json;
use flotilla_core::keys;
use flotilla_core::network::{
    next_subnet, next_vip, NetworkRecord, Networking, ServiceEndpoints, TaskEndpoint, VipRecord,
};
use flotilla_core::objects::ServiceRecord;
use flotilla_core::plan::service_id;
use flotilla_core::{DesiredState, Task};
use flotilla_spec::{EndpointMode, Stack};
use ipnet::Ipv4Net;
use std::collections::BTreeSet;

/// Where stack subnets come from.
#[derive(Clone, Copy, Debug)]
pub struct NetworkPool {
    pub pool: Ipv4Net,
    /// Prefix length of each stack network.
    pub prefix: u8,
}

/// Make sure every network the stack's services use has a record, and every
/// VIP-mode service a VIP on each of its networks.
pub async fn ensure_for_stack(state: &AppState, stack_name: &str, stack: &Stack) -> ApiResult<()> {
    let used_keys: BTreeSet<&String> = stack
        .services
        .values()
        .filter(|s| s.network_mode.is_none())
        .flat_map(|s| s.networks.keys())
        .collect();
    for key in used_keys {
        let declared = stack.networks.get(key).ok_or_else(|| {
            ApiError::bad_request(format!(
                "a service uses network {key:?}, which the stack does not declare"
            ))
        })?;
        if declared.external {
            if state
                .repo
                .get::<NetworkRecord>(&keys::network(&declared.name))
                .await?
                .is_none()
            {
                return Err(ApiError::bad_request(format!(
                    "external network {:?} does not exist",
                    declared.name
                ))
                .with_hint("deploy the stack that creates it first, or drop `external: true`"));
            }
            continue;
        }
        ensure_network(state, stack_name, key, &declared.name, declared.internal).await?;
    }
    for (svc_name, svc) in &stack.services {
        if svc.network_mode.is_some() || svc.deploy.endpoint_mode == EndpointMode::Dnsrr {
            continue;
        }
        let id = service_id(stack_name, svc_name);
        for key in svc.networks.keys() {
            let network = &stack.networks[key].name;
            ensure_vip(state, network, &id).await?;
        }
    }
    Ok(())
}

async fn ensure_network(
    state: &AppState,
    stack: &str,
    key: &str,
    name: &str,
    internal: bool,
) -> ApiResult<NetworkRecord> {
    let repo = &state.repo;
    for _ in 0..16 {
        if let Some((existing, _)) = repo.get::<NetworkRecord>(&keys::network(name)).await? {
            if existing.stack != stack {
                return Err(ApiError::conflict(format!(
                    "network {name:?} belongs to stack {:?}",
                    existing.stack
                ))
                .with_hint("give the network another `name:`, or mark it `external: true`"));
            }
            return Ok(existing);
        }
        let used: Vec<Ipv4Net> = repo
            .list::<NetworkRecord>(keys::NETWORKS)
            .await?
            .into_iter()
            .map(|n| n.subnet)
            .collect();
        let pool = state.networks;
        let subnet = next_subnet(pool.pool, pool.prefix, &used).ok_or_else(|| {
            ApiError::conflict(format!(
                "the network pool {} has no free /{} left ({} networks exist)",
                pool.pool,
                pool.prefix,
                used.len()
            ))
            .with_hint(
                "remove unused stacks, or start the server with a larger FLOTILLA_NETWORK_POOL",
            )
        })?;
        let record = NetworkRecord {
            name: name.to_string(),
            stack: stack.to_string(),
            key: key.to_string(),
            subnet,
            internal,
            created_at: crate::now_ms(),
        };
        // Claim the subnet first so a concurrent deploy cannot take it too.
        if !repo.create(&subnet_claim(subnet), &record.name).await? {
            continue;
        }
        if repo.create(&keys::network(name), &record).await? {
            crate::events::record(repo, "network", name, "created", format!("subnet {subnet}"))
                .await;
            return Ok(record);
        }
        repo.delete(&subnet_claim(subnet)).await?;
    }
    Err(ApiError::conflict(format!(
        "network {name:?} is changing too fast; try again"
    )))
}

fn subnet_claim(subnet: Ipv4Net) -> String {
    format!("/subnets/{}", subnet.to_string().replace('/', "_"))
}

async fn ensure_vip(state: &AppState, network: &str, service: &str) -> ApiResult<VipRecord> {
    let repo = &state.repo;
    let Some((net, _)) = repo.get::<NetworkRecord>(&keys::network(network)).await? else {
        return Err(ApiError::bad_request(format!(
            "network {network:?} does not exist"
        )));
    };
    for _ in 0..16 {
        if let Some((existing, _)) = repo.get::<VipRecord>(&keys::vip(network, service)).await? {
            return Ok(existing);
        }
        let taken: Vec<VipRecord> = repo.list(&keys::vips_of(network)).await?;
        let used: BTreeSet<_> = taken.iter().map(|v| v.ip).collect();
        let ip = next_vip(&net, &used).ok_or_else(|| {
            ApiError::conflict(format!(
                "network {network:?} ({}) has no virtual IP left for service {service:?}",
                net.subnet
            ))
            .with_hint("use `deploy.endpoint_mode: dnsrr` for some services, or a larger FLOTILLA_NETWORK_PREFIX")
        })?;
        let claim = format!("/vip-claims/{network}/{ip}");
        if !repo.create(&claim, &service).await? {
            continue;
        }
        let record = VipRecord {
            network: network.to_string(),
            service: service.to_string(),
            ip,
        };
        if repo.create(&keys::vip(network, service), &record).await? {
            return Ok(record);
        }
        repo.delete(&claim).await?;
    }
    Err(ApiError::conflict(format!(
        "VIPs of {network:?} are changing too fast; try again"
    )))
}

/// Release a removed service's VIPs.
pub async fn release_service(state: &AppState, service: &str) -> ApiResult<()> {
    let repo = &state.repo;
    for vip in repo.list::<VipRecord>(keys::VIPS).await? {
        if vip.service == service {
            repo.delete(&format!("/vip-claims/{}/{}", vip.network, vip.ip))
                .await?;
            repo.delete(&keys::vip(&vip.network, service)).await?;
        }
    }
    Ok(())
}

/// Remove a stack's networks once nothing of the stack is left.
pub async fn release_stack(state: &AppState, stack: &str) -> ApiResult<()> {
    let repo = &state.repo;
    for net in repo.list::<NetworkRecord>(keys::NETWORKS).await? {
        if net.stack == stack {
            repo.delete(&keys::network(&net.name)).await?;
            repo.delete(&subnet_claim(net.subnet)).await?;
            crate::events::record(
                repo,
                "network",
                &net.name,
                "removed",
                format!("stack {stack} removed"),
            )
            .await;
        }
    }
    Ok(())
}

/// `GET /v1/networks`
pub async fn list(State(state): State<AppState>) -> ApiResult<Json<Vec<NetworkRecord>>> {
    Ok(Json(state.repo.list(keys::NETWORKS).await?))
}

/// `GET /v1/networking`: everything a node needs for DNS and the proxy.
pub async fn networking(State(state): State<AppState>) -> ApiResult<Json<Networking>> {
    let repo = &state.repo;
    let networks: Vec<NetworkRecord> = repo.list(keys::NETWORKS).await?;
    let vips: Vec<VipRecord> = repo.list(keys::VIPS).await?;
    let records: Vec<ServiceRecord> = repo.list(keys::SERVICES).await?;
    let mut services = Vec::new();
    for rec in &records {
        let spec = &rec.spec;
        let stack_net = |key: &str| {
            let name = format!("{}_{key}", rec.stack);
            networks
                .iter()
                .find(|n| n.stack == rec.stack && n.key == key)
                .map_or(name, |n| n.name.clone())
        };
        services.push(ServiceEndpoints {
            id: rec.id.clone(),
            stack: rec.stack.clone(),
            name: rec.name.clone(),
            vips: vips
                .iter()
                .filter(|v| v.service == rec.id)
                .map(|v| (v.network.clone(), v.ip.to_string()))
                .collect(),
            aliases: spec
                .networks
                .iter()
                .map(|(key, n)| (stack_net(key), n.aliases.clone()))
                .collect(),
            spec_ports: spec.ports.clone(),
            expose: spec.expose.clone(),
            http_ports: spec
                .x_flotilla
                .as_ref()
                .map(|x| x.http_ports.clone())
                .unwrap_or_default(),
            dnsrr: spec.deploy.endpoint_mode == EndpointMode::Dnsrr,
            stop_grace_ms: spec.stop_grace_period.as_millis(),
        });
    }
    let tasks: Vec<Task> = repo.list(keys::TASKS).await?;
    let tasks = tasks
        .into_iter()
        .filter(|t| {
            t.desired == DesiredState::Running && t.state == flotilla_core::TaskState::Running
        })
        .map(|t| TaskEndpoint {
            id: t.id,
            service: t.service,
            node: t.node,
            health: t.health,
            addresses: t.addresses,
        })
        .collect();
    Ok(Json(Networking {
        networks,
        services,
        tasks,
    }))
}
