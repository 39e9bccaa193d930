//! One module per CLI verb group. Each exposes its clap args and a
//! `run(&Context, args) -> anyhow::Result<u8>` returning the process exit code.

pub mod config;
pub mod container;
pub mod image;
pub mod internal;
pub mod proxy;
pub mod server;
pub mod stack;
