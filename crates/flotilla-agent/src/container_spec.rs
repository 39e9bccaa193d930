//! Translate a task of a service into the runtime's `ContainerSpec`. Pure.

use flotilla_core::Task;
use flotilla_net::NetworkMode;
use flotilla_runtime::{ContainerSpec, MountSpec};
use flotilla_spec::{MountType, Service};
use std::path::PathBuf;
use std::time::Duration;

/// Labels that tie a container to its task; the agent re-adopts by them.
pub const LABEL_TASK: &str = "io.flotilla.task";
pub const LABEL_SERVICE: &str = "io.flotilla.service";
pub const LABEL_SLOT: &str = "io.flotilla.slot";

/// Container name, like Swarm's `<service>.<slot>.<task id>`.
pub fn container_name(task: &Task) -> String {
    let slot = if task.slot > 0 {
        task.slot.to_string()
    } else {
        task.node.clone().unwrap_or_default()
    };
    format!("{}.{}.{}", task.service, slot, task.id)
}

/// The stack a service id belongs to (`<stack>_<service>`).
fn stack_of(service_id: &str) -> &str {
    service_id
        .split_once('_')
        .map_or(service_id, |(stack, _)| stack)
}

pub fn container_spec(
    task: &Task,
    spec: &Service,
    network: NetworkMode,
) -> Result<ContainerSpec, String> {
    let image = spec
        .image
        .clone()
        .ok_or_else(|| format!("service {} has no image", task.service))?;
    let stack = stack_of(&task.service);
    let mut c = ContainerSpec::new(image);
    c.name = Some(container_name(task));
    c.entrypoint.clone_from(&spec.entrypoint);
    c.cmd = spec.command.clone().unwrap_or_default();
    // Variables without a value (`- KEY`) were resolved at load time; any still empty are skipped.
    c.env = spec
        .environment
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
        .collect();
    c.workdir.clone_from(&spec.working_dir);
    c.user.clone_from(&spec.user);
    c.hostname = spec
        .hostname
        .clone()
        .or_else(|| Some(task.id.chars().take(12).collect()));
    c.read_only = spec.read_only;
    let limits = &spec.deploy.resources.limits;
    c.memory = limits.memory.or(spec.mem_limit);
    c.cpus = limits.cpus.or(spec.cpus);
    c.pids_limit = limits.pids.or(spec.pids_limit);
    c.network = network;
    c.stop_signal.clone_from(&spec.stop_signal);
    c.stop_grace = Some(Duration::from_millis(spec.stop_grace_period.as_millis()));
    c.labels = spec.labels.clone();
    c.labels.insert(LABEL_TASK.into(), task.id.clone());
    c.labels.insert(LABEL_SERVICE.into(), task.service.clone());
    c.labels.insert(LABEL_SLOT.into(), task.slot.to_string());
    for (i, m) in spec.volumes.iter().enumerate() {
        let mount = match m.kind {
            MountType::Bind => MountSpec::Bind {
                source: PathBuf::from(
                    m.source
                        .clone()
                        .ok_or_else(|| format!("bind mount {} has no source", m.target))?,
                ),
                target: m.target.clone(),
                read_only: m.read_only,
            },
            MountType::Volume => MountSpec::Volume {
                // Compose names a stack's volumes `<project>_<name>`; an anonymous one gets its own.
                name: match &m.source {
                    Some(name) => format!("{stack}_{name}"),
                    None => format!("{}_anon{i}", task.service),
                },
                target: m.target.clone(),
                read_only: m.read_only,
            },
            MountType::Tmpfs => MountSpec::Tmpfs {
                target: m.target.clone(),
                size_bytes: m.tmpfs.as_ref().and_then(|t| t.size),
            },
            ref other => {
                return Err(format!(
                    "mount type {other:?} for {} is not supported yet",
                    m.target
                ))
            }
        };
        c.mounts.push(mount);
    }
    for t in &spec.tmpfs {
        c.mounts.push(MountSpec::Tmpfs {
            target: t.split(':').next().unwrap_or(t).to_string(),
            size_bytes: None,
        });
    }
    Ok(c)
}
