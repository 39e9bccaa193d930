//! Scheduler controller: give each new task a node with the pure
//! `flotilla_scheduler`, or leave it `pending` with the reason.

use crate::error::ApiResult;
use crate::events;
use crate::repo::Change;
use crate::state::AppState;
use flotilla_core::objects::{NodeAvailability, NodeRecord, NodeStatus, ServiceRecord};
use flotilla_core::{keys, DesiredState, Task, TaskState};
use flotilla_scheduler as sched;
use flotilla_spec::{PortMode, Service};
use std::collections::HashMap;

pub async fn assign(state: &AppState) -> ApiResult<()> {
    let repo = &state.repo;
    let tasks: Vec<Task> = repo.list(keys::TASKS).await?;
    let waiting: Vec<&Task> = tasks
        .iter()
        .filter(|t| {
            t.desired == DesiredState::Running
                && matches!(t.state, TaskState::New | TaskState::Pending)
        })
        .collect();
    if waiting.is_empty() {
        return Ok(());
    }
    let services: HashMap<String, ServiceRecord> = repo
        .list::<ServiceRecord>(keys::SERVICES)
        .await?
        .into_iter()
        .map(|s| (s.id.clone(), s))
        .collect();
    let nodes: Vec<sched::Node> = repo
        .list::<NodeRecord>(keys::NODES)
        .await?
        .iter()
        .map(to_sched_node)
        .collect();
    let placed: Vec<sched::PlacedTask> = tasks
        .iter()
        .filter(|t| t.state.is_active() && t.state >= TaskState::Assigned)
        .filter_map(|t| {
            let svc = services.get(&t.service)?;
            let request = request_for(t, &svc.spec).ok()?;
            Some(sched::PlacedTask {
                service: t.service.clone(),
                node: t.node.clone()?,
                reservations: request.reservations,
                host_ports: request.host_ports,
            })
        })
        .collect();
    let mut scheduler = sched::Scheduler::new(&nodes, &placed);
    let now = crate::now_ms();
    for task in waiting {
        let Some(service) = services.get(&task.service) else {
            continue;
        };
        let outcome = match (request_for(task, &service.spec), &task.node) {
            (Err(reason), _) => Err(reason),
            // Global tasks are created for their node.
            (Ok(_), Some(node)) => Ok(node.clone()),
            (Ok(request), None) => scheduler.place(&request).map_err(|e| e.to_string()),
        };
        let key = keys::task(&task.service, &task.id);
        match outcome {
            Ok(node) => {
                repo.update::<Task, _>(&key, |mut t| {
                    if !matches!(t.state, TaskState::New | TaskState::Pending)
                        || t.desired != DesiredState::Running
                    {
                        return Ok(Change::Keep);
                    }
                    t.node = Some(node.clone());
                    let _ = t.transition(TaskState::Assigned, format!("assigned to {node}"), now);
                    Ok(Change::Write(t))
                })
                .await?;
            }
            Err(reason) => {
                let changed = task.state != TaskState::Pending || task.message != reason;
                if !changed {
                    continue;
                }
                repo.update::<Task, _>(&key, |mut t| {
                    if t.state == TaskState::New {
                        let _ = t.transition(TaskState::Pending, reason.clone(), now);
                    } else if t.state == TaskState::Pending {
                        t.message.clone_from(&reason);
                    } else {
                        return Ok(Change::Keep);
                    }
                    Ok(Change::Write(t))
                })
                .await?;
                events::record(
                    repo,
                    "task",
                    &task.id,
                    "pending",
                    format!("{}: {reason}", task.service),
                )
                .await;
            }
        }
    }
    Ok(())
}

fn to_sched_node(n: &NodeRecord) -> sched::Node {
    sched::Node {
        id: n.id.clone(),
        hostname: n.hostname.clone(),
        role: sched::Role::Manager,
        labels: n.labels.clone(),
        engine_labels: Default::default(),
        platform: sched::Platform {
            os: n.os.clone(),
            arch: n.arch.clone(),
        },
        availability: match n.availability {
            NodeAvailability::Active => sched::Availability::Active,
            NodeAvailability::Pause => sched::Availability::Pause,
            NodeAvailability::Drain => sched::Availability::Drain,
        },
        status: match n.status {
            NodeStatus::Ready => sched::NodeStatus::Ready,
            NodeStatus::Down => sched::NodeStatus::Down,
        },
        capacity: sched::Resources {
            nano_cpus: n.nano_cpus,
            memory_bytes: n.memory_bytes,
        },
    }
}

/// What the scheduler needs to know of a task, from its service's spec.
fn request_for(task: &Task, spec: &Service) -> Result<sched::TaskRequest, String> {
    let placement = &spec.deploy.placement;
    let constraints = placement
        .constraints
        .iter()
        .map(|c| sched::Constraint::parse(c).map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    let spread_over = placement
        .preferences
        .iter()
        .map(|p| p.strip_prefix("node.labels.").unwrap_or(p).to_string())
        .collect();
    let reservations = &spec.deploy.resources.reservations;
    let host_ports = spec
        .ports
        .iter()
        .filter(|p| p.mode == PortMode::Host)
        .filter_map(|p| {
            Some(sched::HostPort {
                protocol: match p.protocol {
                    flotilla_spec::Protocol::Tcp => sched::Protocol::Tcp,
                    flotilla_spec::Protocol::Udp => sched::Protocol::Udp,
                    flotilla_spec::Protocol::Sctp => sched::Protocol::Sctp,
                },
                port: p.published?,
            })
        })
        .collect();
    Ok(sched::TaskRequest {
        id: task.id.clone(),
        service: task.service.clone(),
        reservations: sched::Resources {
            nano_cpus: (reservations.cpus.unwrap_or(0.0) * 1e9) as u64,
            memory_bytes: reservations.memory.unwrap_or(0),
        },
        constraints,
        spread_over,
        platforms: vec![],
        host_ports,
        max_replicas_per_node: placement.max_replicas_per_node,
    })
}
