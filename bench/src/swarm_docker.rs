//! Docker Swarm's side of the deploy and recover benchmarks: a single-node
//! swarm on the engine `bench/run` provides, the test server image built from
//! the same rootfs tar Flotilla imports, services created and scaled through
//! the `docker` CLI, and the daemons' memory. Everything it creates (services,
//! the image, the swarm itself when it initialised it) goes away on drop.

use crate::procutil::{self, Mem};
use anyhow::{bail, Context as _, Result};
use std::cell::RefCell;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

pub const IMAGE: &str = "flotilla-bench/testserver:bench";
/// Label on every service the benchmark creates (for the leftovers sweep).
const LABEL: &str = "flotilla-bench-swarm";

/// The image's Dockerfile: the rootfs tar (same bytes as Flotilla's import)
/// on `scratch`, with the health check in exec form so no shell is needed;
/// `docker service create --health-cmd` would be shell form (`CMD-SHELL`).
fn dockerfile(health: &crate::swarm_flotilla::Health) -> String {
    format!(
        "FROM scratch\n\
         ADD rootfs.tar /\n\
         HEALTHCHECK --interval={}ms --timeout={}ms --retries={} CMD [\"/bench-testserver\", \"probe\", \"127.0.0.1:8080\"]\n\
         ENTRYPOINT [\"/bench-testserver\", \"--listen\", \"0.0.0.0:8080\"]\n",
        health.interval_ms, health.timeout_ms, health.retries
    )
}

pub struct Swarm {
    /// We ran `swarm init`, so we `swarm leave --force` at the end.
    initialised: bool,
    /// There was no `docker_gwbridge` network before our `swarm init`: the
    /// swarm creates it (a host bridge) with its first task and `swarm leave`
    /// keeps it, so we remove it at the end.
    gwbridge_is_ours: bool,
    services: RefCell<Vec<String>>,
    pub version: String,
}

impl Swarm {
    /// Makes this engine a single-node swarm manager (unless it already is)
    /// and builds the image from `<dir>/rootfs.tar`.
    pub fn start(dir: &Path, health: &crate::swarm_flotilla::Health) -> Result<Swarm> {
        if procutil::which("docker").is_none() {
            bail!("docker CLI not installed (Debian package docker.io)");
        }
        let version = procutil::output(Command::new("docker").args([
            "version",
            "--format",
            "{{.Server.Version}}",
        ]))
        .context("no Docker daemon reachable")?
        .trim()
        .to_string();
        let state = procutil::output(Command::new("docker").args([
            "info",
            "--format",
            "{{.Swarm.LocalNodeState}}",
        ]))?;
        let mut swarm = Swarm {
            initialised: false,
            gwbridge_is_ours: false,
            services: RefCell::new(Vec::new()),
            version,
        };
        if state.trim() != "active" {
            swarm.gwbridge_is_ours = !gwbridge_exists();
            // Loopback only: nothing of the swarm's control plane listens outside.
            procutil::output(Command::new("docker").args([
                "swarm",
                "init",
                "--advertise-addr",
                "127.0.0.1",
                "--listen-addr",
                "127.0.0.1:2377",
            ]))
            .context("docker swarm init")?;
            swarm.initialised = true;
        }
        std::fs::write(dir.join("Dockerfile"), dockerfile(health))?;
        procutil::output(
            Command::new("docker")
                .args(["build", "-q", "-t", IMAGE])
                .arg(dir),
        )
        .context("docker build of the test server image (FROM scratch)")?;
        Ok(swarm)
    }

    /// `docker service create --detach`: returns once the manager accepted it.
    pub fn create(&self, name: &str, replicas: usize) -> Result<()> {
        self.services.borrow_mut().push(name.to_string());
        procutil::output(
            Command::new("docker")
                .args(["service", "create", "--detach", "--name", name])
                .arg("--replicas")
                .arg(replicas.to_string())
                // Like the Flotilla stack: restart at once (Swarm's default waits 5 s).
                .args(["--restart-condition", "any", "--restart-delay", "0s"])
                .args(["--label", LABEL, IMAGE]),
        )
        .with_context(|| format!("docker service create {name}"))?;
        Ok(())
    }

    /// `docker service scale --detach NAME=N`.
    pub fn scale(&self, name: &str, replicas: usize) -> Result<()> {
        procutil::output(
            Command::new("docker")
                .args(["service", "scale", "--detach"])
                .arg(format!("{name}={replicas}")),
        )
        .with_context(|| format!("docker service scale {name}={replicas}"))?;
        Ok(())
    }

    /// Full container ids of the service's running (optionally only healthy) replicas.
    pub fn containers(&self, name: &str, healthy_only: bool) -> Result<Vec<String>> {
        let mut cmd = Command::new("docker");
        cmd.args(["ps", "-q", "--no-trunc", "--filter"])
            .arg(format!("label=com.docker.swarm.service.name={name}"));
        if healthy_only {
            cmd.args(["--filter", "health=healthy"]);
        }
        Ok(procutil::output(&mut cmd)?
            .split_whitespace()
            .map(str::to_string)
            .collect())
    }

