//! Driving wrk: a Lua `done()` hook prints one machine-readable line with the
//! request count, errors and the latency percentiles wrk's `--latency` table
//! lacks (p99.9); this module writes that script and parses that line.

use anyhow::{bail, Context as _, Result};
use std::collections::HashMap;

pub const MARKER: &str = "FLOTILLA-BENCH";

/// The Lua script handed to `wrk -s`.
pub const SCRIPT: &str = r#"-- Written by flotilla-bench: prints one parseable summary line.
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "FLOTILLA-BENCH requests=%d duration_us=%d errors=%d non2xx=%d p50_us=%d p99_us=%d p999_us=%d\n",
    summary.requests, summary.duration,
    e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9)))
end
"#;

/// One wrk run's outcome.
#[derive(Clone, Debug, PartialEq)]
pub struct WrkRun {
    pub requests: u64,
    pub duration_us: u64,
    /// Socket errors (connect/read/write/timeout).
    pub errors: u64,
    pub non2xx: u64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
}

impl WrkRun {
    pub fn rps(&self) -> f64 {
        if self.duration_us == 0 {
            0.0
        } else {
            self.requests as f64 / (self.duration_us as f64 / 1e6)
        }
    }
}

/// Finds and parses the marker line in wrk's stdout.
pub fn parse(stdout: &str) -> Result<WrkRun> {
    let Some(line) = stdout.lines().find(|l| l.starts_with(MARKER)) else {
        bail!("wrk printed no {MARKER} line (did the Lua done() hook run?); output was:\n{stdout}");
    };
    let fields: HashMap<&str, &str> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|kv| kv.split_once('='))
        .collect();
    let num = |k: &str| -> Result<u64> {
        fields
            .get(k)
            .with_context(|| format!("wrk summary line lacks {k}=: {line}"))?
            .parse::<u64>()
            .with_context(|| format!("wrk summary {k} is not a whole number: {line}"))
    };
    Ok(WrkRun {
        requests: num("requests")?,
        duration_us: num("duration_us")?,
        errors: num("errors")?,
        non2xx: num("non2xx")?,
        p50_us: num("p50_us")? as f64,
        p99_us: num("p99_us")? as f64,
        p999_us: num("p999_us")? as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_marker_line_among_wrk_output() {
        let out = "Running 2s test @ http://127.0.0.1:1/\n  2 threads\nFLOTILLA-BENCH requests=1000 duration_us=2000000 errors=1 non2xx=0 p50_us=100 p99_us=900 p999_us=2000\n";
        let r = parse(out).unwrap();
        assert_eq!(r.requests, 1000);
        assert_eq!(r.rps(), 500.0);
        assert_eq!(r.p999_us, 2000.0);
        assert_eq!(r.errors, 1);
    }

    #[test]
    fn missing_line_is_a_clear_error() {
        let e = parse("nothing here").unwrap_err().to_string();
        assert!(e.contains("FLOTILLA-BENCH"), "{e}");
        let e = parse("FLOTILLA-BENCH requests=x").unwrap_err().to_string();
        assert!(e.contains("requests"), "{e}");
    }
}
