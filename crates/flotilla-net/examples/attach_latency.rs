//! Measures bridge attach/detach latency on this host (root only):
//! `cargo run --release -p flotilla-net --example attach_latency -- [count] [bridge|bridges2|none]`.
//! Uses its own bridges (`flbench<pid>`, `flbench<pid>b`) and subnets
//! 10.219.0.0/24 and 10.219.1.0/24, and removes everything it made.
//! `bridges2` attaches each container to both networks (eth0 and eth1).

use std::time::Instant;

use flotilla_net::{BridgeNetwork, NetManager, NetworkMode};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let count: usize = match std::env::args().nth(1) {
        Some(n) => n
            .parse()
            .map_err(|_| format!("count must be a number, got {n:?}"))?,
        None => 20,
    };
    let state = tempfile::tempdir()?;
    let mgr = NetManager::new(state.path())?;
    let net = BridgeNetwork::new(
        "bench",
        &format!("flbench{:x}", std::process::id()),
        "10.219.0.0/24".parse()?,
    );
    let second = BridgeNetwork::new(
        "bench-b",
        &format!("flbench{:x}b", std::process::id()),
        "10.219.1.0/24".parse()?,
    );
    let mode = match std::env::args().nth(2).as_deref() {
        None | Some("bridge") => NetworkMode::Bridge(net.clone()),
        Some("bridges2") => NetworkMode::Bridges(vec![net.clone(), second.clone()]),
        Some("none") => NetworkMode::None,
        Some(other) => {
            return Err(format!("mode must be bridge, bridges2 or none, got {other:?}").into())
        }
    };
    let ids: Vec<String> = (0..count)
        .map(|i| format!("bench-{}-{i}", std::process::id()))
        .collect();

    let mut result = Ok(());
    let start = Instant::now();
    for id in &ids {
        if let Err(e) = mgr.attach(id, &mode, "bench") {
            result = Err(e);
            break;
        }
    }
    let attach = start.elapsed();
    let start = Instant::now();
    for id in &ids {
        mgr.detach(id)?;
    }
    let detach = start.elapsed();
    mgr.remove_bridge(&net)?;
    mgr.remove_bridge(&second)?;
    result?;
    println!(
        "{count} {} attaches: {:.2} ms each; detaches: {:.2} ms each",
        mode.describe(),
        attach.as_secs_f64() * 1e3 / count as f64,
        detach.as_secs_f64() * 1e3 / count as f64
    );
    Ok(())
}
