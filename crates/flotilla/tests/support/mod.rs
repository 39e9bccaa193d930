//! Shared harness for the stack tests (`stack_*.rs`): a private data dir,
//! API port, bridge name and /28 subnet per test, the busybox image imported,
//! and a guard that kills the background server (by the pid it recorded),
//! force-removes leftover containers and the bridge even when a test fails.
#![allow(dead_code)] // each test file uses a different subset

use flotilla_runtime::{HelperCommand, Runtime};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub const IMAGE: &str = "busybox:local";

pub struct Env {
    pub tmp: tempfile::TempDir,
    pub data: PathBuf,
    pub project_dir: PathBuf,
    pub server: String,
    pub bridge: String,
    pub subnet: String,
    /// This test's pool for stack networks (a /26 carved into /28s).
    pub pool: String,
    /// The prefix length of each stack network carved from `pool`.
    pub prefix: u8,
}

impl Env {
    /// `n` tells apart the tests of this file (they run as separate processes).
    pub fn new(n: u32) -> Env {
        let tmp = tempfile::Builder::new()
            .prefix("flotilla-stack-")
            .tempdir()
            .unwrap();
        let data = tmp.path().join("data");
        let tar = flotilla_testkit::busybox_rootfs_tar(tmp.path());
        flotilla_image::ImageStore::open(&data)
            .unwrap()
            .import(&tar, Some(IMAGE))
            .unwrap();
        let project_dir = tmp.path().join(format!("stk{n}"));
        std::fs::create_dir_all(&project_dir).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // A /28 per (process, test): 4096 of them in 10.215.0.0/16.
        let idx = (std::process::id() * 8 + n) % 4096;
        let subnet = format!("10.215.{}.{}/28", idx / 16, (idx % 16) * 16);
        let bridge = format!("fst{}", idx);
        // Stack networks: a /26 per (process, test) in 10.216.0.0/16, four /28s.
        let pool = format!("10.216.{}.{}/26", idx / 4 % 256, (idx % 4) * 64);
        Env {
            tmp,
            data,
            project_dir,
            server: format!("http://127.0.0.1:{port}"),
            bridge,
            subnet,
            pool,
            prefix: 28,
        }
    }

    /// Like [`Env::new`], with a /24 pool carved into /`prefix` stack
    /// networks, for stacks with more tasks than a /28 holds.
    pub fn with_big_pool(n: u32, prefix: u8) -> Env {
        let mut env = Env::new(n);
        let idx = (std::process::id() * 8 + n) % 256;
        env.pool = format!("10.217.{idx}.0/24");
        env.prefix = prefix;
        env
    }

    pub fn write_stack(&self, yaml: &str) {
        std::fs::write(self.project_dir.join("compose.yaml"), yaml).unwrap();
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_flotilla"));
        c.arg("--data-dir")
            .arg(&self.data)
            .args(args)
            .current_dir(&self.project_dir)
            .env("FLOTILLA_SERVER", &self.server)
            .env("FLOTILLA_BRIDGE_NAME", &self.bridge)
            .env("FLOTILLA_BRIDGE_SUBNET", &self.subnet)
            .env("FLOTILLA_NETWORK_POOL", &self.pool)
            .env("FLOTILLA_NETWORK_PREFIX", self.prefix.to_string())
            .env_remove("FLOTILLA_TOKEN")
            .stdin(Stdio::null());
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?} failed ({:?}):\nstdout: {}\nstderr: {}\nserver log: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.server_log()
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.extend(["--output", "json"]);
        let text = self.ok(&a);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {text}"))
    }

    pub fn server_log(&self) -> String {
        std::fs::read_to_string(self.data.join("server.log")).unwrap_or_default()
    }

    pub fn server_pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.data.join("server.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Ids of this data dir's containers (all states).
    pub fn containers(&self) -> Vec<String> {
        let v = self.json(&["container", "ps", "-a"]);
        v.as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_string())
            .collect()
    }

    pub fn running_containers(&self) -> Vec<String> {
        let v = self.json(&["container", "ps"]);
        let mut ids: Vec<String> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_string())
            .collect();
        ids.sort();
        ids
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        // The background server the test's `up -d` started: only that pid.
        if let Some(pid) = self.server_pid() {
            if pid > 1 && is_our_server(pid, &self.data) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        let helper = HelperCommand {
            exe: env!("CARGO_BIN_EXE_flotilla").into(),
            prefix: vec!["internal".into()],
        };
        if let Ok(rt) = Runtime::with_helper(&self.data, helper) {
            for c in rt.list().unwrap_or_default() {
                let _ = rt.remove(&c.id, true);
            }
        }
        let net = flotilla_net::BridgeNetwork {
            name: "bridge".into(),
            bridge: self.bridge.clone(),
            subnet: self.subnet.parse().unwrap(),
            ip_range: None,
            embedded_dns: false,
        };
        if let Ok(m) = flotilla_net::NetManager::new(&self.data.join("net")) {
            let _ = m.remove_bridge(&net);
            // Stack networks: every /28 of this test's pool, and the isolation rules.
            let pool: flotilla_net::Ipv4Net = self.pool.parse().unwrap();
            for subnet in pool.subnets(self.prefix).unwrap() {
                let record = flotilla_core::network::NetworkRecord {
                    name: "cleanup".into(),
                    stack: String::new(),
                    key: String::new(),
                    subnet,
                    internal: false,
                    created_at: 0,
                };
                let _ = m.remove_bridge(&flotilla_agent::bridge_of(&record));
            }
            let _ = m.clear_isolation();
        }
        let _ = &self.tmp;
    }
}

/// The pid still belongs to a flotilla serve-all of this test's data dir
/// (pids get reused; never signal a stranger).
pub fn is_our_server(pid: i32, data: &Path) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| {
            let s = String::from_utf8_lossy(&c);
            s.contains("serve-all") && s.contains(&*data.to_string_lossy())
        })
        .unwrap_or(false)
}

pub fn tasks_of<'a>(ps: &'a Value, service: &str) -> Vec<&'a Value> {
    ps.as_array()
        .unwrap()
        .iter()
        .filter(|t| t["service"] == service)
        .collect()
}

/// Polls `probe` every 100 ms until it returns Some, or panics with `what`
/// and the last observation after `limit` (a bound against hangs, not a
/// timing assertion).
pub fn wait_for<T>(
    what: &str,
    limit: std::time::Duration,
    mut probe: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = std::time::Instant::now() + limit;
    loop {
        match probe() {
            Ok(v) => return v,
            Err(last) if std::time::Instant::now() >= deadline => {
                panic!("gave up waiting for {what}; last seen: {last}")
            }
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(100)),
        }
    }
}

impl Env {
    /// `ps -a --output json` as a list of task objects.
    pub fn all_tasks(&self) -> Vec<Value> {
        self.json(&["ps", "-a"]).as_array().unwrap().clone()
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
