//! The stack verbs end to end through the real binary (root only): `up -d
//! --wait` starts a background server + agent, the services run as real
//! containers, `ps`/`services`/`events` answer in JSON, `scale` and `down`
//! converge, and a `kill -9`'d server's containers are re-adopted.
//!
//! Each test has its own data dir, API port, bridge name and /28 subnet
//! inside 10.215.0.0/16, and a guard that kills the background server (by
//! the pid it recorded), force-removes leftover containers and the bridge.

use flotilla_runtime::{HelperCommand, Runtime};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const IMAGE: &str = "busybox:local";

struct Env {
    tmp: tempfile::TempDir,
    data: PathBuf,
    project_dir: PathBuf,
    server: String,
    bridge: String,
    subnet: String,
}

impl Env {
    /// `n` tells apart the tests of this file (they run as separate processes).
    fn new(n: u32) -> Env {
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
        Env {
            tmp,
            data,
            project_dir,
            server: format!("http://127.0.0.1:{port}"),
            bridge,
            subnet,
        }
    }

    fn write_stack(&self, yaml: &str) {
        std::fs::write(self.project_dir.join("compose.yaml"), yaml).unwrap();
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_flotilla"));
        c.arg("--data-dir")
            .arg(&self.data)
            .args(args)
            .current_dir(&self.project_dir)
            .env("FLOTILLA_SERVER", &self.server)
            .env("FLOTILLA_BRIDGE_NAME", &self.bridge)
            .env("FLOTILLA_BRIDGE_SUBNET", &self.subnet)
            .env_remove("FLOTILLA_TOKEN")
            .stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
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

    fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.extend(["--output", "json"]);
        let text = self.ok(&a);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {text}"))
    }

    fn server_log(&self) -> String {
        std::fs::read_to_string(self.data.join("server.log")).unwrap_or_default()
    }

    fn server_pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.data.join("server.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Ids of this data dir's containers (all states).
    fn containers(&self) -> Vec<String> {
        let v = self.json(&["container", "ps", "-a"]);
        v.as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_string())
            .collect()
    }

    fn running_containers(&self) -> Vec<String> {
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
        };
        let _ = flotilla_net::NetManager::new(&self.data.join("net"))
            .and_then(|m| m.remove_bridge(&net));
        let _ = &self.tmp;
    }
}

/// The pid still belongs to a flotilla serve-all of this test's data dir
/// (pids get reused; never signal a stranger).
fn is_our_server(pid: i32, data: &Path) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| {
            let s = String::from_utf8_lossy(&c);
            s.contains("serve-all") && s.contains(&*data.to_string_lossy())
        })
        .unwrap_or(false)
}

fn tasks_of<'a>(ps: &'a Value, service: &str) -> Vec<&'a Value> {
    ps.as_array()
        .unwrap()
        .iter()
        .filter(|t| t["service"] == service)
        .collect()
}

