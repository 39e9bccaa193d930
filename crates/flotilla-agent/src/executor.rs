//! Make this node's containers match its assignments, and report back.

use crate::container_spec::{container_spec, LABEL_TASK};
use crate::dataplane::DataPlane;
use crate::health::{http_get, probe_of, tcp_connect, Probe, Tracker};
use flotilla_client::{Client, StatusReport};
use flotilla_core::{DesiredState, Health, Task, TaskState};
use flotilla_net::{BridgeNetwork, NetworkMode};
use flotilla_runtime::{ContainerInfo, ContainerState, Runtime};
use flotilla_spec::Service;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// An ended container of a task the server no longer lists is kept this long
/// (for `logs` of a crashed replica), then removed.
const KEEP_ENDED: Duration = Duration::from_secs(300);

pub struct Executor {
    client: Client,
    runtime: Arc<Runtime>,
    /// The node's default bridge, for `network_mode: bridge`.
    network: BridgeNetwork,
    dataplane: Arc<DataPlane>,
    /// `<data-dir>/net`: attachment records (the containers' addresses).
    net_state: std::path::PathBuf,
    /// Tasks with a start or stop in flight: one operation per task at a time.
    busy: Mutex<HashSet<String>>,
    /// Tasks whose container has an exit waiter (and prober) running.
    watched: Mutex<HashSet<String>>,
    /// Tasks we are stopping on purpose: their exit is a shutdown, not a failure.
    stopping: Mutex<HashSet<String>>,
    /// When an unlisted ended container was first seen.
    unlisted_since: Mutex<HashMap<String, Instant>>,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Executor {
    pub fn new(
        client: Client,
        runtime: Runtime,
        network: BridgeNetwork,
        dataplane: Arc<DataPlane>,
        data_dir: &std::path::Path,
    ) -> Self {
        Executor {
            client,
            runtime: Arc::new(runtime),
            network,
            dataplane,
            net_state: data_dir.join("net"),
            busy: Default::default(),
            watched: Default::default(),
            stopping: Default::default(),
            unlisted_since: Default::default(),
        }
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Runtime) -> anyhow::Result<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        let runtime = self.runtime.clone();
        tokio::task::spawn_blocking(move || f(&runtime)).await?
    }

    async fn report(
        &self,
        task: &str,
        state: TaskState,
        message: impl Into<String>,
        fill: impl FnOnce(&mut StatusReport),
    ) {
        let mut r = StatusReport {
            state: Some(state),
            message: message.into(),
            ..Default::default()
        };
        fill(&mut r);
        if let Err(e) = self.client.report(task, &r).await {
            // 409: the server already has a later state (e.g. we re-report after a restart).
            tracing::debug!(task, error = %e, "status report not applied");
        }
    }

    async fn service_spec(&self, service: &str) -> Result<Service, String> {
        self.client
            .service(service)
            .await
            .map(|v| v.record.spec)
            .map_err(|e| format!("cannot read service {service}: {e}"))
    }

