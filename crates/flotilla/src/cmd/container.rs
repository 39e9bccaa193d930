//! `flotilla container ...`: a thin low-level CLI over flotilla_runtime
//! (the way `ctr` sits on containerd).

use crate::context::Context;
use anyhow::{Context as _, Result};
use flotilla_runtime::spec::{
    parse_cpus, parse_signal, parse_since_now, parse_size, parse_tmpfs, parse_volume,
};
use flotilla_runtime::{
    BridgeNetwork, ContainerInfo, ContainerSpec, Driver, LogOptions, NetworkMode, Runtime,
};
use std::io::Write as _;

#[derive(clap::Subcommand)]
#[command(defer = true)]
pub enum ContainerCmd {
    /// Create and start a container; without -d, stream its output and exit with its code.
    Run(Box<RunArgs>),
    /// Create a container without starting it; prints its id.
    Create(Box<CreateArgs>),
    /// Start a created container in the background.
    Start { container: String },
    /// List containers (running ones; -a for all).
    Ps {
        #[arg(short, long)]
        all: bool,
    },
    /// Print a container's logs.
    Logs {
        /// Keep printing new output until the container exits.
        #[arg(short, long)]
        follow: bool,
        /// Only the last N lines.
        #[arg(long)]
        tail: Option<usize>,
        /// Only lines since an RFC 3339 time or a duration ago (10m).
        #[arg(long)]
        since: Option<String>,
        /// Prefix each line with its timestamp.
        #[arg(short, long)]
        timestamps: bool,
        container: String,
    },
    /// Run a command inside a running container.
    Exec {
        #[arg(short = 'e', long = "env")]
        env: Vec<String>,
        container: String,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// CPU, memory and pids usage from the container's cgroup.
    Stats { container: String },
    /// Stop: the stop signal, then SIGKILL after the grace period.
    Stop {
        /// Grace period in seconds (default: the container's, 10).
        #[arg(short = 't', long = "time")]
        time: Option<u64>,
        container: String,
    },
    /// Send a signal to a container's init.
    Kill {
        #[arg(short, long, default_value = "SIGKILL")]
        signal: String,
        container: String,
    },
    /// Wait for a container to exit; exits with its code.
    Wait { container: String },
    /// Remove containers (-f: kill running ones first).
    Rm {
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Show everything known about a container.
    Inspect { container: String },
}

#[derive(clap::Args)]
pub struct RunArgs {
    /// Run in the background and print the id.
    #[arg(short, long)]
    detach: bool,
    /// Remove the container when it exits (foreground runs).
    #[arg(long)]
    rm: bool,
    #[command(flatten)]
    create: CreateArgs,
}

#[derive(clap::Args)]
pub struct CreateArgs {
    #[arg(long)]
    name: Option<String>,
    /// Memory limit, e.g. 64M.
    #[arg(long, short = 'm')]
    memory: Option<String>,
    /// CPU quota in CPUs, e.g. 0.5.
    #[arg(long)]
    cpus: Option<String>,
    #[arg(long)]
    pids_limit: Option<i64>,
    /// none, host or bridge (FLOTILLA_BRIDGE_NAME / FLOTILLA_BRIDGE_SUBNET pick the bridge).
    #[arg(long, default_value = "none")]
    network: String,
    /// KEY=VALUE environment entries.
    #[arg(short = 'e', long = "env")]
    env: Vec<String>,
    /// SOURCE:TARGET[:ro]: a named volume or an absolute host path.
    #[arg(short = 'v', long = "volume")]
    volumes: Vec<String>,
    /// TARGET[:size=N]: a tmpfs mount.
    #[arg(long)]
    tmpfs: Vec<String>,
    #[arg(long)]
    read_only: bool,
    #[arg(short = 'w', long)]
    workdir: Option<String>,
    #[arg(short = 'u', long)]
    user: Option<String>,
    #[arg(long)]
    hostname: Option<String>,
    /// Overrides the image's entrypoint (one word; arguments go after --).
    #[arg(long)]
    entrypoint: Option<String>,
    #[arg(long)]
    stop_signal: Option<String>,
    /// Grace period in seconds before SIGKILL on stop.
    #[arg(long)]
    stop_timeout: Option<u64>,
    /// KEY=VALUE labels.
    #[arg(short = 'l', long = "label")]
    labels: Vec<String>,
    /// native (namespaces, cgroups) or process (NO isolation).
    #[arg(long, default_value = "native")]
    driver: String,
    /// Image name or id (or dir:/abs/rootfs).
    image: String,
    /// Command and arguments (after --).
    #[arg(last = true)]
    command: Vec<String>,
}

impl CreateArgs {
    fn to_spec(&self) -> Result<ContainerSpec> {
        let mut s = ContainerSpec::new(self.image.clone());
        s.name = self.name.clone();
        s.cmd = self.command.clone();
        s.entrypoint = self.entrypoint.as_ref().map(|e| vec![e.clone()]);
        s.env = self.env.clone();
        s.workdir = self.workdir.clone();
        s.user = self.user.clone();
        s.hostname = self.hostname.clone();
        s.read_only = self.read_only;
        s.memory = self
            .memory
            .as_deref()
            .map(parse_size)
            .transpose()
            .context("--memory")?;
        s.cpus = self.cpus.as_deref().map(parse_cpus).transpose()?;
        if let Some(p) = self.pids_limit {
            anyhow::ensure!(
                p > 0,
                "invalid --pids-limit {p}: expected a positive number"
            );
            s.pids_limit = Some(p);
        }
        s.network = match self.network.as_str() {
            "none" => NetworkMode::None,
            "host" => NetworkMode::Host,
            "bridge" => NetworkMode::Bridge(
                BridgeNetwork::try_default_from_env().context("--network bridge")?,
            ),
            other => anyhow::bail!("invalid --network {other:?}: expected none, host or bridge"),
        };
        for v in &self.volumes {
            s.mounts.push(parse_volume(v)?);
        }
        for t in &self.tmpfs {
            s.mounts.push(parse_tmpfs(t)?);
        }
        if let Some(sig) = &self.stop_signal {
            parse_signal(sig)?;
            s.stop_signal = Some(sig.clone());
        }
        s.stop_grace = self.stop_timeout.map(std::time::Duration::from_secs);
        for l in &self.labels {
            let (k, v) = l
                .split_once('=')
                .with_context(|| format!("invalid label {l:?}: expected KEY=VALUE"))?;
            s.labels.insert(k.to_string(), v.to_string());
        }
        s.driver = match self.driver.as_str() {
            "native" => Driver::Native,
            "process" => Driver::Process,
            other => anyhow::bail!("invalid --driver {other:?}: expected native or process"),
        };
        Ok(s)
    }
}

fn warn_if_process(spec: &ContainerSpec) {
    if spec.driver == Driver::Process {
        eprintln!(
            "WARNING: --driver process isolates NOTHING: the command runs as a plain host process \
             with this user's full privileges, the host's filesystem and network. No namespaces, no cgroup limits."
        );
    }
}

pub fn run(ctx: &Context, cmd: ContainerCmd) -> Result<u8> {
    let rt = Runtime::new(&ctx.data_dir)?;
    match cmd {
        ContainerCmd::Run(args) => {
            let spec = args.create.to_spec()?;
            warn_if_process(&spec);
            let id = rt.create(&spec)?;
            if args.detach {
                if let Err(e) = rt.start(&id) {
                    let _ = rt.remove(&id, true);
                    return Err(e);
                }
                println!("{id}");
                return Ok(0);
            }
            // With --rm the files go in the background; the container is
            // gone when this returns.
            let exit = if args.rm {
                rt.start_attached_then_remove(&id)?
            } else {
                rt.start_attached(&id)?
            };
            Ok(exit_byte(exit.exit_code))
        }
        ContainerCmd::Create(args) => {
            let spec = args.to_spec()?;
            warn_if_process(&spec);
            println!("{}", rt.create(&spec)?);
            Ok(0)
        }
        ContainerCmd::Start { container } => {
            rt.start(&container)?;
            Ok(0)
        }
        ContainerCmd::Ps { all } => {
            let list: Vec<ContainerInfo> = rt
                .list()?
                .into_iter()
                .filter(|c| all || c.state == flotilla_runtime::ContainerState::Running)
                .collect();
            if !ctx.print_json(&list)? {
                print_table(&list);
            }
            Ok(0)
        }
        ContainerCmd::Logs {
            follow,
            tail,
            since,
            timestamps,
            container,
        } => {
            let since = since.as_deref().map(parse_since_now).transpose()?;
            let stream = rt.logs(
                &container,
                LogOptions {
                    follow,
                    tail,
                    since,
                },
            )?;
            let mut out = std::io::stdout().lock();
            let mut err = std::io::stderr().lock();
            for entry in stream {
                let entry = entry?;
                if ctx.output == crate::context::OutputFormat::Json {
                    writeln!(out, "{}", serde_json::to_string(&entry)?)?;
                    out.flush()?;
                    continue;
                }
                let w: &mut dyn std::io::Write = if entry.stream == "stderr" {
                    &mut err
                } else {
                    &mut out
                };
                if timestamps {
                    write!(w, "{} ", entry.time)?;
                }
                w.write_all(entry.log.as_bytes())?;
                w.flush()?;
            }
            Ok(0)
        }
        ContainerCmd::Exec {
            env,
            container,
            command,
        } => Ok(exit_byte(rt.exec_inherit(&container, &command, &env)?)),
        ContainerCmd::Stats { container } => {
            let s = rt.stats(&container)?;
            if !ctx.print_json(&s)? {
                let limit = s
                    .memory_limit_bytes
                    .map(|l| format!("{:.1}MiB", l as f64 / 1048576.0))
                    .unwrap_or("unlimited".into());
                println!(
                    "CPU {:.3}s  MEM {:.1}MiB / {limit}  PIDS {}",
                    s.cpu_usage_ns as f64 / 1e9,
                    s.memory_usage_bytes as f64 / 1048576.0,
                    s.pids_current
                );
            }
            Ok(0)
        }
        ContainerCmd::Stop { time, container } => {
            rt.stop(&container, time.map(std::time::Duration::from_secs))?;
            Ok(0)
        }
        ContainerCmd::Kill { signal, container } => {
            rt.kill(&container, parse_signal(&signal)?)?;
            Ok(0)
        }
        ContainerCmd::Wait { container } => {
            let exit = rt.wait(&container)?;
            if !ctx.print_json(&exit)? {
                println!("{}", exit.exit_code);
            }
            Ok(exit_byte(exit.exit_code))
        }
        ContainerCmd::Rm { force, containers } => {
            for c in containers {
                rt.remove(&c, force)?;
            }
            Ok(0)
        }
        ContainerCmd::Inspect { container } => {
            let info = rt.inspect(&container)?;
            if !ctx.print_json(&info)? {
                println!("{}", serde_json::to_string_pretty(&info)?);
            }
            Ok(0)
        }
    }
}

fn exit_byte(code: i32) -> u8 {
    u8::try_from(code.clamp(0, 255)).unwrap_or(255)
}

fn print_table(list: &[ContainerInfo]) {
    println!(
        "{:<12}  {:<20}  {:<20}  {:<12}  {:<6}  CREATED",
        "CONTAINER ID", "NAME", "IMAGE", "STATE", "EXIT"
    );
    for c in list {
        let exit = c.exit_code.map(|e| e.to_string()).unwrap_or_default();
        println!(
            "{:<12}  {:<20}  {:<20}  {:<12}  {:<6}  {}",
            &c.id[..12.min(c.id.len())],
            c.name,
            c.image,
            c.state.as_str(),
            exit,
            c.created
        );
    }
}
