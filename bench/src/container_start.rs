//! `container-start`: create + start + wait of `/bin/busybox true` on the same
//! busybox rootfs, Flotilla vs crun, runc and `docker run --rm`, interleaved;
//! then the memory Flotilla's per-container monitor adds (vs Docker's shim).

use crate::procutil::{self, timed_run, Cleanup};
use crate::result::{BenchResult, Chart, Figure, Series, Table, Target, TargetOn, TargetOp};
use crate::stats::{discard_warmup, interleaved_schedule, Summary};
use crate::Ctx;
use anyhow::{bail, Context as _, Result};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

const IMAGE_FLOTILLA: &str = "busybox:bench";
const IMAGE_DOCKER: &str = "flotilla-bench/busybox:bench";
/// crun 1.8 refuses this kind of host (cgroup v1 plus a v2 hierarchy at
/// `unified`, "drop all controllers from cgroupv2") unless it sees no v2 controllers.
const UNIFIED_CONTROLLERS: &str = "/sys/fs/cgroup/unified/cgroup.controllers";
const MEMORY_CONTAINERS: usize = 10;
/// Pause after every timed run, the same for every tool, before the next
/// tool's run starts. Work a tool leaves running after its client exits
/// (dockerd and containerd removing a container and the shim exiting,
/// Flotilla's background delete of a `--rm` container's files, the kernel's
/// RCU callbacks after namespaces and mounts go away) otherwise lands in the
/// next contender's timed run on this 2-core machine: Docker's ran into
/// whichever tool followed it (without the pause, crun's median was 9.0 ms
/// after Flotilla's runs and 19.5 ms after Docker's). Not timed.
///
/// The pause alone left every timed run cold (CPU caches, frequency, idle
/// states): measured by hand, it added 12-15 ms to crun's runs and about
/// 8 ms to Flotilla's, which pulled the ratio towards 1 (1.01-1.11x paused
/// vs 1.24-1.76x back to back). So each timed run follows an untimed run of
/// the same tool, as in back-to-back starts; that run's own leftovers are
/// the tool's own cost.
const SETTLE: std::time::Duration = std::time::Duration::from_millis(250);
/// Added to the run number of the untimed warm run before each timed run,
/// so its container names never clash with a timed run's.
const WARM_RUN: usize = 1_000_000;

/// One tool being timed. `command(n)` builds the n-th run's command line.
struct Contender {
    name: &'static str,
    is_flotilla: bool,
    command: Box<dyn Fn(usize) -> Command>,
    samples: Vec<f64>,
}

