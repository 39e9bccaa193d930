//! End-to-end tests of the loading pipeline through the public API.

use crate::{load, load_str, Diagnostics, LoadOptions, Loaded};
use flotilla_spec::*;
use std::collections::BTreeMap;
use std::path::PathBuf;

fn opts() -> LoadOptions {
    let mut environment = BTreeMap::new();
    environment.insert("TAG".to_string(), "1.25".to_string());
    environment.insert("HOME".to_string(), "/home/u".to_string());
    LoadOptions {
        environment,
        working_dir: Some(PathBuf::from("/proj/app")),
        ..LoadOptions::default()
    }
}

fn ok(text: &str) -> Loaded {
    match load_str("stack.yml", text, &opts()) {
        Ok(l) => l,
        Err(d) => panic!("unexpected errors:\n{d}"),
    }
}

fn err(text: &str) -> Diagnostics {
    match load_str("stack.yml", text, &opts()) {
        Ok(l) => panic!("expected an error, got {:#?}", l.stack),
        Err(d) => d,
    }
}

fn has(d: &Diagnostics, needle: &str) -> bool {
    d.0.iter()
        .any(|x| x.is_error() && x.message.contains(needle))
}

const REAL_WORLD: &str = r#"
name: Shop
x-common: &common
  restart: unless-stopped
  logging:
    driver: json-file
    options: {max-size: 10m}
services:
  web:
    <<: *common
    image: nginx:${TAG}
    ports:
      - "8080:80"
      - "127.0.0.1:8443:443"
      - "5353:53/udp"
      - "9000-9002:9000-9002"
      - "[::1]:7000:7000"
      - target: 81
        published: "8081"
        protocol: tcp
        mode: host
    volumes:
      - ./html:/usr/share/nginx/html:ro
      - data:/var/data
      - type: tmpfs
        target: /cache
        tmpfs: {size: 1.5G}
      - /host/logs:/logs:rw,z
    environment:
      - MODE=prod
      - TAG
      - UNSET_ONE
    healthcheck:
      test: curl -f http://localhost/ || exit 1
      interval: 1m30s
      timeout: 500ms
      start_period: 1h2m3.5s
    command: nginx -g 'daemon off;'
    depends_on: [api]
    deploy:
      replicas: 3
      resources:
        limits: {cpus: "0.5", memory: 512M}
        reservations: {memory: 100k}
      update_config: {parallelism: 2, order: start-first}
      placement:
        constraints: [node.role == worker]
        preferences: [{spread: node.labels.zone}]
    x-flotilla:
      http_ports: [80]
      autoscaling: {min: 2, max: 10, target_cpu: 70}
    stop_grace_period: 30s
    ulimits:
      nofile: {soft: 1024, hard: 2048}
      nproc: 512
    extra_hosts: ["db.local:10.0.0.2", "v6=::1"]
  api:
    build:
      context: ./api
      target: prod
      args: [VERSION=2]
    healthcheck:
      test: ["CMD-SHELL", "echo $$HOME && wget -q localhost"]
    entrypoint: ["/bin/api", "--port", "8000"]
    networks: [back]
    secrets: [db_pw]
    shm_size: 64m
networks:
  back: {}
volumes:
  data:
secrets:
  db_pw:
    file: ./secrets/db.txt
"#;

