//! `deploy`: one service of 30 test-server replicas deployed until all are
//! healthy, then scaled to 60 until all are healthy; Flotilla (`up -d`,
//! `scale -d`) against Docker Swarm (`docker service create`, `scale`) on the
//! same machine, same image and health check, rounds interleaved, full
//! teardown between rounds. Plus the memory of the control planes with the
//! first count of replicas running.

use crate::procutil::Mem;
use crate::result::{BarSeries, BenchResult, Chart, Figure, Table, Target, TargetOn, TargetOp};
use crate::stats::{interleaved_schedule, Summary};
use crate::swarm_docker::DockerMemory;
use crate::swarm_events::{DockerEvents, Replicas};
use crate::swarm_flotilla::{HEALTH, NETWORK_POOL};
use crate::swarm_setup::{self, ms, times_until, FlotillaStack, Sides};
use crate::Ctx;
use anyhow::{Context as _, Result};
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(300);
const FLOTILLA: usize = 0;
const SWARM: usize = 1;

struct Counts {
    rounds: usize,
    first: usize,
    second: usize,
}

/// One round of one side: ms to `first` healthy, ms to `second` healthy.
#[derive(Default)]
struct Samples {
    up: Vec<f64>,
    scale: Vec<f64>,
}

pub fn run(ctx: &Ctx) -> Result<BenchResult> {
    let mut res = BenchResult::new(
        "deploy",
        "Deploy and scale: one service of test-server replicas until all are healthy",
        ctx.smoke,
    );
    let c = if ctx.smoke {
        Counts {
            rounds: 1,
            first: 5,
            second: 8,
        }
    } else {
        Counts {
            rounds: 3,
            first: 30,
            second: 60,
        }
    };
    let tmp = tempfile::Builder::new()
        .prefix("flotilla-bench-deploy.")
        .tempdir()?;
    let sides = swarm_setup::start(ctx, &mut res, tmp.path())?;
    res.method = method(&c);

    let mut samples = [Samples::default(), Samples::default()];
    let mut fl_mem = None;
    let mut sw_mem = None;
    let mut swarm_ok = sides.swarm.is_some();
    let tag = std::process::id();
    for (round, order) in interleaved_schedule(2, c.rounds).into_iter().enumerate() {
        for side in order {
            if side == FLOTILLA {
                let (up, scale, mem) = flotilla_round(&sides, &format!("fbdeploy{round}"), &c)
                    .context("Flotilla deploy round")?;
                samples[FLOTILLA].up.push(up);
                samples[FLOTILLA].scale.push(scale);
                fl_mem = fl_mem.or(Some(mem));
            } else if swarm_ok {
                match swarm_round(&sides, &format!("fbdeploy{tag}r{round}"), &c) {
                    Ok((up, scale, mem)) => {
                        samples[SWARM].up.push(up);
                        samples[SWARM].scale.push(scale);
                        sw_mem = sw_mem.or(mem);
                    }
                    Err(e) => {
                        res.unavailable("docker swarm", format!("round {round}: {e:#}"));
                        swarm_ok = false;
                    }
                }
            }
        }
    }
    summarise(&mut res, &samples, &c);
    memory(&mut res, fl_mem, sw_mem.as_ref(), &c);
    Ok(res)
}

fn method(c: &Counts) -> Vec<String> {
    vec![
        format!("Each round, per side: deploy one service of {} replicas of the static test server until all {} are healthy, then scale it to {} until all {} are healthy, then tear it down completely (Flotilla `down`; Swarm `docker service rm` and waiting until its containers are gone). {} round(s), Flotilla and Swarm interleaved (the first side rotates).", c.first, c.first, c.second, c.second, c.rounds),
        "Flotilla: `flotilla up -d -p STACK -f stack.yaml`, then `flotilla scale -d -p STACK web=N`, against a `flotilla serve-all` (server + agent in one process, what `up -d` starts in the background) started once before the rounds, as dockerd is. Swarm: a single-node swarm (`docker swarm init --advertise-addr 127.0.0.1 --listen-addr 127.0.0.1:2377`), `docker service create --detach --replicas N`, then `docker service scale --detach`. The clock starts just before the deploy/scale command is spawned.".into(),
        format!("Same image on both sides: one rootfs tar holding only the statically linked test server, imported with `flotilla image import` and built `FROM scratch` with `ADD rootfs.tar /` for Docker. Same health check: exec form `/bench-testserver probe 127.0.0.1:8080` (one GET, exit 0 on 200), interval {} ms, timeout {} ms, retries {}, and for Flotilla only `start_period: 30s` with `start_interval: 100ms` (Compose's start interval: probe a starting replica every 100 ms until its first success; Docker 20.10 has no start interval, so Swarm's first probe comes one interval after the start). Same restart policy: any, no delay (`--restart-delay 0s`; both default to 5 s).", HEALTH.interval_ms, HEALTH.timeout_ms, HEALTH.retries),
        "Healthy is observed as: Flotilla, tasks with state running and health healthy in `flotilla ps --output json`, polled every 25 ms (the time is taken after the poll that saw it returned, so it includes that call); Swarm, `docker events` (start/die/health_status of the service's containers) followed from before the command, checked every 5 ms.".into(),
        format!("Networking differs in Swarm's favour: each Flotilla task gets a veth on its stack network's bridge (a /24 from {NETWORK_POOL}), with the embedded DNS and proxy of the node set up for it; Swarm tasks are created without networks or published ports (this host's kernel has no IPVS for the routing mesh, and bench/run's private dockerd runs without a bridge or iptables), so they get no network interface but loopback."),
    ]
}

