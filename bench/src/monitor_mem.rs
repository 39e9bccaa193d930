//! Memory each running container costs beyond its own payload: Flotilla's
//! per-container monitor process vs Docker's per-container containerd shim.
//! Starts N detached `sleep` containers, finds the supervising processes,
//! reads their RSS and Pss, and removes the containers (also on failure).

use crate::procutil::{self, Cleanup, Mem};
use crate::stats::percentile_sorted;
use crate::Ctx;
use anyhow::{bail, Context as _, Result};
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

pub struct MemStats {
    pub count: usize,
    pub rss_median_kib: f64,
    pub rss_max_kib: f64,
    pub pss_median_kib: Option<f64>,
    pub pss_max_kib: Option<f64>,
}

impl MemStats {
    pub fn of(mems: &[Mem]) -> Result<MemStats> {
        if mems.is_empty() {
            bail!("no processes to measure");
        }
        let med_max = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            (percentile_sorted(&v, 50.0), v[v.len() - 1])
        };
        let (rss_median_kib, rss_max_kib) =
            med_max(mems.iter().map(|m| m.rss_kib as f64).collect());
        let pss: Option<Vec<f64>> = mems.iter().map(|m| m.pss_kib.map(|p| p as f64)).collect();
        let (pss_median_kib, pss_max_kib) = match pss {
            Some(p) => {
                let (a, b) = med_max(p);
                (Some(a), Some(b))
            }
            None => (None, None),
        };
        Ok(MemStats {
            count: mems.len(),
            rss_median_kib,
            rss_max_kib,
            pss_median_kib,
            pss_max_kib,
        })
    }

    pub fn row(&self, label: &str) -> Vec<String> {
        let mb = |k: f64| format!("{:.2}", k / 1024.0);
        let opt = |k: Option<f64>| k.map_or("n/a".to_string(), mb);
        vec![
            label.to_string(),
            self.count.to_string(),
            mb(self.rss_median_kib),
            mb(self.rss_max_kib),
            opt(self.pss_median_kib),
            opt(self.pss_max_kib),
        ]
    }
}

fn flotilla_cmd(ctx: &Ctx, data_dir: &Path) -> Command {
    let mut c = Command::new(&ctx.flotilla);
    c.arg("--data-dir").arg(data_dir);
    c
}

/// Force-removes Flotilla containers by id; tries `rm --force`, then stop + rm.
fn flotilla_remove(flotilla: &Path, data_dir: &Path, ids: &[String]) {
    for id in ids {
        let base = || {
            let mut c = Command::new(flotilla);
            c.arg("--data-dir").arg(data_dir).arg("container");
            c
        };
        if procutil::output(base().args(["rm", "--force", id])).is_err() {
            let _ = procutil::output(base().args(["stop", id]));
            let _ = procutil::output(base().args(["rm", id]));
        }
    }
}

pub fn flotilla_monitors(ctx: &Ctx, data_dir: &Path, n: usize, image: &str) -> Result<MemStats> {
    let ids = std::cell::RefCell::new(Vec::<String>::new());
    let (fl, dd) = (ctx.flotilla.clone(), data_dir.to_path_buf());
    let _cleanup = Cleanup(|| flotilla_remove(&fl, &dd, &ids.borrow()));
    for _ in 0..n {
        crate::interrupt::check()?;
        let out = procutil::output(flotilla_cmd(ctx, data_dir).args([
            "container",
            "run",
            "-d",
            image,
            "--",
            "/bin/busybox",
            "sleep",
            "60",
        ]))
        .context("starting a detached Flotilla container (container run -d)")?;
        let id = out
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or_default()
            .to_string();
        if id.is_empty() {
            bail!("`flotilla container run -d` printed no container id");
        }
        ids.borrow_mut().push(id);
    }
    let ids_now = ids.borrow().clone();
    let pids = wait_for(n, || monitor_pids(ctx, data_dir, &ids_now))
        .context("finding Flotilla's monitor processes (container inspect --output json, or the process table)")?;
    let mems: Vec<Mem> = pids.iter().filter_map(|p| procutil::mem_of(*p)).collect();
    MemStats::of(&mems)
}

