//! The slice of a service's spec that reconciliation needs, decoupled from
//! the full Compose model so the rules here stay small and stable.

use flotilla_spec::{DependCondition, DeployMode, RestartCondition, Service};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    Replicated {
        replicas: u64,
    },
    Global,
    /// Run `completions` tasks to successful completion.
    ReplicatedJob {
        completions: u64,
    },
    GlobalJob,
}

impl Mode {
    pub fn is_job(self) -> bool {
        matches!(self, Mode::ReplicatedJob { .. } | Mode::GlobalJob)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RestartOn {
    Never,
    Failure,
    Any,
}

/// Swarm's restart_policy, in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestartRule {
    pub on: RestartOn,
    pub delay_ms: u64,
    /// `None` = unlimited.
    pub max_attempts: Option<u64>,
    /// Only failures that ended within this window count toward
    /// `max_attempts`; 0 = all of them (Swarm's default).
    pub window_ms: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WaitFor {
    Started,
    Healthy,
    CompletedSuccessfully,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dependency {
    /// Service id of the dependency.
    pub service: String,
    pub wait_for: WaitFor,
    /// When false, a dependency that is not part of the stack is ignored.
    pub required: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServicePlan {
    /// `<stack>_<service>`.
    pub id: String,
    pub version: u64,
    pub mode: Mode,
    pub restart: RestartRule,
    pub depends_on: Vec<Dependency>,
}

/// The service id Flotilla uses everywhere: `<stack>_<service>`, as Swarm names stack services.
pub fn service_id(stack: &str, service: &str) -> String {
    format!("{stack}_{service}")
}

impl ServicePlan {
    pub fn from_spec(stack: &str, name: &str, service: &Service, version: u64) -> ServicePlan {
        let deploy = &service.deploy;
        let replicas = deploy.replicas.unwrap_or(1);
        let mode = match deploy.mode {
            DeployMode::Replicated => Mode::Replicated { replicas },
            DeployMode::Global => Mode::Global,
            DeployMode::ReplicatedJob => Mode::ReplicatedJob {
                completions: replicas,
            },
            DeployMode::GlobalJob => Mode::GlobalJob,
        };
        let policy = &deploy.restart_policy;
        let on = match policy.condition {
            RestartCondition::None => RestartOn::Never,
            RestartCondition::OnFailure => RestartOn::Failure,
            RestartCondition::Any => RestartOn::Any,
        };
        let depends_on = service
            .depends_on
            .iter()
            .map(|(dep, d)| Dependency {
                service: service_id(stack, dep),
                wait_for: match d.condition {
                    DependCondition::ServiceStarted => WaitFor::Started,
                    DependCondition::ServiceHealthy => WaitFor::Healthy,
                    DependCondition::ServiceCompletedSuccessfully => WaitFor::CompletedSuccessfully,
                },
                required: d.required,
            })
            .collect();
        ServicePlan {
            id: service_id(stack, name),
            version,
            mode,
            restart: RestartRule {
                on,
                delay_ms: policy.delay.as_millis(),
                max_attempts: policy.max_attempts.filter(|&n| n > 0),
                window_ms: policy.window.as_millis(),
            },
            depends_on,
        }
    }
}
