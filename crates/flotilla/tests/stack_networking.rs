//! Service networking end to end through the real binary (root only), with
//! real containers on real bridges: names resolve inside containers through
//! the embedded DNS, a service's VIP reaches every replica, networks are
//! isolated from each other, and a published port keeps answering — zero
//! failed requests — while a replica is killed and while the service scales
//! down under load.
//!
//! Traffic goes only to 127.0.0.1 (published ports) and to addresses inside
//! the namespaces these tests' containers live in.

mod support;

use serde_json::Value;
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{free_port, tasks_of, wait_for, Env};

const LIMIT: Duration = Duration::from_secs(60);

/// httpd on 8080 serving a page that names the replica (its hostname).
const WHOAMI: &str = r#"["/bin/sh", "-c", "mkdir -p /www && /bin/busybox hostname > /www/index.html && exec /bin/busybox httpd -f -p 8080 -h /www"]"#;

fn running(env: &Env, service: &str) -> Vec<Value> {
    let ps = env.json(&["ps"]);
    tasks_of(&ps, service)
        .into_iter()
        .filter(|t| t["state"] == "running")
        .cloned()
        .collect()
}

fn container_of(env: &Env, service: &str) -> String {
    running(env, service)[0]["container_id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Runs a command in a container; (exit ok, stdout + stderr).
fn exec(env: &Env, container: &str, argv: &[&str]) -> (bool, String) {
    let mut args = vec!["container", "exec", container, "--"];
    args.extend_from_slice(argv);
    let out = env.run(&args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// GETs `url` from inside a container with busybox wget; (ok, body).
/// The time limit comes from busybox `timeout`: Debian's static busybox
/// 1.35 wget segfaults when given `-T`.
fn fetch(env: &Env, container: &str, url: &str, timeout_s: u32) -> (bool, String) {
    let script = format!("timeout {timeout_s} wget -q -O - {url}");
    exec(env, container, &["/bin/sh", "-c", &script])
}

/// One HTTP/1.0 GET on a new connection; the body on a 200.
fn get(addr: SocketAddr) -> Result<String, String> {
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET / HTTP/1.0\r\nHost: test\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut response = String::new();
    s.read_to_string(&mut response).map_err(|e| e.to_string())?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no header end: {response:?}"))?;
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        return Err(format!("status: {}", head.lines().next().unwrap_or("")));
    }
    Ok(body.trim().to_string())
}

/// GET `path` from the Flotilla API server at `base` (http://127.0.0.1:port).
fn http_get(base: &str, path: &str) -> String {
    let addr: SocketAddr = base.trim_start_matches("http://").parse().unwrap();
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: flotilla\r\n\r\n").unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    response
}

/// Bounded load: `workers` threads GET `addr` until `stop` or `max` requests
/// each; counts successes and keeps every failure's text.
struct Load {
    ok: Arc<AtomicU64>,
    failures: Arc<std::sync::Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(addr: SocketAddr, workers: usize, max: u64) -> Load {
        let ok = Arc::new(AtomicU64::new(0));
        let failures = Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..workers)
            .map(|_| {
                let (ok, failures, stop) = (ok.clone(), failures.clone(), stop.clone());
                std::thread::spawn(move || {
                    let end = Instant::now() + Duration::from_secs(60);
                    for _ in 0..max {
                        if stop.load(Ordering::Relaxed) || Instant::now() > end {
                            break;
                        }
                        match get(addr) {
                            Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                            Err(e) => {
                                failures.lock().unwrap().push(e);
                                0
                            }
                        };
                    }
                })
            })
            .collect();
        Load {
            ok,
            failures,
            stop,
            threads,
        }
    }

    /// Stops the load; (successes, failures).
    fn finish(self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().unwrap();
        }
        let failures = self.failures.lock().unwrap().clone();
        (self.ok.load(Ordering::Relaxed), failures)
    }
}

/// The last `Address: a.b.c.d` line of busybox nslookup's answer section
/// (the first is the server's).
fn last_address(nslookup: &str) -> Option<String> {
    nslookup
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Address:"))
        .map(|a| a.split_whitespace().next().unwrap_or("").to_string())
        .rfind(|a| !a.contains(':') && !a.contains('#'))
}

#[test]
fn names_resolve_and_the_vip_reaches_every_replica() {
    let env = Env::new(1);
    env.write_stack(&format!(
        r#"
services:
  api:
    image: busybox:local
    command: {WHOAMI}
    expose: ["8080"]
    stop_grace_period: 1s
    deploy:
      replicas: 2
  client:
    image: busybox:local
    command: ["/bin/busybox", "sleep", "3600"]
    stop_grace_period: 1s
"#
    ));
    env.ok(&["up", "-d", "--wait", "--wait-timeout", "60s"]);
    let client = container_of(&env, "stk1_client");
    let replicas: BTreeSet<String> = running(&env, "stk1_api")
        .iter()
        .map(|t| {
            t["addresses"]
                .as_object()
                .unwrap()
                .values()
                .next()
                .unwrap()
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(replicas.len(), 2);

    // tasks.api: every ready replica's address.
    let (ok, out) = exec(&env, &client, &["/bin/busybox", "nslookup", "tasks.api"]);
    assert!(ok, "{out}");
    for ip in &replicas {
        assert!(
            out.contains(ip.as_str()),
            "tasks.api should list {ip}: {out}"
        );
    }
    // api: the VIP, which is neither replica.
    let (ok, out) = exec(&env, &client, &["/bin/busybox", "nslookup", "api"]);
    assert!(ok, "{out}");
    assert!(
        !replicas
            .iter()
            .any(|ip| out.contains(&format!("Address: {ip}"))),
        "{out}"
    );

    // http://api:8080/ through the VIP reaches both replicas.
    let hostnames = wait_for("both replicas answering through the VIP", LIMIT, || {
        let mut seen = BTreeSet::new();
        for _ in 0..20 {
            let (ok, out) = fetch(&env, &client, "http://api:8080/", 5);
            if !ok {
                return Err(out);
            }
            seen.insert(out.trim().to_string());
        }
        if seen.len() == 2 {
            Ok(seen)
        } else {
            Err(format!("{seen:?}"))
        }
    });
    assert_eq!(hostnames.len(), 2);
    env.ok(&["down"]);
}

#[test]
fn networks_are_isolated_unless_a_container_joins_both() {
    let env = Env::new(2);
    env.write_stack(&format!(
        r#"
services:
  front:
    image: busybox:local
    command: {WHOAMI}
    expose: ["8080"]
    stop_grace_period: 1s
    networks: [edge]
  back:
    image: busybox:local
    command: {WHOAMI}
    expose: ["8080"]
    stop_grace_period: 1s
    networks: [inner]
  both:
    image: busybox:local
    command: {WHOAMI}
    stop_grace_period: 1s
    networks: [edge, inner]
networks:
  edge: {{}}
  inner: {{}}
"#
    ));
    env.ok(&["up", "-d", "--wait", "--wait-timeout", "60s"]);
    let front = container_of(&env, "stk2_front");
    let both = container_of(&env, "stk2_both");
    let back_ip = running(&env, "stk2_back")[0]["addresses"]["stk2_inner"]
        .as_str()
        .unwrap()
        .to_string();

    // The container on both networks reaches both services by name.
    for name in ["front", "back"] {
        let url = format!("http://{name}:8080/");
        let (ok, out) = fetch(&env, &both, &url, 5);
        assert!(ok, "both → {name}: {out}");
    }
    // front (edge only) cannot resolve back, nor reach its address or its VIP.
    let (_, out) = exec(&env, &front, &["/bin/busybox", "nslookup", "back"]);
    assert!(!out.contains(&back_ip), "{out}");
    let direct = format!("http://{back_ip}:8080/");
    let (ok, out) = fetch(&env, &front, &direct, 2);
    assert!(!ok, "front reached back directly: {out}");
    // Nor back's VIP, which `both` resolves.
    let (ok, out) = exec(&env, &both, &["/bin/busybox", "nslookup", "back"]);
    assert!(ok, "{out}");
    let vip = last_address(&out).unwrap_or_else(|| panic!("no address for back: {out}"));
    assert_ne!(vip, back_ip, "back has a VIP");
    let via_vip = format!("http://{vip}:8080/");
    let (ok, _) = fetch(&env, &both, &via_vip, 5);
    assert!(ok, "both reaches back's VIP");
    let (ok, out) = fetch(&env, &front, &via_vip, 2);
    assert!(!ok, "front reached back's VIP: {out}");
    env.ok(&["down"]);
}

#[test]
fn published_port_drops_nothing_when_a_replica_dies_or_scales_down() {
    let env = Env::new(3);
    let port = free_port();
    env.write_stack(&format!(
        r#"
services:
  web:
    image: busybox:local
    command: {WHOAMI}
    stop_grace_period: 2s
    ports:
      - target: 8080
        published: {port}
        host_ip: 127.0.0.1
        app_protocol: http
    deploy:
      replicas: 3
"#
    ));
    env.ok(&["up", "-d", "--wait", "--wait-timeout", "60s"]);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    // The published port balances across all three replicas.
    wait_for("three replicas behind the published port", LIMIT, || {
        let seen: BTreeSet<String> = (0..30).filter_map(|_| get(addr).ok()).collect();
        if seen.len() == 3 {
            Ok(())
        } else {
            Err(format!("{seen:?}"))
        }
    });

    // The proxy's per-service counters are on the server's /metrics.
    let metrics = http_get(&env.server, "/metrics");
    assert!(
        metrics.contains("flotilla_proxy_requests_total") && metrics.contains("stk3_web"),
        "{metrics}"
    );

    // kill -9 of one replica under load: no failed request.
    let load = Load::start(addr, 8, 5_000);
    std::thread::sleep(Duration::from_secs(2));
    let victim = running(&env, "stk3_web")[0].clone();
    let pid = env.json(&[
        "container",
        "inspect",
        victim["container_id"].as_str().unwrap(),
    ])["pid"]
        .as_i64()
        .unwrap() as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_for("a replacement replica", LIMIT, || {
        let live = running(&env, "stk3_web");
        if live.len() == 3 && live.iter().all(|t| t["id"] != victim["id"]) {
            Ok(())
        } else {
            Err(format!("{live:?}"))
        }
    });
    std::thread::sleep(Duration::from_secs(1));
    let (ok, failures) = load.finish();
    assert!(ok > 0);
    assert!(
        failures.is_empty(),
        "{} of {} requests failed: {:?}",
        failures.len(),
        ok + failures.len() as u64,
        &failures[..failures.len().min(5)]
    );

    // Scale 3 → 1 under load: the stopped replicas drain first.
    let load = Load::start(addr, 8, 5_000);
    std::thread::sleep(Duration::from_secs(1));
    env.ok(&["scale", "web=1", "--wait-timeout", "60s"]);
    std::thread::sleep(Duration::from_secs(1));
    let (ok, failures) = load.finish();
    assert!(ok > 0);
    assert!(
        failures.is_empty(),
        "{} of {} requests failed during scale-down: {:?}",
        failures.len(),
        ok + failures.len() as u64,
        &failures[..failures.len().min(5)]
    );
    env.ok(&["down"]);
}

#[test]
fn a_replica_failing_its_probe_leaves_the_endpoints_before_it_is_replaced() {
    let env = Env::new(4);
    let port = free_port();
    // Many retries: the replica stays (unhealthy only after 100 failures),
    // so only readiness can take it out of the endpoint set.
    env.write_stack(&format!(
        r#"
services:
  web:
    image: busybox:local
    command: ["/bin/sh", "-c", "mkdir -p /www && /bin/busybox hostname > /www/index.html && touch /tmp/ok && exec /bin/busybox httpd -f -p 8080 -h /www"]
    stop_grace_period: 1s
    healthcheck:
      test: ["CMD", "/bin/busybox", "test", "-f", "/tmp/ok"]
      interval: 500ms
      retries: 100
    ports:
      - target: 8080
        published: {port}
        host_ip: 127.0.0.1
        app_protocol: http
    deploy:
      replicas: 2
"#
    ));
    env.ok(&["up", "-d", "--wait", "--wait-timeout", "60s"]);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let tasks = running(&env, "stk4_web");
    let sick = tasks[0].clone();
    let sick_host = sick["id"].as_str().unwrap()[..12].to_string();
    wait_for("both replicas answering", LIMIT, || {
        let seen: BTreeSet<String> = (0..20).filter_map(|_| get(addr).ok()).collect();
        if seen.len() == 2 {
            Ok(())
        } else {
            Err(format!("{seen:?}"))
        }
    });
    let (ok, out) = exec(
        &env,
        sick["container_id"].as_str().unwrap(),
        &["/bin/busybox", "rm", "/tmp/ok"],
    );
    assert!(ok, "{out}");
    // Out of the endpoint set: 30 requests in a row never reach it …
    wait_for("the failing replica to get no traffic", LIMIT, || {
        let answers: Vec<String> = (0..30).map(|_| get(addr)).collect::<Result<_, _>>()?;
        if answers.iter().all(|h| *h != sick_host) {
            Ok(())
        } else {
            Err(format!("{answers:?}"))
        }
    });
    // … while it still runs in its slot: readiness, not replacement, did it.
    let still = running(&env, "stk4_web");
    assert!(still.iter().any(|t| t["id"] == sick["id"]), "{still:?}");
    env.ok(&["down"]);
}
