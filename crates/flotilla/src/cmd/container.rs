//! `flotilla container ...`: owned by the runtime work (flotilla-runtime).
use crate::context::Context;

#[derive(clap::Subcommand)]
pub enum ContainerCmd {
    /// List containers.
    Ps,
}

pub fn run(_ctx: &Context, _cmd: ContainerCmd) -> anyhow::Result<u8> {
    anyhow::bail!("flotilla container is not available in this build yet")
}