pub fn run(ctx: &Ctx) -> Result<BenchResult> {
    let mut res = BenchResult::new(
        "container-start",
        "Container start: create + start + wait of `busybox true`",
        ctx.smoke,
    );
    let (runs, warmup) = if ctx.smoke { (5, 1) } else { (50, 3) };
    let tmp = tempfile::Builder::new()
        .prefix("flotilla-bench-start.")
        .tempdir()?;
    let root = tmp.path();
    let fs = crate::rootfs::build(root)?;
    let data_dir = root.join("flotilla-data");
    let run_tag = format!("fb{}", std::process::id());

    res.method = vec![
        format!("Each tool runs `/bin/busybox true` in a new container {runs} times after {warmup} discarded warm-up runs, interleaved round by round, in a different order each round (`stats::interleaved_schedule`); the time is the whole client process, spawn to reaped exit."),
        "Same root filesystem everywhere: Debian's static busybox, imported as a rootfs tar into Flotilla (`flotilla image import`) and Docker (`docker import`), and used as the read-only bundle rootfs for crun and runc.".into(),
        "Every contender gets its own, empty network namespace (loopback only): `runc spec`'s default namespaces for crun and runc, `--network none` for Docker, Flotilla's default (no network attachment). No bridge/veth setup is timed anywhere.".into(),
        "crun and runc share one `config.json` (from `runc spec`, with `process.args`, `root.path`, `terminal: false` set). Flotilla and Docker mount an overlay over the image; crun/runc bind the rootfs directly.".into(),
        format!("Between two timed runs (of any tool) the harness waits {} ms, untimed, so work a tool leaves behind after its client exits (Docker's container removal and shim exit, Flotilla's background delete of the `--rm` container's files, the kernel's deferred namespace and mount teardown) finishes before the next tool's run instead of landing in it. Then the next tool runs once untimed and at once again, timed: the pause alone left every run cold, which added more to crun's times than to Flotilla's and pulled the ratio towards 1.", SETTLE.as_millis()),
        format!("crun (Debian's 1.8) refuses this host's hybrid cgroups, so each crun run starts in a private mount namespace where `{UNIFIED_CONTROLLERS}` is bind-mounted over by an empty file (done in the forked child before exec: two syscalls, no extra process)."),
    ];
    res.versions.insert(
        "flotilla".into(),
        procutil::version_line(&ctx.flotilla.to_string_lossy(), &["--version"]).unwrap_or_default(),
    );

    let mut contenders = Vec::new();
    let mut cleanups: Vec<Box<dyn FnMut()>> = Vec::new();

    // Flotilla: must work; a failure here is a failure of the benchmark.
    procutil::output(
        flotilla(ctx, &data_dir)
            .args(["image", "import"])
            .arg(&fs.tar)
            .args(["--name", IMAGE_FLOTILLA]),
    )
    .context("importing the busybox rootfs into Flotilla")?;
    {
        let (fl, dd) = (ctx.flotilla.clone(), data_dir.clone());
        contenders.push(Contender {
            name: "flotilla",
            is_flotilla: true,
            command: Box::new(move |_| {
                let mut c = Command::new(&fl);
                c.arg("--data-dir").arg(&dd).args([
                    "container",
                    "run",
                    "--rm",
                    IMAGE_FLOTILLA,
                    "--",
                    "/bin/busybox",
                    "true",
                ]);
                c
            }),
            samples: Vec::new(),
        });
    }

    let bundle = root.join("bundle");
    let bundle_ok = match make_bundle(&bundle, &fs.dir) {
        Ok(()) => true,
        Err(e) => {
            res.unavailable("crun/runc bundle", format!("{e:#}"));
            false
        }
    };
    if bundle_ok {
        if let Some(c) = crun(&mut res, root, &bundle, &run_tag)? {
            contenders.push(c);
        }
        if let Some(c) = runc(&mut res, root, &bundle, &run_tag) {
            contenders.push(c);
        }
    }
    let docker_ok = docker_available(&mut res);
    if docker_ok {
        match procutil::output(
            Command::new("docker")
                .arg("import")
                .arg(&fs.tar)
                .arg(IMAGE_DOCKER),
        ) {
            Ok(_) => {
                let tag = run_tag.clone();
                cleanups.push(Box::new(move || docker_cleanup(&tag)));
                let tag = run_tag.clone();
                contenders.push(Contender {
                    name: "docker",
                    is_flotilla: false,
                    command: Box::new(move |_| {
                        let mut c = Command::new("docker");
                        c.args(["run", "--rm", "--network", "none", "--label"])
                            .arg(format!("flotilla-bench={tag}"))
                            .args([IMAGE_DOCKER, "/bin/busybox", "true"]);
                        c
                    }),
                    samples: Vec::new(),
                });
            }
            Err(e) => res.unavailable("docker", format!("docker import failed: {e:#}")),
        }
    }
    let _cleanup = Cleanup(move || cleanups.iter_mut().for_each(|f| f()));

    time_interleaved(&mut res, &mut contenders, runs, warmup)?;
    summarise(&mut res, &contenders, warmup);
    memory(ctx, &mut res, &data_dir, docker_ok, &run_tag)?;
    Ok(res)
}

fn flotilla(ctx: &Ctx, data_dir: &Path) -> Command {
    let mut c = Command::new(&ctx.flotilla);
    c.arg("--data-dir").arg(data_dir);
    c
}

/// Runs the schedule; an anchor that fails drops out (reported), Flotilla failing aborts.
fn time_interleaved(
    res: &mut BenchResult,
    contenders: &mut Vec<Contender>,
    runs: usize,
    warmup: usize,
) -> Result<()> {
    let mut dropped = vec![false; contenders.len()];
    for (round, order) in interleaved_schedule(contenders.len(), runs + warmup)
        .into_iter()
        .enumerate()
    {
        for i in order {
            if dropped[i] {
                continue;
            }
            crate::interrupt::check()?;
            let c = &mut contenders[i];
            // Warm: one untimed run of the same tool right before (see
            // `SETTLE`); a failure shows in the timed run.
            let _ = timed_run(&mut (c.command)(WARM_RUN + round));
            let run = timed_run(&mut (c.command)(round));
            std::thread::sleep(SETTLE);
            match run {
                Ok(d) => c.samples.push(d.as_secs_f64() * 1000.0),
                Err(e) if c.is_flotilla => return Err(e.context("flotilla container run failed")),
                Err(e) => {
                    res.unavailable(c.name, format!("run {round} failed: {e:#}"));
                    dropped[i] = true;
                }
            }
        }
    }
    let mut i = 0;
    contenders.retain(|_| {
        i += 1;
        !dropped[i - 1]
    });
    Ok(())
}

