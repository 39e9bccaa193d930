//! The runtime's helper entry points as a standalone binary (used by this
//! crate's integration tests; the CLI uses `flotilla internal ...`).
fn main() {
    std::process::exit(flotilla_runtime::entry::main_from_args(
        std::env::args_os().skip(1),
    ))
}
