//! The orchestrator's rules, one test each.

use flotilla_core::deps::{blocked_by, status_of, ServiceStatus};
use flotilla_core::plan::{Dependency, Mode, RestartOn, RestartRule, WaitFor};
use flotilla_core::reconcile::SlotKey;
use flotilla_core::restart::backoff;
use flotilla_core::*;
use std::collections::BTreeMap;

const NOW: u64 = 1_000_000;

fn plan(mode: Mode) -> ServicePlan {
    ServicePlan {
        id: "s_web".into(),
        version: 1,
        mode,
        restart: RestartRule {
            on: RestartOn::Any,
            delay_ms: 0,
            max_attempts: None,
            window_ms: 0,
        },
        depends_on: vec![],
    }
}

fn replicated(n: u64) -> ServicePlan {
    plan(Mode::Replicated { replicas: n })
}

fn task(id: &str, slot: u64, state: TaskState, created: u64) -> Task {
    let mut t = Task::new(id.into(), "s_web".into(), slot, 1, created);
    t.state = state;
    if state >= TaskState::Running {
        t.started_at = Some(created + 10);
    }
    if state.is_terminal() {
        t.finished_at = Some(created + 20);
    }
    t
}

fn run(plan: &ServicePlan, tasks: &[Task]) -> Reconciled {
    reconcile(plan, tasks, &[], &BTreeMap::new(), NOW)
}

fn creates(r: &Reconciled) -> Vec<u64> {
    r.actions
        .iter()
        .filter_map(|a| match a {
            Action::Create { slot, .. } => Some(*slot),
            _ => None,
        })
        .collect()
}