#[test]
fn real_world_short_forms() {
    let l = ok(REAL_WORLD);
    let st = &l.stack;
    assert_eq!(st.name, "shop");
    assert_eq!(st.project_dir, "/proj/app");
    let web = &st.services["web"];
    assert_eq!(web.image.as_deref(), Some("nginx:1.25"));
    assert_eq!(web.restart.as_deref(), Some("unless-stopped"));
    assert_eq!(web.logging.as_ref().unwrap().options["max-size"], "10m");
    assert_eq!(web.ports.len(), 1 + 1 + 1 + 3 + 1 + 1);
    assert_eq!(web.ports[2].protocol, Protocol::Udp);
    assert_eq!(
        (web.ports[4].published, web.ports[4].target),
        (Some(9001), 9001)
    );
    assert_eq!(web.ports[6].host_ip.as_deref(), Some("::1"));
    assert_eq!(web.ports[7].mode, PortMode::Host);
    assert_eq!(web.ports[7].published, Some(8081));
    assert!(
        web.ports[0].http,
        "x-flotilla http_ports marks container port 80"
    );
    assert_eq!(web.volumes[0].source.as_deref(), Some("/proj/app/html"));
    assert!(web.volumes[0].read_only);
    assert_eq!(web.volumes[1].kind, MountType::Volume);
    assert_eq!(web.volumes[2].tmpfs.as_ref().unwrap().size, Some(3 << 29));
    assert_eq!(
        web.volumes[3].bind.as_ref().unwrap().selinux.as_deref(),
        Some("z")
    );
    assert_eq!(web.environment["MODE"].as_deref(), Some("prod"));
    assert_eq!(web.environment["TAG"].as_deref(), Some("1.25"));
    assert_eq!(web.environment["UNSET_ONE"], None);
    let hc = web.healthcheck.as_ref().unwrap();
    assert_eq!(
        hc.test,
        Some(HealthTest::Shell(
            "curl -f http://localhost/ || exit 1".into()
        ))
    );
    assert_eq!(hc.interval, Duration::from_secs(90));
    assert_eq!(hc.timeout, Duration::from_millis(500));
    assert_eq!(hc.retries, 3);
    assert_eq!(
        web.command.as_deref().unwrap(),
        ["nginx", "-g", "daemon off;"]
    );
    assert_eq!(web.deploy.replicas, Some(3));
    assert_eq!(web.deploy.resources.limits.cpus, Some(0.5));
    assert_eq!(web.deploy.resources.limits.memory, Some(512 << 20));
    assert_eq!(web.deploy.resources.reservations.memory, Some(100 << 10));
    assert_eq!(web.deploy.update_config.parallelism, 2);
    assert_eq!(web.deploy.update_config.order, UpdateOrder::StartFirst);
    assert_eq!(
        web.deploy.update_config.failure_action,
        FailureAction::Pause
    );
    assert_eq!(web.deploy.rollback_config, UpdateConfig::default());
    assert_eq!(web.deploy.restart_policy, RestartPolicy::default());
    assert_eq!(web.deploy.placement.preferences, ["node.labels.zone"]);
    let auto = web
        .x_flotilla
        .as_ref()
        .unwrap()
        .autoscaling
        .as_ref()
        .unwrap();
    assert_eq!((auto.min, auto.max, auto.target_cpu), (2, 10, Some(70.0)));
    assert_eq!(web.stop_grace_period, Duration::from_secs(30));
    assert_eq!(
        web.ulimits["nproc"],
        Ulimit {
            soft: 512,
            hard: 512
        }
    );
    assert_eq!(web.extra_hosts["v6"], ["::1"]);
    assert_eq!(web.networks.keys().collect::<Vec<_>>(), ["default"]);
    let api = &st.services["api"];
    let b = api.build.as_ref().unwrap();
    assert_eq!(
        (b.context.as_str(), b.target.as_deref()),
        ("/proj/app/api", Some("prod"))
    );
    assert_eq!(b.args["VERSION"].as_deref(), Some("2"));
    assert_eq!(
        api.healthcheck.as_ref().unwrap().test,
        Some(HealthTest::Shell("echo $HOME && wget -q localhost".into()))
    );
    assert_eq!(api.secrets[0].target, "/run/secrets/db_pw");
    assert_eq!(api.shm_size, Some(64 << 20));
    assert_eq!(st.networks["default"].name, "shop_default");
    assert_eq!(st.volumes["data"].name, "shop_data");
    assert_eq!(
        st.secrets["db_pw"].file.as_deref(),
        Some("/proj/app/secrets/db.txt")
    );
    assert!(st.extensions.contains_key("x-common"));
    // Warnings: unset variable, build recorded.
    assert!(l
        .warnings
        .iter()
        .any(|w| w.message.contains("UNSET_ONE") || w.message.contains("build")));
}

#[test]
fn bom_crlf_one_space_indentation() {
    let text = "\u{feff}services:\r\n web:\r\n  image: busybox\r\n  command: [\"sh\", \"-c\", \"echo hi\"]\r\n";
    let l = ok(text);
    assert_eq!(l.stack.services["web"].image.as_deref(), Some("busybox"));
}

