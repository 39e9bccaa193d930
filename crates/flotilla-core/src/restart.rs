//! Restart policy: given a slot's history, restart now, later, or never.
//!
//! Rules (Swarm's, plus exponential backoff so a crash loop does not spin):
//! - `shutdown` and `orphaned` ends are not failures: the slot is refilled at once.
//! - `complete` restarts only under `condition: any`, and never for jobs.
//! - `failed`/`rejected` restart under `any` and `on-failure`.
//! - `max_attempts` counts the failures (ends that trigger a restart) that
//!   ended within `window` (0 = all); once exceeded, the slot gives up.
//! - The wait after the k-th consecutive quick failure is `delay` for k = 1,
//!   then doubles (from at least 100 ms) up to 30 s or `delay`, whichever is
//!   larger. A task that ran for 10 s or more breaks the chain.

use crate::plan::{RestartOn, RestartRule};
use crate::task::{DesiredState, Task, TaskState};

/// A run at least this long resets the backoff.
pub const STABLE_RUN_MS: u64 = 10_000;
const BACKOFF_FLOOR_MS: u64 = 100;
const BACKOFF_CAP_MS: u64 = 30_000;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Create the replacement now.
    Now,
    /// Not before this time (ms since epoch).
    At(u64),
    /// Leave the slot empty: the policy says so (a reason for people).
    Never(String),
}

/// Some(true): an end that restarts and counts; Some(false): refill at once,
/// not counted; None: leave the slot empty.
fn counts_as_failure(task: &Task, rule: &RestartRule, is_job: bool) -> Option<bool> {
    if task.desired == DesiredState::Shutdown {
        // We asked it to stop: however it exited, that is not a failure.
        return Some(false);
    }
    match task.state {
        TaskState::Shutdown | TaskState::Orphaned => Some(false),
        TaskState::Complete if is_job => None,
        TaskState::Complete => (rule.on == RestartOn::Any).then_some(true),
        TaskState::Failed | TaskState::Rejected => (rule.on != RestartOn::Never).then_some(true),
        _ => Some(false),
    }
}

/// Decide for a slot whose latest task (`history` last, ordered by creation) has ended.
pub fn decide(rule: &RestartRule, history: &[&Task], is_job: bool, now: u64) -> Decision {
    let Some(last) = history.last() else {
        return Decision::Now;
    };
    debug_assert!(last.state.is_terminal());
    match counts_as_failure(last, rule, is_job) {
        None => {
            return Decision::Never(match last.state {
                TaskState::Complete => "completed".to_string(),
                _ => format!("{} (restart condition: {:?})", last.state, rule.on),
            })
        }
        Some(false) => return Decision::Now,
        Some(true) => {}
    }
    if rule.on == RestartOn::Never {
        return Decision::Never(format!("{}: restart condition is none", last.state));
    }
    let in_window =
        |t: &&&Task| rule.window_ms == 0 || t.finished_at.unwrap_or(now) + rule.window_ms >= now;
    let failures = history
        .iter()
        .filter(|t| counts_as_failure(t, rule, is_job) == Some(true))
        .filter(in_window)
        .count() as u64;
    if let Some(max) = rule.max_attempts {
        if failures > max {
            return Decision::Never(format!(
                "gave up after {max} restart attempt{} (restart_policy.max_attempts); last: {}",
                if max == 1 { "" } else { "s" },
                if last.message.is_empty() {
                    last.state.to_string()
                } else {
                    last.message.clone()
                }
            ));
        }
    }
    let consecutive = history
        .iter()
        .rev()
        .take_while(|t| {
            counts_as_failure(t, rule, is_job) == Some(true)
                && match (t.started_at, t.finished_at) {
                    (Some(s), Some(f)) => f.saturating_sub(s) < STABLE_RUN_MS,
                    _ => true,
                }
        })
        .count() as u32;
    let wait = backoff(rule.delay_ms, consecutive.max(1));
    let at = last.finished_at.unwrap_or(now) + wait;
    if at <= now {
        Decision::Now
    } else {
        Decision::At(at)
    }
}

/// The wait before the `k`-th consecutive restart (k ≥ 1).
pub fn backoff(delay_ms: u64, k: u32) -> u64 {
    if k <= 1 {
        return delay_ms;
    }
    let base = delay_ms.max(BACKOFF_FLOOR_MS);
    let cap = delay_ms.max(BACKOFF_CAP_MS);
    base.saturating_mul(1u64 << (k - 1).min(32)).min(cap)
}