/// Monitor PIDs: from `container inspect --output json` when it names one,
/// else processes whose command line says `monitor` and names our data dir.
fn monitor_pids(ctx: &Ctx, data_dir: &Path, ids: &[String]) -> Vec<u32> {
    let mut pids = Vec::new();
    for id in ids {
        let Ok(out) = procutil::output(flotilla_cmd(ctx, data_dir).args([
            "--output",
            "json",
            "container",
            "inspect",
            id,
        ])) else {
            continue;
        };
        if let Ok(v) = serde_json::from_str::<Value>(&out) {
            if let Some(p) = find_monitor_pid(&v) {
                pids.push(p);
            }
        }
    }
    if pids.len() == ids.len() {
        return pids;
    }
    let dd = data_dir.to_string_lossy().into_owned();
    procutil::find_processes(|c| {
        c.iter().any(|a| a == "monitor") && c.iter().any(|a| a.contains(dd.as_str()))
    })
}

/// The first number under a key like `monitor_pid` / `monitorPid` anywhere in `v`.
pub fn find_monitor_pid(v: &Value) -> Option<u32> {
    match v {
        Value::Object(m) => m
            .iter()
            .find_map(|(k, val)| {
                let k = k.to_ascii_lowercase();
                (k.contains("monitor") && k.contains("pid"))
                    .then(|| val.as_u64())
                    .flatten()
            })
            .map(|p| p as u32)
            .or_else(|| m.values().find_map(find_monitor_pid)),
        Value::Array(a) => a.iter().find_map(find_monitor_pid),
        _ => None,
    }
}

/// Polls `find` until it returns `n` PIDs (processes may still be starting).
fn wait_for(n: usize, find: impl Fn() -> Vec<u32>) -> Result<Vec<u32>> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pids = find();
        if pids.len() >= n {
            return Ok(pids);
        }
        if Instant::now() > deadline {
            bail!("expected {n} processes, found {}", pids.len());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn docker_shims(n: usize, image: &str, tag: &str) -> Result<MemStats> {
    let ids = std::cell::RefCell::new(Vec::<String>::new());
    let _cleanup = Cleanup(|| {
        let ids = ids.borrow();
        if !ids.is_empty() {
            let _ = procutil::output(Command::new("docker").args(["rm", "-f"]).args(ids.iter()));
        }
    });
    for _ in 0..n {
        crate::interrupt::check()?;
        let out = procutil::output(
            Command::new("docker")
                .args(["run", "-d", "--network", "none", "--label"])
                .arg(format!("flotilla-bench={tag}"))
                .args([image, "/bin/busybox", "sleep", "60"]),
        )?;
        ids.borrow_mut().push(out.trim().to_string());
    }
    let ids_now = ids.borrow().clone();
    let pids = wait_for(n, || {
        procutil::find_processes(|c| {
            c.first().is_some_and(|p| p.contains("containerd-shim"))
                && c.windows(2)
                    .any(|w| w[0] == "-id" && ids_now.contains(&w[1]))
        })
    })
    .context("finding Docker's containerd-shim processes")?;
    let mems: Vec<Mem> = pids.iter().filter_map(|p| procutil::mem_of(*p)).collect();
    MemStats::of(&mems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_monitor_pid_at_any_depth() {
        let v = serde_json::json!({"id": "x", "state": {"pid": 5, "monitor_pid": 42}});
        assert_eq!(find_monitor_pid(&v), Some(42));
        let v = serde_json::json!([{"MonitorPid": 7}]);
        assert_eq!(find_monitor_pid(&v), Some(7));
        assert_eq!(find_monitor_pid(&serde_json::json!({"pid": 1})), None);
    }

    #[test]
    fn mem_stats_median_and_max() {
        let mems = [
            Mem {
                rss_kib: 1000,
                pss_kib: Some(500),
            },
            Mem {
                rss_kib: 3000,
                pss_kib: Some(700),
            },
            Mem {
                rss_kib: 2000,
                pss_kib: Some(600),
            },
        ];
        let s = MemStats::of(&mems).unwrap();
        assert_eq!(s.rss_median_kib, 2000.0);
        assert_eq!(s.rss_max_kib, 3000.0);
        assert_eq!(s.pss_median_kib, Some(600.0));
    }
}
