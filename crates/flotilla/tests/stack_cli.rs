//! The stack verbs end to end through the real binary (root only): `up -d
//! --wait` starts a background server + agent, the services run as real
//! containers, `ps`/`services`/`events` answer in JSON, `scale` and `down`
//! converge, and a `kill -9`'d server's containers are re-adopted.
//!
//! Each test has its own data dir, API port, bridge name and /28 subnet
//! inside 10.215.0.0/16, and a guard that kills the background server (by
//! the pid it recorded), force-removes leftover containers and the bridge.

mod support;

use support::{is_our_server, tasks_of, Env};

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

/// Many containers starting, then stopping, at once: every slot ends with
/// exactly one container and `down` leaves none. The agent's reconcile once
/// listed containers before a start had finished and checked "busy" only
/// afterwards, so a container that had just started read as missing ("the
/// container disappeared"): its slot got a second container and the first
/// ran on, orphaned (the deploy benchmark's scale 30 → 60 stalled at 45).
#[test]
fn scaling_to_many_replicas_and_down_leaves_one_container_per_slot_then_none() {
    let env = Env::with_big_pool(5, 25);
    env.write_stack(
        r#"
services:
  web:
    image: busybox:local
    command: ["/bin/busybox", "sleep", "3600"]
    stop_grace_period: 1s
    # Exec probes every 100 ms while starting keep the agent busy, as in the
    # benchmark that found it.
    healthcheck:
      test: ["CMD", "/bin/busybox", "true"]
      interval: 1s
      start_period: 30s
      start_interval: 100ms
    deploy:
      replicas: 5
"#,
    );
    env.ok(&["up", "-d", "--wait", "--wait-timeout", "90s"]);
    env.ok(&["scale", "web=40", "--wait-timeout", "120s"]);
    let ps = env.json(&["ps"]);
    let web = tasks_of(&ps, "stk5_web");
    assert_eq!(web.len(), 40, "{ps:#}");
    assert!(web.iter().all(|t| t["state"] == "running"), "{ps:#}");
    // Give a wrongly replaced task time to show up as a second container.
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(
        env.running_containers().len(),
        40,
        "one container per slot expected: {:?}",
        env.running_containers()
    );
    env.ok(&["down"]);
    assert!(
        env.containers().is_empty(),
        "down left containers: {:?}",
        env.containers()
    );
}
