//! Placement rules, one test per rule, on hand-built clusters.

use flotilla_scheduler::*;
use std::collections::BTreeMap;

const GIB: u64 = 1 << 30;
const CPU: u64 = 1_000_000_000;

fn node(id: &str) -> Node {
    Node {
        id: id.into(),
        hostname: format!("host-{id}"),
        role: Role::Worker,
        labels: BTreeMap::new(),
        engine_labels: BTreeMap::new(),
        platform: Platform {
            os: "linux".into(),
            arch: "x86_64".into(),
        },
        availability: Availability::Active,
        status: NodeStatus::Ready,
        capacity: Resources {
            nano_cpus: 4 * CPU,
            memory_bytes: 8 * GIB,
        },
    }
}

fn labelled(id: &str, labels: &[(&str, &str)]) -> Node {
    let mut n = node(id);
    n.labels = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    n
}

fn task(service: &str, i: usize) -> TaskRequest {
    TaskRequest {
        id: format!("{service}.{i}"),
        service: service.into(),
        reservations: Resources::default(),
        constraints: vec![],
        spread_over: vec![],
        platforms: vec![],
        host_ports: vec![],
        max_replicas_per_node: None,
    }
}

fn tasks(service: &str, n: usize) -> Vec<TaskRequest> {
    (0..n).map(|i| task(service, i)).collect()
}

fn per_node(decisions: &[Decision]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for d in decisions {
        *m.entry(d.result.clone().expect("placed")).or_default() += 1;
    }
    m
}

#[test]
fn replicas_spread_evenly_over_nodes() {
    let nodes = vec![node("a"), node("b"), node("c")];
    let d = schedule(&nodes, &[], &tasks("web", 9));
    assert_eq!(
        per_node(&d).values().copied().collect::<Vec<_>>(),
        vec![3, 3, 3]
    );
}

#[test]
fn existing_tasks_count_toward_the_spread() {
    let nodes = vec![node("a"), node("b")];
    let placed: Vec<PlacedTask> = (0..2)
        .map(|_| PlacedTask {
            service: "web".into(),
            node: "a".into(),
            reservations: Resources::default(),
            host_ports: vec![],
        })
        .collect();
    let d = schedule(&nodes, &placed, &tasks("web", 2));
    assert_eq!(
        per_node(&d),
        BTreeMap::from([("b".to_string(), 2)]),
        "new replicas go where the service has fewest"
    );
}

#[test]
fn other_services_break_ties() {
    let nodes = vec![node("a"), node("b")];
    let placed = vec![PlacedTask {
        service: "db".into(),
        node: "a".into(),
        reservations: Resources::default(),
        host_ports: vec![],
    }];
    let d = schedule(&nodes, &placed, &tasks("web", 1));
    assert_eq!(
        d[0].result.as_deref(),
        Ok("b"),
        "with equal service counts, the less busy node wins"
    );
}

#[test]
fn down_paused_and_drained_nodes_take_nothing_and_say_so() {
    let mut down = node("a");
    down.status = NodeStatus::Down;
    let mut drained = node("b");
    drained.availability = Availability::Drain;
    let mut paused = node("c");
    paused.availability = Availability::Pause;
    let d = schedule(&[down, drained, paused], &[], &tasks("web", 1));
    let err = d[0].result.clone().unwrap_err().to_string();
    assert!(err.contains("1 node not ready"), "{err}");
    assert!(err.contains("1 node drained"), "{err}");
    assert!(err.contains("1 node paused"), "{err}");
}

#[test]
fn reservations_never_overcommit_and_the_reason_gives_sizes() {
    let mut small = node("a");
    small.capacity.memory_bytes = GIB;
    let mut t = task("db", 0);
    t.reservations.memory_bytes = 2 * GIB;
    let err = schedule(&[small], &[], &[t]).remove(0).result.unwrap_err();
    assert_eq!(
        err.to_string(),
        "no suitable node: insufficient memory on 1 node (needs 2.0 GiB, at most 1.0 GiB free)"
    );

    let nodes = vec![node("a"), node("b")]; // 4 CPUs each
    let mut many = tasks("cpu", 9);
    for t in &mut many {
        t.reservations.nano_cpus = CPU;
    }
    let d = schedule(&nodes, &[], &many);
    assert_eq!(
        d.iter().filter(|d| d.result.is_ok()).count(),
        8,
        "8 one-CPU tasks fit on 2×4 CPUs"
    );
    let err = d[8].result.clone().unwrap_err().to_string();
    assert!(
        err.contains("insufficient CPU on 2 nodes (needs 1 CPUs, at most 0 CPUs free)"),
        "{err}"
    );
}

