//! The control plane over real HTTP: a server on loopback, a reqwest client,
//! and the test itself acting as an agent through the same API an agent uses.

use flotilla_server::{start, RunningServer, ServerConfig};
use flotilla_spec::{Service, Stack};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;

struct Harness {
    server: Option<RunningServer>,
    base: String,
    token: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Harness {
    async fn new() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let server = start(ServerConfig {
            data_dir: dir.path().to_path_buf(),
            listen: "127.0.0.1:0".parse().unwrap(),
            node_ttl: Duration::from_secs(1),
            metrics: Default::default(),
            networks: flotilla_server::NetworkPool {
                pool: "10.250.0.0/16".parse().unwrap(),
                prefix: 24,
            },
        })
        .await
        .unwrap();
        let token = server
            .new_token
            .clone()
            .expect("first start creates a token");
        let on_disk =
            std::fs::read_to_string(dir.path().join(flotilla_server::TOKEN_FILE)).unwrap();
        assert_eq!(
            on_disk, token,
            "the token file holds the token for the local CLI"
        );
        Harness {
            base: format!("http://{}", server.addr),
            server: Some(server),
            token,
            http: reqwest::Client::new(),
            _dir: dir,
        }
    }

    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
    }

    async fn get(&self, path: &str) -> Value {
        let r = self.req(reqwest::Method::GET, path).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "GET {path}");
        r.json().await.unwrap()
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Value) -> (StatusCode, Value) {
        let r = self.req(method, path).json(&body).send().await.unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn register(&self, hostname: &str) -> String {
        let (status, body) = self
            .send(reqwest::Method::POST, "/v1/nodes", json!({ "id": null, "hostname": hostname, "address": "127.0.0.1:0", "os": "linux", "arch": "x86_64", "nano_cpus": 2_000_000_000u64, "memory_bytes": 4u64 << 30 }))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["node"]["id"].as_str().unwrap().to_string()
    }

    /// Poll until `check` holds (the controllers are asynchronous).
    async fn eventually<F: Fn(&Value) -> bool>(&self, path: &str, what: &str, check: F) -> Value {
        for _ in 0..200 {
            let v = self.get(path).await;
            if check(&v) {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "timed out waiting for {what}; last {path}: {}",
            self.get(path).await
        );
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(server.shutdown())
            });
        }
    }
}

