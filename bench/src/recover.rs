//! `recover`: with a service of 30 healthy test-server replicas on each side,
//! kill -9 one replica's main process and time until a replacement is running
//! and until the service is all healthy again (the killed one replaced);
//! Flotilla against Docker Swarm, kills interleaved.

use crate::result::{BenchResult, Chart, Figure, Series, Table, Target, TargetOn, TargetOp};
use crate::stats::{interleaved_schedule, Summary};
use crate::swarm_events::{DockerEvents, Replicas};
use crate::swarm_flotilla::HEALTH;
use crate::swarm_setup::{self, ms, times_until, FlotillaStack, Watch};
use crate::Ctx;
use anyhow::{bail, Context as _, Result};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(120);
const STACK: &str = "fbrecover";

/// Per side: ms from the kill to a replacement running, and to all healthy.
#[derive(Default)]
struct Samples {
    running: Vec<f64>,
    healthy: Vec<f64>,
}

pub fn run(ctx: &Ctx) -> Result<BenchResult> {
    let mut res = BenchResult::new(
        "recover",
        "Recover: kill -9 of one replica until a healthy replacement",
        ctx.smoke,
    );
    let (replicas, kills) = if ctx.smoke { (3, 1) } else { (30, 5) };
    let tmp = tempfile::Builder::new()
        .prefix("flotilla-bench-recover.")
        .tempdir()?;
    let sides = swarm_setup::start(ctx, &mut res, tmp.path())?;
    res.method = vec![
        format!("Each side runs one service of {replicas} test-server replicas (same image, health check and restart policy as `deploy`: exec probe every {} ms, timeout {} ms, retries {}, restart at once). {kills} kill(s) per side, interleaved (the first side rotates); between kills the service is back to all healthy.", HEALTH.interval_ms, HEALTH.timeout_ms, HEALTH.retries),
        "A kill: pick a healthy replica, find its container's main process on the host (Flotilla: the task's `container_id` from `ps --output json`, then `container inspect --output json`; Swarm: `docker inspect -f {{.State.Pid}}`), send SIGKILL, start the clock. Figures: until a replacement replica is running, and until the service is all healthy again with a new replica among the healthy.".into(),
        "Observed as in `deploy`: Flotilla by polling `flotilla ps --output json` every 25 ms (time taken after the poll returned), Swarm by following `docker events` (start/die/health_status) checked every 5 ms. Swarm's healthy figure is bounded from below by the interval (Docker 20.10 first probes a new replica one interval after it starts); Flotilla probes a starting replica every 100 ms (`start_interval`) until it first passes.".into(),
    ];

    let fl = &sides.flotilla;
    let fl_watch = FlotillaStack {
        flotilla: fl,
        stack: STACK,
    };
    fl.up(STACK, replicas)?;
    let all = move |r: &Replicas| r.healthy_at_least(replicas);
    times_until("Flotilla", &fl_watch, TIMEOUT, &[("all healthy", &all)])
        .context("Flotilla: deploying the service")?;

    let sw_name = format!("fbrecover{}", std::process::id());
    let mut swarm: Option<(&crate::swarm_docker::Swarm, DockerEvents)> = None;
    if let Some(sw) = &sides.swarm {
        let started = (|| {
            let events = DockerEvents::follow(&sw_name)?;
            sw.create(&sw_name, replicas)?;
            times_until("Swarm", &events, TIMEOUT, &[("all healthy", &all)])?;
            Ok::<_, anyhow::Error>(events)
        })();
        match started {
            Ok(events) => swarm = Some((sw, events)),
            Err(e) => res.unavailable("docker swarm", format!("{e:#}")),
        }
    }

    let mut samples = [Samples::default(), Samples::default()];
    for order in interleaved_schedule(2, kills) {
        for side in order {
            if side == 0 {
                let (run, healthy) =
                    kill_one(&fl_watch, replicas, |task| fl.pid_of_task(STACK, task))
                        .context("Flotilla recovery")?;
                samples[0].running.push(run);
                samples[0].healthy.push(healthy);
            } else if let Some((sw, events)) = &swarm {
                match kill_one(events, replicas, |id| sw.pid(id)) {
                    Ok((run, healthy)) => {
                        samples[1].running.push(run);
                        samples[1].healthy.push(healthy);
                    }
                    Err(e) => {
                        res.unavailable("docker swarm", format!("{e:#}"));
                        swarm = None;
                    }
                }
            }
        }
    }
    if let Some(sw) = &sides.swarm {
        if let Err(e) = sw.remove(&sw_name) {
            eprintln!("warning: removing Swarm service {sw_name}: {e:#}");
        }
    }
    fl.down(STACK)?;
    summarise(&mut res, &samples, replicas);
    Ok(res)
}

