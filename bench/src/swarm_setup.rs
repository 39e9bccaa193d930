//! What deploy and recover share: the test server's root filesystem (one tar
//! that both Flotilla and Docker get), both sides started side by side (Swarm
//! may be unavailable; Flotilla must work), and one way to watch either side.

use crate::procutil;
use crate::result::BenchResult;
use crate::swarm_docker::Swarm;
use crate::swarm_events::{DockerEvents, Replicas};
use crate::swarm_flotilla::{Flotilla, HEALTH};
use crate::Ctx;
use anyhow::{bail, Context as _, Result};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Both contenders; `swarm` is `None` when Docker Swarm cannot run here (the
/// reason is in the result's `unavailable`).
pub struct Sides {
    pub flotilla: Flotilla,
    pub swarm: Option<Swarm>,
}

/// Builds `<dir>/rootfs.tar` (the static test server and the empty
/// directories a runtime mounts over), then starts both sides.
pub fn start(ctx: &Ctx, res: &mut BenchResult, dir: &Path) -> Result<Sides> {
    test_server_rootfs(&ctx.testserver, dir)?;
    let flotilla = Flotilla::start(&ctx.flotilla, dir)?;
    res.versions
        .insert("flotilla".into(), flotilla.version.clone());
    let swarm = match Swarm::start(dir, &HEALTH) {
        Ok(s) => {
            res.versions
                .insert("docker".into(), format!("server {}", s.version));
            Some(s)
        }
        Err(e) => {
            res.unavailable("docker swarm", format!("{e:#}"));
            None
        }
    };
    Ok(Sides { flotilla, swarm })
}

fn test_server_rootfs(testserver: &Path, dir: &Path) -> Result<()> {
    if !testserver.is_file() {
        bail!(
            "test server binary {} is missing (bench/run builds it; or pass --testserver)",
            testserver.display()
        );
    }
    let root = dir.join("rootfs");
    for d in ["dev", "proc", "sys", "etc", "tmp"] {
        std::fs::create_dir_all(root.join(d))?;
    }
    std::fs::copy(testserver, root.join("bench-testserver"))
        .with_context(|| format!("copying {} into the rootfs", testserver.display()))?;
    procutil::output(
        Command::new("tar")
            .arg("--numeric-owner")
            .arg("-C")
            .arg(&root)
            .arg("-cf")
            .arg(dir.join("rootfs.tar"))
            .arg("."),
    )?;
    Ok(())
}

/// One side's replicas, as seen now.
pub trait Watch {
    fn snapshot(&self) -> Result<Replicas>;
    /// How long to sleep between snapshots.
    fn poll(&self) -> Duration;
}

pub struct FlotillaStack<'a> {
    pub flotilla: &'a Flotilla,
    pub stack: &'a str,
}

impl Watch for FlotillaStack<'_> {
    fn snapshot(&self) -> Result<Replicas> {
        self.flotilla.replicas(self.stack)
    }
    fn poll(&self) -> Duration {
        crate::swarm_flotilla::POLL
    }
}

impl Watch for DockerEvents {
    fn snapshot(&self) -> Result<Replicas> {
        Ok(DockerEvents::snapshot(self))
    }
    fn poll(&self) -> Duration {
        Duration::from_millis(5)
    }
}

/// A named condition on a side's replicas (`("all healthy", &|r| ...)`).
pub type Condition<'a> = (&'a str, &'a dyn Fn(&Replicas) -> bool);

/// Watches until every condition has held once; returns, per condition, the
/// first moment a snapshot showed it (taken after the snapshot returned, so a
/// polled side's figure includes the poll's own latency: conservative).
pub fn times_until(
    side: &str,
    watch: &dyn Watch,
    timeout: Duration,
    conditions: &[Condition<'_>],
) -> Result<Vec<Instant>> {
    let deadline = Instant::now() + timeout;
    let mut seen: Vec<Option<Instant>> = vec![None; conditions.len()];
    loop {
        crate::interrupt::check()?;
        let r = watch.snapshot()?;
        let now = Instant::now();
        for (i, (_, cond)) in conditions.iter().enumerate() {
            if seen[i].is_none() && cond(&r) {
                seen[i] = Some(now);
            }
        }
        if seen.iter().all(Option::is_some) {
            return Ok(seen.into_iter().flatten().collect());
        }
        if now > deadline {
            let missing: Vec<&str> = conditions
                .iter()
                .zip(&seen)
                .filter(|(_, s)| s.is_none())
                .map(|((name, _), _)| *name)
                .collect();
            bail!(
                "{side}: timed out after {timeout:?} waiting for {} ({} running, {} healthy)",
                missing.join(", "),
                r.running.len(),
                r.healthy.len()
            );
        }
        std::thread::sleep(watch.poll());
    }
}

/// Milliseconds between two instants.
pub fn ms(from: Instant, to: Instant) -> f64 {
    to.saturating_duration_since(from).as_secs_f64() * 1000.0
}
