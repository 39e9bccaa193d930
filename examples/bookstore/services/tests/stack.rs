//! The whole bookstore on 127.0.0.1: a throwaway PostgreSQL (initdb into a
//! temp dir, run as the `postgres` user when we are root) and the five
//! services as processes. The services start before the database (they must
//! wait for it), then: journeys through the load generator, idempotent
//! repeats, a declined payment, 20 concurrent orders for a book with stock 5
//! (exactly 5 paid), a database restart (clean 503s, then recovery), and the
//! consistency check. Everything started is killed by PID at the end.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const SECRET: &str = "integration-test-secret-0123456789";
const ADMIN: &str = "integration-test-admin-token";

fn pg_bin_dir() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists() && p.join("postgres").exists())
        .collect();
    dirs.sort();
    dirs.pop()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc_geteuid() == 0 }
}

extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

/// Runs `cmd` as the postgres user when we are root (initdb refuses root).
fn as_pg_user(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=postgres", "--regid=postgres", "--init-groups"])
            .arg(program);
        c
    } else {
        Command::new(program)
    }
}

struct Stack {
    dir: tempfile::TempDir,
    pg_bin: PathBuf,
    pg_port: u16,
    postgres: Option<Child>,
    services: Vec<(String, Child)>,
    gateway: String,
    ports: Vec<(String, u16)>,
}

