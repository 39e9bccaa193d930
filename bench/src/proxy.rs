//! `proxy`: HTTP load balancing over three local backends. HAProxy and nginx
//! (configs generated here, run in the foreground as our children) and one
//! backend directly, under wrk with keep-alive and with `Connection: close`;
//! Flotilla's proxy (`flotilla internal proxy`) over the same backends, as
//! L7 `http` (the figures) and as L4 `tcp` (for reference, in the table).

use crate::procutil::{self, ChildGuard};
use crate::result::{
    BarSeries, BenchResult, Chart, Figure, Table, Target as Goal, TargetOn, TargetOp,
};
use crate::wrk::{self, WrkRun};
use crate::Ctx;
use anyhow::{bail, Context as _, Result};
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BACKENDS: usize = 3;
const CONNECTIONS: u32 = 64;
const WRK_THREADS: u32 = 2;

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    KeepAlive,
    Close,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::KeepAlive => "keep-alive",
            Mode::Close => "close",
        }
    }
}

/// One load target: a name, the address wrk hits, the process to watch.
struct Target {
    name: &'static str,
    addr: SocketAddr,
    pid: u32,
    /// (mode, run) for each measured run.
    runs: Vec<(Mode, WrkRun)>,
    /// Highest RSS seen over the target's process tree while loaded, KiB.
    peak_rss_kib: u64,
}