/// Waits until all `n` are healthy, kills one healthy replica's main process
/// and returns (ms to a replacement running, ms to all healthy again).
fn kill_one(
    watch: &dyn Watch,
    n: usize,
    pid_of: impl Fn(&str) -> Result<u32>,
) -> Result<(f64, f64)> {
    let all = move |r: &Replicas| r.healthy_at_least(n);
    times_until("before the kill", watch, TIMEOUT, &[("all healthy", &all)])?;
    let before = watch.snapshot()?;
    let Some(victim) = before.healthy.iter().next().cloned() else {
        bail!("no healthy replica to kill");
    };
    let pid = pid_of(&victim)?;
    let was: BTreeSet<String> = before.running.union(&before.healthy).cloned().collect();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .with_context(|| format!("kill -9 {pid} (replica {victim})"))?;
    let t0 = Instant::now();
    let replaced = |r: &Replicas| r.replacement_running(&was);
    let recovered = |r: &Replicas| r.recovered(n, &victim, &was);
    let t = times_until(
        "after the kill",
        watch,
        TIMEOUT,
        &[
            ("a replacement running", &replaced),
            ("all healthy again", &recovered),
        ],
    )?;
    Ok((ms(t0, t[0]), ms(t0, t[1])))
}

fn summarise(res: &mut BenchResult, samples: &[Samples; 2], replicas: usize) {
    let names = ["flotilla", "swarm"];
    let mut rows = Vec::new();
    let mut sums = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let run = Summary::of(&samples[i].running);
        let healthy = Summary::of(&samples[i].healthy);
        let fmt = |s: &Option<Summary>, f: fn(&Summary) -> f64| {
            s.as_ref().map_or("-".into(), |s| format!("{:.0}", f(s)))
        };
        let runs = samples[i]
            .healthy
            .iter()
            .map(|x| format!("{x:.0}"))
            .collect::<Vec<_>>()
            .join(", ");
        rows.push(vec![
            name.to_string(),
            samples[i].healthy.len().to_string(),
            fmt(&run, |s| s.median),
            fmt(&healthy, |s| s.min),
            fmt(&healthy, |s| s.median),
            fmt(&healthy, |s| s.max),
            runs,
        ]);
        sums.push((run, healthy));
    }
    res.tables.push(Table {
        title: format!(
            "Recovery after kill -9 of one of {replicas} replicas (ms, lower is better)"
        ),
        header: [
            "side",
            "kills",
            "replacement running (median)",
            "all healthy: min",
            "median",
            "max",
            "each kill: all healthy",
        ]
        .map(String::from)
        .to_vec(),
        rows,
    });
    let note = match res.unavailable.iter().find(|u| u.what == "docker swarm") {
        Some(u) => Some(format!("unavailable ({})", u.reason)),
        None => samples[1].healthy.is_empty().then(|| "unavailable".into()),
    };
    let figs = [
        (
            "recover.healthy.median",
            sums[0].1.as_ref().map(|s| s.median),
            sums[1].1.as_ref().map(|s| s.median),
            Some(Target {
                on: TargetOn::Flotilla,
                op: TargetOp::AtMost,
                value: 1000.0,
                text: "healthy replacement under 1 s".into(),
            }),
        ),
        (
            "recover.running.median",
            sums[0].0.as_ref().map(|s| s.median),
            sums[1].0.as_ref().map(|s| s.median),
            None,
        ),
    ];
    for (name, f, a, target) in figs {
        let mut fig = Figure::new(name, "ms", f, Some("swarm"), a, target);
        if let Some(n) = &note {
            fig = fig.with_anchor_note(n.clone());
        }
        res.figures.push(fig);
    }
    res.charts.push(Chart::Distribution {
        file: "recover-healthy".into(),
        title: "recover: kill -9 to all healthy again (CDF)".into(),
        unit: "ms".into(),
        series: names
            .iter()
            .enumerate()
            .filter(|(i, _)| !samples[*i].healthy.is_empty())
            .map(|(i, n)| Series {
                label: n.to_string(),
                values: samples[i].healthy.clone(),
            })
            .collect(),
    });
}