#[test]
fn unknown_keys_suggest_and_errors_come_together() {
    let d = err(
        "services:\n  web:\n    imgae: nginx\n    enviroment: [A=1]\n    ports: ['70000:80']\n",
    );
    let rendered = d.render(false);
    assert!(
        rendered.contains("unknown key `imgae` in service `web`"),
        "{rendered}"
    );
    assert!(rendered.contains("did you mean `image`?"), "{rendered}");
    assert!(
        rendered.contains("did you mean `environment`?"),
        "{rendered}"
    );
    assert!(rendered.contains("ports go from 1 to 65535"), "{rendered}");
    assert!(rendered.contains("--> stack.yml:3:5"), "{rendered}");
    assert!(rendered.contains("3 |     imgae: nginx"), "{rendered}");
    assert!(rendered.contains("^^^^^"), "{rendered}");
}

#[test]
fn type_errors_point_at_the_value() {
    let d = err("services:\n  web:\n    image: 5\n    user: 1000\n");
    let r = d.render(false);
    assert!(
        r.contains("3 |     image: 5\n  |            ^ expected a string"),
        "{r}"
    );
    assert!(r.contains("quote it: \"1000\""), "{r}");
    let d = err("services:\n  web:\n    image: [a]\n    read_only: maybe\n");
    let first = &d.0[0];
    assert_eq!((first.line, first.column), (3, 12));
    assert!(first.message.contains("expected a string, found a list"));
    assert!(has(&d, "expected true or false"));
}

#[test]
fn not_acted_on_keys_warn_by_name() {
    let l = ok("services:\n  web:\n    image: x\n    devices: [/dev/fuse]\n    runtime: runc\n    gpus: all\n");
    let names: Vec<&str> = l.warnings.iter().map(|w| w.message.as_str()).collect();
    for key in ["devices", "runtime", "gpus"] {
        assert!(
            names.iter().any(|m| m.contains(&format!("`{key}`"))),
            "{key}: {names:?}"
        );
    }
    assert!(l.stack.services["web"].not_acted_on.contains_key("devices"));
}

#[test]
fn interpolation_errors_point_into_the_value() {
    let d = err("services:\n  web:\n    image: \"nginx:${NOPE:?set NOPE}\"\n");
    let e = &d.0[0];
    assert_eq!(e.line, 3);
    assert_eq!(e.column, 19, "{e:?}");
    assert!(e
        .message
        .contains("required variable NOPE is missing a value: set NOPE"));
    // Keys are not interpolated; x- extensions are.
    let l = ok("x-a: ${TAG}\nservices:\n  w:\n    image: x\n    labels: {\"$TAG\": v}\n");
    assert_eq!(l.stack.extensions["x-a"], serde_json::json!("1.25"));
    assert!(l.stack.services["w"].labels.contains_key("$TAG"));
}

