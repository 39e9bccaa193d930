//! Health checks: Docker's rules as a pure tracker, and the probes: an exec
//! through the runtime, or an HTTP GET / TCP connect from the node to the
//! container's address (`x-flotilla.probe`; no process in the container, so
//! it costs a connection instead of a fork, setns and exec).

use flotilla_core::Health;
use flotilla_spec::{HealthTest, Healthcheck};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Docker's health rules: `starting` until the first success; failures
/// inside `start_period` do not count; `retries` consecutive failures after
/// it make the container `unhealthy`; any success makes it `healthy`.
#[derive(Debug, Clone)]
pub struct Tracker {
    retries: u64,
    start_period_ms: u64,
    started_at: u64,
    failures: u64,
    pub health: Health,
}

impl Tracker {
    pub fn new(check: &Healthcheck, started_at: u64) -> Tracker {
        Tracker {
            retries: check.retries.max(1),
            start_period_ms: check.start_period.as_millis(),
            started_at,
            failures: 0,
            health: Health::Starting,
        }
    }

    fn in_start_period(&self, now: u64) -> bool {
        now < self.started_at + self.start_period_ms
    }

    /// Record one probe result; returns the new health when it changed.
    pub fn record(&mut self, ok: bool, now: u64) -> Option<Health> {
        let before = self.health;
        if ok {
            self.failures = 0;
            self.health = Health::Healthy;
        } else if !(self.in_start_period(now) && self.health == Health::Starting) {
            self.failures += 1;
            if self.failures >= self.retries {
                self.health = Health::Unhealthy;
            }
        }
        (self.health != before).then_some(self.health)
    }

    /// How long to wait before the next probe (`start_interval` while starting).
    pub fn next_delay(&self, check: &Healthcheck, now: u64) -> Duration {
        let ms = if self.health == Health::Starting
            && self.in_start_period(now)
            && check.start_interval.as_millis() > 0
        {
            check.start_interval.as_millis()
        } else {
            check.interval.as_millis()
        };
        Duration::from_millis(ms.max(10))
    }
}

/// What one probe does.
#[derive(Debug, Clone, PartialEq)]
pub enum Probe {
    /// Run this argv in the container.
    Exec(Vec<String>),
    /// GET this path on the container's address and port.
    Http { port: u16, path: String },
    /// Connect to the container's address and port.
    Tcp { port: u16 },
}

/// The probe a check runs, or None when checks are disabled.
pub fn probe_of(check: &Healthcheck) -> Option<Probe> {
    match check.test.as_ref()? {
        HealthTest::None => None,
        HealthTest::Cmd(argv) if argv.is_empty() => None,
        HealthTest::Cmd(argv) => Some(Probe::Exec(argv.clone())),
        HealthTest::Shell(cmd) => Some(Probe::Exec(vec![
            "/bin/sh".into(),
            "-c".into(),
            cmd.clone(),
        ])),
        HealthTest::Http(h) => Some(Probe::Http {
            port: h.port,
            path: h.path.clone(),
        }),
        HealthTest::Tcp(t) => Some(Probe::Tcp { port: t.port }),
    }
}

/// One HTTP probe: GET `path` on `ip:port` over a fresh connection; 2xx and
/// 3xx are healthy (as Kubernetes' httpGet). Returns what to show the user.
pub async fn http_get(ip: IpAddr, port: u16, path: &str) -> Result<String, String> {
    use http_body_util::{BodyExt, Empty};
    let addr = SocketAddr::new(ip, port);
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| format!("GET http://{addr}{path}: {e}"))?;
    let driver = tokio::spawn(conn);
    let req = hyper::Request::get(path)
        .header(hyper::header::HOST, addr.to_string())
        .header(hyper::header::USER_AGENT, "flotilla-probe")
        .body(Empty::<bytes::Bytes>::new())
        .map_err(|e| format!("bad probe path {path:?}: {e}"))?;
    let result = async {
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("GET http://{addr}{path}: {e}"))?;
        let status = resp.status();
        // Read a little of the body for the message; a probe never needs more.
        let body = resp.into_body().collect().await.map(|b| b.to_bytes());
        let head: String = body
            .as_deref()
            .map(|b| String::from_utf8_lossy(&b[..b.len().min(200)]).into_owned())
            .unwrap_or_default();
        let msg = format!("GET {path}: {status} {}", head.trim());
        if status.is_success() || status.is_redirection() {
            Ok(msg)
        } else {
            Err(msg)
        }
    }
    .await;
    driver.abort();
    result
}