    /// Bring containers in line with `tasks` (the node's full assignment list).
    pub async fn reconcile(self: &Arc<Self>, tasks: &[Task]) {
        // Tasks busy (starting or stopping) at any moment between the listing
        // below and their turn are skipped: the listing may predate the end
        // of their start or stop. Checking `busy` only at their turn once
        // read a container that had just been started as missing ("the
        // container disappeared": the slot got a second container and the
        // first ran on, orphaned) and stopped a container that had just been
        // removed ("no such container").
        let busy_before = self.busy.lock().unwrap().clone();
        let containers = match self.blocking(|rt| rt.list()).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list containers");
                return;
            }
        };
        let by_task: HashMap<&str, &ContainerInfo> = containers
            .iter()
            .filter_map(|c| Some((c.labels.get(LABEL_TASK)?.as_str(), c)))
            .collect();
        for task in tasks {
            if busy_before.contains(&task.id) || self.busy.lock().unwrap().contains(&task.id) {
                continue;
            }
            let container = by_task.get(task.id.as_str()).copied();
            match (task.desired, container) {
                (DesiredState::Running, Some(c)) if c.state == ContainerState::Running => {
                    if task.state < TaskState::Running {
                        // Adopted after our restart, or the running report was lost.
                        let (id, ip) = (c.id.clone(), c.ipv4.clone());
                        let addresses = self.addresses(&c.id).await;
                        self.report(&task.id, TaskState::Running, "running", |r| {
                            r.container_id = Some(id);
                            r.ip = ip;
                            r.addresses = addresses;
                        })
                        .await;
                        self.dataplane.kick();
                    }
                    self.watch(task.clone(), c.id.clone());
                }
                (DesiredState::Running, Some(c)) if c.state != ContainerState::Created => {
                    if !self.watched.lock().unwrap().contains(&task.id) {
                        self.report_exit(&task.id, c).await;
                    }
                }
                (DesiredState::Running, _) if task.state <= TaskState::Preparing => {
                    self.spawn_start(task.clone())
                }
                (DesiredState::Running, _) => {
                    self.report(
                        &task.id,
                        TaskState::Failed,
                        "the container disappeared",
                        |_| {},
                    )
                    .await;
                }
                (DesiredState::Shutdown, Some(c)) => self.spawn_stop(task.id.clone(), c.id.clone()),
                (DesiredState::Shutdown, None) => {
                    self.report(&task.id, TaskState::Shutdown, "stopped", |_| {})
                        .await
                }
            }
        }
        self.collect_unlisted(tasks, &containers, &busy_before)
            .await;
    }

    async fn report_exit(&self, task: &str, c: &ContainerInfo) {
        let code = c.exit_code.unwrap_or(-1);
        let (state, message) = if c.oom_killed || c.state == ContainerState::OomKilled {
            (
                TaskState::Failed,
                "oom-killed: the container hit its memory limit".to_string(),
            )
        } else if c.state == ContainerState::Dead {
            (
                TaskState::Failed,
                "the container's monitor died without recording an exit".to_string(),
            )
        } else if code == 0 {
            (TaskState::Complete, "exit code 0".to_string())
        } else {
            (TaskState::Failed, format!("exit code {code}"))
        };
        self.report(task, state, message, |r| r.exit_code = c.exit_code)
            .await;
    }

    fn spawn_start(self: &Arc<Self>, task: Task) {
        if !self.busy.lock().unwrap().insert(task.id.clone()) {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            this.start(&task).await;
            this.busy.lock().unwrap().remove(&task.id);
        });
    }

    async fn start(self: &Arc<Self>, task: &Task) {
        self.report(&task.id, TaskState::Preparing, "preparing", |_| {})
            .await;
        let service = match self.service_spec(&task.service).await {
            Ok(s) => s,
            Err(e) => return self.report(&task.id, TaskState::Rejected, e, |_| {}).await,
        };
        let network = match self.network_mode(task, &service).await {
            Ok(n) => n,
            Err(e) => return self.report(&task.id, TaskState::Rejected, e, |_| {}).await,
        };
        let spec = match container_spec(task, &service, network) {
            Ok(s) => s,
            Err(e) => return self.report(&task.id, TaskState::Rejected, e, |_| {}).await,
        };
        self.report(&task.id, TaskState::Starting, "starting", |_| {})
            .await;
        let name = spec.name.clone().unwrap_or_default();
        let started = self
            .blocking(move |rt| {
                let id = rt.run(&spec)?;
                rt.inspect(&id)
            })
            .await;
        match started {
            Ok(info) => {
                let has_check = service.healthcheck.as_ref().and_then(probe_of).is_some();
                let (id, ip) = (info.id.clone(), info.ipv4.clone());
                let addresses = self.addresses(&info.id).await;
                self.report(&task.id, TaskState::Running, "running", |r| {
                    r.container_id = Some(id);
                    r.ip = ip;
                    r.addresses = addresses;
                    r.health = Some(if has_check {
                        Health::Starting
                    } else {
                        Health::None
                    });
                })
                .await;
                self.dataplane.kick();
                self.watch(task.clone(), info.id);
            }
            Err(e) => {
                // Leave nothing half-made behind.
                let _ = self.blocking(move |rt| rt.remove(&name, true)).await;
                self.report(&task.id, TaskState::Rejected, format!("{e:#}"), |_| {})
                    .await;
            }
        }
    }

    fn spawn_stop(self: &Arc<Self>, task: String, container: String) {
        if !self.busy.lock().unwrap().insert(task.clone()) {
            return;
        }
        self.stopping.lock().unwrap().insert(task.clone());
        let this = self.clone();
        tokio::spawn(async move {
            // Out of DNS and the proxy first; stop once nothing is in flight
            // (or the grace period is over). The container's own
            // stop_grace_period then applies to the stop signal too.
            let grace = this.grace_of(&container).await;
            this.dataplane.drain(&task, grace).await;
            let c = container.clone();
            let result = this
                .blocking(move |rt| {
                    let status = rt.stop(&c, None)?;
                    rt.remove(&c, true)?;
                    Ok(status)
                })
                .await;
            match result {
                Ok(status) => {
                    this.report(&task, TaskState::Shutdown, "stopped", |r| {
                        r.exit_code = Some(status.exit_code)
                    })
                    .await
                }
                Err(e) => tracing::warn!(task, error = %e, "stop failed; will retry"),
            }
            this.dataplane.forget(&task);
            this.stopping.lock().unwrap().remove(&task);
            this.busy.lock().unwrap().remove(&task);
        });
    }

    /// How the task's container is connected: the service's stack networks
    /// (first one = default route), or its `network_mode`.
    async fn network_mode(&self, task: &Task, service: &Service) -> Result<NetworkMode, String> {
        match service.network_mode.as_deref() {
            Some("host") => return Ok(NetworkMode::Host),
            Some("none") => return Ok(NetworkMode::None),
            Some("bridge") => return Ok(NetworkMode::Bridge(self.network.clone())),
            Some(other) => {
                return Err(format!(
                    "network_mode {other:?} is not supported yet (host, none, bridge are)"
                ))
            }
            None => {}
        }
        match self.dataplane.networks_of(&task.service).await {
            Some(nets) if !nets.is_empty() => Ok(NetworkMode::Bridges(nets)),
            Some(_) => Ok(NetworkMode::Bridge(self.network.clone())),
            None => Err(format!(
                "the server's networking view has no service {} yet",
                task.service
            )),
        }
    }

    /// The container's address on each network, from its attachment record.
    async fn addresses(&self, container: &str) -> std::collections::BTreeMap<String, String> {
        let (id, net) = (container.to_string(), self.net_state.clone());
        let found = tokio::task::spawn_blocking(move || {
            flotilla_net::NetManager::new(&net).and_then(|m| m.attachment(&id))
        })
        .await;
        match found {
            Ok(Ok(Some(att))) => att
                .addresses
                .into_iter()
                .map(|(network, ip)| (network, ip.to_string()))
                .collect(),
            _ => Default::default(),
        }
    }

    /// The stop grace period recorded with the container (default 10 s).
    async fn grace_of(&self, container: &str) -> Duration {
        let id = container.to_string();
        self.blocking(move |rt| Ok(rt.stop_grace(&id)))
            .await
            .ok()
            .flatten()
            .unwrap_or(Duration::from_secs(10))
    }

    /// Watch a running container: report its exit, probe its health.
    fn watch(self: &Arc<Self>, task: Task, container: String) {
        if !self.watched.lock().unwrap().insert(task.id.clone()) {
            return;
        }
        let this = self.clone();
        let prober = tokio::spawn({
            let this = self.clone();
            let (task, container) = (task.clone(), container.clone());
            async move { this.probe(task, container).await }
        });
        tokio::spawn(async move {
            let c = container.clone();
            let waited = this
                .blocking(move |rt| {
                    rt.wait(&c)?;
                    rt.inspect(&c)
                })
                .await;
            prober.abort();
            if !this.stopping.lock().unwrap().contains(&task.id) {
                match waited {
                    Ok(info) => this.report_exit(&task.id, &info).await,
                    Err(e) => {
                        this.report(
                            &task.id,
                            TaskState::Failed,
                            format!("lost track of the container: {e:#}"),
                            |_| {},
                        )
                        .await
                    }
                }
            }
            this.watched.lock().unwrap().remove(&task.id);
        });
    }

    async fn probe(self: Arc<Self>, task: Task, container: String) {
        let Ok(service) = self.service_spec(&task.service).await else {
            return;
        };
        let Some(check) = service.healthcheck else {
            return;
        };
        let Some(probe) = probe_of(&check) else {
            return;
        };
        // Node-side probes go to the container's address (its first
        // network's; loopback when it shares the host's network).
        let ip = if matches!(probe, Probe::Exec(_)) {
            std::net::IpAddr::from([127, 0, 0, 1])
        } else {
            let c = container.clone();
            self.blocking(move |rt| rt.inspect(&c))
                .await
                .ok()
                .and_then(|info| info.ipv4)
                .and_then(|ip| ip.parse().ok())
                .unwrap_or(std::net::IpAddr::from([127, 0, 0, 1]))
        };
        let mut tracker = Tracker::new(&check, now_ms());
        let timeout = Duration::from_millis(check.timeout.as_millis().max(100));
        loop {
            tokio::time::sleep(tracker.next_delay(&check, now_ms())).await;
            let (ok, output) = match tokio::time::timeout(
                timeout,
                self.probe_once(&probe, &container, ip),
            )
            .await
            {
                Ok(Ok(out)) => (true, out),
                Ok(Err(out)) => (false, out),
                Err(_) => (false, format!("timed out after {timeout:?}")),
            };
            self.dataplane.probe_result(&task.id, ok);
            let Some(health) = tracker.record(ok, now_ms()) else {
                continue;
            };
            self.report(&task.id, TaskState::Running, "", |r| {
                r.health = Some(health)
            })
            .await;
            self.dataplane.kick();
            if health == Health::Unhealthy {
                // Like Swarm: an unhealthy task is replaced (restart policy
                // decides when). Report the failure before stopping: the
                // stop ends the container, the exit waiter then aborts this
                // prober, and a graceful exit 0 must not read as `complete`.
                self.stopping.lock().unwrap().insert(task.id.clone());
                let tail: String = output.chars().take(200).collect();
                self.report(
                    &task.id,
                    TaskState::Failed,
                    format!("unhealthy: {tail}"),
                    |r| r.health = Some(Health::Unhealthy),
                )
                .await;
                let c = container.clone();
                let _ = self.blocking(move |rt| rt.stop(&c, None)).await;
                self.stopping.lock().unwrap().remove(&task.id);
                return;
            }
        }
    }

    /// Run one probe; Ok/Err carry what it printed or why it failed.
    async fn probe_once(
        &self,
        probe: &Probe,
        container: &str,
        ip: std::net::IpAddr,
    ) -> Result<String, String> {
        match probe {
            Probe::Exec(argv) => {
                let (c, a) = (container.to_string(), argv.clone());
                match self.blocking(move |rt| rt.exec(&c, &a, &[])).await {
                    Ok(out) => {
                        let text = String::from_utf8_lossy(if out.stderr.is_empty() {
                            &out.stdout
                        } else {
                            &out.stderr
                        })
                        .trim()
                        .to_string();
                        if out.exit_code == 0 {
                            Ok(text)
                        } else {
                            Err(text)
                        }
                    }
                    Err(e) => Err(format!("{e:#}")),
                }
            }
            Probe::Http { port, path } => http_get(ip, *port, path).await,
            Probe::Tcp { port } => tcp_connect(ip, *port).await,
        }
    }

    /// Containers of tasks the server no longer lists: stop running ones
    /// (their task ended elsewhere or was removed), remove ended ones after
    /// `KEEP_ENDED`.
    async fn collect_unlisted(
        self: &Arc<Self>,
        tasks: &[Task],
        containers: &[ContainerInfo],
        busy_before: &HashSet<String>,
    ) {
        let listed: HashSet<&str> = tasks.iter().map(|t| t.id.as_str()).collect();
        let mut seen = self.unlisted_since.lock().unwrap().clone();
        let mut still = HashMap::new();
        for c in containers {
            let Some(task) = c.labels.get(LABEL_TASK) else {
                continue;
            };
            // A watched container whose task the server no longer lists is
            // stopped too: its task was deleted (`down`, a removed service)
            // before we stopped it, and nobody else ever will.
            if listed.contains(task.as_str())
                || busy_before.contains(task)
                || self.busy.lock().unwrap().contains(task)
            {
                continue;
            }
            if c.state == ContainerState::Running {
                self.spawn_stop(task.clone(), c.id.clone());
                continue;
            }
            let since = seen.remove(&c.id).unwrap_or_else(Instant::now);
            if since.elapsed() >= KEEP_ENDED {
                let id = c.id.clone();
                let _ = self.blocking(move |rt| rt.remove(&id, true)).await;
            } else {
                still.insert(c.id.clone(), since);
            }
        }
        *self.unlisted_since.lock().unwrap() = still;
    }
}
