//! `compose-config`: how long it takes to load, validate and normalise a
//! 1,000-service stack file: `flotilla config` as a whole process and the
//! `flotilla_compose::load` library call in-process, beside
//! `docker-compose config` on the same file.

use crate::procutil::{self, timed_run};
use crate::result::{BenchResult, Chart, Figure, Series, Table, Target, TargetOn, TargetOp};
use crate::stats::{discard_warmup, interleaved_schedule, Summary};
use crate::Ctx;
use anyhow::{Context as _, Result};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

pub const SERVICES: usize = 1000;

pub fn run(ctx: &Ctx) -> Result<BenchResult> {
    let mut res = BenchResult::new(
        "compose-config",
        "Stack file: load + validate + normalise 1,000 services",
        ctx.smoke,
    );
    let (runs, warmup) = if ctx.smoke { (3, 1) } else { (20, 2) };
    // docker-compose (Python) is slow on this file; cap its share of the time.
    let anchor_budget = Duration::from_secs(90);
    let tmp = tempfile::Builder::new()
        .prefix("flotilla-bench-compose.")
        .tempdir()?;
    // A plain directory name: both tools derive the project name from it.
    let dir = tmp.path().join("benchstack");
    std::fs::create_dir_all(&dir)?;
    let file = dir.join("stack.yml");
    std::fs::write(&file, crate::stackgen::stack_yaml(SERVICES))?;
    let bytes = std::fs::metadata(&file)?.len();
    res.method = vec![
        format!("A generated {SERVICES}-service stack file ({} KiB): ports, environment, health check, deploy (replicas, resources, restart_policy, update_config), two networks, a named volume on every 4th service, depends_on on every 10th.", bytes / 1024),
        format!("Whole process: `flotilla config -f stack.yml --output json` and `docker-compose -f stack.yml config`, {runs} runs each after {warmup} warm-up runs, interleaved; stdout discarded. docker-compose (seconds per run on this file) gets one warm-up run and stops early once it has used {}s (at least 3 runs; smoke: its warm-up run is its only sample).", anchor_budget.as_secs()),
        format!("Library: `flotilla_compose::load` in this process, {runs} calls after {warmup} warm-up calls."),
    ];

    // Flotilla's process: must work.
    let fl_cmd = || {
        let mut c = Command::new(&ctx.flotilla);
        c.arg("config")
            .arg("-f")
            .arg(&file)
            .args(["--output", "json"])
            .current_dir(&dir);
        c
    };
    timed_run(&mut fl_cmd()).context("`flotilla config` on the generated stack")?;

    let dc_cmd = || {
        let mut c = Command::new("docker-compose");
        c.arg("-f").arg(&file).arg("config").current_dir(&dir);
        c
    };
    let mut dc_ok = false;
    let mut dc_samples = Vec::new();
    if procutil::which("docker-compose").is_none() {
        res.unavailable(
            "docker-compose",
            "not installed (Debian package docker-compose)",
        );
    } else {
        res.versions.insert(
            "docker-compose".into(),
            procutil::version_line("docker-compose", &["version", "--short"]).unwrap_or_default(),
        );
        match timed_run(&mut dc_cmd()) {
            Ok(d) => {
                dc_ok = true;
                if ctx.smoke {
                    dc_samples.push(ms(d));
                }
            }
            Err(e) => res.unavailable(
                "docker-compose",
                format!("refused the generated file: {e:#}"),
            ),
        }
    }

    let mut fl_samples = Vec::new();
    let mut dc_spent = Duration::ZERO;
    for order in interleaved_schedule(2, runs + warmup) {
        for who in order {
            crate::interrupt::check()?;
            if who == 0 {
                let d =
                    timed_run(&mut fl_cmd()).context("`flotilla config` failed mid-benchmark")?;
                fl_samples.push(ms(d));
            } else if dc_ok && !ctx.smoke && (dc_spent < anchor_budget || dc_samples.len() < 3) {
                match timed_run(&mut dc_cmd()) {
                    Ok(d) => {
                        dc_spent += d;
                        dc_samples.push(ms(d));
                    }
                    Err(e) => {
                        res.unavailable("docker-compose", format!("failed mid-benchmark: {e:#}"));
                        dc_ok = false;
                        dc_samples.clear();
                    }
                }
            }
        }
    }
    let lib_samples = time_library(&file, &dir, runs + warmup)?;

    let fl = Summary::of(discard_warmup(&fl_samples, warmup));
    let lib = Summary::of(discard_warmup(&lib_samples, warmup));
    // docker-compose's warm-up was its validation run, before the loop.
    let dc = Summary::of(&dc_samples);
    let row = |name: &str, s: &Option<Summary>| match s {
        Some(s) => vec![
            name.to_string(),
            s.count.to_string(),
            format!("{:.2}", s.min),
            format!("{:.2}", s.median),
            format!("{:.2}", s.p90),
            format!("{:.2}", s.iqr),
        ],
        None => vec![
            name.to_string(),
            "0".into(),
            "-".into(),
            "-".into(),
            "-".into(),
            "-".into(),
        ],
    };
    res.tables.push(Table {
        title: format!("Load time for {SERVICES} services (ms, lower is better)"),
        header: ["what", "runs", "min", "median", "p90", "IQR"]
            .map(String::from)
            .to_vec(),
        rows: vec![
            row("flotilla config (process)", &fl),
            row("flotilla_compose::load (in-process)", &lib),
            row("docker-compose config (process)", &dc),
        ],
    });
    let target = |what: &str| Target {
        on: TargetOn::Flotilla,
        op: TargetOp::AtMost,
        value: 50.0,
        text: format!("{what} under 50 ms"),
    };
    let dc_note = (!dc_ok).then(|| "unavailable (see report)".to_string());
    let mut f = Figure::new(
        "compose-config.process.median",
        "ms",
        fl.as_ref().map(|s| s.median),
        Some("docker-compose"),
        dc.as_ref().map(|s| s.median),
        Some(target("flotilla config")),
    );
    if let Some(n) = &dc_note {
        f = f.with_anchor_note(n.clone());
    }
    res.figures.push(f);
    let mut f = Figure::new(
        "compose-config.library.median",
        "ms",
        lib.as_ref().map(|s| s.median),
        Some("docker-compose"),
        dc.as_ref().map(|s| s.median),
        Some(target("flotilla_compose::load")),
    );
    if let Some(n) = dc_note {
        f = f.with_anchor_note(n);
    }
    res.figures.push(f);
    let mut series = vec![
        Series {
            label: "flotilla config".into(),
            values: discard_warmup(&fl_samples, warmup).to_vec(),
        },
        Series {
            label: "flotilla_compose::load".into(),
            values: discard_warmup(&lib_samples, warmup).to_vec(),
        },
    ];
    if dc.is_some() {
        series.push(Series {
            label: "docker-compose config".into(),
            values: dc_samples.clone(),
        });
    }
    res.charts.push(Chart::Distribution {
        file: "compose-config".into(),
        title: format!("load {SERVICES}-service stack file (CDF, log scale)"),
        unit: "ms".into(),
        series,
    });
    Ok(res)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Times the library call; a load error is a Flotilla failure (the file is valid).
fn time_library(file: &Path, dir: &Path, count: usize) -> Result<Vec<f64>> {
    let opts = flotilla_compose::LoadOptions {
        files: vec![file.to_path_buf()],
        working_dir: Some(dir.to_path_buf()),
        ..Default::default()
    };
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let start = Instant::now();
        let loaded = flotilla_compose::load(&opts);
        let d = start.elapsed();
        match loaded {
            Ok(l) => drop(std::hint::black_box(l)),
            Err(diags) => {
                anyhow::bail!("flotilla_compose::load refused the generated stack:\n{diags}")
            }
        }
        out.push(ms(d));
    }
    Ok(out)
}