fn shutdowns(r: &Reconciled) -> Vec<String> {
    r.actions
        .iter()
        .filter_map(|a| match a {
            Action::Shutdown { task, .. } => Some(task.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn task_states_only_move_forward() {
    let mut t = Task::new("t".into(), "s".into(), 1, 1, 0);
    t.transition(TaskState::Assigned, "", 1).unwrap();
    t.transition(TaskState::Running, "", 2).unwrap();
    assert_eq!(t.started_at, Some(2));
    assert!(
        t.transition(TaskState::Starting, "", 3).is_err(),
        "no going back"
    );
    t.transition(TaskState::Failed, "exit code 1", 4).unwrap();
    assert_eq!(t.finished_at, Some(4));
    let err = t.transition(TaskState::Complete, "", 5).unwrap_err();
    assert_eq!(
        err.to_string(),
        "task t: illegal state change failed → complete (task states only move forward)"
    );
}

#[test]
fn a_new_service_gets_one_task_per_replica() {
    assert_eq!(creates(&run(&replicated(3), &[])), vec![1, 2, 3]);
}

#[test]
fn a_converged_service_needs_nothing() {
    let tasks: Vec<Task> = (1..=3)
        .map(|s| task(&format!("t{s}"), s, TaskState::Running, 0))
        .collect();
    assert_eq!(run(&replicated(3), &tasks), Reconciled::default());
}

#[test]
fn scaling_down_stops_the_highest_slots() {
    let tasks: Vec<Task> = (1..=3)
        .map(|s| task(&format!("t{s}"), s, TaskState::Running, 0))
        .collect();
    let r = run(&replicated(1), &tasks);
    assert_eq!(shutdowns(&r), vec!["t2", "t3"]);
    assert!(creates(&r).is_empty());
}

#[test]
fn a_failed_task_is_replaced_in_its_slot() {
    let tasks = vec![
        task("t1", 1, TaskState::Failed, 0),
        task("t2", 2, TaskState::Running, 0),
    ];
    assert_eq!(creates(&run(&replicated(2), &tasks)), vec![1]);
}

#[test]
fn restart_delay_defers_the_replacement() {
    let mut p = replicated(1);
    p.restart.delay_ms = 5_000;
    let mut t = task("t1", 1, TaskState::Failed, 0);
    t.finished_at = Some(NOW - 1_000);
    let r = run(&p, &[t.clone()]);
    assert!(creates(&r).is_empty());
    assert_eq!(r.wake_at, Some(NOW + 4_000));
    t.finished_at = Some(NOW - 5_000);
    assert_eq!(creates(&run(&p, &[t])), vec![1]);
}

#[test]
fn quick_consecutive_failures_back_off_exponentially() {
    assert_eq!(
        (1..=6).map(|k| backoff(0, k)).collect::<Vec<_>>(),
        vec![0, 200, 400, 800, 1600, 3200]
    );
    assert_eq!(backoff(0, 20), 30_000, "capped at 30 s");
    assert_eq!(backoff(5_000, 1), 5_000);
    assert_eq!(backoff(5_000, 3), 20_000);
    assert_eq!(backoff(60_000, 5), 60_000, "a delay above the cap is kept");
    // Three quick failures in a row: the fourth start waits 400 ms after the last end.
    let tasks: Vec<Task> = (0..3)
        .map(|i| {
            let mut t = task(&format!("t{i}"), 1, TaskState::Failed, NOW - 1000 + i * 100);
            t.finished_at = Some(NOW - 10);
            t
        })
        .collect();
    assert_eq!(run(&replicated(1), &tasks).wake_at, Some(NOW - 10 + 400));
}

#[test]
fn a_stable_run_resets_the_backoff() {
    let mut long = task("t1", 1, TaskState::Failed, 0);
    long.started_at = Some(0);
    long.finished_at = Some(NOW);
    let mut early = task("t0", 1, TaskState::Failed, 0);
    early.created_at = 0;
    long.created_at = 1;
    assert_eq!(
        creates(&run(&replicated(1), &[early, long])),
        vec![1],
        "the long run counts as the first failure: no wait"
    );
}

#[test]
fn max_attempts_gives_up_and_says_so() {
    let mut p = replicated(1);
    p.restart.max_attempts = Some(2);
    let mut tasks: Vec<Task> = (0..3)
        .map(|i| {
            let mut t = task(&format!("t{i}"), 1, TaskState::Failed, i * 100_000);
            t.message = "exit code 3".into();
            t
        })
        .collect();
    let r = run(&p, &tasks);
    assert!(creates(&r).is_empty());
    assert_eq!(
        r.idle_slots,
        vec![(
            SlotKey::Replica(1),
            "gave up after 2 restart attempts (restart_policy.max_attempts); last: exit code 3"
                .to_string()
        )]
    );
    // With a window, old failures no longer count.
    p.restart.window_ms = 150_000;
    for t in &mut tasks {
        t.finished_at = Some(t.created_at + NOW - 300_000);
    }
    tasks[2].finished_at = Some(NOW);
    let r = run(&p, &tasks);
    assert_eq!(creates(&r), vec![1], "{r:?}");
}

#[test]
fn restart_conditions() {
    let mut p = replicated(1);
    p.restart.on = RestartOn::Failure;
    assert!(
        creates(&run(&p, &[task("t", 1, TaskState::Complete, 0)])).is_empty(),
        "on-failure: a clean exit stays down"
    );
    assert_eq!(
        creates(&run(&p, &[task("t", 1, TaskState::Failed, 0)])),
        vec![1]
    );
    assert_eq!(
        creates(&run(&p, &[task("t", 1, TaskState::Rejected, 0)])),
        vec![1]
    );
    p.restart.on = RestartOn::Never;
    assert!(creates(&run(&p, &[task("t", 1, TaskState::Failed, 0)])).is_empty());
    p.restart.on = RestartOn::Any;
    assert_eq!(
        creates(&run(&p, &[task("t", 1, TaskState::Complete, 0)])),
        vec![1],
        "any: even a clean exit restarts"
    );
}

#[test]
fn orphaned_and_shut_down_tasks_are_refilled_without_counting() {
    let mut p = replicated(1);
    p.restart.on = RestartOn::Never;
    p.restart.delay_ms = 60_000;
    assert_eq!(
        creates(&run(&p, &[task("t", 1, TaskState::Orphaned, NOW)])),
        vec![1]
    );
    let mut stopped = task("t", 1, TaskState::Failed, NOW);
    stopped.desired = DesiredState::Shutdown;
    assert_eq!(
        creates(&run(&p, &[stopped])),
        vec![1],
        "a task we stopped is not a failure, however it exited"
    );
}

#[test]
fn a_stopping_task_keeps_its_slot_busy() {
    let mut stopping = task("t", 1, TaskState::Running, 0);
    stopping.desired = DesiredState::Shutdown;
    assert!(
        run(&replicated(1), &[stopping]).actions.is_empty(),
        "no second container in the slot until the first has stopped"
    );
}

#[test]
fn two_live_tasks_in_one_slot_keep_the_newest() {
    let tasks = vec![
        task("old", 1, TaskState::Running, 0),
        task("new", 1, TaskState::Running, 5),
    ];
    assert_eq!(shutdowns(&run(&replicated(1), &tasks)), vec!["old"]);
}

#[test]
fn jobs_run_to_completion() {
    let p = plan(Mode::ReplicatedJob { completions: 2 });
    let tasks = vec![
        task("a", 1, TaskState::Complete, 0),
        task("b", 2, TaskState::Failed, 0),
    ];
    let r = run(&p, &tasks);
    assert_eq!(creates(&r), vec![2], "the failed slot retries");
    assert_eq!(
        r.idle_slots,
        vec![(SlotKey::Replica(1), "completed".to_string())]
    );
    let done = vec![
        task("a", 1, TaskState::Complete, 0),
        task("b", 2, TaskState::Failed, 0),
        task("c", 2, TaskState::Complete, 1),
    ];
    assert!(status_of(&done).completed_successfully);
    assert!(!status_of(&tasks).completed_successfully);
}

#[test]
fn global_services_run_one_task_per_node() {
    let p = plan(Mode::Global);
    let nodes = vec!["n1".to_string(), "n2".to_string()];
    let mut on_n1 = task("a", 0, TaskState::Running, 0);
    on_n1.node = Some("n1".into());
    let mut on_gone = task("b", 0, TaskState::Running, 0);
    on_gone.node = Some("n9".into());
    let r = reconcile(&p, &[on_n1, on_gone], &nodes, &BTreeMap::new(), NOW);
    assert_eq!(
        r.actions,
        vec![
            Action::Shutdown {
                task: "b".into(),
                reason: "node no longer eligible".into()
            },
            Action::Create {
                slot: 0,
                node: Some("n2".into())
            },
        ]
    );
}

#[test]
fn depends_on_holds_first_start_until_satisfied() {
    let mut p = replicated(1);
    p.depends_on = vec![Dependency {
        service: "s_db".into(),
        wait_for: WaitFor::Healthy,
        required: true,
    }];
    let mut statuses = BTreeMap::from([(
        "s_db".to_string(),
        ServiceStatus {
            started: true,
            healthy: false,
            completed_successfully: false,
        },
    )]);
    let r = reconcile(&p, &[], &[], &statuses, NOW);
    assert!(r.actions.is_empty());
    assert_eq!(r.blocked.as_deref(), Some("waiting for s_db to be healthy"));
    statuses.get_mut("s_db").unwrap().healthy = true;
    assert_eq!(creates(&reconcile(&p, &[], &[], &statuses, NOW)), vec![1]);
    // Once the service has run, a sick dependency does not hold its restarts.
    statuses.get_mut("s_db").unwrap().healthy = false;
    let r = reconcile(
        &p,
        &[task("t", 1, TaskState::Failed, 0)],
        &[],
        &statuses,
        NOW,
    );
    assert_eq!(creates(&r), vec![1]);
}

#[test]
fn dependency_conditions_and_optional_dependencies() {
    let mut p = replicated(1);
    p.depends_on = vec![
        Dependency {
            service: "s_migrate".into(),
            wait_for: WaitFor::CompletedSuccessfully,
            required: true,
        },
        Dependency {
            service: "s_cache".into(),
            wait_for: WaitFor::Started,
            required: false,
        },
    ];
    let statuses = BTreeMap::new();
    assert_eq!(
        blocked_by(&p, &statuses).as_deref(),
        Some("waiting for s_migrate (not deployed)")
    );
    let statuses = BTreeMap::from([(
        "s_migrate".to_string(),
        ServiceStatus {
            completed_successfully: true,
            ..Default::default()
        },
    )]);
    assert_eq!(
        blocked_by(&p, &statuses),
        None,
        "a missing optional dependency is ignored"
    );
}

#[test]
fn service_health_status() {
    let mut a = task("a", 1, TaskState::Running, 0);
    let mut b = task("b", 2, TaskState::Running, 0);
    a.health = Health::Healthy;
    b.health = Health::Starting;
    assert!(
        !status_of(&[a.clone(), b.clone()]).healthy,
        "every running replica must be healthy"
    );
    b.health = Health::Healthy;
    assert!(status_of(&[a, b]).healthy);
    assert!(
        status_of(&[task("c", 1, TaskState::Running, 0)]).healthy,
        "no health check: running counts as healthy"
    );
    assert!(!status_of(&[]).started);
}
