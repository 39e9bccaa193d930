//! `bench-testserver`: the HTTP backend the proxy benchmarks put behind
//! HAProxy, nginx and Flotilla's proxy. One process is one backend replica:
//! it answers every request with a short body naming itself, keeps
//! connections alive when the client asks, and prints the address it bound
//! (`listening on 127.0.0.1:PORT`) so the harness can use port 0 without races.
//!
//! Built statically (`-C target-feature=+crt-static`) so the same binary can go
//! into a scratch image for the Flotilla side of the benchmark.
//!
//! `bench-testserver probe [ADDR:PORT]` is the health check the deploy and
//! recover benchmarks give both Flotilla and Docker Swarm: one blocking
//! `GET /` (no runtime started), exit 0 on a 200 answer, 1 otherwise. It lives
//! in the same binary so the image needs no shell or curl.

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use tokio::net::TcpListener;

const USAGE: &str = "usage: bench-testserver [--listen ADDR:PORT] [--name NAME]\n       bench-testserver probe [ADDR:PORT]   (default 127.0.0.1:8080; exit 0 on HTTP 200)";
const PROBE_DEFAULT: &str = "127.0.0.1:8080";
/// Connect, write and read each get this long: a health check must not hang.
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

struct Args {
    listen: SocketAddr,
    name: String,
}

fn parse_args() -> Result<Args, String> {
    let mut listen: SocketAddr = ([127, 0, 0, 1], 0).into();
    let mut name = String::from("backend");
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--listen" => {
                let v = it.next().ok_or("--listen needs ADDR:PORT")?;
                listen = v.parse().map_err(|e| {
                    format!("--listen {v:?}: expected ADDR:PORT such as 127.0.0.1:8080 ({e})")
                })?;
            }
            "--name" => name = it.next().ok_or("--name needs a value")?,
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(Args { listen, name })
}

fn main() {
    let mut argv = std::env::args().skip(1);
    if argv.next().as_deref() == Some("probe") {
        let target = argv.next().unwrap_or_else(|| PROBE_DEFAULT.to_string());
        match probe(&target) {
            Ok(()) => std::process::exit(0),
            Err(msg) => {
                eprintln!("bench-testserver probe {target}: {msg}");
                std::process::exit(1);
            }
        }
    }
    let args = match parse_args() {
        Ok(a) => a,
        Err(msg) => {
            eprintln!("bench-testserver: {msg}");
            std::process::exit(2);
        }
    };
    // One thread per backend: three backends behave like three small replicas
    // and leave the remaining CPU to the proxy under test and to wrk.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| {
            eprintln!("bench-testserver: cannot start the tokio runtime: {e}");
            std::process::exit(1);
        });
    if let Err(e) = rt.block_on(serve(args)) {
        eprintln!("bench-testserver: {e}");
        std::process::exit(1);
    }
}

/// One `GET /` to `target`; Ok when the status line says 200.
fn probe(target: &str) -> Result<(), String> {
    use std::io::Read;
    let addr: SocketAddr = target
        .parse()
        .map_err(|e| format!("expected ADDR:PORT such as {PROBE_DEFAULT} ({e})"))?;
    let mut s = std::net::TcpStream::connect_timeout(&addr, PROBE_TIMEOUT)
        .map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(PROBE_TIMEOUT))
        .and_then(|()| s.set_write_timeout(Some(PROBE_TIMEOUT)))
        .map_err(|e| format!("socket timeouts: {e}"))?;
    s.write_all(b"GET / HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("write: {e}"))?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).map_err(|e| format!("read: {e}"))?;
    if head.starts_with(b"HTTP/1.1 200") || head.starts_with(b"HTTP/1.0 200") {
        Ok(())
    } else {
        Err(format!(
            "expected an HTTP 200 status line, got {:?}",
            String::from_utf8_lossy(&head)
        ))
    }
}

async fn serve(args: Args) -> std::io::Result<()> {
    let listener = TcpListener::bind(args.listen).await?;
    let local = listener.local_addr()?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on {local}")?;
        out.flush()?;
    }
    let body = Bytes::from(format!("hello from {}\n", args.name));
    // As a container's pid 1 the kernel drops signals without a handler, so
    // SIGTERM is handled explicitly: `down` / `service rm` need not wait out
    // the stop grace period.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        let (stream, _) = tokio::select! {
            r = listener.accept() => r?,
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = term.recv() => return Ok(()),
        };
        let _ = stream.set_nodelay(true);
        let body = body.clone();
        tokio::spawn(async move {
            let service = service_fn(move |_req: Request<hyper::body::Incoming>| {
                let body = body.clone();
                async move { Ok::<_, Infallible>(Response::new(Full::new(body))) }
            });
            // Client resets under `Connection: close` load are expected; ignore them.
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
