//! Invariants over random clusters and workloads (proptest).

use flotilla_scheduler::*;
use proptest::prelude::*;
use std::collections::{BTreeMap, HashMap, HashSet};

const GIB: u64 = 1 << 30;

fn arb_node(i: usize) -> impl Strategy<Value = Node> {
    (
        0u64..8,
        0u64..16,
        prop::bool::weighted(0.9),
        prop::bool::weighted(0.9),
        0usize..3,
    )
        .prop_map(move |(cpus, mem, ready, active, zone)| Node {
            id: format!("n{i:03}"),
            hostname: format!("h{i}"),
            role: Role::Worker,
            labels: BTreeMap::from([("zone".to_string(), format!("z{zone}"))]),
            engine_labels: BTreeMap::new(),
            platform: Platform {
                os: "linux".into(),
                arch: "x86_64".into(),
            },
            availability: if active {
                Availability::Active
            } else {
                Availability::Drain
            },
            status: if ready {
                NodeStatus::Ready
            } else {
                NodeStatus::Down
            },
            capacity: Resources {
                nano_cpus: cpus * 1_000_000_000,
                memory_bytes: mem * GIB,
            },
        })
}

fn arb_cluster() -> impl Strategy<Value = Vec<Node>> {
    (1usize..12).prop_flat_map(|n| (0..n).map(arb_node).collect::<Vec<_>>())
}

fn arb_tasks() -> impl Strategy<Value = Vec<TaskRequest>> {
    prop::collection::vec(
        (
            0usize..4,
            0u64..3,
            0u64..3,
            prop::option::of(8000u16..8003),
            prop::option::of(1u64..3),
        ),
        0..40,
    )
    .prop_map(|specs| {
        specs
            .into_iter()
            .enumerate()
            .map(|(i, (svc, cpus, mem, port, max))| TaskRequest {
                id: format!("t{i}"),
                service: format!("s{svc}"),
                reservations: Resources {
                    nano_cpus: cpus * 500_000_000,
                    memory_bytes: mem * GIB / 2,
                },
                constraints: if svc == 3 {
                    vec![Constraint::parse("node.labels.zone!=z0").unwrap()]
                } else {
                    vec![]
                },
                spread_over: if svc == 2 {
                    vec!["zone".into()]
                } else {
                    vec![]
                },
                platforms: vec![],
                host_ports: port
                    .map(|p| HostPort {
                        protocol: Protocol::Tcp,
                        port: p,
                    })
                    .into_iter()
                    .collect(),
                max_replicas_per_node: max,
            })
            .collect()
    })
}

proptest! {
    #[test]
    fn placements_respect_every_filter(nodes in arb_cluster(), pending in arb_tasks()) {
        let decisions = schedule(&nodes, &[], &pending);
        prop_assert_eq!(decisions.len(), pending.len());
        let by_id: HashMap<&str, &Node> = nodes.iter().map(|n| (n.id.as_str(), n)).collect();
        let mut used: HashMap<&str, Resources> = HashMap::new();
        let mut ports: HashSet<(&str, u16)> = HashSet::new();
        let mut per_service_node: HashMap<(&str, &str), u64> = HashMap::new();
        for (task, decision) in pending.iter().zip(&decisions) {
            prop_assert_eq!(&decision.task, &task.id);
            let Ok(node_id) = &decision.result else {
                let reason = decision.result.clone().unwrap_err();
                prop_assert!(!reason.reasons.is_empty() || nodes.is_empty(), "an unschedulable task always has a reason");
                continue;
            };
            let node = by_id[node_id.as_str()];
            prop_assert_eq!(node.status, NodeStatus::Ready);
            prop_assert_eq!(node.availability, Availability::Active);
            prop_assert!(task.constraints.iter().all(|c| c.matches(node)));
            let u = used.entry(node_id).or_default();
            u.nano_cpus += task.reservations.nano_cpus;
            u.memory_bytes += task.reservations.memory_bytes;
            prop_assert!(u.fits_in(&node.capacity), "node {} over-committed", node_id);
            for p in &task.host_ports {
                prop_assert!(ports.insert((node_id, p.port)), "port {} twice on {}", p.port, node_id);
            }
            let n = per_service_node.entry((&task.service, node_id)).or_default();
            *n += 1;
            if let Some(max) = task.max_replicas_per_node {
                prop_assert!(*n <= max);
            }
        }
    }

    #[test]
    fn scheduling_is_deterministic(nodes in arb_cluster(), pending in arb_tasks()) {
        prop_assert_eq!(schedule(&nodes, &[], &pending), schedule(&nodes, &[], &pending));
    }

    #[test]
    fn unconstrained_replicas_are_balanced(n_nodes in 1usize..20, replicas in 0usize..200) {
        let nodes: Vec<Node> = (0..n_nodes).map(|i| Node {
            id: format!("n{i}"), hostname: format!("h{i}"), role: Role::Worker,
            labels: BTreeMap::new(), engine_labels: BTreeMap::new(),
            platform: Platform { os: "linux".into(), arch: "x86_64".into() },
            availability: Availability::Active, status: NodeStatus::Ready,
            capacity: Resources { nano_cpus: 1, memory_bytes: 1 },
        }).collect();
        let pending: Vec<TaskRequest> = (0..replicas).map(|i| TaskRequest {
            id: format!("t{i}"), service: "web".into(), reservations: Resources::default(),
            constraints: vec![], spread_over: vec![], platforms: vec![], host_ports: vec![], max_replicas_per_node: None,
        }).collect();
        let mut counts = vec![0usize; n_nodes];
        for d in schedule(&nodes, &[], &pending) {
            let id = d.result.unwrap();
            counts[id[1..].parse::<usize>().unwrap()] += 1;
        }
        let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
        prop_assert!(max - min <= 1, "{:?}", counts);
    }
}
