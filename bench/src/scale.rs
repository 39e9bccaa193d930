//! `scale`: the pure scheduler placing 10,000 tasks on 1,000 simulated nodes.
//!
//! The anchors here cannot run on one machine at their own scale, so their
//! published figures are quoted beside ours (not ratios of like workloads):
//! Nomad's C1M run and the Kubernetes scheduler's throughput as reported by
//! its maintainers.

use crate::result::{BenchResult, Figure, Table, Target, TargetOn, TargetOp};
use crate::stats::{discard_warmup, Summary};
use crate::Ctx;
use flotilla_scheduler::*;
use std::collections::BTreeMap;
use std::time::Instant;

const NODES: usize = 1_000;
const TASKS: usize = 10_000;
const SERVICES: usize = 100;

/// A cluster of `NODES` nodes in 3 zones, ~2% of them drained or down.
fn cluster() -> Vec<Node> {
    (0..NODES)
        .map(|i| Node {
            id: format!("node-{i:04}"),
            hostname: format!("host-{i}"),
            role: if i < 3 { Role::Manager } else { Role::Worker },
            labels: BTreeMap::from([
                ("zone".to_string(), format!("z{}", i % 3)),
                (
                    "disk".to_string(),
                    if i % 4 == 0 { "ssd" } else { "hdd" }.to_string(),
                ),
            ]),
            engine_labels: BTreeMap::new(),
            platform: Platform {
                os: "linux".into(),
                arch: "x86_64".into(),
            },
            availability: if i % 97 == 0 {
                Availability::Drain
            } else {
                Availability::Active
            },
            status: if i % 89 == 0 {
                NodeStatus::Down
            } else {
                NodeStatus::Ready
            },
            capacity: Resources {
                nano_cpus: 16_000_000_000,
                memory_bytes: 64 << 30,
            },
        })
        .collect()
}

/// `TASKS` tasks over `SERVICES` services, interleaved as a controller would
/// hand them over: reservations on all, spread over zones on half, an SSD
/// constraint on a tenth, a host port on a twentieth.
fn workload() -> Vec<TaskRequest> {
    (0..TASKS)
        .map(|i| {
            let s = i % SERVICES;
            TaskRequest {
                id: format!("task-{i}"),
                service: format!("svc-{s}"),
                reservations: Resources {
                    nano_cpus: 100_000_000,
                    memory_bytes: 256 << 20,
                },
                constraints: if s % 10 == 0 {
                    vec![Constraint::parse("node.labels.disk==ssd").expect("valid constraint")]
                } else {
                    vec![]
                },
                spread_over: if s % 2 == 0 {
                    vec!["zone".into()]
                } else {
                    vec![]
                },
                platforms: vec![],
                host_ports: if s % 20 == 1 {
                    vec![HostPort {
                        protocol: Protocol::Tcp,
                        port: 9000 + s as u16,
                    }]
                } else {
                    vec![]
                },
                max_replicas_per_node: None,
            }
        })
        .collect()
}

pub fn run(ctx: &Ctx) -> BenchResult {
    let mut res = BenchResult::new(
        "scale",
        "Scheduler: place 10,000 tasks on 1,000 nodes",
        ctx.smoke,
    );
    let (runs, warmup) = if ctx.smoke { (2, 1) } else { (11, 2) };
    let nodes = cluster();
    let tasks = workload();
    let mut ms = Vec::new();
    let mut placed = 0;
    for _ in 0..runs {
        let start = Instant::now();
        let decisions = schedule(&nodes, &[], &tasks);
        ms.push(start.elapsed().as_secs_f64() * 1000.0);
        placed = decisions.iter().filter(|d| d.result.is_ok()).count();
    }
    let s = Summary::of(discard_warmup(&ms, warmup)).expect("at least one timed run");
    res.method = vec![
        format!("`flotilla_scheduler::schedule` (pure: filters, then spread over zones and nodes) on {NODES} simulated nodes in 3 zones (~2% drained or down) and {TASKS} tasks of {SERVICES} services handed over interleaved; every task reserves 0.1 CPU and 256 MiB, half spread over zones, a tenth constrained to SSD nodes, a twentieth publish a host port."),
        format!("{runs} rounds, the first {warmup} discarded; each round places all tasks from an empty cluster. {placed} of {TASKS} placed (the rest are host-port conflicts, reported with reasons)."),
        "Anchors are published figures, quoted, not run here: their scale needs thousands of machines.".into(),
    ];
    res.tables.push(Table {
        title: "Placement throughput".into(),
        header: vec![
            "scheduler".into(),
            "workload".into(),
            "placements/s".into(),
            "source".into(),
        ],
        rows: vec![
            vec![
                "Flotilla (this run)".into(),
                format!("{TASKS} tasks, {NODES} nodes"),
                format!("{:.0}", TASKS as f64 / (s.median / 1000.0)),
                format!("median {:.0} ms", s.median),
            ],
            vec![
                "Nomad (C1M, 2016)".into(),
                "1,000,000 containers, 5,000 nodes".into(),
                "≈3,800".into(),
                "HashiCorp's C1M report: 1M containers in under 5 minutes".into(),
            ],
            vec![
                "kube-scheduler".into(),
                "5,000 nodes".into(),
                "≈100–300".into(),
                "Kubernetes SIG Scalability scheduler-throughput results".into(),
            ],
        ],
    });
    let target = Target {
        on: TargetOn::Flotilla,
        op: TargetOp::AtMost,
        value: 1000.0,
        text: "10,000 tasks on 1,000 nodes in under 1 s".into(),
    };
    res.figures.push(
        Figure::new(
            "scale.place-10k-on-1k",
            "ms",
            Some(s.median),
            None,
            None,
            Some(target),
        )
        .with_anchor_note("published figures only (see table)"),
    );
    res
}
