//! Quick look at scheduler throughput: `cargo run --release -p flotilla-scheduler --example scale`.
//! The real benchmark (with Nomad's and kube-scheduler's figures beside it) is `bench/run scale`.
use flotilla_scheduler::*;
use std::collections::BTreeMap;
use std::time::Instant;

fn main() {
    let nodes: Vec<Node> = (0..1000)
        .map(|i| Node {
            id: format!("node-{i:04}"),
            hostname: format!("host-{i}"),
            role: Role::Worker,
            labels: BTreeMap::from([("zone".to_string(), format!("z{}", i % 3))]),
            engine_labels: BTreeMap::new(),
            platform: Platform {
                os: "linux".into(),
                arch: "x86_64".into(),
            },
            availability: Availability::Active,
            status: NodeStatus::Ready,
            capacity: Resources {
                nano_cpus: 16_000_000_000,
                memory_bytes: 64 << 30,
            },
        })
        .collect();
    let tasks: Vec<TaskRequest> = (0..10_000)
        .map(|i| TaskRequest {
            id: format!("t{i}"),
            service: format!("svc-{}", i % 100),
            reservations: Resources {
                nano_cpus: 100_000_000,
                memory_bytes: 128 << 20,
            },
            constraints: vec![Constraint::parse("node.platform.os==linux").unwrap()],
            spread_over: if i % 2 == 0 {
                vec!["zone".into()]
            } else {
                vec![]
            },
            platforms: vec![],
            host_ports: vec![],
            max_replicas_per_node: None,
        })
        .collect();
    for _ in 0..3 {
        let start = Instant::now();
        let d = schedule(&nodes, &[], &tasks);
        let placed = d.iter().filter(|d| d.result.is_ok()).count();
        println!(
            "placed {placed} of {} tasks on {} nodes in {:?}",
            tasks.len(),
            nodes.len(),
            start.elapsed()
        );
    }
}
