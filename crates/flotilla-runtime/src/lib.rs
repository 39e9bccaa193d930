//! flotilla-runtime: Flotilla's native container runtime on youki's
//! `libcontainer` (see ARCHITECTURE.md).
//!
//! [`Runtime`] is the API: create / start / run / stop / kill / wait /
//! remove / list / inspect / logs / exec / stats over containers whose state
//! lives under `<data-dir>/containers/<id>/`. Each running container has a
//! small monitor process ([`monitor`]) that owns its init, so containers
//! outlive the process that started them and are re-adopted from disk.
//!
//! Module map: [`spec`] what callers ask for; [`resolve`] Docker's rules for
//! image config + overrides; [`oci`] + [`seccomp`] the OCI runtime spec;
//! [`rootfs`] overlay snapshots and volumes; [`network`] the net crate glue;
//! [`monitor`] the per-container supervisor; [`logs`] json-file logs;
//! [`exec`] tenant processes; [`cgroup`] stats and OOM; [`record`] on-disk
//! state; [`ephemeral`] the tmpfs for state that need not survive a reboot;
//! [`spare`] container directories made ahead of time;
//! [`process`] pidfd helpers; [`entry`] helper-process entry points.

pub mod cgroup;
pub mod entry;
pub mod ephemeral;
pub mod exec;
pub mod helper;
pub mod image;
pub mod logs;
pub mod monitor;
pub mod network;
pub mod oci;
pub mod process;
pub mod record;
pub mod resolve;
pub mod rootfs;
mod runtime;
pub mod seccomp;
pub mod sigproxy;
pub mod spare;
pub mod spec;

pub use cgroup::Stats;
pub use exec::ExecOutput;
pub use helper::HelperCommand;
pub use logs::{LogEntry, LogOptions, LogStream};
pub use runtime::{ContainerId, ContainerInfo, ContainerState, ExitStatus, Runtime, RuntimeError};
pub use spec::{BridgeNetwork, ContainerSpec, Driver, MountSpec, NetworkMode};
