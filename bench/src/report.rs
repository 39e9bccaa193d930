//! Merges the benchmarks' JSON fragments into the results a person reads
//! (`<stem>.md` with tables and charts) and a script reads (`<stem>.json`:
//! every figure with flotilla, anchor, ratio, target, pass/fail).

use crate::result::{fmt_num, BenchResult, Figure};
use anyhow::{Context as _, Result};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

#[derive(Serialize)]
pub struct Report {
    pub date: String,
    pub host: String,
    pub smoke: bool,
    pub environment: BTreeMap<String, String>,
    /// Every figure of every benchmark, flat, for scripts.
    pub figures: Vec<Figure>,
    pub benchmarks: Vec<BenchResult>,
}

/// Reads every `*.json` fragment in `work_dir`, in the order given by `order`
/// (benchmark names; others after, alphabetically).
pub fn load_fragments(work_dir: &Path, order: &[&str]) -> Result<Vec<BenchResult>> {
    let mut out = Vec::new();
    for entry in
        std::fs::read_dir(work_dir).with_context(|| format!("reading {}", work_dir.display()))?
    {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "json") {
            let bytes = std::fs::read(&path)?;
            let r: BenchResult = serde_json::from_slice(&bytes)
                .with_context(|| format!("parsing {}", path.display()))?;
            out.push(r);
        }
    }
    let rank = |n: &str| order.iter().position(|o| *o == n).unwrap_or(order.len());
    out.sort_by(|a, b| (rank(&a.benchmark), &a.benchmark).cmp(&(rank(&b.benchmark), &b.benchmark)));
    Ok(out)
}

pub fn environment() -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    env.insert("kernel".into(), read("/proc/sys/kernel/osrelease"));
    let cpu = read("/proc/cpuinfo").lines().find_map(|l| {
        l.strip_prefix("model name")
            .map(|r| r.trim_start_matches([' ', '\t', ':']).to_string())
    });
    env.insert("cpu".into(), cpu.unwrap_or_default());
    env.insert(
        "cpus".into(),
        std::thread::available_parallelism()
            .map(|n| n.get().to_string())
            .unwrap_or_default(),
    );
    let mem = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:").map(|r| r.trim().to_string()));
    env.insert("memory".into(), mem.unwrap_or_default());
    env.insert(
        "os".into(),
        read("/etc/debian_version")
            .chars()
            .next()
            .map(|_| format!("Debian {}", read("/etc/debian_version")))
            .unwrap_or_default(),
    );
    env
}

/// Writes `<out>/<stem>.md`, `<out>/<stem>.json` and `<out>/<stem>/*.png`;
/// returns the Markdown path.
pub fn write(out_dir: &Path, stem: &str, report: &Report) -> Result<PathBuf> {
    let chart_dir = out_dir.join(stem);
    std::fs::create_dir_all(&chart_dir)
        .with_context(|| format!("creating {}", chart_dir.display()))?;
    let mut charts: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for b in &report.benchmarks {
        for c in &b.charts {
            match crate::charts::draw(c, &chart_dir) {
                Ok(p) => {
                    let name = p
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    charts
                        .entry(b.benchmark.clone())
                        .or_default()
                        .push(format!("{stem}/{name}"));
                }
                Err(e) => eprintln!("warning: chart for {} not drawn: {e:#}", b.benchmark),
            }
        }
    }
    let md = markdown(report, &charts);
    let md_path = out_dir.join(format!("{stem}.md"));
    std::fs::write(&md_path, md).with_context(|| format!("writing {}", md_path.display()))?;
    let json_path = out_dir.join(format!("{stem}.json"));
    std::fs::write(&json_path, serde_json::to_vec_pretty(report)?)
        .with_context(|| format!("writing {}", json_path.display()))?;
    Ok(md_path)
}

