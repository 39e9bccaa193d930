//! Feeds arbitrary UTF-8 to the stack-file loader. Any panic, hang or
//! runaway allocation is a bug: stack files are hostile input.
#![no_main]

use std::sync::OnceLock;

use flotilla_compose::{load_str, LoadOptions};
use libfuzzer_sys::fuzz_target;

fn options() -> &'static LoadOptions {
    static OPTIONS: OnceLock<LoadOptions> = OnceLock::new();
    OPTIONS.get_or_init(|| LoadOptions {
        project_name: Some("fuzz".to_string()),
        // A fixed, small environment: interpolation paths get exercised
        // without reading the fuzzer's own environment.
        environment: [("TAG", "1.25"), ("EMPTY", ""), ("PORT", "8080")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        // Relative include/extends/env_file paths resolve here; it has no
        // stack files, so the fuzzer cannot wander the real filesystem far.
        working_dir: Some(std::env::temp_dir().join("flotilla-compose-fuzz-empty")),
        ..LoadOptions::default()
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(source) = std::str::from_utf8(data) {
        let _ = load_str("fuzz.yml", source, options());
    }
});
