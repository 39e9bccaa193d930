//! `flotilla container ...` end to end: real containers through the CLI
//! binary and its monitor processes (root only). Each test has its own data
//! dir and a guard that force-removes its containers (and bridge) on drop.

use flotilla_runtime::{HelperCommand, Runtime};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

const IMAGE: &str = "busybox:local";

struct Env {
    tmp: tempfile::TempDir,
    data: PathBuf,
    bridge: Option<(String, String)>,
}

impl Env {
    fn new() -> Env {
        let tmp = tempfile::Builder::new()
            .prefix("flotilla-cli-")
            .tempdir()
            .unwrap();
        let data = tmp.path().join("data");
        let tar = flotilla_testkit::busybox_rootfs_tar(tmp.path());
        flotilla_image::ImageStore::open(&data)
            .unwrap()
            .import(&tar, Some(IMAGE))
            .unwrap();
        Env {
            tmp,
            data,
            bridge: None,
        }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_flotilla"));
        c.arg("--data-dir").arg(&self.data).args(args);
        if let Some((name, subnet)) = &self.bridge {
            c.env("FLOTILLA_BRIDGE_NAME", name)
                .env("FLOTILLA_BRIDGE_SUBNET", subnet);
        }
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).stdin(Stdio::null()).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn inspect(&self, name: &str) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["container", "inspect", name, "--output", "json"])).unwrap()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let helper = HelperCommand {
            exe: env!("CARGO_BIN_EXE_flotilla").into(),
            prefix: vec!["internal".into()],
        };
        if let Ok(rt) = Runtime::with_helper(&self.data, helper) {
            for c in rt.list().unwrap_or_default() {
                let _ = rt.remove(&c.id, true);
            }
        }
        if let Some((name, subnet)) = &self.bridge {
            let net = flotilla_net::BridgeNetwork {
                name: name.clone(),
                bridge: name.clone(),
                subnet: subnet.parse().unwrap(),
                ip_range: None,
                embedded_dns: false,
            };
            let _ = flotilla_net::NetManager::new(&self.data.join("net"))
                .and_then(|m| m.remove_bridge(&net));
        }
        let _ = &self.tmp;
    }
}

#[test]
fn foreground_run_streams_output_and_exits_with_the_code() {
    let env = Env::new();
    let out = env.run(&[
        "container",
        "run",
        "--rm",
        IMAGE,
        "--",
        "/bin/sh",
        "-c",
        "echo hi; echo err >&2; exit 5",
    ]);
    assert_eq!(out.status.code(), Some(5));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("err"));
    let ps: serde_json::Value =
        serde_json::from_str(&env.ok(&["container", "ps", "-a", "--output", "json"])).unwrap();
    assert_eq!(ps.as_array().unwrap().len(), 0, "--rm left {ps}");
    // What the start made once for the image (its mount-targets layer, or
    // the marker saying it needs none) goes when the image goes.
    let targets = env.data.join("mount-targets");
    assert!(std::fs::read_dir(&targets).unwrap().next().is_some());
    env.ok(&["image", "rm", IMAGE]);
    let left: Vec<_> = std::fs::read_dir(&targets)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "image rm left {left:?}");
}