fn esc(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn side(v: Option<f64>, unit: &str, note: &Option<String>) -> String {
    match (v, note) {
        (Some(v), _) => format!("{} {unit}", fmt_num(v)),
        (None, Some(n)) => n.clone(),
        (None, None) => "n/a".into(),
    }
}

/// The Markdown report (pure: data in, text out).
pub fn markdown(r: &Report, charts: &BTreeMap<String, Vec<String>>) -> String {
    let mut m = String::new();
    let _ = writeln!(m, "# Flotilla benchmarks: {} on `{}`\n", r.date, r.host);
    if r.smoke {
        m.push_str("**Smoke run**: a few samples per figure to prove the suite works; do not quote these numbers.\n\n");
    }
    m.push_str("How to run and read this: [bench/README.md](../README.md). Ratios are Flotilla / anchor: for times lower is better, for throughput higher is better.\n\n");
    m.push_str("## Environment\n\n| | |\n|---|---|\n");
    for (k, v) in &r.environment {
        let _ = writeln!(m, "| {k} | {} |", esc(v));
    }
    let mut versions = BTreeMap::new();
    for b in &r.benchmarks {
        versions.extend(b.versions.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    for (k, v) in &versions {
        let _ = writeln!(m, "| {k} | {} |", esc(v));
    }
    m.push_str("\n## Figures\n\n| figure | flotilla | anchor | ratio | target | result |\n|---|---|---|---|---|---|\n");
    for f in &r.figures {
        let anchor = match (&f.anchor_name, f.anchor) {
            (Some(n), Some(_)) => format!("{} ({n})", side(f.anchor, &f.unit, &f.anchor_note)),
            _ => side(f.anchor, &f.unit, &f.anchor_note),
        };
        let pass = match f.pass {
            Some(true) => "pass",
            Some(false) => "**FAIL**",
            None => "-",
        };
        let _ = writeln!(
            m,
            "| `{}` | {} | {} | {} | {} | {pass} |",
            f.name,
            esc(&side(f.flotilla, &f.unit, &f.flotilla_note)),
            esc(&anchor),
            f.ratio.map_or("-".into(), |x| format!("{x:.2}")),
            f.target.as_ref().map_or("-".into(), |t| esc(&t.text)),
        );
    }
    for b in &r.benchmarks {
        let _ = writeln!(m, "\n## `{}`: {}\n", b.benchmark, b.title);
        if let Some(why) = &b.skipped {
            let _ = writeln!(m, "Skipped: {why}\n");
        }
        if let Some(why) = &b.failed {
            let _ = writeln!(m, "**Failed**: {}\n", esc(why));
        }
        for line in &b.method {
            let _ = writeln!(m, "- {line}");
        }
        if !b.method.is_empty() {
            m.push('\n');
        }
        for t in &b.tables {
            let _ = writeln!(m, "**{}**\n", t.title);
            let _ = writeln!(
                m,
                "| {} |",
                t.header
                    .iter()
                    .map(|h| esc(h))
                    .collect::<Vec<_>>()
                    .join(" | ")
            );
            let _ = writeln!(m, "|{}", "---|".repeat(t.header.len()));
            for row in &t.rows {
                let _ = writeln!(
                    m,
                    "| {} |",
                    row.iter().map(|c| esc(c)).collect::<Vec<_>>().join(" | ")
                );
            }
            m.push('\n');
        }
        for c in charts.get(&b.benchmark).into_iter().flatten() {
            let _ = writeln!(m, "![{c}]({c})\n");
        }
        if !b.unavailable.is_empty() {
            m.push_str("Not measured here:\n\n");
            for u in &b.unavailable {
                let _ = writeln!(m, "- {}: {}", u.what, esc(&u.reason));
            }
            m.push('\n');
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::{Table, Target, TargetOn, TargetOp};

    #[test]
    fn markdown_has_figures_tables_and_failures() {
        let mut b = BenchResult::new("container-start", "Start", false);
        b.tables.push(Table {
            title: "T".into(),
            header: vec!["a".into(), "b".into()],
            rows: vec![vec!["1".into(), "x|y".into()]],
        });
        let t = Target {
            on: TargetOn::Ratio,
            op: TargetOp::AtMost,
            value: 1.5,
            text: "at most 1.5x".into(),
        };
        let f = Figure::new(
            "container-start.median.crun",
            "ms",
            Some(20.0),
            Some("crun"),
            Some(10.0),
            Some(t),
        );
        b.figures.push(f.clone());
        let r = Report {
            date: "2026-01-01".into(),
            host: "h".into(),
            smoke: true,
            environment: BTreeMap::new(),
            figures: vec![f],
            benchmarks: vec![b],
        };
        let md = markdown(&r, &BTreeMap::new());
        assert!(md.contains("**Smoke run**"));
        assert!(md.contains("| `container-start.median.crun` | 20.00 ms | 10.00 ms (crun) | 2.00 | at most 1.5x | **FAIL** |"), "{md}");
        assert!(md.contains("| 1 | x\\|y |"));
    }
}
