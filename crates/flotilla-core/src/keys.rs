//! Where each object lives in the store. One place, so the layout is easy to
//! see and to change.

pub const SERVICES: &str = "/services/";
pub const TASKS: &str = "/tasks/";
pub const NODES: &str = "/nodes/";
pub const EVENTS: &str = "/events/";
pub const TOKENS: &str = "/auth/tokens/";
pub const NETWORKS: &str = "/networks/";
pub const VIPS: &str = "/vips/";

pub fn service(id: &str) -> String {
    format!("{SERVICES}{id}")
}

/// All tasks of a service share a prefix, so one list returns them.
pub fn tasks_of(service: &str) -> String {
    format!("{TASKS}{service}/")
}

pub fn task(service: &str, task: &str) -> String {
    format!("{TASKS}{service}/{task}")
}

pub fn network(name: &str) -> String {
    format!("{NETWORKS}{name}")
}

/// The VIPs of one network share a prefix.
pub fn vips_of(network: &str) -> String {
    format!("{VIPS}{network}/")
}

pub fn vip(network: &str, service: &str) -> String {
    format!("{VIPS}{network}/{service}")
}

pub fn node(id: &str) -> String {
    format!("{NODES}{id}")
}

/// Events sort by time, then by a sequence number that keeps equal times apart.
pub fn event(time: u64, seq: u64) -> String {
    format!("{EVENTS}{time:020}-{seq:010}")
}

pub fn token(hash_hex: &str) -> String {
    format!("{TOKENS}{hash_hex}")
}

/// The service id part of a task key.
pub fn service_of_task_key(key: &str) -> Option<&str> {
    key.strip_prefix(TASKS)?.split('/').next()
}