#[test]
fn validation_table() {
    let cases: &[(&str, &str)] = &[
        ("services:\n  a:\n    image: x\n    networks: [nope]\n", "network `nope`, which is not defined"),
        ("services:\n  a:\n    image: x\n    volumes: [vol:/d]\n", "volume `vol`, which is not defined"),
        ("services:\n  a:\n    image: x\n    secrets: [s]\n", "secret `s`, which is not defined"),
        ("services:\n  a:\n    image: x\n    configs: [c]\n", "config `c`, which is not defined"),
        ("services:\n  a:\n    image: x\n    depends_on: [b]\n  b:\n    image: x\n    depends_on: [a]\n", "dependency cycle: a -> b -> a"),
        ("services:\n  a:\n    image: x\n    depends_on: [bb]\n  b:\n    image: x\n", "undefined service `bb`"),
        ("services:\n  a:\n    image: x\n    ports: ['80:80']\n  b:\n    image: x\n    ports: ['80:81']\n", "published by both `a` and `b`"),
        ("services:\n  a:\n    image: x\n    ports: ['127.0.0.1:80:80']\n  b:\n    image: x\n    ports: ['80:81']\n", "published by both `a` and `b`"),
        ("services:\n  a:\n    image: x\n    ports: ['80:80', '80:81']\n", "publishes host port 0.0.0.0:80/tcp twice"),
        ("services:\n  a:\n    image: x\n    deploy: {mode: global, replicas: 2}\n", "`replicas` cannot be used with a global"),
        ("services:\n  a:\n    image: x\n    container_name: c\n    deploy: {replicas: 2}\n", "sets `container_name` but runs 2 replicas"),
        ("services:\n  a:\n    image: x\n    network_mode: host\n    networks: [n]\nnetworks: {n: {}}\n", "both `network_mode` and `networks`"),
        ("services:\n  a:\n    image: x\n    ports: ['8000-8005:80-82']\n", "has 6 ports but container range 80-82 has 3"),
        ("services:\n  a:\n    command: x\n", "has neither `image` nor `build`"),
        ("services:\n  a:\n    image: x\n    x-flotilla: {autoscale: {}}\n", "unknown key `autoscale`"),
        ("services:\n  a:\n    image: x\n    x-flotilla: {probe: {http: {path: /h}}}\n", "has no `port`"),
        ("services:\n  a:\n    image: x\n    x-flotilla: {probe: {http: {port: 80, path: h}}}\n", "not an absolute path"),
        ("services:\n  a:\n    image: x\n    x-flotilla: {probe: {http: {port: 80}, tcp: {port: 80}}}\n", "sets both `http` and `tcp`"),
        ("services:\n  a:\n    image: x\n    x-flotilla: {probe: {tcp: {port: 0}}}\n", "not a port number"),
        ("services:\n  a:\n    image: x\n    x-flotilla: {probe: {}}\n", "is empty"),
        ("services:\n  a:\n    image: x\n    x-flotilla: {probe: {grpc: {port: 1}}}\n", "unknown key `grpc`"),
        ("services:\n  a:\n    image: x\n    deploy: {restart_policy: {condition: sometimes}}\n", "not a restart condition"),
        ("services:\n  a:\n    image: x\n    scale: 2\n    deploy: {replicas: 3}\n", "conflicts with `deploy.replicas: 3`"),
    ];
    for (text, want) in cases {
        let d = err(text);
        assert!(has(&d, want), "{text}\nwanted {want:?}, got:\n{d}");
    }
}

#[test]
fn profiles_select_services() {
    let text = "services:\n  a:\n    image: x\n  dbg:\n    image: x\n    profiles: [debug]\n";
    let l = ok(text);
    assert!(!l.stack.services.contains_key("dbg"));
    let mut o = opts();
    o.profiles = vec!["debug".into()];
    let l = load_str("s.yml", text, &o).unwrap();
    assert!(l.stack.services.contains_key("dbg"));
    let d = err("services:\n  a:\n    image: x\n    depends_on: [dbg]\n  dbg:\n    image: x\n    profiles: [debug]\n");
    assert!(has(&d, "disabled by its profiles"));
}

#[test]
fn extends_same_file_and_cycles() {
    let l = ok("services:\n  base:\n    image: x\n    environment: {A: '1'}\n    ports: ['80']\n  web:\n    extends: base\n    environment: {B: '2'}\n    ports: ['81:81']\n");
    let web = &l.stack.services["web"];
    assert_eq!(web.image.as_deref(), Some("x"));
    assert_eq!(web.environment.len(), 2);
    assert_eq!(web.ports.len(), 2);
    let d = err("services:\n  a:\n    extends: b\n  b:\n    extends: a\n");
    assert!(has(&d, "`extends` cycle"), "{d}");
}

#[test]
fn merge_tags_in_one_file_are_dropped() {
    let l = ok("services:\n  a:\n    image: x\n    ports: !reset []\n");
    assert!(l.stack.services["a"].ports.is_empty());
}

