//! `flotilla config`: owned by the stack-file work (flotilla-compose).
use crate::context::Context;

#[derive(clap::Args)]
pub struct ConfigArgs {}

pub fn run(_ctx: &Context, _args: ConfigArgs) -> anyhow::Result<u8> {
    anyhow::bail!("flotilla config is not available in this build yet")
}
