//! What a benchmark produces: figures (Flotilla vs one anchor, with a target),
//! tables for people, raw series for charts. Each benchmark subcommand writes
//! one `BenchResult` as JSON into the work dir; `report` merges them.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct BenchResult {
    /// Benchmark name as given on the command line (`container-start`).
    pub benchmark: String,
    pub title: String,
    pub smoke: bool,
    /// How it was measured and which like-for-like choices were made.
    pub method: Vec<String>,
    /// Tool name → version line, for the report's environment section.
    pub versions: BTreeMap<String, String>,
    pub tables: Vec<Table>,
    pub figures: Vec<Figure>,
    pub charts: Vec<Chart>,
    /// Anchors (or parts) that could not run here, with the reason.
    pub unavailable: Vec<Unavailable>,
    /// Set when the whole benchmark was skipped (the feature does not exist yet).
    pub skipped: Option<String>,
    /// Set when the benchmark itself failed (harness or Flotilla broken).
    #[serde(default)]
    pub failed: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Unavailable {
    pub what: String,
    pub reason: String,
}

/// A table for the Markdown report; every cell already formatted.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Table {
    pub title: String,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// One comparable number: Flotilla's value beside one anchor's.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Figure {
    /// Dotted name a script can key on: `container-start.median.crun`.
    pub name: String,
    pub unit: String,
    pub flotilla: Option<f64>,
    /// Why Flotilla has no value (`not implemented yet (...)`).
    pub flotilla_note: Option<String>,
    pub anchor_name: Option<String>,
    pub anchor: Option<f64>,
    /// Why the anchor has no value (not installed, refused to run...).
    pub anchor_note: Option<String>,
    /// `flotilla / anchor`.
    pub ratio: Option<f64>,
    pub target: Option<Target>,
    /// `None` when there is no target or nothing to judge.
    pub pass: Option<bool>,
}