impl Stack {
    fn start_postgres(&mut self) {
        let data = self.dir.path().join("data");
        let log = std::fs::File::create(self.dir.path().join("postgres.log")).unwrap();
        let child = as_pg_user(&self.pg_bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .args([
                "-p",
                &self.pg_port.to_string(),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
            ])
            .arg("-k")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting postgres");
        self.postgres = Some(child);
    }

    /// Fast shutdown (SIGINT), as a container stop would do.
    fn stop_postgres(&mut self) {
        if let Some(mut c) = self.postgres.take() {
            let _ = Command::new("kill")
                .args(["-INT", &c.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if c.try_wait().unwrap().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        for name in ["postgres", "users", "catalog", "cart", "orders", "gateway"] {
            let text = std::fs::read_to_string(self.dir.path().join(format!("{name}.log")))
                .unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            out += &format!("--- {name}.log (last lines)\n");
            for l in tail.into_iter().rev() {
                out += l;
                out.push('\n');
            }
        }
        out
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
        for (_, c) in &mut self.services {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.stop_postgres();
    }
}

async fn wait_healthy(http: &reqwest::Client, ports: &[(String, u16)], within: Duration) {
    let deadline = Instant::now() + within;
    for (name, port) in ports {
        loop {
            let ok = http
                .get(format!("http://127.0.0.1:{port}/healthz"))
                .send()
                .await
                .map(|r| r.status().is_success())
                .unwrap_or(false);
            if ok {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{name} not healthy within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn start() -> Option<Stack> {
    let Some(pg_bin) = pg_bin_dir() else {
        eprintln!("SKIPPED: no PostgreSQL server binaries under /usr/lib/postgresql/*/bin (apt-get install postgresql, see scripts/packages/bookstore.txt)");
        return None;
    };
    let dir = tempfile::Builder::new()
        .prefix("bookstore-test-")
        .tempdir()
        .unwrap();
    if is_root() {
        let st = Command::new("chown")
            .arg("postgres")
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(st.success(), "chown postgres {:?}", dir.path());
    }
    let st = as_pg_user(&pg_bin.join("initdb"))
        .arg("-D")
        .arg(dir.path().join("data"))
        .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "initdb failed");

    let pg_port = free_port();
    let names = ["users", "catalog", "cart", "orders", "gateway"];
    let ports: Vec<(String, u16)> = names.iter().map(|n| (n.to_string(), free_port())).collect();
    let port_of = |n: &str| ports.iter().find(|(m, _)| m == n).unwrap().1;
    let mut stack = Stack {
        gateway: format!("http://127.0.0.1:{}", port_of("gateway")),
        dir,
        pg_bin,
        pg_port,
        postgres: None,
        services: vec![],
        ports: ports.clone(),
    };
    // Services first: they must wait for the database on their own.
    for name in names {
        let log = std::fs::File::create(stack.dir.path().join(format!("{name}.log"))).unwrap();
        let exe = match name {
            "users" => env!("CARGO_BIN_EXE_bookstore-users"),
            "catalog" => env!("CARGO_BIN_EXE_bookstore-catalog"),
            "cart" => env!("CARGO_BIN_EXE_bookstore-cart"),
            "orders" => env!("CARGO_BIN_EXE_bookstore-orders"),
            _ => env!("CARGO_BIN_EXE_bookstore-gateway"),
        };
        let child = Command::new(exe)
            .env_clear()
            .env("PORT", port_of(name).to_string())
            .env("DATABASE_HOST", "127.0.0.1")
            .env("DATABASE_PORT", pg_port.to_string())
            .env("DATABASE_USER", "bookstore")
            .env("DATABASE_PASSWORD", "bookstore-pw")
            .env("TOKEN_SECRET", SECRET)
            .env("ADMIN_TOKEN", ADMIN)
            .env(
                "USERS_URL",
                format!("http://127.0.0.1:{}", port_of("users")),
            )
            .env(
                "CATALOG_URL",
                format!("http://127.0.0.1:{}", port_of("catalog")),
            )
            .env("CART_URL", format!("http://127.0.0.1:{}", port_of("cart")))
            .env(
                "ORDERS_URL",
                format!("http://127.0.0.1:{}", port_of("orders")),
            )
            .stdout(log)
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        stack.services.push((name.to_string(), child));
    }
    let http = reqwest::Client::new();
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Not healthy without a database.
    let r = http
        .get(format!("http://127.0.0.1:{}/healthz", port_of("catalog")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503, "catalog healthy without a database");

    stack.start_postgres();
    let deadline = Instant::now() + Duration::from_secs(20);
    let admin = loop {
        let conn = tokio_postgres::connect(
            &format!("host=127.0.0.1 port={pg_port} user=postgres dbname=postgres"),
            tokio_postgres::NoTls,
        )
        .await;
        match conn {
            Ok((client, connection)) => {
                tokio::spawn(connection);
                break client;
            }
            Err(e) => {
                assert!(Instant::now() < deadline, "postgres did not start: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    // Two statements: CREATE DATABASE cannot share a transaction.
    admin
        .batch_execute("CREATE ROLE bookstore LOGIN PASSWORD 'bookstore-pw'")
        .await
        .unwrap();
    admin
        .batch_execute("CREATE DATABASE bookstore OWNER bookstore")
        .await
        .unwrap();
    wait_healthy(&http, &ports, Duration::from_secs(30)).await;
    Some(stack)
}

struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut rb = self
            .http
            .request(method, format!("{}/api{path}", self.base));
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn user(&self, name: &str) -> String {
        let pw = json!({"password": "password-123"});
        let (s, _) = self
            .call(
                reqwest::Method::PUT,
                &format!("/users/{name}"),
                None,
                Some(pw.clone()),
            )
            .await;
        assert!(s == 201 || s == 200, "register {name}: {s}");
        let (s, v) = self
            .call(
                reqwest::Method::PUT,
                &format!("/sessions/{name}"),
                None,
                Some(pw),
            )
            .await;
        assert_eq!(s, 200, "login {name}: {v}");
        v["token"].as_str().unwrap().to_string()
    }
}

fn run_load(args: &[&str]) -> (bool, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_bookstore-load"))
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|_| json!({ "raw": text }));
    (out.status.success(), v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bookstore_end_to_end() {
    use reqwest::Method as M;
    let Some(mut stack) = start().await else {
        return;
    };
    let api = Api {
        http: reqwest::Client::new(),
        base: stack.gateway.clone(),
    };

    // Journeys through the load generator.
    let (ok, report) = run_load(&[
        "--url",
        &stack.gateway,
        "--rate",
        "10",
        "--duration",
        "3s",
        "--output",
        "json",
    ]);
    assert!(ok, "journeys failed: {report:#}");
    assert!(
        report["journeys"]["ok"].as_u64().unwrap() >= 25,
        "{report:#}"
    );

    // Idempotent repeats and a declined payment.
    let t = api.user("carol").await;
    let (s, _) = api
        .call(
            M::PUT,
            "/carts/carol/items/3",
            Some(&t),
            Some(json!({"quantity": 2})),
        )
        .await;
    assert_eq!(s, 200);
    let (s, before) = api.call(M::GET, "/books/3", None, None).await;
    assert_eq!(s, 200);
    let (s, o) = api
        .call(
            M::PUT,
            "/orders/carol-declined",
            Some(&t),
            Some(json!({"card_number": "4000 0000 0000 0000"})),
        )
        .await;
    assert_eq!(
        (s, o["status"].as_str()),
        (201, Some("payment_failed")),
        "{o}"
    );
    let (_, after) = api.call(M::GET, "/books/3", None, None).await;
    assert_eq!(
        before["stock"], after["stock"],
        "a declined order gives its stock back"
    );
    let (s, o) = api
        .call(
            M::PUT,
            "/orders/carol-paid",
            Some(&t),
            Some(json!({"card_number": "4111111111111111"})),
        )
        .await;
    assert_eq!(
        (s, o["status"].as_str(), o["total_cents"].as_i64()),
        (
            201,
            Some("paid"),
            Some(2 * before["price_cents"].as_i64().unwrap())
        ),
        "{o}"
    );
    let (s, o2) = api
        .call(
            M::PUT,
            "/orders/carol-paid",
            Some(&t),
            Some(json!({"card_number": "4111111111111111"})),
        )
        .await;
    assert_eq!((s, &o2), (200, &o), "a repeated order is the same order");
    let (_, cart) = api.call(M::GET, "/carts/carol", Some(&t), None).await;
    assert_eq!(cart["items"], json!([]), "a paid order empties the cart");
    let (s, _) = api.call(M::GET, "/carts/bob", Some(&t), None).await;
    assert_eq!(s, 403, "someone else's cart");
    // A wrong password and an unknown user get the same answer (and the
    // service verifies a stand-in hash for the latter, so the time is the
    // same too; not asserted: tests do not time things).
    let wrong = json!({"password": "not-the-password"});
    let (s, v_wrong) = api
        .call(M::PUT, "/sessions/carol", None, Some(wrong.clone()))
        .await;
    assert_eq!(s, 401);
    let (s, v_unknown) = api
        .call(M::PUT, "/sessions/nobody-here", None, Some(wrong))
        .await;
    assert_eq!((s, v_unknown), (401, v_wrong));
    let (s, _) = api
        .call(
            M::PUT,
            "/orders/x",
            None,
            Some(json!({"card_number": "4111111111111111"})),
        )
        .await;
    assert_eq!(s, 401);
    let (s, _) = api
        .call(
            M::PUT,
            "/orders/bad id",
            Some(&t),
            Some(json!({"card_number": "1"})),
        )
        .await;
    assert_eq!(s, 400);

    // 20 concurrent orders for a book with stock 5: exactly 5 are paid.
    let scarce =
        json!({"title": "Scarce", "author": "Test Author", "price_cents": 1000, "stock": 5});
    let (s, _) = api
        .call(M::PUT, "/books/9001", Some(&t), Some(scarce.clone()))
        .await;
    assert_eq!(s, 401, "publishing needs the admin token");
    let (s, _) = api
        .call(M::PUT, "/books/9001", Some(ADMIN), Some(scarce))
        .await;
    assert_eq!(s, 201);
    let mut buyers = vec![];
    for i in 0..20 {
        let name = format!("buyer{i}");
        let t = api.user(&name).await;
        let (s, _) = api
            .call(
                M::PUT,
                &format!("/carts/{name}/items/9001"),
                Some(&t),
                Some(json!({"quantity": 1})),
            )
            .await;
        assert_eq!(s, 200);
        buyers.push((name, t));
    }
    let api = std::sync::Arc::new(api);
    let mut tasks = vec![];
    for (name, t) in buyers {
        let api = api.clone();
        tasks.push(tokio::spawn(async move {
            api.call(
                M::PUT,
                &format!("/orders/{name}-o"),
                Some(&t),
                Some(json!({"card_number": "4111111111111111"})),
            )
            .await
        }));
    }
    let mut statuses = std::collections::BTreeMap::new();
    for task in tasks {
        let (s, o) = task.await.unwrap();
        assert!(s == 201, "order: {s} {o}");
        *statuses
            .entry(o["status"].as_str().unwrap().to_string())
            .or_insert(0) += 1;
    }
    assert_eq!(statuses.get("paid"), Some(&5), "{statuses:?}");
    assert_eq!(statuses.get("rejected"), Some(&15), "{statuses:?}");
    let (_, scarce) = api.call(M::GET, "/books/9001", None, None).await;
    assert_eq!(scarce["stock"], 0);

    // Database restart: clean 503s within the budget, then recovery.
    stack.stop_postgres();
    let t0 = Instant::now();
    let (s, v) = api.call(M::GET, "/books/1", None, None).await;
    assert_eq!(s, 503, "{v}");
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "a request hung for {:?}",
        t0.elapsed()
    );
    assert!(v["error"].is_string());
    stack.start_postgres();
    let ports = stack.ports.clone();
    wait_healthy(&api.http, &ports, Duration::from_secs(30)).await;
    let (ok, report) = run_load(&[
        "--url",
        &stack.gateway,
        "--rate",
        "5",
        "--duration",
        "2s",
        "--output",
        "json",
    ]);
    assert!(ok, "journeys after the database restart failed: {report:#}");

    // Stock = remaining + paid units, for every book.
    let out = Command::new(env!("CARGO_BIN_EXE_bookstore-load"))
        .args(["check", "--url", &stack.gateway, "--wait", "20s"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "check: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // The shop renders.
    let page = api
        .http
        .get(format!("{}/?q=harbor", stack.gateway))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Harbor"));
    let metrics = api
        .http
        .get(format!("{}/metrics", stack.gateway))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("bookstore_http_requests_total"),
        "{metrics}"
    );
}