/// One TCP probe: healthy when `ip:port` accepts a connection.
pub async fn tcp_connect(ip: IpAddr, port: u16) -> Result<String, String> {
    let addr = SocketAddr::new(ip, port);
    tokio::net::TcpStream::connect(addr)
        .await
        .map(|_| format!("connected to {addr}"))
        .map_err(|e| format!("connect {addr}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_spec::Duration as D;

    fn check(retries: u64, start_period_ms: u64) -> Healthcheck {
        Healthcheck {
            test: Some(HealthTest::Cmd(vec!["true".into()])),
            interval: D::from_millis(1000),
            timeout: D::from_millis(500),
            retries,
            start_period: D::from_millis(start_period_ms),
            start_interval: D::from_millis(100),
        }
    }

    #[test]
    fn first_success_makes_healthy_and_retries_failures_make_unhealthy() {
        let mut t = Tracker::new(&check(3, 0), 0);
        assert_eq!(t.record(true, 1), Some(Health::Healthy));
        assert_eq!(t.record(false, 2), None);
        assert_eq!(t.record(false, 3), None);
        assert_eq!(t.record(false, 4), Some(Health::Unhealthy));
        assert_eq!(
            t.record(true, 5),
            Some(Health::Healthy),
            "a success recovers"
        );
    }

    #[test]
    fn failures_in_the_start_period_do_not_count() {
        let c = check(1, 10_000);
        let mut t = Tracker::new(&c, 0);
        assert_eq!(t.record(false, 5_000), None);
        assert_eq!(t.health, Health::Starting);
        assert_eq!(
            t.next_delay(&c, 5_000),
            Duration::from_millis(100),
            "start_interval while starting"
        );
        assert_eq!(
            t.record(false, 10_001),
            Some(Health::Unhealthy),
            "after the period, failures count"
        );
        assert_eq!(t.next_delay(&c, 10_001), Duration::from_millis(1000));
    }

    #[test]
    fn probe_forms() {
        let mut c = check(1, 0);
        assert_eq!(probe_of(&c), Some(Probe::Exec(vec!["true".to_string()])));
        c.test = Some(HealthTest::Shell("curl -f localhost || exit 1".into()));
        let Some(Probe::Exec(argv)) = probe_of(&c) else {
            panic!("a shell test is an exec")
        };
        assert_eq!(argv[..2], ["/bin/sh".to_string(), "-c".to_string()]);
        c.test = Some(HealthTest::Tcp(flotilla_spec::TcpProbe { port: 5432 }));
        assert_eq!(probe_of(&c), Some(Probe::Tcp { port: 5432 }));
        c.test = Some(HealthTest::None);
        assert_eq!(probe_of(&c), None);
        c.test = None;
        assert_eq!(probe_of(&c), None);
    }

    /// Real sockets on 127.0.0.1: a 200, a 500 and a closed port.
    #[tokio::test]
    async fn http_and_tcp_probes_against_real_sockets() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 1024];
                let n = s.read(&mut buf).await.unwrap();
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                let reply = if req.starts_with("GET /ok ") {
                    "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
                } else {
                    "HTTP/1.1 500 Internal Server Error\r\ncontent-length: 4\r\n\r\ndown"
                };
                s.write_all(reply.as_bytes()).await.unwrap();
            }
        });
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(http_get(lo, port, "/ok").await.is_ok());
        let err = http_get(lo, port, "/bad").await.unwrap_err();
        assert!(err.contains("500") && err.contains("down"), "{err}");
        assert!(tcp_connect(lo, port).await.is_ok());
        server.abort();
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let closed_port = closed.local_addr().unwrap().port();
        drop(closed);
        assert!(tcp_connect(lo, closed_port).await.is_err());
        assert!(http_get(lo, closed_port, "/").await.is_err());
    }
}