/// Deploy, scale, memory at the first count, down. Returns (up ms, scale ms, memory).
fn flotilla_round(sides: &Sides, stack: &str, c: &Counts) -> Result<(f64, f64, (Mem, Vec<Mem>))> {
    let fl = &sides.flotilla;
    let watch = FlotillaStack {
        flotilla: fl,
        stack,
    };
    let (first, second) = (c.first, c.second);
    let t0 = Instant::now();
    fl.up(stack, first)?;
    let healthy1 = move |r: &Replicas| r.healthy_at_least(first);
    let t1 = times_until("Flotilla", &watch, TIMEOUT, &[("all healthy", &healthy1)])?[0];
    let mem = fl.memory();
    let t2 = Instant::now();
    fl.scale(stack, second)?;
    let healthy2 = move |r: &Replicas| r.healthy_at_least(second);
    let t3 = times_until("Flotilla", &watch, TIMEOUT, &[("all healthy", &healthy2)])?[0];
    fl.down(stack)?;
    Ok((ms(t0, t1), ms(t2, t3), mem))
}

fn swarm_round(sides: &Sides, name: &str, c: &Counts) -> Result<(f64, f64, Option<DockerMemory>)> {
    let Some(sw) = &sides.swarm else {
        anyhow::bail!("Swarm is not running");
    };
    let (first, second) = (c.first, c.second);
    let events = DockerEvents::follow(name)?;
    let t0 = Instant::now();
    let result = (|| {
        sw.create(name, first)?;
        let healthy1 = move |r: &Replicas| r.healthy_at_least(first);
        let t1 = times_until("Swarm", &events, TIMEOUT, &[("all healthy", &healthy1)])?[0];
        let mem = sw.memory(&sw.containers(name, false)?).ok();
        let t2 = Instant::now();
        sw.scale(name, second)?;
        let healthy2 = move |r: &Replicas| r.healthy_at_least(second);
        let t3 = times_until("Swarm", &events, TIMEOUT, &[("all healthy", &healthy2)])?[0];
        Ok::<_, anyhow::Error>((ms(t0, t1), ms(t2, t3), mem))
    })();
    // Torn down whether or not the round worked.
    let removed = sw.remove(name);
    let r = result?;
    removed?;
    Ok(r)
}

fn summarise(res: &mut BenchResult, samples: &[Samples; 2], c: &Counts) {
    let names = ["flotilla", "swarm"];
    let up: Vec<Option<Summary>> = samples.iter().map(|s| Summary::of(&s.up)).collect();
    let scale: Vec<Option<Summary>> = samples.iter().map(|s| Summary::of(&s.scale)).collect();
    let cell = |s: &Option<Summary>, f: fn(&Summary) -> f64| {
        s.as_ref()
            .map_or("-".to_string(), |s| format!("{:.0}", f(s)))
    };
    let mut rows = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let runs = |v: &[f64]| {
            v.iter()
                .map(|x| format!("{x:.0}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        rows.push(vec![
            format!("{name}: up to {} healthy", c.first),
            runs(&samples[i].up),
            cell(&up[i], |s| s.median),
            cell(&up[i], |s| s.iqr),
        ]);
        rows.push(vec![
            format!("{name}: scale {} → {} healthy", c.first, c.second),
            runs(&samples[i].scale),
            cell(&scale[i], |s| s.median),
            cell(&scale[i], |s| s.iqr),
        ]);
    }
    res.tables.push(Table {
        title: "Time until all replicas are healthy (ms, lower is better)".into(),
        header: ["what", "runs (ms)", "median", "IQR"]
            .map(String::from)
            .to_vec(),
        rows,
    });
    let target = Target {
        on: TargetOn::Ratio,
        op: TargetOp::AtMost,
        value: 0.33,
        text: "at most 1/3 of Swarm's time".into(),
    };
    let swarm_note = (samples[SWARM].up.is_empty()).then(|| unavailable_note(res));
    for (fig, s) in [("up", &up), ("scale", &scale)] {
        let mut f = Figure::new(
            format!("deploy.{fig}.median"),
            "ms",
            s[FLOTILLA].as_ref().map(|s| s.median),
            Some("swarm"),
            s[SWARM].as_ref().map(|s| s.median),
            Some(target.clone()),
        );
        if let Some(n) = &swarm_note {
            f = f.with_anchor_note(n.clone());
        }
        res.figures.push(f);
    }
    res.charts.push(Chart::Bars {
        file: "deploy-times".into(),
        title: format!(
            "deploy: {} replicas up, then scale to {} (median ms)",
            c.first, c.second
        ),
        unit: "ms".into(),
        categories: vec![
            format!("up {}", c.first),
            format!("scale {}→{}", c.first, c.second),
        ],
        series: names
            .iter()
            .enumerate()
            .map(|(i, n)| BarSeries {
                label: n.to_string(),
                values: vec![
                    up[i].as_ref().map(|s| s.median),
                    scale[i].as_ref().map(|s| s.median),
                ],
            })
            .collect(),
    });
}

