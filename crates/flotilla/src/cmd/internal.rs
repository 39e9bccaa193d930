//! Hidden entry points that Flotilla re-executes itself with (the per-container
//! monitor). Owned by the runtime work.

#[derive(clap::Subcommand)]
pub enum InternalCmd {}

pub fn run(cmd: InternalCmd) -> anyhow::Result<u8> {
    match cmd {}
}