    /// The host pid of a container's main process.
    pub fn pid(&self, container: &str) -> Result<u32> {
        let out = procutil::output(Command::new("docker").args([
            "inspect",
            "-f",
            "{{.State.Pid}}",
            container,
        ]))?;
        match out.trim().parse::<u32>() {
            Ok(p) if p > 0 => Ok(p),
            _ => bail!(
                "docker inspect {container}: expected a pid, got {:?}",
                out.trim()
            ),
        }
    }

    /// `docker service rm`, then waits until its containers are gone.
    pub fn remove(&self, name: &str) -> Result<()> {
        procutil::output(Command::new("docker").args(["service", "rm", name]))?;
        self.services.borrow_mut().retain(|s| s != name);
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let left = procutil::output(
                Command::new("docker")
                    .args(["ps", "-aq", "--filter"])
                    .arg(format!("label=com.docker.swarm.service.name={name}")),
            )?;
            if left.trim().is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("Swarm service {name}: containers still there 120 s after docker service rm");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// dockerd, containerd and the shims of `containers`.
    pub fn memory(&self, containers: &[String]) -> Result<DockerMemory> {
        let dockerd = dockerd_pid()?;
        let tree = procutil::process_tree(dockerd);
        let is_containerd = |c: &[String]| {
            c.first()
                .is_some_and(|p| p.ends_with("containerd") && !p.contains("shim"))
        };
        let containerd = tree
            .iter()
            .copied()
            .find(|p| procutil::cmdline(*p).is_some_and(|c| is_containerd(&c)))
            .or_else(|| {
                // A system containerd that dockerd talks to (not its child).
                let all = procutil::find_processes(is_containerd);
                (all.len() == 1).then(|| all[0])
            });
        let shims = procutil::find_processes(|c| {
            c.first().is_some_and(|p| p.contains("containerd-shim"))
                && c.windows(2)
                    .any(|w| w[0] == "-id" && containers.contains(&w[1]))
        });
        let shim_mems: Vec<Mem> = shims.iter().filter_map(|p| procutil::mem_of(*p)).collect();
        Ok(DockerMemory {
            dockerd: procutil::mem_of(dockerd).unwrap_or_default(),
            containerd: containerd.and_then(procutil::mem_of),
            shims: shim_mems.len(),
            shims_rss_kib: shim_mems.iter().map(|m| m.rss_kib).sum(),
            shims_pss_kib: shim_mems.iter().map(|m| m.pss_kib).sum(),
        })
    }
}

impl Drop for Swarm {
    fn drop(&mut self) {
        for name in self.services.borrow().iter() {
            let _ = procutil::output(Command::new("docker").args(["service", "rm", name]));
        }
        // Wait (bounded) for the tasks to go, so the image can be removed.
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let left = procutil::output(
                Command::new("docker")
                    .args(["ps", "-aq", "--filter"])
                    .arg(format!("ancestor={IMAGE}")),
            )
            .unwrap_or_default();
            if left.trim().is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        if self.initialised {
            if let Err(e) =
                procutil::output(Command::new("docker").args(["swarm", "leave", "--force"]))
            {
                eprintln!("warning: docker swarm leave --force failed: {e:#}");
            }
        }
        if self.initialised && self.gwbridge_is_ours && gwbridge_exists() {
            if let Err(e) =
                procutil::output(Command::new("docker").args(["network", "rm", "docker_gwbridge"]))
            {
                eprintln!(
                    "warning: removing the docker_gwbridge network swarm init created: {e:#}"
                );
            }
        }
        let _ = procutil::output(Command::new("docker").args(["rmi", "-f", IMAGE]));
    }
}

pub struct DockerMemory {
    pub dockerd: Mem,
    pub containerd: Option<Mem>,
    pub shims: usize,
    pub shims_rss_kib: u64,
    pub shims_pss_kib: Option<u64>,
}

fn gwbridge_exists() -> bool {
    procutil::output(Command::new("docker").args(["network", "inspect", "docker_gwbridge"])).is_ok()
}

/// The dockerd the CLI talks to: the only one, or the one whose command line
/// names `$DOCKER_HOST`'s socket (bench/run's private engine).
fn dockerd_pid() -> Result<u32> {
    let all = procutil::find_processes(|c| c.first().is_some_and(|p| p.ends_with("dockerd")));
    if all.len() == 1 {
        return Ok(all[0]);
    }
    if let Ok(host) = std::env::var("DOCKER_HOST") {
        let sock = host.trim_start_matches("unix://").to_string();
        if let Some(p) = all.iter().copied().find(|p| {
            procutil::cmdline(*p).is_some_and(|c| c.iter().any(|a| a.contains(sock.as_str())))
        }) {
            return Ok(p);
        }
    }
    bail!(
        "found {} dockerd processes and none names $DOCKER_HOST's socket",
        all.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockerfile_has_exec_form_health_check_with_our_timings() {
        let h = crate::swarm_flotilla::Health {
            interval_ms: 1000,
            timeout_ms: 1000,
            retries: 3,
        };
        let d = dockerfile(&h);
        assert!(d.starts_with("FROM scratch\n"), "{d}");
        assert!(
            d.contains("HEALTHCHECK --interval=1000ms --timeout=1000ms --retries=3 CMD [\"/bench-testserver\", \"probe\""),
            "{d}"
        );
    }
}
