//! Flotilla's side of the deploy and recover benchmarks (the Swarm-style
//! ones): a `serve-all` process (what `up -d` starts in the background) with
//! its own data dir, listen port and bridge, the test server image imported
//! from a rootfs tar, one-service stacks deployed with `up -d` and scaled with
//! `scale -d`, and replicas watched by polling `ps --output json`. Everything
//! it starts is removed on drop: stacks (`down`), the server, the bridge.

use crate::procutil::{self, ChildGuard, Mem};
use crate::swarm_events::Replicas;
use anyhow::{bail, Context as _, Result};
use serde_json::Value;
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub const IMAGE: &str = "bench-testserver:bench";
/// The service's name inside each stack.
pub const SERVICE: &str = "web";
/// A bridge and subnet no other test or benchmark uses.
pub const BRIDGE_NAME: &str = "flbench-sw0";
pub const BRIDGE_SUBNET: &str = "10.215.0.0/24";
/// The stack's network: one /24 from this pool (its bridge is
/// `flb0ad71000` + `24`, named after the subnet by the agent).
pub const NETWORK_POOL: &str = "10.215.16.0/24";
const STACK_BRIDGE: &str = "flb0ad7100024";
/// How often Flotilla's side is polled (one `ps --output json` per poll).
pub const POLL: Duration = Duration::from_millis(25);

/// The health check both sides run (exec form, the test server's probe mode).
#[derive(Clone, Debug)]
pub struct Health {
    pub interval_ms: u64,
    pub timeout_ms: u64,
    pub retries: u64,
}

pub const HEALTH: Health = Health {
    interval_ms: 1000,
    timeout_ms: 1000,
    retries: 3,
};

/// The stack file: one service of `replicas` test servers, the shared
/// health check, and restarts without delay (as the Swarm side).
pub fn stack_yaml(replicas: usize, h: &Health) -> String {
    format!(
        "services:\n  {SERVICE}:\n    image: {IMAGE}\n    entrypoint: [\"/bench-testserver\", \"--listen\", \"0.0.0.0:8080\"]\n    healthcheck:\n      test: [\"CMD\", \"/bench-testserver\", \"probe\", \"127.0.0.1:8080\"]\n      interval: {}ms\n      timeout: {}ms\n      retries: {}\n      start_period: 30s\n      start_interval: 100ms\n    deploy:\n      replicas: {replicas}\n      restart_policy:\n        condition: any\n        delay: 0s\n",
        h.interval_ms, h.timeout_ms, h.retries
    )
}

/// Running and healthy task ids from `ps --output json` (a list of tasks).
pub fn replicas_of(tasks: &Value) -> Result<Replicas> {
    let Some(list) = tasks.as_array() else {
        bail!("flotilla ps --output json: expected a JSON list of tasks, got {tasks}");
    };
    let mut r = Replicas::default();
    for t in list {
        let (Some(id), Some(state)) = (t["id"].as_str(), t["state"].as_str()) else {
            bail!("flotilla ps --output json: a task without string `id` and `state`: {t}");
        };
        if state.eq_ignore_ascii_case("running") {
            r.running.insert(id.to_string());
            if t["health"]
                .as_str()
                .is_some_and(|h| h.eq_ignore_ascii_case("healthy"))
            {
                r.healthy.insert(id.to_string());
            }
        }
    }
    Ok(r)
}

pub struct Flotilla {
    bin: PathBuf,
    data_dir: PathBuf,
    dir: PathBuf,
    url: String,
    server: Option<ChildGuard>,
    stacks: RefCell<Vec<String>>,
    pub version: String,
}