fn unavailable_note(res: &BenchResult) -> String {
    match res.unavailable.iter().find(|u| u.what == "docker swarm") {
        Some(u) => format!("unavailable ({})", u.reason),
        None => "unavailable".into(),
    }
}

fn memory(
    res: &mut BenchResult,
    fl: Option<(Mem, Vec<Mem>)>,
    sw: Option<&DockerMemory>,
    c: &Counts,
) {
    let mb = |k: u64| k as f64 / 1024.0;
    let fmt = |k: Option<u64>| k.map_or("n/a".to_string(), |k| format!("{:.1}", mb(k)));
    let mut rows = Vec::new();
    let mut fl_server = None;
    let mut fl_monitors_pss = None;
    if let Some((server, monitors)) = &fl {
        fl_server = Some(mb(server.rss_kib));
        let pss: Option<u64> = monitors.iter().map(|m| m.pss_kib).sum();
        fl_monitors_pss = pss.map(mb);
        rows.push(vec![
            "flotilla serve-all (server + agent)".into(),
            "1".into(),
            fmt(Some(server.rss_kib)),
            fmt(server.pss_kib),
        ]);
        rows.push(vec![
            "flotilla monitors (total)".into(),
            monitors.len().to_string(),
            fmt(Some(monitors.iter().map(|m| m.rss_kib).sum())),
            fmt(pss),
        ]);
    }
    let mut sw_daemons = None;
    if let Some(d) = sw {
        let containerd = d.containerd.unwrap_or_default();
        sw_daemons = Some(mb(d.dockerd.rss_kib + containerd.rss_kib));
        rows.push(vec![
            "dockerd".into(),
            "1".into(),
            fmt(Some(d.dockerd.rss_kib)),
            fmt(d.dockerd.pss_kib),
        ]);
        rows.push(vec![
            "containerd".into(),
            usize::from(d.containerd.is_some()).to_string(),
            fmt(d.containerd.map(|m| m.rss_kib)),
            fmt(d.containerd.and_then(|m| m.pss_kib)),
        ]);
        rows.push(vec![
            "containerd-shim-runc-v2 (total)".into(),
            d.shims.to_string(),
            fmt(Some(d.shims_rss_kib)),
            fmt(d.shims_pss_kib),
        ]);
    }
    res.tables.push(Table {
        title: format!("Memory with {} replicas running and healthy (MB)", c.first),
        header: ["process", "count", "RSS", "Pss"]
            .map(String::from)
            .to_vec(),
        rows,
    });
    res.method.push(format!("Memory: measured once per side, in the first round, right after all {} replicas were healthy: VmRSS (/proc/PID/status) and Pss (/proc/PID/smaps_rollup) of Flotilla's `serve-all` process and of its per-container monitors (summed), beside dockerd + containerd and the containerd shims of the service's containers (summed).", c.first));
    let note = unavailable_note(res);
    let mut f = Figure::new(
        "deploy.memory.control-plane-rss",
        "MB",
        fl_server,
        Some("dockerd+containerd"),
        sw_daemons,
        Some(Target {
            on: TargetOn::Flotilla,
            op: TargetOp::AtMost,
            value: 50.0,
            text: "flotilla up (serve-all) process under 50 MB RSS".into(),
        }),
    );
    if sw_daemons.is_none() {
        f = f.with_anchor_note(note.clone());
    }
    res.figures.push(f);
    let mut f = Figure::new(
        "deploy.memory.supervisors-pss-total",
        "MB",
        fl_monitors_pss,
        Some("containerd-shims"),
        sw.and_then(|d| d.shims_pss_kib).map(mb),
        None,
    );
    if sw.is_none() {
        f = f.with_anchor_note(note);
    }
    res.figures.push(f);
}
