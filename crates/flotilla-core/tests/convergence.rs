//! Simulate a cluster: random failures and completions, apply the
//! orchestrator's actions, and check it always converges without ever giving
//! a slot two live tasks.

use flotilla_core::plan::{Mode, RestartOn, RestartRule};
use flotilla_core::*;
use proptest::prelude::*;
use std::collections::{BTreeMap, HashMap};

#[derive(Clone, Debug)]
enum Event {
    Fail(usize),
    Complete(usize),
    Start(usize),
    Scale(u64),
    Tick(u64),
}

fn arb_event() -> impl Strategy<Value = Event> {
    prop_oneof![
        (0usize..20).prop_map(Event::Fail),
        (0usize..20).prop_map(Event::Complete),
        (0usize..20).prop_map(Event::Start),
        (0u64..6).prop_map(Event::Scale),
        (0u64..40_000).prop_map(Event::Tick),
    ]
}

proptest! {
    #[test]
    fn never_two_live_tasks_per_slot(events in prop::collection::vec(arb_event(), 0..80), delay in 0u64..3000) {
        let mut plan = ServicePlan {
            id: "s".into(), version: 1, mode: Mode::Replicated { replicas: 3 },
            restart: RestartRule { on: RestartOn::Any, delay_ms: delay, max_attempts: None, window_ms: 0 },
            depends_on: vec![],
        };
        let mut tasks: Vec<Task> = Vec::new();
        let mut now = 1_000u64;
        let mut next_id = 0;
        let apply = |plan: &ServicePlan, tasks: &mut Vec<Task>, now: u64, next_id: &mut u64| -> Reconciled {
            let r = reconcile(plan, tasks, &[], &BTreeMap::new(), now);
            for action in &r.actions {
                match action {
                    Action::Create { slot, .. } => {
                        *next_id += 1;
                        tasks.push(Task::new(format!("t{next_id}"), "s".into(), *slot, 1, now));
                    }
                    Action::Shutdown { task, .. } => {
                        let t = tasks.iter_mut().find(|t| &t.id == task).unwrap();
                        t.desired = DesiredState::Shutdown;
                        // The agent stops it.
                        let _ = t.transition(TaskState::Shutdown, "stopped", now);
                    }
                }
            }
            r
        };
        for event in events {
            match event {
                Event::Fail(i) | Event::Complete(i) | Event::Start(i) => {
                    let live: Vec<usize> = (0..tasks.len()).filter(|&k| tasks[k].state.is_active()).collect();
                    if let Some(&k) = live.get(i % live.len().max(1)) {
                        let next = match event { Event::Fail(_) => TaskState::Failed, Event::Complete(_) => TaskState::Complete, _ => TaskState::Running };
                        let _ = tasks[k].transition(next, "", now);
                    }
                }
                Event::Scale(n) => plan.mode = Mode::Replicated { replicas: n },
                Event::Tick(ms) => now += ms,
            }
            apply(&plan, &mut tasks, now, &mut next_id);
            let mut live_per_slot: HashMap<u64, usize> = HashMap::new();
            for t in tasks.iter().filter(|t| t.desired == DesiredState::Running && t.state.is_active()) {
                *live_per_slot.entry(t.slot).or_default() += 1;
            }
            prop_assert!(live_per_slot.values().all(|&n| n == 1), "{:?}", live_per_slot);
        }
        // Let time pass with no failures: the service converges to its replica count.
        let Mode::Replicated { replicas } = plan.mode else { unreachable!() };
        for _ in 0..10 {
            now += 60_000;
            let r = apply(&plan, &mut tasks, now, &mut next_id);
            if r.actions.is_empty() && r.wake_at.is_none() { break; }
        }
        let live = tasks.iter().filter(|t| t.desired == DesiredState::Running && t.state.is_active()).count() as u64;
        prop_assert_eq!(live, replicas);
    }
}
