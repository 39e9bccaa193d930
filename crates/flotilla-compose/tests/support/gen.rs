//! Generates a realistic N-service stack file (ports, environment,
//! healthcheck, deploy, networks, volumes) for scale tests.
//! Deterministic: the same `n` always gives the same text.

use std::fmt::Write;

/// Services are spread over this many tiers; each tier has its own network
/// and each service in a tier > 0 depends on one service of the tier before,
/// so the dependency graph is deep but acyclic.
const TIERS: usize = 4;

pub fn stack_yaml(n: usize) -> String {
    let mut out = String::with_capacity(n * 900);
    out.push_str("name: generated\n\nx-common-env: &common-env\n  LOG_LEVEL: info\n  REGION: eu-west-1\n\nservices:\n");
    for i in 0..n {
        service(&mut out, i, n);
    }
    out.push_str("\nnetworks:\n");
    for t in 0..TIERS {
        let _ = writeln!(out, "  tier{t}:\n    driver: bridge");
    }
    out.push_str("\nvolumes:\n");
    for i in (0..n).step_by(10) {
        let _ = writeln!(out, "  data{i}: {{}}");
    }
    out
}

fn service(out: &mut String, i: usize, n: usize) {
    let tier = i % TIERS;
    // 20000 + i keeps every published port distinct and below 65536 for n ≤ 45,000.
    let port = 20000 + i;
    let _ = write!(
        out,
        "  svc{i}:
    image: registry.local/team{team}/app{i}:1.{minor}
    command: [\"/bin/app\", \"--port\", \"8080\", \"--id\", \"{i}\"]
    ports:
      - \"{port}:8080\"
      - target: 9090
        protocol: udp
    environment:
      <<: *common-env
      SERVICE_ID: \"{i}\"
      PEER: svc{peer}
    healthcheck:
      test: [\"CMD\", \"/bin/app\", \"health\"]
      interval: 10s
      timeout: 2s
      retries: 3
      start_period: 5s
    deploy:
      mode: replicated
      replicas: {replicas}
      resources:
        limits:
          cpus: \"0.5\"
          memory: 256M
        reservations:
          memory: 64M
      restart_policy:
        condition: on-failure
        max_attempts: 3
      update_config:
        parallelism: 1
        delay: 5s
        order: start-first
    networks:
      - tier{tier}
    labels:
      com.example.tier: \"{tier}\"
      com.example.index: \"{i}\"
",
        team = i % 7,
        minor = i % 10,
        peer = (i + 1) % n,
        replicas = 1 + i % 3,
    );
    if i % 10 == 0 {
        let _ = writeln!(out, "    volumes:\n      - data{i}:/var/lib/app");
    }
    if tier > 0 {
        // The service `tier` positions earlier sits in the previous tier.
        let _ = writeln!(out, "    depends_on:\n      - svc{}", i - 1);
    }
}