fn summarise(res: &mut BenchResult, contenders: &[Contender], warmup: usize) {
    let summaries: Vec<(&str, Summary)> = contenders
        .iter()
        .filter_map(|c| Summary::of(discard_warmup(&c.samples, warmup)).map(|s| (c.name, s)))
        .collect();
    let fl = summaries
        .iter()
        .find(|(n, _)| *n == "flotilla")
        .map(|(_, s)| s.clone());
    let mut rows = Vec::new();
    for (name, s) in &summaries {
        let ratio = fl.as_ref().map(|f| f.median / s.median);
        rows.push(vec![
            name.to_string(),
            s.count.to_string(),
            format!("{:.2}", s.min),
            format!("{:.2}", s.median),
            format!("{:.2}", s.p90),
            format!("{:.2}", s.iqr),
            ratio.map_or("-".into(), |r| format!("{r:.2}")),
        ]);
    }
    res.tables.push(Table {
        title: "Start latency (ms, lower is better)".into(),
        header: [
            "tool",
            "runs",
            "min",
            "median",
            "p90",
            "IQR",
            "flotilla median / tool median",
        ]
        .map(String::from)
        .to_vec(),
        rows,
    });
    for anchor in ["crun", "runc", "docker"] {
        let a = summaries.iter().find(|(n, _)| *n == anchor).map(|(_, s)| s);
        let target = match anchor {
            "crun" => Some(Target {
                on: TargetOn::Ratio,
                op: TargetOp::AtMost,
                value: 1.5,
                text: "median at most 1.5x crun's".into(),
            }),
            "docker" => Some(Target {
                on: TargetOn::Ratio,
                op: TargetOp::AtMost,
                value: 0.2,
                text: "at least 5x faster than docker run (ratio <= 0.2)".into(),
            }),
            _ => None,
        };
        let note = if a.is_none() {
            Some(unavailable_note(res, anchor))
        } else {
            None
        };
        for (stat, f, av) in [
            ("median", fl.as_ref().map(|s| s.median), a.map(|s| s.median)),
            ("p90", fl.as_ref().map(|s| s.p90), a.map(|s| s.p90)),
        ] {
            let t = if stat == "median" {
                target.clone()
            } else {
                None
            };
            let mut fig = Figure::new(
                format!("container-start.{stat}.{anchor}"),
                "ms",
                f,
                Some(anchor),
                av,
                t,
            );
            if let Some(n) = &note {
                fig = fig.with_anchor_note(n.clone());
            }
            res.figures.push(fig);
        }
    }
    res.charts.push(Chart::Distribution {
        file: "container-start-latency".into(),
        title: "container start: busybox true (CDF, log scale)".into(),
        unit: "ms".into(),
        series: contenders
            .iter()
            .map(|c| Series {
                label: c.name.to_string(),
                values: discard_warmup(&c.samples, warmup).to_vec(),
            })
            .collect(),
    });
}

fn unavailable_note(res: &BenchResult, what: &str) -> String {
    if res.unavailable.iter().any(|u| u.what == what) {
        format!("unavailable ({what}: see report)")
    } else {
        "unavailable".into()
    }
}

/// Writes `<bundle>/config.json` from `runc spec` (or `crun spec`) for our rootfs.
fn make_bundle(bundle: &Path, rootfs: &Path) -> Result<()> {
    std::fs::create_dir_all(bundle)?;
    let spec_tool = if procutil::which("runc").is_some() {
        "runc"
    } else {
        "crun"
    };
    procutil::output(Command::new(spec_tool).arg("spec").current_dir(bundle))
        .with_context(|| format!("`{spec_tool} spec` (generating an OCI config)"))?;
    let path = bundle.join("config.json");
    let spec: Value = serde_json::from_slice(&std::fs::read(&path)?)
        .context("parsing the generated config.json")?;
    let spec = bundle_config(
        spec,
        &procutil::absolute(rootfs)?,
        &["/bin/busybox", "true"],
    )?;
    std::fs::write(&path, serde_json::to_vec_pretty(&spec)?)?;
    Ok(())
}

