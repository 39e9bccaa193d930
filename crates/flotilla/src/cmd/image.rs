//! `flotilla image ...`: owned by the image store work (flotilla-image).
use crate::context::Context;

#[derive(clap::Subcommand)]
pub enum ImageCmd {
    /// List images.
    Ls,
}

pub fn run(_ctx: &Context, _cmd: ImageCmd) -> anyhow::Result<u8> {
    anyhow::bail!("flotilla image is not available in this build yet")
}
