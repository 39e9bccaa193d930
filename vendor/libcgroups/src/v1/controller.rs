use std::fs;
use std::path::Path;

use nix::unistd::Pid;

use crate::common::{self, CGROUP_PROCS, ControllerOpt, WrapIoResult, WrappedIoError};

pub(super) trait Controller {
    type Error: From<WrappedIoError>;
    type Resource;

    /// Adds a new task specified by its pid to the cgroup
    /// (pid 0: the calling thread, see [`join`]).
    fn add_task(pid: Pid, cgroup_path: &Path) -> Result<(), Self::Error> {
        fs::create_dir_all(cgroup_path).wrap_create_dir(cgroup_path)?;
        join(pid, cgroup_path)?;
        Ok(())
    }

    /// Applies resource restrictions to the cgroup
    fn apply(controller_opt: &ControllerOpt, cgroup_root: &Path) -> Result<(), Self::Error>;

    /// Checks if the controller needs to handle this request
    fn needs_to_handle<'a>(controller_opt: &'a ControllerOpt) -> Option<&'a Self::Resource>;
}

/// Moves `pid` into the v1 cgroup at `cgroup_path`. (Flotilla patch, see
/// vendor/README.md.) Pid 0 means the calling thread, as in the kernel's own
/// interface: it is written to `tasks`, which moves only that thread and so
/// skips the global `cgroup_threadgroup_rwsem` that a `cgroup.procs` write
/// takes for writing (an RCU grace period of several milliseconds whenever
/// no other migration ran in the last one). [`super::manager::Manager`]
/// passes 0 only for a single-threaded caller joining itself, for which the
/// thread is the whole process.
pub(super) fn join(pid: Pid, cgroup_path: &Path) -> Result<(), WrappedIoError> {
    if pid.as_raw() == 0 {
        common::write_cgroup_file(cgroup_path.join(CGROUP_TASKS), 0)
    } else {
        common::write_cgroup_file(cgroup_path.join(CGROUP_PROCS), pid)
    }
}

/// The v1 file that lists (and moves) single threads.
const CGROUP_TASKS: &str = "tasks";
