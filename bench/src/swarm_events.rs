//! What the deploy and recover benchmarks wait for, on either side: which
//! replicas are running and which are healthy. `Replicas` is the pure state
//! and the conditions on it; `DockerEvents` keeps one up to date from a
//! `docker events` stream (Flotilla's side polls `ps --output json` instead,
//! see `swarm_flotilla`).

use crate::procutil::ChildGuard;
use anyhow::{bail, Result};
use std::collections::BTreeSet;
use std::io::BufRead as _;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

/// Replica ids (Docker container ids, Flotilla task ids) by state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Replicas {
    pub running: BTreeSet<String>,
    pub healthy: BTreeSet<String>,
}

impl Replicas {
    /// At least `n` replicas are healthy.
    pub fn healthy_at_least(&self, n: usize) -> bool {
        self.healthy.len() >= n
    }

    /// A replica that was not there `before` is running (the replacement started).
    pub fn replacement_running(&self, before: &BTreeSet<String>) -> bool {
        self.running.iter().any(|id| !before.contains(id))
    }

    /// Recovered: `n` healthy again, the killed one not among them, and one
    /// of them is new.
    pub fn recovered(&self, n: usize, victim: &str, before: &BTreeSet<String>) -> bool {
        self.healthy.len() >= n
            && !self.healthy.contains(victim)
            && self.healthy.iter().any(|id| !before.contains(id))
    }

    /// Applies one `docker events` line, formatted as `{{.Action}} {{.Actor.ID}}`
    /// (`start 3f2a…`, `health_status: healthy 3f2a…`, `die 3f2a…`).
    /// Returns false for lines it does not understand (ignored).
    pub fn apply_docker_event(&mut self, line: &str) -> bool {
        let line = line.trim();
        let Some((action, id)) = line.rsplit_once(' ') else {
            return false;
        };
        let id = id.to_string();
        match action.trim() {
            "start" => {
                self.running.insert(id);
            }
            "health_status: healthy" => {
                self.running.insert(id.clone());
                self.healthy.insert(id);
            }
            "health_status: unhealthy" => {
                self.healthy.remove(&id);
            }
            "die" | "kill" | "stop" | "destroy" | "oom" => {
                self.running.remove(&id);
                self.healthy.remove(&id);
            }
            _ => return false,
        }
        true
    }
}

/// A `docker events` stream for one Swarm service, applied to shared
/// `Replicas` by a reader thread. The `docker events` process is stopped on drop.
pub struct DockerEvents {
    state: Arc<Mutex<Replicas>>,
    _child: ChildGuard,
}

impl DockerEvents {
    /// Follows container events of `service` from now on (`--since now`, so
    /// nothing that happens after this returns is missed).
    pub fn follow(service: &str) -> Result<DockerEvents> {
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs_f64()
            - 0.5;
        let mut cmd = Command::new("docker");
        cmd.args(["events", "--since"])
            .arg(format!("{since:.3}"))
            .args(["--filter", "type=container", "--filter"])
            .arg(format!("label=com.docker.swarm.service.name={service}"))
            // Not the health checks' exec_* events: 30-60 a second we do not need.
            .args(["--filter", "event=start", "--filter", "event=die"])
            .args(["--filter", "event=health_status"])
            .args(["--format", "{{.Action}} {{.Actor.ID}}"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = ChildGuard::spawn("docker events", &mut cmd)?;
        let Some(out) = child.child_mut().stdout.take() else {
            bail!("docker events: no stdout pipe");
        };
        let state = Arc::new(Mutex::new(Replicas::default()));
        let shared = Arc::clone(&state);
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if let Ok(mut s) = shared.lock() {
                    s.apply_docker_event(&line);
                }
            }
        });
        Ok(DockerEvents {
            state,
            _child: child,
        })
    }

    pub fn snapshot(&self) -> Replicas {
        self.state.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ids: &[&str]) -> BTreeSet<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn docker_events_track_running_and_healthy() {
        let mut r = Replicas::default();
        assert!(r.apply_docker_event("start aaa"));
        assert!(r.apply_docker_event("start bbb"));
        assert!(r.apply_docker_event("health_status: healthy aaa\n"));
        assert_eq!(r.running, set(&["aaa", "bbb"]));
        assert_eq!(r.healthy, set(&["aaa"]));
        assert!(r.apply_docker_event("die aaa"));
        assert_eq!(r.running, set(&["bbb"]));
        assert!(r.healthy.is_empty());
        assert!(!r.apply_docker_event("exec_start: /x probe ccc"));
        assert!(!r.apply_docker_event("garbage"));
    }

    #[test]
    fn recovered_needs_count_new_replica_and_no_victim() {
        let before = set(&["a", "b", "c"]);
        let mut r = Replicas {
            running: set(&["a", "b", "c"]),
            healthy: set(&["a", "b", "c"]),
        };
        // Right after the kill nothing changed yet: not recovered.
        assert!(!r.recovered(3, "a", &before));
        r.apply_docker_event("die a");
        r.apply_docker_event("start d");
        assert!(r.replacement_running(&before));
        assert!(!r.recovered(3, "a", &before));
        r.apply_docker_event("health_status: healthy d");
        assert!(r.recovered(3, "a", &before));
        assert!(r.healthy_at_least(3));
    }
}