/// Sets what the benchmark needs in a generated OCI config; keeps everything
/// else (namespaces including network, mounts, capabilities) as generated.
pub fn bundle_config(mut spec: Value, rootfs: &Path, args: &[&str]) -> Result<Value> {
    let Some(obj) = spec.as_object_mut() else {
        bail!("config.json is not a JSON object")
    };
    let process = obj
        .entry("process")
        .or_insert_with(|| Value::Object(Default::default()));
    process["args"] = args.iter().map(|a| Value::from(*a)).collect();
    process["terminal"] = Value::Bool(false);
    obj.insert(
        "root".into(),
        serde_json::json!({ "path": rootfs, "readonly": true }),
    );
    Ok(spec)
}

fn crun(res: &mut BenchResult, root: &Path, bundle: &Path, tag: &str) -> Result<Option<Contender>> {
    if procutil::which("crun").is_none() {
        res.unavailable("crun", "not installed (Debian package crun)");
        return Ok(None);
    }
    res.versions.insert(
        "crun".into(),
        procutil::version_line("crun", &["--version"]).unwrap_or_default(),
    );
    let state = root.join("crun-state");
    let empty = root.join("empty-controllers");
    std::fs::write(&empty, "")?;
    let hide = Path::new(UNIFIED_CONTROLLERS)
        .exists()
        .then(|| empty.clone());
    let (bundle, tag) = (bundle.to_path_buf(), tag.to_string());
    Ok(Some(Contender {
        name: "crun",
        is_flotilla: false,
        command: Box::new(move |n| {
            let mut c = Command::new("crun");
            c.arg("--root")
                .arg(&state)
                .arg("run")
                .arg("--bundle")
                .arg(&bundle)
                .arg(format!("{tag}-crun-{n}"));
            if let Some(empty) = &hide {
                hide_v2_controllers(&mut c, empty);
            }
            c
        }),
        samples: Vec::new(),
    }))
}