impl Flotilla {
    /// Imports the image from `<dir>/rootfs.tar` and starts `serve-all` on a
    /// free loopback port; returns once the API answers.
    pub fn start(bin: &Path, dir: &Path) -> Result<Flotilla> {
        let data_dir = dir.join("flotilla-data");
        let port = free_port()?;
        let mut f = Flotilla {
            bin: bin.to_path_buf(),
            data_dir,
            dir: dir.to_path_buf(),
            url: format!("http://127.0.0.1:{port}"),
            server: None,
            stacks: RefCell::new(Vec::new()),
            version: procutil::version_line(&bin.to_string_lossy(), &["--version"])
                .unwrap_or_default(),
        };
        procutil::output(
            f.cmd()
                .args(["image", "import"])
                .arg(dir.join("rootfs.tar"))
                .args(["--name", IMAGE]),
        )
        .context("importing the test server rootfs into Flotilla")?;
        let log = std::fs::File::create(dir.join("serve-all.log"))?;
        let mut serve = f.cmd();
        serve
            .args(["serve-all", "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        f.server = Some(ChildGuard::spawn("flotilla serve-all", &mut serve)?);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            crate::interrupt::check()?;
            if let Some(s) = f.server.as_mut() {
                s.ensure_running()
                    .with_context(|| format!("see {}", dir.join("serve-all.log").display()))?;
            }
            if procutil::output(f.cmd().args(["--output", "json", "services"])).is_ok() {
                return Ok(f);
            }
            if Instant::now() > deadline {
                bail!("flotilla serve-all did not answer on {} within 30 s", f.url);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `flotilla --data-dir D` with the server URL and the benchmark's bridge.
    fn cmd(&self) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--data-dir")
            .arg(&self.data_dir)
            .env("FLOTILLA_SERVER", &self.url)
            .env("FLOTILLA_BRIDGE_NAME", BRIDGE_NAME)
            .env("FLOTILLA_BRIDGE_SUBNET", BRIDGE_SUBNET)
            .env("FLOTILLA_NETWORK_POOL", NETWORK_POOL)
            .env("FLOTILLA_NETWORK_PREFIX", "24");
        c
    }

    pub fn server_pid(&self) -> u32 {
        self.server.as_ref().map_or(0, ChildGuard::pid)
    }

    /// `up -d` of `stack` with `replicas`: returns once the server accepted it.
    pub fn up(&self, stack: &str, replicas: usize) -> Result<()> {
        let file = self.dir.join(format!("{stack}.yaml"));
        std::fs::write(&file, stack_yaml(replicas, &HEALTH))?;
        self.stacks.borrow_mut().push(stack.to_string());
        procutil::output(self.cmd().args(["up", "-d", "-p", stack, "-f"]).arg(&file))
            .with_context(|| format!("flotilla up -d -p {stack}"))?;
        Ok(())
    }

    /// `scale -d web=N`: returns once the server accepted it.
    pub fn scale(&self, stack: &str, replicas: usize) -> Result<()> {
        procutil::output(
            self.cmd()
                .args(["scale", "-d", "-p", stack])
                .arg(format!("{SERVICE}={replicas}")),
        )
        .with_context(|| format!("flotilla scale -p {stack} {SERVICE}={replicas}"))?;
        Ok(())
    }

    /// `down`: removes the stack and waits for its tasks to stop.
    pub fn down(&self, stack: &str) -> Result<()> {
        procutil::output(self.cmd().args(["down", "-p", stack]))
            .with_context(|| format!("flotilla down -p {stack}"))?;
        self.stacks.borrow_mut().retain(|s| s != stack);
        Ok(())
    }

    pub fn tasks(&self, stack: &str) -> Result<Value> {
        let out = procutil::output(self.cmd().args(["--output", "json", "ps", "-p", stack]))?;
        serde_json::from_str(&out).context("flotilla ps --output json: not JSON")
    }

    pub fn replicas(&self, stack: &str) -> Result<Replicas> {
        replicas_of(&self.tasks(stack)?)
    }

    /// The host pid of a task's container's main process (`container inspect`).
    pub fn pid_of_task(&self, stack: &str, task: &str) -> Result<u32> {
        let tasks = self.tasks(stack)?;
        let container = tasks
            .as_array()
            .and_then(|l| l.iter().find(|t| t["id"].as_str() == Some(task)))
            .and_then(|t| t["container_id"].as_str())
            .with_context(|| format!("task {task} has no container_id in `ps --output json`"))?
            .to_string();
        let out = procutil::output(self.cmd().args([
            "--output",
            "json",
            "container",
            "inspect",
            &container,
        ]))?;
        let v: Value = serde_json::from_str(&out).context("container inspect: not JSON")?;
        find_pid(&v).with_context(|| {
            format!("flotilla container inspect {container}: no `pid` field in {out}")
        })
    }

    /// The `serve-all` process and every container monitor under our data dir.
    pub fn memory(&self) -> (Mem, Vec<Mem>) {
        let server = procutil::mem_of(self.server_pid()).unwrap_or_default();
        let dd = self.data_dir.to_string_lossy().into_owned();
        // `flotilla internal monitor-wait <data-dir>/containers/<id> ...`
        let monitors = procutil::find_processes(|c| {
            c.iter().any(|a| a.starts_with("monitor"))
                && c.iter().any(|a| a.starts_with(dd.as_str()))
        });
        (
            server,
            monitors.into_iter().filter_map(procutil::mem_of).collect(),
        )
    }
}

impl Drop for Flotilla {
    fn drop(&mut self) {
        let stacks = self.stacks.borrow().clone();
        for s in stacks {
            if let Err(e) = self.down(&s) {
                eprintln!("warning: {e:#}");
            }
        }
        if let Some(mut s) = self.server.take() {
            s.stop();
        }
        self.remove_leftover_containers();
        // The bridge outlives the server (it is the node's); it is ours alone.
        for bridge in [BRIDGE_NAME, STACK_BRIDGE] {
            if Path::new("/sys/class/net").join(bridge).exists() {
                let _ = procutil::output(Command::new("ip").args(["link", "delete", bridge]));
            }
        }
    }
}

impl Flotilla {
    /// Containers of tasks that failed (the kill -9 victims) outlive `down`:
    /// their exited containers keep their rootfs mounted under the data dir.
    /// Remove them (`container rm -f`), then unmount anything still mounted
    /// there, so the temp dir can go.
    fn remove_leftover_containers(&self) {
        let listed =
            procutil::output(
                self.cmd()
                    .args(["--output", "json", "container", "ps", "-a"]),
            );
        if let Ok(Ok(Value::Array(list))) = listed.as_deref().map(serde_json::from_str::<Value>) {
            let ids: Vec<&str> = list.iter().filter_map(|c| c["id"].as_str()).collect();
            if !ids.is_empty() {
                let _ = procutil::output(self.cmd().args(["container", "rm", "-f"]).args(&ids));
            }
        }
        let prefix = format!("{}/", self.data_dir.display());
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        let mut under: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split(' ').nth(1))
            .filter(|m| m.starts_with(&prefix))
            .collect();
        under.sort_unstable_by(|a, b| b.cmp(a));
        for m in under {
            let _ = nix::mount::umount2(m, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

/// A `pid` number (the container's main process) at any depth.
fn find_pid(v: &Value) -> Option<u32> {
    match v {
        Value::Object(m) => m
            .get("pid")
            .and_then(Value::as_u64)
            .filter(|p| *p > 0)
            .map(|p| p as u32)
            .or_else(|| m.values().find_map(find_pid)),
        Value::Array(a) => a.iter().find_map(find_pid),
        _ => None,
    }
}

/// A loopback port nobody listens on right now.
fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(l.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_from_ps_json() {
        let v = serde_json::json!([
            {"id": "t1", "state": "running", "health": "healthy"},
            {"id": "t2", "state": "running", "health": "starting"},
            {"id": "t3", "state": "failed", "health": "healthy"},
        ]);
        let r = replicas_of(&v).unwrap();
        assert_eq!(r.running.len(), 2);
        assert_eq!(r.healthy.iter().collect::<Vec<_>>(), vec!["t1"]);
        assert!(replicas_of(&serde_json::json!({"x": 1})).is_err());
        assert!(replicas_of(&serde_json::json!([{"id": 1}])).is_err());
    }

    #[test]
    fn stack_file_loads_with_our_health_check() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("stack.yaml");
        std::fs::write(&file, stack_yaml(30, &HEALTH)).unwrap();
        let opts = flotilla_compose::LoadOptions {
            files: vec![file],
            project_name: Some("fbtest".into()),
            working_dir: Some(dir.path().to_path_buf()),
            ..Default::default()
        };
        let Ok(loaded) = flotilla_compose::load(&opts) else {
            panic!("the generated stack file does not load");
        };
        let web = &loaded.stack.services[SERVICE];
        assert_eq!(web.deploy.replicas, Some(30));
        let check = web.healthcheck.as_ref().unwrap();
        assert_eq!(check.interval.as_millis(), HEALTH.interval_ms);
        assert_eq!(web.deploy.restart_policy.delay.as_millis(), 0);
    }

    #[test]
    fn pid_found_at_any_depth_but_not_zero() {
        assert_eq!(
            find_pid(&serde_json::json!({"state": {"pid": 42}})),
            Some(42)
        );
        assert_eq!(find_pid(&serde_json::json!({"pid": 0})), None);
    }
}
