//! Health checks: Docker's rules as a pure tracker, and the probe loop that
//! runs a check through the runtime's exec.

use flotilla_core::Health;
use flotilla_spec::{HealthTest, Healthcheck};
use std::time::Duration;

/// Docker's health rules: `starting` until the first success; failures
/// inside `start_period` do not count; `retries` consecutive failures after
/// it make the container `unhealthy`; any success makes it `healthy`.
#[derive(Debug, Clone)]
pub struct Tracker {
    retries: u64,
    start_period_ms: u64,
    started_at: u64,
    failures: u64,
    pub health: Health,
}

impl Tracker {
    pub fn new(check: &Healthcheck, started_at: u64) -> Tracker {
        Tracker {
            retries: check.retries.max(1),
            start_period_ms: check.start_period.as_millis(),
            started_at,
            failures: 0,
            health: Health::Starting,
        }
    }

    fn in_start_period(&self, now: u64) -> bool {
        now < self.started_at + self.start_period_ms
    }

    /// Record one probe result; returns the new health when it changed.
    pub fn record(&mut self, ok: bool, now: u64) -> Option<Health> {
        let before = self.health;
        if ok {
            self.failures = 0;
            self.health = Health::Healthy;
        } else if !(self.in_start_period(now) && self.health == Health::Starting) {
            self.failures += 1;
            if self.failures >= self.retries {
                self.health = Health::Unhealthy;
            }
        }
        (self.health != before).then_some(self.health)
    }

    /// How long to wait before the next probe (`start_interval` while starting).
    pub fn next_delay(&self, check: &Healthcheck, now: u64) -> Duration {
        let ms = if self.health == Health::Starting
            && self.in_start_period(now)
            && check.start_interval.as_millis() > 0
        {
            check.start_interval.as_millis()
        } else {
            check.interval.as_millis()
        };
        Duration::from_millis(ms.max(10))
    }
}

/// The argv a check runs in the container, or None when checks are disabled.
pub fn probe_argv(check: &Healthcheck) -> Option<Vec<String>> {
    match check.test.as_ref()? {
        HealthTest::None => None,
        HealthTest::Cmd(argv) if argv.is_empty() => None,
        HealthTest::Cmd(argv) => Some(argv.clone()),
        HealthTest::Shell(cmd) => Some(vec!["/bin/sh".into(), "-c".into(), cmd.clone()]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_spec::Duration as D;

    fn check(retries: u64, start_period_ms: u64) -> Healthcheck {
        Healthcheck {
            test: Some(HealthTest::Cmd(vec!["true".into()])),
            interval: D::from_millis(1000),
            timeout: D::from_millis(500),
            retries,
            start_period: D::from_millis(start_period_ms),
            start_interval: D::from_millis(100),
        }
    }

    #[test]
    fn first_success_makes_healthy_and_retries_failures_make_unhealthy() {
        let mut t = Tracker::new(&check(3, 0), 0);
        assert_eq!(t.record(true, 1), Some(Health::Healthy));
        assert_eq!(t.record(false, 2), None);
        assert_eq!(t.record(false, 3), None);
        assert_eq!(t.record(false, 4), Some(Health::Unhealthy));
        assert_eq!(
            t.record(true, 5),
            Some(Health::Healthy),
            "a success recovers"
        );
    }

    #[test]
    fn failures_in_the_start_period_do_not_count() {
        let c = check(1, 10_000);
        let mut t = Tracker::new(&c, 0);
        assert_eq!(t.record(false, 5_000), None);
        assert_eq!(t.health, Health::Starting);
        assert_eq!(
            t.next_delay(&c, 5_000),
            Duration::from_millis(100),
            "start_interval while starting"
        );
        assert_eq!(
            t.record(false, 10_001),
            Some(Health::Unhealthy),
            "after the period, failures count"
        );
        assert_eq!(t.next_delay(&c, 10_001), Duration::from_millis(1000));
    }

    #[test]
    fn argv_forms() {
        let mut c = check(1, 0);
        assert_eq!(probe_argv(&c), Some(vec!["true".to_string()]));
        c.test = Some(HealthTest::Shell("curl -f localhost || exit 1".into()));
        assert_eq!(
            probe_argv(&c).unwrap()[..2],
            ["/bin/sh".to_string(), "-c".to_string()]
        );
        c.test = Some(HealthTest::None);
        assert_eq!(probe_argv(&c), None);
        c.test = None;
        assert_eq!(probe_argv(&c), None);
    }
}