/// Makes the child run in a private mount namespace where the cgroup v2
/// controllers file is an empty file, so crun treats the host as cgroup v1.
fn hide_v2_controllers(cmd: &mut Command, empty: &Path) {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::process::CommandExt;
    // Allocated before fork: only raw syscalls run in the child.
    let src = CString::new(empty.as_os_str().as_bytes()).unwrap_or_default();
    let dst = CString::new(UNIFIED_CONTROLLERS).unwrap_or_default();
    let slash = CString::new("/").unwrap_or_default();
    // SAFETY: the closure only makes async-signal-safe syscalls on memory
    // prepared before fork; it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            use nix::libc;
            if libc::unshare(libc::CLONE_NEWNS) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            let none = std::ptr::null();
            if libc::mount(
                none,
                slash.as_ptr(),
                none,
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            if libc::mount(
                src.as_ptr(),
                dst.as_ptr(),
                none,
                libc::MS_BIND,
                std::ptr::null(),
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

fn runc(res: &mut BenchResult, root: &Path, bundle: &Path, tag: &str) -> Option<Contender> {
    if procutil::which("runc").is_none() {
        res.unavailable("runc", "not installed (Debian package runc)");
        return None;
    }
    res.versions.insert(
        "runc".into(),
        procutil::version_line("runc", &["--version"]).unwrap_or_default(),
    );
    let state = root.join("runc-state");
    let (bundle, tag) = (bundle.to_path_buf(), tag.to_string());
    Some(Contender {
        name: "runc",
        is_flotilla: false,
        command: Box::new(move |n| {
            let mut c = Command::new("runc");
            c.arg("--root")
                .arg(&state)
                .arg("run")
                .arg("--bundle")
                .arg(&bundle)
                .arg(format!("{tag}-runc-{n}"));
            c
        }),
        samples: Vec::new(),
    })
}

fn docker_available(res: &mut BenchResult) -> bool {
    if procutil::which("docker").is_none() {
        res.unavailable(
            "docker",
            "docker CLI not installed (Debian package docker.io)",
        );
        return false;
    }
    match procutil::output(Command::new("docker").args([
        "version",
        "--format",
        "{{.Server.Version}}",
    ])) {
        Ok(v) => {
            res.versions
                .insert("docker".into(), format!("server {}", v.trim()));
            true
        }
        Err(e) => {
            res.unavailable("docker", format!("no Docker daemon reachable: {e:#}"));
            false
        }
    }
}

/// Removes every container this run labelled, then the imported image.
fn docker_cleanup(tag: &str) {
    if let Ok(ids) = procutil::output(
        Command::new("docker")
            .args(["ps", "-aq", "--filter"])
            .arg(format!("label=flotilla-bench={tag}")),
    ) {
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if !ids.is_empty() {
            let _ = procutil::output(Command::new("docker").args(["rm", "-f"]).args(&ids));
        }
    }
    let _ = procutil::output(Command::new("docker").args(["rmi", "-f", IMAGE_DOCKER]));
}

/// Memory added per running container: Flotilla's monitor vs Docker's shim.
fn memory(
    ctx: &Ctx,
    res: &mut BenchResult,
    data_dir: &Path,
    docker_ok: bool,
    tag: &str,
) -> Result<()> {
    let fl =
        crate::monitor_mem::flotilla_monitors(ctx, data_dir, MEMORY_CONTAINERS, IMAGE_FLOTILLA)?;
    let dk = if docker_ok {
        match crate::monitor_mem::docker_shims(MEMORY_CONTAINERS, IMAGE_DOCKER, tag) {
            Ok(m) => Some(m),
            Err(e) => {
                res.unavailable("docker (memory)", format!("{e:#}"));
                None
            }
        }
    } else {
        None
    };
    let mb = |k: f64| k / 1024.0;
    let mut rows = vec![fl.row("flotilla monitor")];
    if let Some(d) = &dk {
        rows.push(d.row("docker containerd-shim"));
    }
    res.tables.push(Table {
        title: format!("Memory per running container ({MEMORY_CONTAINERS} detached `sleep` containers; MB, median over processes)"),
        header: ["process", "count", "RSS median", "RSS max", "Pss median", "Pss max"].map(String::from).to_vec(),
        rows,
    });
    res.method.push(format!("Memory: {MEMORY_CONTAINERS} detached `busybox sleep 60` containers per tool; per container the supervising process is measured (Flotilla's monitor, Docker's containerd-shim-runc-v2): VmRSS from /proc/PID/status and Pss from /proc/PID/smaps_rollup. Pss splits shared pages among their users, so it is what each extra container adds."));
    let target = Target {
        on: TargetOn::Flotilla,
        op: TargetOp::AtMost,
        value: 2.0,
        text: "monitor Pss at most 2 MB per container".into(),
    };
    let dname = dk.as_ref().map(|_| "docker-shim");
    res.figures.push(Figure::new(
        "container-start.monitor-pss",
        "MB",
        fl.pss_median_kib.map(mb),
        dname,
        dk.as_ref().and_then(|d| d.pss_median_kib).map(mb),
        Some(target),
    ));
    res.figures.push(Figure::new(
        "container-start.monitor-rss",
        "MB",
        Some(mb(fl.rss_median_kib)),
        dname,
        dk.as_ref().map(|d| mb(d.rss_median_kib)),
        None,
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundle_config_sets_args_root_and_terminal_but_keeps_namespaces() {
        let spec = serde_json::json!({
            "process": {"terminal": true, "args": ["sh"], "cwd": "/"},
            "root": {"path": "rootfs", "readonly": false},
            "linux": {"namespaces": [{"type": "network"}, {"type": "pid"}]}
        });
        let out = bundle_config(spec, Path::new("/b/rootfs"), &["/bin/busybox", "true"]).unwrap();
        assert_eq!(
            out["process"]["args"],
            serde_json::json!(["/bin/busybox", "true"])
        );
        assert_eq!(out["process"]["terminal"], false);
        assert_eq!(out["process"]["cwd"], "/");
        assert_eq!(
            out["root"],
            serde_json::json!({"path": "/b/rootfs", "readonly": true})
        );
        assert_eq!(out["linux"]["namespaces"][0]["type"], "network");
    }

    #[test]
    fn bundle_config_refuses_non_objects() {
        assert!(bundle_config(serde_json::json!([1]), Path::new("/r"), &["x"]).is_err());
    }
}