fn stack(replicas: u64) -> Stack {
    let mut web = Service {
        image: Some("busybox:local".into()),
        ..Default::default()
    };
    web.deploy.replicas = Some(replicas);
    web.deploy.restart_policy.delay = flotilla_spec::Duration(0);
    Stack {
        name: "shop".into(),
        services: [("web".to_string(), web)].into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_4xx_json_never_5xx() {
    let h = Harness::new().await;
    let anon = h
        .http
        .get(format!("{}/v1/services", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(anon.status(), StatusCode::UNAUTHORIZED);
    let body: Value = anon.json().await.unwrap();
    assert_eq!(body["error"], "missing bearer token");
    assert!(body["hint"].as_str().unwrap().contains("Bearer"));
    let wrong = h
        .http
        .get(format!("{}/v1/services", h.base))
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);

    let valid = serde_json::to_string(&stack(1)).unwrap();
    let empty = serde_json::to_string(&Stack {
        services: Default::default(),
        ..stack(1)
    })
    .unwrap();
    let cases: Vec<(reqwest::Method, &str, Option<&str>, StatusCode)> = vec![
        (reqwest::Method::PUT, "/v1/stacks/shop", Some("{not json"), StatusCode::BAD_REQUEST),
        (reqwest::Method::PUT, "/v1/stacks/shop", Some("{\"services\": 5}"), StatusCode::UNPROCESSABLE_ENTITY),
        (reqwest::Method::PUT, "/v1/stacks/Bad%20Name", Some(valid.as_str()), StatusCode::BAD_REQUEST),
        (reqwest::Method::PUT, "/v1/stacks/shop", Some(empty.as_str()), StatusCode::BAD_REQUEST),
        (reqwest::Method::POST, "/v1/services/nope/scale", Some("{\"replicas\": 2}"), StatusCode::NOT_FOUND),
        (reqwest::Method::POST, "/v1/services/nope/scale", Some("{\"replicas\": -1}"), StatusCode::UNPROCESSABLE_ENTITY),
        (reqwest::Method::POST, "/v1/services/nope/scale", Some("{\"replicas\": 2, \"extra\": 1}"), StatusCode::UNPROCESSABLE_ENTITY),
        (reqwest::Method::GET, "/v1/tasks/zzz", None, StatusCode::NOT_FOUND),
        (reqwest::Method::PUT, "/v1/tasks/zzz/status", Some("{\"state\": \"flying\"}"), StatusCode::UNPROCESSABLE_ENTITY),
        (reqwest::Method::POST, "/v1/nodes", Some("{\"hostname\": \"\", \"address\": \"x\", \"os\": \"linux\", \"arch\": \"x\", \"nano_cpus\": 1, \"memory_bytes\": 1}"), StatusCode::BAD_REQUEST),
        (reqwest::Method::POST, "/v1/nodes/ghost/heartbeat", None, StatusCode::NOT_FOUND),
        (reqwest::Method::GET, "/v1/no-such-thing", None, StatusCode::NOT_FOUND),
        (reqwest::Method::DELETE, "/v1/stacks/ghost", None, StatusCode::NOT_FOUND),
    ];
    for (method, path, body, expected) in cases {
        let mut req = h.req(method.clone(), path);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), expected, "{method} {path} {body:?}");
        let v: Value = r
            .json()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: error body is not JSON: {e}"));
        assert!(
            v["error"].as_str().is_some_and(|s| !s.is_empty()),
            "{method} {path}: {v}"
        );
    }
    // A body over the size limit is refused, not buffered.
    let huge = "x".repeat(flotilla_server::MAX_BODY + 1);
    let r = h
        .req(reqwest::Method::PUT, "/v1/stacks/shop")
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // A service without an image says how to fix it.
    let mut no_image = stack(1);
    no_image.services.get_mut("web").unwrap().image = None;
    let (status, body) = h
        .send(
            reqwest::Method::PUT,
            "/v1/stacks/shop",
            serde_json::to_value(&no_image).unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "service \"web\" has no image");
    let doc = h
        .http
        .get(format!("{}/openapi.json", h.base))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/v1/stacks/{name}"]["put"].is_object());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_schedule_report_scale_and_remove() {
    let h = Harness::new().await;
    // No node yet: tasks wait with a reason.
    let (status, report) = h
        .send(
            reqwest::Method::PUT,
            "/v1/stacks/shop",
            serde_json::to_value(stack(3)).unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["services"]["web"], "created");
    let tasks = h
        .eventually("/v1/tasks", "3 pending tasks", |v| {
            v.as_array().unwrap().len() == 3
                && v.as_array()
                    .unwrap()
                    .iter()
                    .all(|t| t["state"] == "pending")
        })
        .await;
    assert_eq!(
        tasks[0]["message"],
        "no suitable node: the cluster has no nodes"
    );

    // A node arrives: the tasks are assigned to it.
    let node = h.register("node-a").await;
    let hb = {
        let h2 = (
            h.http.clone(),
            h.base.clone(),
            h.token.clone(),
            node.clone(),
        );
        tokio::spawn(async move {
            loop {
                let _ =
                    h2.0.post(format!("{}/v1/nodes/{}/heartbeat", h2.1, h2.3))
                        .bearer_auth(&h2.2)
                        .send()
                        .await;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    let tasks = h
        .eventually("/v1/tasks", "3 assigned tasks", |v| {
            v.as_array()
                .unwrap()
                .iter()
                .filter(|t| t["state"] == "assigned")
                .count()
                == 3
        })
        .await;
    assert!(tasks
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["node"] == node.as_str()));

    // The agent's view: its assignment stream lists them.
    let mut stream = h
        .req(
            reqwest::Method::GET,
            &format!("/v1/nodes/{node}/assignments"),
        )
        .send()
        .await
        .unwrap();
    let first = stream.chunk().await.unwrap().unwrap();
    let line: Value = serde_json::from_slice(&first).unwrap();
    assert_eq!(line["tasks"].as_array().unwrap().len(), 3);

    // The agent reports them running; an illegal backwards move is refused.
    for t in tasks.as_array().unwrap() {
        let id = t["id"].as_str().unwrap();
        let (s, _) = h
            .send(
                reqwest::Method::PUT,
                &format!("/v1/tasks/{id}/status"),
                json!({ "state": "running", "container_id": "c", "ip": "10.0.0.2" }),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
    }
    let id = tasks[0]["id"].as_str().unwrap().to_string();
    let (s, body) = h
        .send(
            reqwest::Method::PUT,
            &format!("/v1/tasks/{id}/status"),
            json!({ "state": "starting" }),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert!(body["error"]
        .as_str()
        .unwrap()
        .contains("only move forward"));
    let svc = h.get("/v1/services/shop_web").await;
    assert_eq!(
        (
            svc["status"]["desired"].as_u64(),
            svc["status"]["running"].as_u64()
        ),
        (Some(3), Some(3))
    );

    // A crash: the agent reports failed; the slot gets a new task.
    let (s, _) = h
        .send(
            reqwest::Method::PUT,
            &format!("/v1/tasks/{id}/status"),
            json!({ "state": "failed", "message": "exit code 137", "exit_code": 137 }),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let slot = tasks[0]["slot"].as_u64().unwrap();
    h.eventually("/v1/tasks", "a replacement in the failed slot", |v| {
        v.as_array().unwrap().iter().any(|t| {
            t["slot"].as_u64() == Some(slot) && t["id"] != id.as_str() && t["state"] == "assigned"
        })
    })
    .await;

    // Scale down to 1: two tasks are asked to stop.
    let (s, _) = h
        .send(
            reqwest::Method::POST,
            "/v1/services/shop_web/scale",
            json!({ "replicas": 1 }),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    h.eventually("/v1/tasks", "two shutdown requests", |v| {
        v.as_array()
            .unwrap()
            .iter()
            .filter(|t| t["desired"] == "shutdown")
            .count()
            == 2
    })
    .await;

    // Events record what happened.
    let events = h.get("/v1/events").await;
    let actions: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for expected in [
        "created",
        "ready",
        "running",
        "failed",
        "scaled",
        "shutdown-requested",
    ] {
        assert!(
            actions.contains(&expected),
            "no {expected:?} event in {actions:?}"
        );
    }

    // Removing the stack stops everything.
    let (s, _) = h
        .send(reqwest::Method::DELETE, "/v1/stacks/shop", Value::Null)
        .await;
    assert_eq!(s, StatusCode::OK);
    h.eventually("/v1/tasks", "every task asked to stop", |v| {
        v.as_array()
            .unwrap()
            .iter()
            .all(|t| t["desired"] == "shutdown")
    })
    .await;
    hb.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_node_goes_down_and_its_tasks_are_orphaned() {
    let h = Harness::new().await;
    let node = h.register("node-a").await;
    h.send(
        reqwest::Method::PUT,
        "/v1/stacks/shop",
        serde_json::to_value(stack(2)).unwrap(),
    )
    .await;
    h.eventually("/v1/tasks", "assigned tasks", |v| {
        v.as_array()
            .unwrap()
            .iter()
            .filter(|t| t["state"] == "assigned")
            .count()
            == 2
    })
    .await;
    // No heartbeats: after the 1 s TTL the node is down and its tasks orphaned, then replaced (pending: no node left).
    h.eventually("/v1/nodes", "node down", |v| v[0]["status"] == "down")
        .await;
    let all = h
        .eventually("/v1/tasks?all=true", "orphaned tasks", |v| {
            v.as_array()
                .unwrap()
                .iter()
                .filter(|t| t["state"] == "orphaned")
                .count()
                == 2
        })
        .await;
    assert!(all
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["state"] == "orphaned")
        .all(|t| t["node"] == node.as_str()));
    let tasks = h
        .eventually("/v1/tasks", "pending replacements", |v| {
            v.as_array()
                .unwrap()
                .iter()
                .filter(|t| t["state"] == "pending")
                .count()
                == 2
        })
        .await;
    assert!(
        tasks[0]["message"]
            .as_str()
            .unwrap()
            .contains("1 node not ready"),
        "{}",
        tasks[0]["message"]
    );
    let (s, _) = h
        .send(
            reqwest::Method::POST,
            &format!("/v1/nodes/{node}/heartbeat"),
            Value::Null,
        )
        .await;
    assert_eq!(
        s,
        StatusCode::NOT_FOUND,
        "a node whose lease expired must register again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_survives_a_server_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = || ServerConfig {
        data_dir: dir.path().to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        node_ttl: Duration::from_secs(5),
        metrics: Default::default(),
        networks: flotilla_server::NetworkPool {
            pool: "10.250.0.0/16".parse().unwrap(),
            prefix: 24,
        },
    };
    let server = start(config()).await.unwrap();
    let token = server.new_token.clone().unwrap();
    let http = reqwest::Client::new();
    let r = http
        .put(format!("http://{}/v1/stacks/shop", server.addr))
        .bearer_auth(&token)
        .json(&stack(2))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    server.shutdown().await;
    let server = start(config()).await.unwrap();
    assert!(server.new_token.is_none(), "the token is created once");
    let services: Value = http
        .get(format!("http://{}/v1/services", server.addr))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(services[0]["id"], "shop_web");
    assert_eq!(services[0]["spec"]["deploy"]["replicas"], 2);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stack_networks_get_subnets_and_services_stable_vips() {
    let h = Harness::new().await;
    let mut s = stack(1);
    let web = s.services.get_mut("web").unwrap();
    web.networks = [
        ("default".to_string(), Default::default()),
        ("back".to_string(), Default::default()),
    ]
    .into();
    let mut db = Service {
        image: Some("busybox:local".into()),
        ..Default::default()
    };
    db.networks = [("back".to_string(), Default::default())].into();
    db.deploy.endpoint_mode = flotilla_spec::EndpointMode::Dnsrr;
    s.services.insert("db".into(), db);
    for key in ["default", "back"] {
        s.networks.insert(
            key.into(),
            flotilla_spec::Network {
                name: format!("shop_{key}"),
                ..Default::default()
            },
        );
    }
    let body = serde_json::to_value(&s).unwrap();
    let (status, reply) = h
        .send(reqwest::Method::PUT, "/v1/stacks/shop", body.clone())
        .await;
    assert_eq!(status, StatusCode::OK, "{reply}");

    let networks = h.get("/v1/networks").await;
    let subnets: Vec<&str> = networks
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["subnet"].as_str().unwrap())
        .collect();
    assert_eq!(subnets.len(), 2, "{networks}");
    assert_ne!(subnets[0], subnets[1]);
    assert!(subnets
        .iter()
        .all(|s| s.starts_with("10.250.") && s.ends_with("/24")));

    let view = h.get("/v1/networking").await;
    let svc = |name: &str| {
        view["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap()
            .clone()
    };
    let web_vips = svc("web")["vips"].clone();
    assert_eq!(web_vips.as_object().unwrap().len(), 2, "{view}");
    // VIPs come from the upper half of each subnet.
    let default_vip = web_vips["shop_default"].as_str().unwrap();
    assert!(default_vip.ends_with(".128"), "{default_vip}");
    // dnsrr services get no VIP.
    assert!(svc("db")["vips"].as_object().unwrap().is_empty());
    assert!(svc("db")["dnsrr"].as_bool().unwrap());

    // Redeploying keeps the same subnets and VIPs.
    let (status, _) = h
        .send(reqwest::Method::PUT, "/v1/stacks/shop", body.clone())
        .await;
    assert_eq!(status, StatusCode::OK);
    let again = h.get("/v1/networking").await;
    assert_eq!(again["networks"], view["networks"]);
    assert_eq!(
        again["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == "web")
            .unwrap()["vips"],
        web_vips
    );

    // A network the stack does not declare is a 400 naming it.
    let mut bad = s.clone();
    bad.services.get_mut("db").unwrap().networks =
        [("nope".to_string(), Default::default())].into();
    let (status, reply) = h
        .send(
            reqwest::Method::PUT,
            "/v1/stacks/shop",
            serde_json::to_value(&bad).unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
    assert!(reply["error"].as_str().unwrap().contains("nope"), "{reply}");

    // Removing the stack releases its networks and VIPs.
    let (status, _) = h
        .send(reqwest::Method::DELETE, "/v1/stacks/shop", Value::Null)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(h.get("/v1/networks").await, json!([]));
    let after = h.get("/v1/networking").await;
    assert_eq!(after["services"], json!([]));
}