pub fn run(ctx: &Ctx) -> Result<BenchResult> {
    let mut res = BenchResult::new(
        "proxy",
        "HTTP proxy: 3 backends behind a load balancer",
        ctx.smoke,
    );
    // Six short rounds rather than three long ones in the same time: this
    // 2-core VM drifts by ±15% over minutes (HAProxy alone measured 35k to
    // 58k req/s within one batch), and a median of six interleaved samples
    // follows that drift evenly for every target where one of three did not.
    let (secs, rounds) = if ctx.smoke { (2, 1) } else { (5, 6) };
    if procutil::which("wrk").is_none() {
        // The load generator is missing: nothing can be measured, but the
        // harness is fine; report it like a missing anchor.
        res.unavailable(
            "wrk",
            "the load generator is not installed (Debian package wrk)",
        );
        res.skipped = Some("wrk (the load generator) is not installed".into());
        return Ok(res);
    }
    res.versions.insert(
        "wrk".into(),
        procutil::version_line("wrk", &["-v"]).unwrap_or_default(),
    );
    let tmp = tempfile::Builder::new()
        .prefix("flotilla-bench-proxy.")
        .tempdir()?;
    let dir = tmp.path();
    let script = dir.join("summary.lua");
    std::fs::write(&script, wrk::SCRIPT)?;

    // Guards drop in reverse order: proxies first, then backends.
    let mut backends = Vec::new();
    let mut backend_addrs = Vec::new();
    for i in 0..BACKENDS {
        let (guard, addr) = start_backend(&ctx.testserver, i)?;
        backends.push(guard);
        backend_addrs.push(addr);
    }
    let mut targets = vec![Target {
        name: "direct",
        addr: backend_addrs[0],
        pid: backends[0].pid(),
        runs: Vec::new(),
        peak_rss_kib: 0,
    }];
    let mut proxies = Vec::new();
    // Flotilla first among the proxies: failing to start it fails the run.
    for (name, protocol) in [("flotilla", "http"), ("flotilla-tcp", "tcp")] {
        let (g, addr) = start_flotilla(&ctx.flotilla, dir, name, protocol, &backend_addrs)
            .with_context(|| format!("starting {name} (flotilla internal proxy, {protocol})"))?;
        targets.push(Target {
            name,
            addr,
            pid: g.pid(),
            runs: Vec::new(),
            peak_rss_kib: 0,
        });
        proxies.push(g);
    }
    res.versions.insert(
        "flotilla".into(),
        procutil::version_line(&ctx.flotilla.to_string_lossy(), &["--version"]).unwrap_or_default(),
    );
    match start_haproxy(dir, &backend_addrs) {
        Ok((g, addr)) => {
            res.versions.insert(
                "haproxy".into(),
                procutil::version_line("haproxy", &["-v"]).unwrap_or_default(),
            );
            targets.push(Target {
                name: "haproxy",
                addr,
                pid: g.pid(),
                runs: Vec::new(),
                peak_rss_kib: 0,
            });
            proxies.push(g);
        }
        Err(e) => res.unavailable("haproxy", format!("{e:#}")),
    }
    match start_nginx(dir, &backend_addrs) {
        Ok((g, addr)) => {
            res.versions.insert(
                "nginx".into(),
                procutil::version_line("nginx", &["-v"]).unwrap_or_default(),
            );
            targets.push(Target {
                name: "nginx",
                addr,
                pid: g.pid(),
                runs: Vec::new(),
                peak_rss_kib: 0,
            });
            proxies.push(g);
        }
        Err(e) => res.unavailable("nginx", format!("{e:#}")),
    }
    res.method = vec![
        format!("{BACKENDS} backends: `bench-testserver` (hyper, one thread each, short body) on 127.0.0.1; HAProxy (`mode http`, roundrobin, `http-reuse always`) and nginx (2 workers, upstream keepalive 64) in front of all three; `direct` is wrk against one backend, the floor any proxy adds to."),
        "Flotilla: `flotilla internal proxy --config FILE.json` (the node proxy alone: one single-threaded tokio runtime per CPU, each accepting on every listener), `flotilla` = protocol `http` (L7: HTTP/1.1 forwarded as bytes after an httparse head parse, hyper only for h2 and unusual requests; keep-alive upstream connections per client connection and shared per listener, power-of-two-choices, retries), `flotilla-tcp` = protocol `tcp` (L4 splice, one backend per client connection; not comparable with the L7 proxies on balancing, listed for reference). Figures compare `flotilla` (L7) with HAProxy and nginx.".into(),
        format!("wrk -t{WRK_THREADS} -c{CONNECTIONS} -d{secs}s per run, keep-alive and `Connection: close`; {rounds} round(s), targets interleaved in a different order each round (first, last and neighbours change); the figure is the median over rounds. p99.9 comes from a Lua done() hook."),
        "Everything shares this machine's CPUs (load generator, proxy and backends), so absolute numbers are low and ratios between proxies are what to read.".into(),
        "RSS under load: the highest VmRSS sum over the proxy's process tree (nginx master + workers), sampled every 250 ms during the runs.".into(),
    ];

    let schedule = crate::stats::interleaved_schedule(targets.len(), rounds);
    let orders: Vec<String> = schedule
        .iter()
        .map(|o| {
            let names: Vec<&str> = o.iter().map(|&i| targets[i].name).collect();
            names.join(" → ")
        })
        .collect();
    res.method.push(format!(
        "Order of the targets in each round (keep-alive runs, then close runs in the same order): {}.",
        orders.join("; ")
    ));
    let modes = [Mode::KeepAlive, Mode::Close];
    for order in schedule {
        for mode in modes {
            for &i in &order {
                for g in backends.iter_mut().chain(proxies.iter_mut()) {
                    g.ensure_running()?;
                }
                let t = &mut targets[i];
                let (run, peak) = load(&script, t.addr, t.pid, mode, secs)
                    .with_context(|| format!("wrk against {} ({})", t.name, mode.name()))?;
                if run.requests == 0 {
                    bail!(
                        "wrk against {} ({}) completed no requests: {run:?}",
                        t.name,
                        mode.name()
                    );
                }
                t.peak_rss_kib = t.peak_rss_kib.max(peak);
                t.runs.push((mode, run));
            }
        }
    }
    drop(proxies);
    drop(backends);
    summarise(&mut res, &targets, &modes);
    Ok(res)
}