/// A goal for a figure, on either the ratio or Flotilla's own value.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Target {
    pub on: TargetOn,
    pub op: TargetOp,
    pub value: f64,
    /// For people: "median at most 1.5x crun".
    pub text: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetOn {
    Ratio,
    Flotilla,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetOp {
    AtMost,
    AtLeast,
}

impl Target {
    pub fn judge(&self, flotilla: Option<f64>, ratio: Option<f64>) -> Option<bool> {
        let v = match self.on {
            TargetOn::Ratio => ratio?,
            TargetOn::Flotilla => flotilla?,
        };
        Some(match self.op {
            TargetOp::AtMost => v <= self.value,
            TargetOp::AtLeast => v >= self.value,
        })
    }
}

impl Figure {
    /// A figure with both sides measured (either may still be `None`).
    pub fn new(
        name: impl Into<String>,
        unit: impl Into<String>,
        flotilla: Option<f64>,
        anchor_name: Option<&str>,
        anchor: Option<f64>,
        target: Option<Target>,
    ) -> Figure {
        let ratio = crate::stats::ratio(flotilla, anchor);
        let pass = target.as_ref().and_then(|t| t.judge(flotilla, ratio));
        Figure {
            name: name.into(),
            unit: unit.into(),
            flotilla,
            flotilla_note: None,
            anchor_name: anchor_name.map(str::to_string),
            anchor,
            anchor_note: None,
            ratio,
            target,
            pass,
        }
    }

    pub fn with_flotilla_note(mut self, note: impl Into<String>) -> Figure {
        self.flotilla_note = Some(note.into());
        self
    }

    pub fn with_anchor_note(mut self, note: impl Into<String>) -> Figure {
        self.anchor_note = Some(note.into());
        self
    }

    /// The machine-readable line every benchmark prints last, one per figure:
    /// `name: flotilla X, anchor Y, ratio Z`.
    pub fn line(&self) -> String {
        let side = |v: Option<f64>, note: &Option<String>| match (v, note) {
            (Some(v), _) => format!("{} {}", fmt_num(v), self.unit),
            (None, Some(n)) => n.clone(),
            (None, None) => "n/a".to_string(),
        };
        let anchor = match &self.anchor_name {
            Some(a) if self.anchor.is_some() => {
                format!("{} ({a})", side(self.anchor, &self.anchor_note))
            }
            _ => side(self.anchor, &self.anchor_note),
        };
        let ratio = self.ratio.map_or("n/a".to_string(), |r| format!("{r:.2}"));
        format!(
            "{}: flotilla {}, anchor {}, ratio {}",
            self.name,
            side(self.flotilla, &self.flotilla_note),
            anchor,
            ratio
        )
    }
}

/// Chart data; drawn to PNG by `charts`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Chart {
    /// Cumulative distribution of samples per contender (latency distributions).
    Distribution {
        file: String,
        title: String,
        unit: String,
        series: Vec<Series>,
    },
    /// Grouped bars: one group per category, one bar per series.
    Bars {
        file: String,
        title: String,
        unit: String,
        categories: Vec<String>,
        /// `values[i]` belongs to `categories[i]`; `None` draws no bar.
        series: Vec<BarSeries>,
    },
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Series {
    pub label: String,
    pub values: Vec<f64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BarSeries {
    pub label: String,
    pub values: Vec<Option<f64>>,
}

/// Numbers in reports: 3 significant-ish digits without noise.
pub fn fmt_num(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".to_string()
    } else if a >= 1000.0 {
        format!("{v:.0}")
    } else if a >= 100.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

impl BenchResult {
    pub fn new(benchmark: &str, title: &str, smoke: bool) -> BenchResult {
        BenchResult {
            benchmark: benchmark.to_string(),
            title: title.to_string(),
            smoke,
            ..Default::default()
        }
    }

    pub fn unavailable(&mut self, what: &str, reason: impl Into<String>) {
        let reason = reason.into();
        eprintln!("ANCHOR UNAVAILABLE: {what}: {reason}");
        self.unavailable.push(Unavailable {
            what: what.to_string(),
            reason,
        });
    }

    /// Writes `<dir>/<benchmark>.json` and prints the figure lines (last).
    pub fn finish(&self, work_dir: &Path) -> anyhow::Result<()> {
        use anyhow::Context as _;
        std::fs::create_dir_all(work_dir)
            .with_context(|| format!("creating work dir {}", work_dir.display()))?;
        let path = work_dir.join(format!("{}.json", self.benchmark));
        std::fs::write(&path, serde_json::to_vec_pretty(self)?)
            .with_context(|| format!("writing {}", path.display()))?;
        if let Some(why) = &self.skipped {
            println!("{}: skipped: {why}", self.benchmark);
        }
        if let Some(why) = &self.failed {
            println!("{}: FAILED: {why}", self.benchmark);
        }
        for f in &self.figures {
            println!("{}", f.line());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at_most(v: f64) -> Target {
        Target {
            on: TargetOn::Ratio,
            op: TargetOp::AtMost,
            value: v,
            text: String::new(),
        }
    }

    #[test]
    fn figure_line_is_parseable() {
        let f = Figure::new(
            "start.median.crun",
            "ms",
            Some(12.0),
            Some("crun"),
            Some(10.0),
            Some(at_most(1.5)),
        );
        assert_eq!(
            f.line(),
            "start.median.crun: flotilla 12.00 ms, anchor 10.00 ms (crun), ratio 1.20"
        );
        assert_eq!(f.pass, Some(true));
    }

    #[test]
    fn figure_line_with_missing_flotilla() {
        let f = Figure::new(
            "proxy.rps.haproxy",
            "req/s",
            None,
            Some("haproxy"),
            Some(25000.0),
            None,
        )
        .with_flotilla_note("not implemented yet (service networking issue)");
        assert_eq!(
            f.line(),
            "proxy.rps.haproxy: flotilla not implemented yet (service networking issue), anchor 25000 req/s (haproxy), ratio n/a"
        );
        assert_eq!(f.pass, None);
    }

    #[test]
    fn target_on_flotilla_value() {
        let t = Target {
            on: TargetOn::Flotilla,
            op: TargetOp::AtMost,
            value: 2.0,
            text: String::new(),
        };
        assert_eq!(t.judge(Some(1.5), None), Some(true));
        assert_eq!(t.judge(Some(2.5), None), Some(false));
        assert_eq!(t.judge(None, None), None);
    }
}