/// A container that exits at once can have its exit reported down the
/// status pipe before the CLI has read the "ok" that precedes it (one read
/// takes both): each run must still exit with the container's code and
/// leave nothing behind.
#[test]
fn run_rm_of_instant_containers_always_reports_their_exit() {
    let env = Env::new();
    for i in 0..20 {
        let code = i % 3;
        let out = env.run(&[
            "container",
            "run",
            "--rm",
            IMAGE,
            "--",
            "/bin/sh",
            "-c",
            &format!("exit {code}"),
        ]);
        assert_eq!(
            out.status.code(),
            Some(code),
            "run {i}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let ps: serde_json::Value =
        serde_json::from_str(&env.ok(&["container", "ps", "-a", "--output", "json"])).unwrap();
    assert_eq!(ps.as_array().unwrap().len(), 0, "--rm left {ps}");
}

#[test]
fn run_rm_prepares_spare_dirs_and_the_next_container_starts_clean_in_one() {
    let env = Env::new();
    // The first container writes into its root filesystem and its log.
    let out = env.run(&[
        "container",
        "run",
        "--rm",
        IMAGE,
        "--",
        "/bin/sh",
        "-c",
        "echo secret > /tmp/left-behind; echo first",
    ]);
    assert_eq!(out.status.code(), Some(0));
    // Its monitor tops the spare pool up after the CLI has gone, in the idle
    // CPU class: on a machine saturated by other tests that can take seconds.
    let spare = env.data.join("spare");
    let ready = || {
        std::fs::read_dir(&spare)
            .map(|d| {
                d.flatten()
                    .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                    .count()
            })
            .unwrap_or(0)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    while ready() < flotilla_runtime::spare::POOL && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(ready(), flotilla_runtime::spare::POOL);
    // The next container takes one and sees nothing of the first.
    let id = env
        .ok(&[
            "container",
            "run",
            "-d",
            IMAGE,
            "--",
            "/bin/sh",
            "-c",
            "test -e /tmp/left-behind && echo leaked || echo clean",
        ])
        .trim()
        .to_string();
    assert_eq!(ready(), flotilla_runtime::spare::POOL - 1);
    env.ok(&["container", "wait", &id]);
    let logs = env.run(&["container", "logs", &id]);
    assert_eq!(String::from_utf8_lossy(&logs.stdout), "clean\n");
    env.ok(&["container", "rm", &id]);
}

#[test]
fn detached_lifecycle_logs_exec_stats_stop_rm() {
    let env = Env::new();
    let id = env.ok(&[
        "container",
        "run",
        "-d",
        "--name",
        "web",
        "--memory",
        "64M",
        "--cpus",
        "0.5",
        "--pids-limit",
        "64",
        "-e",
        "K=V",
        "-v",
        "data:/data",
        IMAGE,
        "--",
        "/bin/sh",
        "-c",
        "echo $K > /data/k; echo started; exec sleep 60",
    ]);
    assert_eq!(id.trim().len(), 64);
    assert!(env.ok(&["container", "ps"]).contains("web"));
    // Its layers are the container's root filesystem: not removable now.
    let rmi = env.run(&["image", "rm", IMAGE]);
    assert!(!rmi.status.success());
    let err = String::from_utf8_lossy(&rmi.stderr);
    assert!(err.contains("used by container(s) web"), "{err}");
    let exec = env.run(&[
        "container",
        "exec",
        "web",
        "--",
        "/bin/sh",
        "-c",
        "cat /data/k; exit 3",
    ]);
    assert_eq!(exec.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&exec.stdout), "V\n");
    let stats: serde_json::Value =
        serde_json::from_str(&env.ok(&["container", "stats", "web", "--output", "json"])).unwrap();
    assert_eq!(stats["memory_limit_bytes"], 64 << 20);
    env.ok(&["container", "stop", "-t", "1", "web"]);
    let info = env.inspect("web");
    assert_eq!(info["state"], "exited");
    assert_eq!(info["exit_code"], 137);
    assert_eq!(env.ok(&["container", "logs", "web"]), "started\n");
    env.ok(&["container", "rm", "web"]);
    assert!(!env.run(&["container", "inspect", "web"]).status.success());
}

#[test]
fn logs_follow_ends_when_the_container_exits() {
    let env = Env::new();
    env.ok(&[
        "container",
        "run",
        "-d",
        "--name",
        "talk",
        IMAGE,
        "--",
        "/bin/sh",
        "-c",
        "echo a; sleep 0.3; echo b",
    ]);
    assert_eq!(env.ok(&["container", "logs", "-f", "talk"]), "a\nb\n");
    assert_eq!(env.ok(&["container", "logs", "--tail", "1", "talk"]), "b\n");
}

#[test]
fn containers_survive_a_killed_cli_and_are_re_adopted() {
    let env = Env::new();
    // A foreground run whose CLI gets SIGKILLed mid-way.
    let mut fg = env
        .cmd(&[
            "container",
            "run",
            "--name",
            "fg",
            IMAGE,
            "--",
            "/bin/sh",
            "-c",
            "echo started; exec sleep 60",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(fg.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "started\n");
    fg.kill().unwrap(); // SIGKILL
    fg.wait().unwrap();
    // One that exits while nobody watches.
    env.ok(&[
        "container",
        "run",
        "-d",
        "--name",
        "quick",
        IMAGE,
        "--",
        "/bin/sh",
        "-c",
        "exit 7",
    ]);

    assert_eq!(env.inspect("fg")["state"], "running");
    let exec = env.run(&["container", "exec", "fg", "--", "/bin/echo", "inside"]);
    assert_eq!(String::from_utf8_lossy(&exec.stdout), "inside\n");
    let wait = env.run(&["container", "wait", "quick"]);
    assert_eq!(wait.status.code(), Some(7));
    assert_eq!(env.inspect("quick")["exit_code"], 7);
    env.ok(&["container", "stop", "-t", "0", "fg"]);
    assert_eq!(env.inspect("fg")["exit_code"], 137);
}

#[test]
fn bridge_network_connects_two_containers() {
    let mut env = Env::new();
    let n = std::process::id() % 200 + 20;
    env.bridge = Some((format!("flt{n}"), format!("10.231.{n}.0/24")));
    env.ok(&[
        "container",
        "run",
        "-d",
        "--name",
        "srv",
        "--network",
        "bridge",
        IMAGE,
        "--",
        "/bin/sh",
        "-c",
        "mkdir -p /www && echo hello > /www/index.html && exec httpd -f -p 8080 -h /www",
    ]);
    let ip = env.inspect("srv")["ipv4"]
        .as_str()
        .expect("srv has an address")
        .to_string();
    let url = format!("http://{ip}:8080/");
    // httpd may take a moment to listen: retry inside the client container.
    let script = format!(
        "for i in 1 2 3 4 5 6 7 8 9 10; do wget -qO- {url} && exit 0; sleep 0.2; done; exit 1"
    );
    let out = env.run(&[
        "container",
        "run",
        "--rm",
        "--network",
        "bridge",
        IMAGE,
        "--",
        "/bin/sh",
        "-c",
        &script,
    ]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hello\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn process_driver_warns_and_runs_on_the_host() {
    let env = Env::new();
    let out = env.run(&[
        "container",
        "run",
        "--rm",
        "--driver",
        "process",
        "-e",
        "K=V",
        "-w",
        "/tmp",
        IMAGE,
        "--",
        "/bin/sh",
        "-c",
        "echo $K $(pwd); exit 2",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "V /tmp\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("isolates NOTHING"));
}