/// Runs wrk once while sampling the target's memory.
fn load(script: &Path, addr: SocketAddr, pid: u32, mode: Mode, secs: u64) -> Result<(WrkRun, u64)> {
    let mut cmd = Command::new("wrk");
    cmd.arg(format!("-t{WRK_THREADS}"))
        .arg(format!("-c{CONNECTIONS}"))
        .arg(format!("-d{secs}s"))
        .arg("--timeout")
        .arg("5s")
        .arg("-s")
        .arg(script);
    if mode == Mode::Close {
        cmd.args(["-H", "Connection: close"]);
    }
    cmd.arg(format!("http://{addr}/"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut guard = ChildGuard::spawn("wrk", &mut cmd)?;
    let mut peak = 0;
    let deadline = Instant::now() + Duration::from_secs(secs + 30);
    while guard.child_mut().try_wait()?.is_none() {
        crate::interrupt::check()?;
        if Instant::now() > deadline {
            bail!("wrk did not finish within {}s", secs + 30);
        }
        peak = peak.max(procutil::tree_rss_kib(pid));
        std::thread::sleep(Duration::from_millis(250));
    }
    let mut out = String::new();
    let mut err = String::new();
    use std::io::Read;
    if let Some(mut s) = guard.child_mut().stdout.take() {
        s.read_to_string(&mut out)?;
    }
    if let Some(mut s) = guard.child_mut().stderr.take() {
        s.read_to_string(&mut err)?;
    }
    let status = guard.child_mut().wait()?;
    if !status.success() {
        bail!("wrk failed ({status}): {}{}", err.trim(), out.trim());
    }
    Ok((wrk::parse(&out)?, peak))
}

fn start_backend(testserver: &Path, i: usize) -> Result<(ChildGuard, SocketAddr)> {
    let mut cmd = Command::new(testserver);
    cmd.args(["--listen", "127.0.0.1:0", "--name"])
        .arg(format!("backend{i}"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    let mut g = ChildGuard::spawn("bench-testserver", &mut cmd)?;
    let stdout = g.child_mut().stdout.take().context("test server stdout")?;
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .context("reading the test server's address")?;
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .and_then(|a| a.parse().ok())
        .with_context(|| {
            format!("test server printed {line:?}, expected `listening on ADDR:PORT`")
        })?;
    Ok((g, addr))
}

/// A free port on 127.0.0.1 for a proxy to listen on (tiny race accepted:
/// nothing else on this machine allocates ports from the ephemeral range
/// at this rate, and a clash fails loudly in `wait_listening`).
fn free_port() -> Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

fn wait_listening(g: &mut ChildGuard, addr: SocketAddr, what: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        g.ensure_running()
            .with_context(|| format!("{what} did not start"))?;
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{what} is not listening on {addr} after 10s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn haproxy_config(listen: SocketAddr, backends: &[SocketAddr]) -> String {
    let mut c = format!(
        "global\n  maxconn 4096\n\ndefaults\n  mode http\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n\n\
         frontend fe\n  bind {listen}\n  default_backend be\n\nbackend be\n  balance roundrobin\n  http-reuse always\n"
    );
    for (i, b) in backends.iter().enumerate() {
        c.push_str(&format!("  server b{i} {b}\n"));
    }
    c
}

fn start_haproxy(dir: &Path, backends: &[SocketAddr]) -> Result<(ChildGuard, SocketAddr)> {
    if procutil::which("haproxy").is_none() {
        bail!("not installed (Debian package haproxy)");
    }
    let listen = free_port()?;
    let cfg = dir.join("haproxy.cfg");
    std::fs::write(&cfg, haproxy_config(listen, backends))?;
    // -db: stay in the foreground as our child; we stop it by PID.
    let mut cmd = Command::new("haproxy");
    cmd.arg("-db")
        .arg("-f")
        .arg(&cfg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut g = ChildGuard::spawn("haproxy", &mut cmd)?;
    wait_listening(&mut g, listen, "haproxy")?;
    Ok((g, listen))
}

pub fn nginx_config(dir: &Path, listen: SocketAddr, backends: &[SocketAddr]) -> String {
    let d = dir.display();
    let mut servers = String::new();
    for b in backends {
        servers.push_str(&format!("    server {b};\n"));
    }
    format!(
        "daemon off;\nmaster_process on;\nworker_processes 2;\npid {d}/nginx.pid;\nerror_log {d}/nginx-error.log warn;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/nginx-tmp/body;\n  proxy_temp_path {d}/nginx-tmp/proxy;\n\
           fastcgi_temp_path {d}/nginx-tmp/fastcgi;\n  uwsgi_temp_path {d}/nginx-tmp/uwsgi;\n  scgi_temp_path {d}/nginx-tmp/scgi;\n\
           upstream be {{\n{servers}    keepalive 64;\n  }}\n\
           server {{\n    listen {listen};\n    location / {{\n      proxy_pass http://be;\n      proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n    }}\n  }}\n}}\n"
    )
}

fn start_nginx(dir: &Path, backends: &[SocketAddr]) -> Result<(ChildGuard, SocketAddr)> {
    if procutil::which("nginx").is_none() {
        bail!("not installed (Debian package nginx)");
    }
    let listen = free_port()?;
    std::fs::create_dir_all(dir.join("nginx-tmp"))?;
    let cfg = dir.join("nginx.conf");
    std::fs::write(&cfg, nginx_config(dir, listen, backends))?;
    // -e: the early error log, before the config is read, also in our dir.
    let mut cmd = Command::new("nginx");
    cmd.arg("-p")
        .arg(dir)
        .arg("-e")
        .arg(dir.join("nginx-error.log"))
        .arg("-c")
        .arg(&cfg);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut g = ChildGuard::spawn("nginx", &mut cmd)?;
    wait_listening(&mut g, listen, "nginx").with_context(|| {
        let log = std::fs::read_to_string(dir.join("nginx-error.log")).unwrap_or_default();
        format!("nginx error log: {}", log.trim())
    })?;
    Ok((g, listen))
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(crate::stats::percentile_sorted(&v, 50.0))
}

/// Per (target, mode): median over rounds of rps, p50, p99, p99.9.
struct Agg {
    rps: Option<f64>,
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
    p999_ms: Option<f64>,
    errors: u64,
}

fn aggregate(t: &Target, mode: Mode) -> Agg {
    let runs: Vec<&WrkRun> = t
        .runs
        .iter()
        .filter(|(m, _)| *m == mode)
        .map(|(_, r)| r)
        .collect();
    let m = |f: &dyn Fn(&WrkRun) -> f64| median(runs.iter().map(|r| f(r)).collect());
    Agg {
        rps: m(&|r| r.rps()),
        p50_ms: m(&|r| r.p50_us / 1000.0),
        p99_ms: m(&|r| r.p99_us / 1000.0),
        p999_ms: m(&|r| r.p999_us / 1000.0),
        errors: runs.iter().map(|r| r.errors + r.non2xx).sum(),
    }
}

/// Every run's req/s and p99, round by round: the spread behind each median
/// (on a shared 2-core machine one round can differ by 15% from the next).
fn per_round(targets: &[Target], modes: &[Mode]) -> Table {
    let rounds = targets.iter().map(|t| t.runs.len()).max().unwrap_or(0) / modes.len().max(1);
    let mut rows = Vec::new();
    for mode in modes {
        for t in targets {
            let mut row = vec![t.name.to_string(), mode.name().to_string()];
            row.extend(
                t.runs
                    .iter()
                    .filter(|(m, _)| m == mode)
                    .map(|(_, r)| format!("{:.0} / {:.2}", r.rps(), r.p99_us / 1000.0)),
            );
            row.resize(2 + rounds, "-".into());
            rows.push(row);
        }
    }
    let mut header = vec!["target".to_string(), "mode".to_string()];
    header.extend((1..=rounds).map(|r| format!("round {r}: req/s / p99 ms")));
    Table {
        title: "Each round (req/s / p99 ms; the rounds' orders are in the method)".into(),
        header,
        rows,
    }
}

fn summarise(res: &mut BenchResult, targets: &[Target], modes: &[Mode]) {
    let f2 = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2}"));
    let mut rows = Vec::new();
    for mode in modes {
        for t in targets {
            let a = aggregate(t, *mode);
            rows.push(vec![
                t.name.to_string(),
                mode.name().to_string(),
                a.rps.map_or("-".into(), |v| format!("{v:.0}")),
                f2(a.p50_ms),
                f2(a.p99_ms),
                f2(a.p999_ms),
                a.errors.to_string(),
                format!("{:.1}", t.peak_rss_kib as f64 / 1024.0),
            ]);
        }
    }
    res.tables.push(Table {
        title: "Throughput and latency (median over rounds)".into(),
        header: [
            "target",
            "mode",
            "req/s",
            "p50 ms",
            "p99 ms",
            "p99.9 ms",
            "errors",
            "peak RSS MB",
        ]
        .map(String::from)
        .to_vec(),
        rows,
    });
    res.tables.push(per_round(targets, modes));
    figures(res, targets, modes);
    let categories: Vec<String> = modes.iter().map(|m| m.name().to_string()).collect();
    let series: Vec<BarSeries> = targets
        .iter()
        .map(|t| BarSeries {
            label: t.name.to_string(),
            values: modes.iter().map(|m| aggregate(t, *m).rps).collect(),
        })
        .collect();
    res.charts.push(Chart::Bars {
        file: "proxy-throughput".into(),
        title: "proxy throughput (requests/s, higher is better)".into(),
        unit: "req/s".into(),
        categories,
        series,
    });
    let mut lat_cats = Vec::new();
    let mut p50 = Vec::new();
    let mut p99 = Vec::new();
    let mut p999 = Vec::new();
    for mode in modes {
        for t in targets {
            let a = aggregate(t, *mode);
            lat_cats.push(format!("{} {}", t.name, mode.name()));
            p50.push(a.p50_ms);
            p99.push(a.p99_ms);
            p999.push(a.p999_ms);
        }
    }
    res.charts.push(Chart::Bars {
        file: "proxy-latency".into(),
        title: "proxy latency percentiles (ms, lower is better)".into(),
        unit: "ms".into(),
        categories: lat_cats,
        series: vec![
            BarSeries {
                label: "p50".into(),
                values: p50,
            },
            BarSeries {
                label: "p99".into(),
                values: p99,
            },
            BarSeries {
                label: "p99.9".into(),
                values: p999,
            },
        ],
    });
}

/// The Flotilla proxy on a free port over `backends`, as our child.
fn start_flotilla(
    flotilla: &Path,
    dir: &Path,
    name: &str,
    protocol: &str,
    backends: &[SocketAddr],
) -> Result<(ChildGuard, SocketAddr)> {
    let listen = free_port()?;
    let cfg = dir.join(format!("{name}.json"));
    std::fs::write(
        &cfg,
        flotilla_config(listen, protocol, backends).to_string(),
    )?;
    let log = std::fs::File::create(dir.join(format!("{name}.log")))?;
    // `--output text` before `internal` sends the command through clap: the
    // binary's early `internal` fast path (monitor/exec, before clap) does
    // not know `proxy` yet. Harmless once it does.
    let mut cmd = Command::new(flotilla);
    cmd.args(["--output", "text", "internal", "proxy", "--config"])
        .arg(&cfg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    let mut g = ChildGuard::spawn("flotilla internal proxy", &mut cmd)?;
    wait_listening(&mut g, listen, name).with_context(|| {
        let log = std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default();
        format!("its stderr: {}", log.trim())
    })?;
    Ok((g, listen))
}

/// A `flotilla_proxy::ProxyConfig` as JSON: one listener over `backends`.
pub fn flotilla_config(
    listen: SocketAddr,
    protocol: &str,
    backends: &[SocketAddr],
) -> serde_json::Value {
    let endpoints: Vec<serde_json::Value> = backends
        .iter()
        .enumerate()
        .map(|(i, b)| serde_json::json!({"id": format!("backend{i}"), "addr": b.to_string()}))
        .collect();
    serde_json::json!({"listeners": [{
        "name": format!("bench:{listen}/{protocol}"),
        "service": "bench",
        "bind": listen.to_string(),
        "protocol": protocol,
        "endpoints": endpoints,
    }]})
}

/// The figure lines: Flotilla's L7 proxy against each anchor proxy, per mode
/// (req/s and p99), and peak RSS under load. Targets from the service
/// networking issue: throughput at least HAProxy's, p99 at most 1.1x.
fn figures(res: &mut BenchResult, targets: &[Target], modes: &[Mode]) {
    // A mode without a completed run has no value: say so in the line.
    let noted = |f: Figure| {
        if f.flotilla.is_none() {
            f.with_flotilla_note("no completed run")
        } else {
            f
        }
    };
    let Some(fl) = targets.iter().find(|t| t.name == "flotilla") else {
        return;
    };
    let goal = |op, value: f64, text: &str| {
        Some(Goal {
            on: TargetOn::Ratio,
            op,
            value,
            text: text.into(),
        })
    };
    for t in targets
        .iter()
        .filter(|t| t.name == "haproxy" || t.name == "nginx")
    {
        let haproxy = t.name == "haproxy";
        for mode in modes {
            let (f, a) = (aggregate(fl, *mode), aggregate(t, *mode));
            let mname = mode.name();
            res.figures.push(noted(Figure::new(
                format!("proxy.{mname}.rps.{}", t.name),
                "req/s",
                f.rps,
                Some(t.name),
                a.rps,
                if haproxy {
                    goal(TargetOp::AtLeast, 1.0, "throughput at least HAProxy's")
                } else {
                    None
                },
            )));
            res.figures.push(noted(Figure::new(
                format!("proxy.{mname}.p99.{}", t.name),
                "ms",
                f.p99_ms,
                Some(t.name),
                a.p99_ms,
                if haproxy {
                    goal(TargetOp::AtMost, 1.1, "p99 at most 1.1x HAProxy's")
                } else {
                    None
                },
            )));
        }
        res.figures.push(Figure::new(
            format!("proxy.rss.{}", t.name),
            "MB",
            Some(fl.peak_rss_kib as f64 / 1024.0),
            Some(t.name),
            Some(t.peak_rss_kib as f64 / 1024.0),
            None,
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flotilla_config_is_a_proxy_config_over_every_backend() {
        let b: Vec<SocketAddr> = vec![
            "127.0.0.1:1".parse().unwrap(),
            "127.0.0.1:2".parse().unwrap(),
        ];
        let c = flotilla_config("127.0.0.1:9".parse().unwrap(), "http", &b);
        let l = &c["listeners"][0];
        assert_eq!(l["bind"], "127.0.0.1:9");
        assert_eq!(l["protocol"], "http");
        assert_eq!(l["endpoints"][1]["addr"], "127.0.0.1:2");
        assert_eq!(l["endpoints"][0]["id"], "backend0");
    }

    #[test]
    fn haproxy_config_lists_every_backend() {
        let b: Vec<SocketAddr> = vec![
            "127.0.0.1:1".parse().unwrap(),
            "127.0.0.1:2".parse().unwrap(),
        ];
        let c = haproxy_config("127.0.0.1:9".parse().unwrap(), &b);
        assert!(c.contains("bind 127.0.0.1:9"));
        assert!(c.contains("server b0 127.0.0.1:1") && c.contains("server b1 127.0.0.1:2"));
    }

    #[test]
    fn nginx_config_keeps_upstream_connections_alive() {
        let b: Vec<SocketAddr> = vec!["127.0.0.1:1".parse().unwrap()];
        let c = nginx_config(Path::new("/tmp/x"), "127.0.0.1:9".parse().unwrap(), &b);
        assert!(c.contains("keepalive 64;") && c.contains("proxy_set_header Connection \"\";"));
        assert!(c.contains("listen 127.0.0.1:9;") && c.contains("server 127.0.0.1:1;"));
        assert!(c.contains("pid /tmp/x/nginx.pid;"));
    }
}