#[test]
fn files_merge_include_and_env_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::write(p.join(".env"), "TAG=from-dotenv\nexport PORT=8080\n").unwrap();
    std::fs::write(
        p.join("compose.yaml"),
        "services:\n  web:\n    image: nginx:${TAG}\n    command: [a, b]\n    ports: ['${PORT}:80']\n    environment: [A=1]\n    volumes: ['./a:/data']\ninclude:\n  - sub/db.yml\n",
    )
    .unwrap();
    std::fs::write(
        p.join("override.yml"),
        "services:\n  web:\n    command: [c]\n    environment: {B: 2}\n    volumes: ['./b:/data:ro']\n",
    )
    .unwrap();
    std::fs::create_dir(p.join("sub")).unwrap();
    std::fs::write(
        p.join("sub/db.yml"),
        "services:\n  db:\n    image: postgres\n    volumes: ['./pg:/var/lib/postgresql']\n    env_file: db.env\n",
    )
    .unwrap();
    std::fs::write(p.join("sub/db.env"), "POSTGRES_PASSWORD=\"secret\"\n").unwrap();
    let o = LoadOptions {
        files: vec!["compose.yaml".into(), "override.yml".into()],
        working_dir: Some(p.to_path_buf()),
        ..LoadOptions::default()
    };
    let l = load(&o).unwrap_or_else(|d| panic!("{d}"));
    let web = &l.stack.services["web"];
    assert_eq!(web.image.as_deref(), Some("nginx:from-dotenv"));
    assert_eq!(web.command.as_deref().unwrap(), ["c"]);
    assert_eq!(web.ports[0].published, Some(8080));
    assert_eq!(web.environment.len(), 2);
    assert_eq!(web.volumes.len(), 1);
    assert!(web.volumes[0].read_only);
    assert!(web.volumes[0].source.as_deref().unwrap().ends_with("/b"));
    let db = &l.stack.services["db"];
    assert!(db.volumes[0]
        .source
        .as_deref()
        .unwrap()
        .ends_with("/sub/pg"));
    assert_eq!(
        db.environment["POSTGRES_PASSWORD"].as_deref(),
        Some("secret")
    );
    // The process environment wins over .env.
    let mut o2 = o.clone();
    o2.environment.insert("TAG".into(), "env".into());
    let l = load(&o2).unwrap();
    assert_eq!(l.stack.services["web"].image.as_deref(), Some("nginx:env"));
    // Discovery without -f.
    let o3 = LoadOptions {
        working_dir: Some(p.to_path_buf()),
        ..LoadOptions::default()
    };
    assert!(load(&o3).is_ok());
}

#[test]
fn json_round_trip() {
    let l = ok(REAL_WORLD);
    let json = crate::to_json(&l.stack);
    let back: Stack = serde_json::from_str(&json).unwrap();
    assert_eq!(back, l.stack);
    assert!(json.contains("\"interval\": \"1m30s\""));
}

/// Builds a 1,000-service stack and loads it; prints the time so a
/// release run (`cargo test --release -p flotilla-compose big_stack`)
/// gives a figure. It asserts only the result, never the time.
#[test]
fn big_stack_loads() {
    let mut text = String::from("services:\n");
    for i in 0..1000 {
        text.push_str(&format!(
            "  s{i}:\n    image: busybox:${{TAG}}\n    command: sh -c 'sleep 1000'\n    ports: ['{}:80']\n    environment: [A=1, B=2]\n    volumes: ['./d{i}:/data:ro']\n    deploy:\n      replicas: 2\n      resources: {{limits: {{cpus: '0.5', memory: 64M}}}}\n    healthcheck:\n      test: [CMD, \"true\"]\n      interval: 10s\n",
            10000 + i
        ));
    }
    let start = std::time::Instant::now();
    let l = ok(&text);
    let took = start.elapsed();
    eprintln!("1000-service stack loaded in {took:?}");
    assert_eq!(l.stack.services.len(), 1000);
}

#[test]
fn x_flotilla_probe_replaces_the_test_and_keeps_the_timings() {
    let l = ok("services:\n  a:\n    image: x\n    healthcheck:\n      test: [CMD, /bin/check]\n      interval: 2s\n    x-flotilla:\n      probe: {http: {port: 8080, path: /healthz}}\n  b:\n    image: x\n    x-flotilla: {probe: {tcp: {port: 5432}}}\n  c:\n    image: x\n    healthcheck: {disable: true}\n    x-flotilla: {probe: {tcp: {port: 1}}}\n");
    let a = l.stack.services["a"].healthcheck.as_ref().unwrap();
    assert_eq!(
        a.test,
        Some(HealthTest::Http(flotilla_spec::HttpProbe {
            port: 8080,
            path: "/healthz".into()
        }))
    );
    assert_eq!(a.interval, Duration::from_secs(2));
    let b = l.stack.services["b"].healthcheck.as_ref().unwrap();
    assert_eq!(
        b.test,
        Some(HealthTest::Tcp(flotilla_spec::TcpProbe { port: 5432 }))
    );
    assert_eq!(
        b.interval,
        Duration::from_secs(30),
        "Docker's default timings"
    );
    let c = l.stack.services["c"].healthcheck.as_ref().unwrap();
    assert_eq!(c.test, Some(HealthTest::None), "disable wins over a probe");
}
