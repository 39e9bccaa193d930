//! The bookstore example (examples/bookstore) end to end, with real parts:
//! its images built from source and Debian's PostgreSQL, the stack deployed
//! by `flotilla up`, user journeys from the example's load generator through
//! the published gateway, replicas killed with SIGKILL under load, the
//! database task restarted, and stock checked against paid orders.
//!
//! The services' own tests (examples/bookstore/services/tests) cover their
//! API rules on a throwaway PostgreSQL; this test covers what Flotilla adds.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use support::{free_port, tasks_of, wait_for, Env};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn load_bin() -> PathBuf {
    repo()
        .join("examples/bookstore/services/target/x86_64-unknown-linux-gnu/release/bookstore-load")
}

/// Builds the images into the test's data dir (the services compile once,
/// cached in examples/bookstore/services/target).
fn build_images(env: &Env) {
    let out = Command::new(repo().join("examples/bookstore/images/build"))
        .args(["--flotilla", env!("CARGO_BIN_EXE_flotilla")])
        .env("FLOTILLA_DATA_DIR", &env.data)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "images/build failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The example's stack file and secrets, in the test's project dir.
fn stage_stack(env: &Env) {
    let stack = std::fs::read_to_string(repo().join("examples/bookstore/stack.yml")).unwrap();
    env.write_stack(&stack);
    let secrets = env.project_dir.join(".secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    std::fs::write(secrets.join("db_password"), "e2e-db-password-0123").unwrap();
    std::fs::write(secrets.join("token_secret"), "e2e-token-secret-0123456789").unwrap();
}

/// Runs bookstore-load with `args` against the shop; returns its JSON report.
fn load(url: &str, args: &[&str]) -> (bool, serde_json::Value, String) {
    let out = Command::new(load_bin())
        .args(["--url", url, "--output", "json"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let report = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
    let all = format!("{text}\n{}", String::from_utf8_lossy(&out.stderr));
    (out.status.success(), report, all)
}

fn check(url: &str) -> (bool, String) {
    let out = Command::new(load_bin())
        .args(["check", "--url", url, "--wait", "60s"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn running_healthy(env: &Env, service: &str) -> Result<Vec<serde_json::Value>, String> {
    let ps = env.json(&["ps", "-p", "bookstore"]);
    let tasks: Vec<serde_json::Value> = tasks_of(&ps, &format!("bookstore_{service}"))
        .into_iter()
        .filter(|t| t["desired"] == "running")
        .cloned()
        .collect();
    let healthy = tasks
        .iter()
        .filter(|t| t["state"] == "running" && t["health"] == "healthy")
        .count();
    if healthy == tasks.len() && !tasks.is_empty() {
        Ok(tasks)
    } else {
        Err(format!(
            "{service}: {healthy}/{} healthy: {ps}",
            tasks.len()
        ))
    }
}

#[test]
fn bookstore_serves_journeys_through_kills_and_a_database_restart() {
    let env = Env::with_big_pool(0, 25);
    build_images(&env);
    stage_stack(&env);
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let up = env
        .cmd(&[
            "up",
            "-d",
            "--wait",
            "--wait-timeout",
            "300s",
            "-p",
            "bookstore",
        ])
        .env("BOOKSTORE_PORT", port.to_string())
        .output()
        .unwrap();
    assert!(
        up.status.success(),
        "up failed:\n{}\n{}\n{}",
        String::from_utf8_lossy(&up.stdout),
        String::from_utf8_lossy(&up.stderr),
        env.server_log()
    );
    for service in ["users", "catalog", "cart", "orders", "gateway"] {
        let tasks = running_healthy(&env, service).unwrap();
        assert_eq!(tasks.len(), 3, "{service} runs 3 replicas");
    }

    // 1. Journeys on a healthy stack.
    let (ok, report, text) = load(&url, &["--rate", "4", "--duration", "5s", "--seed", "1"]);
    assert!(ok, "journeys failed on a healthy stack:\n{text}");
    assert!(
        report["journeys"]["ok"].as_u64().unwrap_or(0) >= 10,
        "{text}"
    );

    // 2. kill -9 of one replica of every stateless service while journeys run:
    //    no journey may fail (the proxy retries on another replica, and
    //    every write is idempotent).
    let chaos = Command::new(load_bin())
        .args(["--url", &url, "--output", "json"])
        .args(["--rate", "4", "--duration", "20s", "--seed", "2"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let mut killed = Vec::new();
    for service in ["gateway", "users", "catalog", "cart", "orders"] {
        let tasks = wait_for(
            &format!("{service} all healthy"),
            Duration::from_secs(60),
            || running_healthy(&env, service),
        );
        let victim = tasks[0]["container_id"].as_str().unwrap().to_string();
        env.ok(&["container", "kill", "--signal", "SIGKILL", &victim]);
        killed.push((service, tasks[0]["slot"].clone(), tasks[0]["id"].clone()));
        std::thread::sleep(Duration::from_secs(3));
    }
    let out = chaos.wait_with_output().unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "journeys failed while replicas were killed:\n{text}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&String::from_utf8_lossy(&out.stdout)).unwrap();
    assert_eq!(report["journeys"]["failed"], 0, "{text}");
    eprintln!("under kill -9: {}", report["journeys"]);
    // Every killed replica was replaced in its slot by a new task.
    for (service, slot, old) in &killed {
        let tasks = wait_for(
            &format!("{service} replaced"),
            Duration::from_secs(60),
            || running_healthy(&env, service),
        );
        let now = tasks.iter().find(|t| &t["slot"] == slot).unwrap();
        assert_ne!(&now["id"], old, "{service} slot {slot} has a new task");
    }

    // 3. Stock is consistent with paid orders (no overselling, no lost order).
    let (ok, text) = check(&url);
    assert!(ok, "inconsistent after kills:\n{text}");
    let totals_before = http_get_json(port, "/api/admin/totals");

    // 4. The database task restarts on its volume: the data survives.
    let db_before = running_healthy(&env, "db").unwrap()[0]["id"].clone();
    env.ok(&["restart", "-p", "bookstore", "db"]);
    let db_after = wait_for("a new healthy db task", Duration::from_secs(120), || {
        let tasks = running_healthy(&env, "db")?;
        if tasks[0]["id"] != db_before {
            Ok(tasks[0]["id"].clone())
        } else {
            Err("still the old db task".into())
        }
    });
    assert_ne!(db_after, db_before);
    wait_for(
        "the services see the database again",
        Duration::from_secs(60),
        || {
            for service in ["users", "catalog", "cart", "orders"] {
                running_healthy(&env, service)?;
            }
            Ok(())
        },
    );
    let totals_after = http_get_json(port, "/api/admin/totals");
    assert_eq!(
        totals_before["paid"], totals_after["paid"],
        "paid orders survived the database restart"
    );
    let (ok, _, text) = load(&url, &["--rate", "4", "--duration", "3s", "--seed", "3"]);
    assert!(ok, "journeys fail after the database restart:\n{text}");
    let (ok, text) = check(&url);
    assert!(ok, "inconsistent after the database restart:\n{text}");

    env.ok(&["down", "-v", "-p", "bookstore"]);
}

/// GET a JSON document from the shop (std only: a tiny HTTP/1.0 client is
/// enough for one request in a test).
fn http_get_json(port: u16, path: &str) -> serde_json::Value {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).unwrap();
    let (head, body) = buf.split_once("\r\n\r\n").unwrap();
    assert!(
        head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200"),
        "{head}"
    );
    serde_json::from_str(body).unwrap()
}
