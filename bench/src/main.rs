//! `flotilla-bench`: runs Flotilla beside its anchors (crun, runc, Docker,
//! HAProxy, nginx, docker-compose) and writes reports. One subcommand per
//! benchmark, each writing a JSON fragment into `--work-dir` and printing its
//! figure lines last; `report` merges the fragments into Markdown, JSON and
//! PNG charts. `bench/run` is the entry point that prepares the machine.

mod charts;
mod compose_config;
mod container_start;
mod deploy;
mod interrupt;
mod monitor_mem;
mod procutil;
mod proxy;
mod recover;
mod report;
mod result;
mod rootfs;
mod scale;
mod stackgen;
mod stats;
mod swarm_docker;
mod swarm_events;
mod swarm_flotilla;
mod swarm_setup;
mod wrk;

use clap::{Parser, Subcommand};
use result::BenchResult;
use std::path::PathBuf;
use std::process::ExitCode;

/// The benchmarks in report order.
const BENCHMARKS: [&str; 6] = [
    "container-start",
    "compose-config",
    "deploy",
    "recover",
    "proxy",
    "scale",
];

#[derive(Parser)]
#[command(
    name = "flotilla-bench",
    about = "Flotilla side by side with its anchors"
)]
struct Cli {
    /// A few samples per figure, seconds per benchmark: proves the suite works.
    #[arg(long, global = true)]
    smoke: bool,
    /// Where benchmarks write their JSON fragments for `report`.
    #[arg(long, global = true, default_value = "bench-work")]
    work_dir: PathBuf,
    /// The flotilla binary under test.
    #[arg(long, global = true, default_value = "flotilla")]
    flotilla: PathBuf,
    /// The HTTP backend binary for the proxy benchmark.
    #[arg(long, global = true, default_value = "bench-testserver")]
    testserver: PathBuf,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Start latency of `busybox true` vs crun, runc, docker run; monitor memory.
    ContainerStart,
    /// Load time of a 1,000-service stack file vs docker-compose config.
    ComposeConfig,
    /// 30 replicas up until healthy, then scale to 60, vs Docker Swarm; memory.
    Deploy,
    /// kill -9 of one replica until a healthy replacement, vs Docker Swarm.
    Recover,
    /// HTTP load balancing throughput/latency vs HAProxy and nginx.
    Proxy,
    /// Scheduler placement: 10,000 tasks on 1,000 simulated nodes.
    Scale,
    /// Print the generated stack file compose-config uses (to reproduce it by hand).
    StackFile {
        #[arg(long, default_value_t = compose_config::SERVICES)]
        services: usize,
    },
    /// Merge the work dir's fragments into `<out-dir>/<stem>.{md,json}` and charts.
    Report {
        #[arg(long)]
        out_dir: PathBuf,
        /// File name stem, normally `<YYYY-MM-DD>-<host>`.
        #[arg(long)]
        stem: String,
        #[arg(long)]
        date: String,
        #[arg(long)]
        host: String,
    },
}

/// What every benchmark needs.
pub struct Ctx {
    pub smoke: bool,
    pub flotilla: PathBuf,
    pub testserver: PathBuf,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = interrupt::install() {
        eprintln!("flotilla-bench: cannot install signal handlers: {e:#}");
        return ExitCode::FAILURE;
    }
    let ctx = Ctx {
        smoke: cli.smoke,
        flotilla: cli.flotilla,
        testserver: cli.testserver,
    };
    let load_before = loadavg();
    let (name, outcome) = match cli.cmd {
        Cmd::ContainerStart => ("container-start", container_start::run(&ctx)),
        Cmd::ComposeConfig => ("compose-config", compose_config::run(&ctx)),
        Cmd::Deploy => ("deploy", deploy::run(&ctx)),
        Cmd::Recover => ("recover", recover::run(&ctx)),
        Cmd::Proxy => ("proxy", proxy::run(&ctx)),
        Cmd::Scale => ("scale", Ok(scale::run(&ctx))),
        Cmd::StackFile { services } => {
            print!("{}", stackgen::stack_yaml(services));
            return ExitCode::SUCCESS;
        }
        Cmd::Report {
            out_dir,
            stem,
            date,
            host,
        } => {
            return match run_report(&cli.work_dir, &out_dir, &stem, date, host, cli.smoke) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("flotilla-bench report: error: {e:#}");
                    ExitCode::FAILURE
                }
            };
        }
    };
    let (mut res, code) = match outcome {
        Ok(r) => (r, ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("flotilla-bench {name}: error: {e:#}");
            let mut r = BenchResult::new(name, name, ctx.smoke);
            r.failed = Some(format!("{e:#}"));
            (r, ExitCode::FAILURE)
        }
    };
    res.method.push(format!(
        "Machine load (1-minute load average over {} CPUs): {load_before} at start, {} at end; other work on the machine shows up as spread.",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        loadavg()
    ));
    if let Err(e) = res.finish(&cli.work_dir) {
        eprintln!("flotilla-bench {name}: error: {e:#}");
        return ExitCode::FAILURE;
    }
    code
}

/// The 1-minute load average, as /proc/loadavg prints it.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}

fn run_report(
    work: &std::path::Path,
    out: &std::path::Path,
    stem: &str,
    date: String,
    host: String,
    smoke: bool,
) -> anyhow::Result<()> {
    let benchmarks = report::load_fragments(work, &BENCHMARKS)?;
    let figures = benchmarks
        .iter()
        .flat_map(|b| b.figures.iter().cloned())
        .collect();
    let r = report::Report {
        date,
        host,
        smoke,
        environment: report::environment(),
        figures,
        benchmarks,
    };
    let md = report::write(out, stem, &r)?;
    println!("report: {}", md.display());
    Ok(())
}
