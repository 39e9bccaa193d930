//! Self-healing end to end through the real binary (root only), with real
//! containers: a `kill -9`'d replica and a replica whose health check starts
//! failing are each replaced by a new task in the same slot; a crashing
//! service stops being restarted after `restart_policy.max_attempts` and says
//! so; `deploy.resources.limits.memory` reaches the container's cgroup.

mod support;

use serde_json::Value;
use std::time::Duration;
use support::{tasks_of, wait_for, Env};

const LIMIT: Duration = Duration::from_secs(60);

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("")
}

/// The running task of `service` in `slot`, if there is exactly one.
fn running_in_slot(env: &Env, service: &str, slot: u64) -> Result<Value, String> {
    let ps = env.json(&["ps"]);
    let live: Vec<&Value> = tasks_of(&ps, service)
        .into_iter()
        .filter(|t| t["slot"] == slot && t["state"] == "running")
        .collect();
    match live.as_slice() {
        [t] => Ok((*t).clone()),
        _ => Err(format!("{ps:#}")),
    }
}

fn container_inspect(env: &Env, id: &str) -> Value {
    env.json(&["container", "inspect", id])
}

#[test]
fn killed_replica_is_replaced_in_its_slot() {
    let env = Env::new(1);
    env.write_stack(
        r#"
services:
  web:
    image: busybox:local
    command: ["/bin/busybox", "sleep", "3600"]
    stop_grace_period: 1s
    deploy:
      replicas: 2
"#,
    );
    env.ok(&["up", "-d", "--wait", "--wait-timeout", "60s"]);
    let victim = running_in_slot(&env, "stk1_web", 1).unwrap();
    let other = running_in_slot(&env, "stk1_web", 2).unwrap();
    let container = str_of(&victim, "container_id");
    let pid = container_inspect(&env, container)["pid"]
        .as_i64()
        .expect("a running container has an init pid") as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();

    let replacement = wait_for("a replacement in slot 1", LIMIT, || {
        running_in_slot(&env, "stk1_web", 1).and_then(|t| {
            if t["id"] != victim["id"] {
                Ok(t)
            } else {
                Err(format!("still the old task {t:#}"))
            }
        })
    });
    assert_ne!(replacement["container_id"], victim["container_id"]);
    // The other replica was left alone.
    assert_eq!(
        running_in_slot(&env, "stk1_web", 2).unwrap()["id"],
        other["id"]
    );
    // The killed task is kept in the history as failed, with its exit.
    let old = env
        .all_tasks()
        .into_iter()
        .find(|t| t["id"] == victim["id"])
        .expect("the killed task stays in ps -a");
    assert_eq!(old["state"], "failed", "{old:#}");
    env.ok(&["down"]);
    // Its ended container (kept for `logs`) goes with the stack.
    assert_eq!(env.containers(), Vec::<String>::new());
}

#[test]
fn replica_failing_its_health_check_is_replaced() {
    let env = Env::new(2);
    // Healthy while /tmp/ok exists; the test removes it in one replica.
    env.write_stack(
        r#"
services:
  api:
    image: busybox:local
    command: ["/bin/sh", "-c", "touch /tmp/ok && exec /bin/busybox sleep 3600"]
    stop_grace_period: 1s
    healthcheck:
      test: ["CMD", "/bin/busybox", "test", "-f", "/tmp/ok"]
      interval: 300ms
      retries: 2
"#,
    );
    env.ok(&["up", "-d", "--wait", "--wait-timeout", "60s"]);
    let sick = running_in_slot(&env, "stk2_api", 1).unwrap();
    assert_eq!(sick["health"], "healthy", "{sick:#}");
    env.ok(&[
        "container",
        "exec",
        str_of(&sick, "container_id"),
        "--",
        "/bin/busybox",
        "rm",
        "/tmp/ok",
    ]);

    let replacement = wait_for("a healthy replacement in slot 1", LIMIT, || {
        running_in_slot(&env, "stk2_api", 1).and_then(|t| {
            if t["id"] != sick["id"] && t["health"] == "healthy" {
                Ok(t)
            } else {
                Err(format!("{t:#}"))
            }
        })
    });
    assert_ne!(replacement["container_id"], sick["container_id"]);
    let old = env
        .all_tasks()
        .into_iter()
        .find(|t| t["id"] == sick["id"])
        .expect("the unhealthy task stays in ps -a");
    assert!(
        str_of(&old, "message").contains("unhealthy") || old["health"] == "unhealthy",
        "the old task says why it was replaced: {old:#}"
    );
    env.ok(&["down"]);
}

#[test]
fn max_attempts_stops_restarting_and_says_so() {
    let env = Env::new(3);
    env.write_stack(
        r#"
services:
  crash:
    image: busybox:local
    command: ["/bin/busybox", "sh", "-c", "exit 3"]
    deploy:
      restart_policy:
        condition: on-failure
        delay: 100ms
        max_attempts: 2
"#,
    );
    // Not --wait: the service can never become ready.
    env.ok(&["up", "-d"]);
    let problem = wait_for("the service to give up", LIMIT, || {
        let services = env.json(&["services"]);
        let svc = services
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == "stk3_crash")
            .cloned()
            .ok_or_else(|| format!("{services:#}"))?;
        match svc["status"]["problem"].as_str() {
            Some(p) if p.contains("max_attempts") => Ok(p.to_string()),
            _ => Err(format!("{svc:#}")),
        }
    });
    assert!(problem.contains("gave up after 2"), "{problem}");
    // One first run plus two restarts, every one failed with exit code 3,
    // and no further task was created.
    let tasks = env.all_tasks();
    let crash: Vec<&Value> = tasks
        .iter()
        .filter(|t| t["service"] == "stk3_crash")
        .collect();
    assert_eq!(crash.len(), 3, "{tasks:#?}");
    for t in &crash {
        assert_eq!(t["state"], "failed", "{t:#}");
        assert_eq!(t["exit_code"], 3, "{t:#}");
    }
    std::thread::sleep(Duration::from_millis(500));
    let later = env.all_tasks();
    assert_eq!(
        later
            .iter()
            .filter(|t| t["service"] == "stk3_crash")
            .count(),
        3,
        "no restart after giving up: {later:#?}"
    );
    env.ok(&["down"]);
}

#[test]
fn memory_limit_from_deploy_resources_reaches_the_cgroup() {
    let env = Env::new(4);
    env.write_stack(
        r#"
services:
  small:
    image: busybox:local
    command: ["/bin/busybox", "sleep", "3600"]
    stop_grace_period: 1s
    deploy:
      resources:
        limits:
          memory: 48M
          pids: 32
"#,
    );
    env.ok(&["up", "-d", "--wait", "--wait-timeout", "60s"]);
    let task = running_in_slot(&env, "stk4_small", 1).unwrap();
    let stats = env.json(&["container", "stats", str_of(&task, "container_id")]);
    assert_eq!(
        stats["memory_limit_bytes"].as_u64(),
        Some(48 * 1024 * 1024),
        "{stats:#}"
    );
    assert_eq!(stats["pids_limit"].as_u64(), Some(32), "{stats:#}");
    env.ok(&["down"]);
}
