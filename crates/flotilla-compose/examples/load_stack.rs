//! Times `flotilla_compose::load` on the `compose-config` benchmark's
//! generated stack, for profiling the load path without the bench harness
//! (`perf record -g target/release/examples/load_stack 200`).
//!
//! Usage: load_stack [ITERATIONS] [SERVICES]

// The generator is shared with the benchmark so both measure the same file.
#[path = "../../../bench/src/stackgen.rs"]
#[allow(dead_code)]
mod stackgen;

use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let iterations: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(20);
    let services: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let dir = tempfile::Builder::new()
        .prefix("flotilla-load-stack.")
        .tempdir()
        .expect("temp dir");
    let file = dir.path().join("stack.yml");
    std::fs::write(&file, stackgen::stack_yaml(services)).expect("write stack");
    let opts = flotilla_compose::LoadOptions {
        files: vec![file],
        working_dir: Some(dir.path().to_path_buf()),
        ..Default::default()
    };
    let mut samples = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let start = Instant::now();
        let loaded = flotilla_compose::load(&opts);
        let took = start.elapsed().as_secs_f64() * 1000.0;
        match loaded {
            Ok(l) => drop(std::hint::black_box(l)),
            Err(d) => panic!("the generated stack was refused:\n{d}"),
        }
        samples.push(took);
    }
    samples.sort_by(f64::total_cmp);
    let median = samples[samples.len() / 2];
    println!(
        "{services} services, {iterations} loads: min {:.2} ms, median {median:.2} ms, max {:.2} ms",
        samples[0],
        samples[samples.len() - 1]
    );
}