#[test]
fn constraints_filter_nodes() {
    let nodes = vec![
        labelled("a", &[("zone", "east")]),
        labelled("b", &[("zone", "west")]),
        node("c"),
    ];
    let mut t = task("web", 0);
    t.constraints = vec![Constraint::parse("node.labels.zone==east").unwrap()];
    assert_eq!(
        schedule(&nodes, &[], &[t.clone()])[0].result.as_deref(),
        Ok("a")
    );
    t.constraints = vec![
        Constraint::parse("node.labels.zone!=east").unwrap(),
        Constraint::parse("node.hostname!=host-b").unwrap(),
    ];
    assert_eq!(
        schedule(&nodes, &[], &[t.clone()])[0].result.as_deref(),
        Ok("c"),
        "a missing label satisfies !="
    );
    t.constraints = vec![Constraint::parse("node.role==manager").unwrap()];
    let err = schedule(&nodes, &[], &[t])[0]
        .result
        .clone()
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "no suitable node: constraint node.role==manager not satisfied on 3 nodes"
    );
}

#[test]
fn constraint_syntax_errors_are_explained() {
    assert!(matches!(
        Constraint::parse("node.labels.zone=east"),
        Err(ConstraintError::NoOperator(_))
    ));
    assert!(matches!(
        Constraint::parse("node.colour==red"),
        Err(ConstraintError::UnknownAttribute(..))
    ));
    assert!(matches!(
        Constraint::parse("node.role=="),
        Err(ConstraintError::EmptyValue(_))
    ));
    assert!(
        Constraint::parse("engine.labels.storage == ssd").is_ok(),
        "spaces around the operator are allowed"
    );
    assert!(
        Constraint::parse("node.role==Manager").unwrap().matches(&{
            let mut n = node("m");
            n.role = Role::Manager;
            n
        }),
        "built-in attributes compare case-insensitively"
    );
}

#[test]
fn host_ports_conflict_per_node() {
    let nodes = vec![node("a"), node("b")];
    let mut web = tasks("web", 3);
    for t in &mut web {
        t.host_ports = vec![HostPort {
            protocol: Protocol::Tcp,
            port: 8080,
        }];
    }
    let d = schedule(&nodes, &[], &web);
    assert_eq!(per_node(&d[..2]).len(), 2, "one per node");
    let err = d[2].result.clone().unwrap_err().to_string();
    assert_eq!(
        err,
        "no suitable node: host port 8080/tcp already in use on 2 nodes"
    );
    let mut udp = task("dns", 0);
    udp.host_ports = vec![HostPort {
        protocol: Protocol::Udp,
        port: 8080,
    }];
    assert!(
        schedule(&nodes, &[], &[web[0].clone(), udp])[1]
            .result
            .is_ok(),
        "udp and tcp ports do not conflict"
    );
}

#[test]
fn max_replicas_per_node_caps_each_node() {
    let nodes = vec![node("a"), node("b")];
    let mut web = tasks("web", 5);
    for t in &mut web {
        t.max_replicas_per_node = Some(2);
    }
    let d = schedule(&nodes, &[], &web);
    assert_eq!(d.iter().filter(|d| d.result.is_ok()).count(), 4);
    assert!(d[4]
        .result
        .clone()
        .unwrap_err()
        .to_string()
        .contains("max replicas per node (2) reached on 2 nodes"));
}

#[test]
fn placement_preferences_spread_over_label_values_first() {
    // Zone east has 3 nodes, west has 1: spread by zone puts half the tasks on the one west node.
    let nodes = vec![
        labelled("e1", &[("zone", "east")]),
        labelled("e2", &[("zone", "east")]),
        labelled("e3", &[("zone", "east")]),
        labelled("w1", &[("zone", "west")]),
    ];
    let mut web = tasks("web", 6);
    for t in &mut web {
        t.spread_over = vec!["zone".into()];
    }
    let placed = per_node(&schedule(&nodes, &[], &web));
    assert_eq!(placed["w1"], 3, "{placed:?}");
    assert_eq!(placed["e1"] + placed["e2"] + placed["e3"], 3);
}

#[test]
fn platform_filter() {
    let mut arm = node("arm");
    arm.platform.arch = "aarch64".into();
    let mut t = task("web", 0);
    t.platforms = vec![Platform {
        os: "linux".into(),
        arch: "x86_64".into(),
    }];
    assert!(schedule(&[arm.clone()], &[], &[t.clone()])[0]
        .result
        .clone()
        .unwrap_err()
        .to_string()
        .contains("unsupported platform on 1 node"));
    assert_eq!(
        schedule(&[arm, node("x86")], &[], &[t])[0]
            .result
            .as_deref(),
        Ok("x86")
    );
}

#[test]
fn an_empty_cluster_says_so() {
    let err = schedule(&[], &[], &tasks("web", 1))
        .remove(0)
        .result
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "no suitable node: the cluster has no nodes"
    );
}

#[test]
fn tasks_on_unknown_nodes_are_ignored() {
    let placed = vec![PlacedTask {
        service: "web".into(),
        node: "gone".into(),
        reservations: Resources {
            nano_cpus: 100 * CPU,
            memory_bytes: 0,
        },
        host_ports: vec![],
    }];
    assert!(schedule(&[node("a")], &placed, &tasks("web", 1))[0]
        .result
        .is_ok());
}