const TWO_SERVICES: &str = r#"
services:
  web:
    image: busybox:local
    # httpd answers 404 without an index page: give it one to serve.
    command: ["/bin/sh", "-c", "mkdir -p /www && echo ok > /www/index.html && exec /bin/busybox httpd -f -p 8080 -h /www"]
    deploy:
      replicas: 3
    healthcheck:
      test: ["CMD", "/bin/busybox", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/"]
      interval: 1s
      retries: 30
    depends_on:
      db:
        condition: service_healthy
  db:
    image: busybox:local
    command: ["/bin/busybox", "sleep", "3600"]
    stop_grace_period: 1s
    healthcheck:
      test: ["CMD", "/bin/busybox", "true"]
      interval: 1s
"#;

#[test]
fn up_wait_ps_services_scale_down() {
    let env = Env::new(1);
    env.write_stack(TWO_SERVICES);
    env.ok(&["up", "-d", "--wait", "--wait-timeout", "90s"]);

    let ps = env.json(&["ps"]);
    let tasks = ps.as_array().unwrap();
    assert_eq!(tasks.len(), 4, "{ps:#}");
    for t in tasks {
        assert_eq!(t["state"], "running", "{t:#}");
        assert!(
            t["container_id"].as_str().is_some_and(|c| !c.is_empty()),
            "{t:#}"
        );
        assert!(t["node"].as_str().is_some(), "{t:#}");
        assert!(
            t["slot"].as_u64().is_some() && t["health"].is_string(),
            "{t:#}"
        );
    }
    assert_eq!(tasks_of(&ps, "stk1_web").len(), 3);
    assert_eq!(tasks_of(&ps, "stk1_db").len(), 1);
    assert_eq!(env.running_containers().len(), 4);

    let services = env.json(&["services"]);
    let web = services
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "stk1_web")
        .unwrap_or_else(|| panic!("no stk1_web in {services:#}"));
    assert_eq!(web["status"]["desired"], 3);
    assert_eq!(web["status"]["running"], 3);
    assert_eq!(web["status"]["healthy"], 3);
    let table = env.ok(&["services"]);
    assert!(table.contains("3/3"), "{table}");

    let events = env.json(&["events"]);
    assert!(
        events
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "service"),
        "{events:#}"
    );

    env.ok(&["scale", "web=1", "--wait-timeout", "60s"]);
    let ps = env.json(&["ps"]);
    assert_eq!(ps.as_array().unwrap().len(), 2, "{ps:#}");
    assert_eq!(tasks_of(&ps, "stk1_web").len(), 1);

    env.ok(&["down"]);
    assert!(
        env.containers().is_empty(),
        "down left containers: {:?}",
        env.containers()
    );
    // The background server `up -d` started is stopped when no stack is left.
    assert!(env.server_pid().is_none(), "pid file still there");
}

#[test]
fn up_wait_names_a_missing_image() {
    let env = Env::new(2);
    env.write_stack(
        r#"
services:
  app:
    image: nosuch/image:missing
    command: ["/bin/busybox", "sleep", "3600"]
"#,
    );
    let out = env.run(&["up", "-d", "--wait", "--wait-timeout", "15s"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "up succeeded: {stderr}");
    assert!(stderr.contains("nosuch/image:missing"), "{stderr}");
    env.ok(&["down"]);
}

#[test]
fn killed_server_comes_back_and_readopts_containers() {
    let env = Env::new(3);
    env.write_stack(
        r#"
services:
  db:
    image: busybox:local
    command: ["/bin/busybox", "sleep", "3600"]
    stop_grace_period: 1s
    deploy:
      replicas: 2
"#,
    );
    env.ok(&["up", "-d", "--wait", "--wait-timeout", "60s"]);
    let before = env.running_containers();
    assert_eq!(before.len(), 2);
    let pid = env.server_pid().expect("up -d wrote the server's pid");
    assert!(is_our_server(pid, &env.data));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    // Reap-free wait: the process is gone once /proc has no cmdline for it.
    while is_our_server(pid, &env.data) {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(
        env.running_containers(),
        before,
        "containers must outlive the server"
    );

    env.ok(&["up", "-d", "--wait", "--wait-timeout", "60s"]);
    assert_eq!(
        env.running_containers(),
        before,
        "re-adopted, no duplicates"
    );
    let ps = env.json(&["ps"]);
    let mut ids: Vec<String> = ps
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["container_id"].as_str().unwrap_or("").to_string())
        .collect();
    ids.sort();
    assert_eq!(ids, before, "{ps:#}");
    env.ok(&["down"]);
}

#[test]
fn no_server_is_a_clear_error() {
    let env = Env::new(4);
    let out = env.run(&["ps", "-p", "nothing"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no Flotilla server at http://127.0.0.1:"),
        "{stderr}"
    );
    let out = env.run(&["services", "--server", "https://127.0.0.1:1"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not supported yet"));
}
