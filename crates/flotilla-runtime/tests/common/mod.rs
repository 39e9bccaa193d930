//! Shared fixture for the runtime's integration tests: a private data dir, a
//! busybox root filesystem, a Runtime whose helper is this crate's
//! `flotilla-monitor` binary, and a Drop guard that force-removes every
//! container (processes, cgroups, mounts, network) even when a test fails.

#![allow(dead_code)]

use flotilla_runtime::{ContainerSpec, HelperCommand, Runtime};
use std::path::PathBuf;

pub struct Fixture {
    pub rt: Runtime,
    pub rootfs: PathBuf,
    pub tmp: tempfile::TempDir,
}

impl Fixture {
    pub fn new() -> Fixture {
        let tmp = tempfile::Builder::new()
            .prefix("flotilla-rt-")
            .tempdir()
            .expect("tempdir");
        let rootfs = flotilla_testkit::busybox_rootfs(tmp.path());
        let helper = HelperCommand {
            exe: env!("CARGO_BIN_EXE_flotilla-monitor").into(),
            prefix: vec![],
        };
        let rt = Runtime::with_helper(tmp.path().join("data"), helper).expect("runtime");
        Fixture { rt, rootfs, tmp }
    }

    /// A spec for the busybox rootfs running `argv`.
    pub fn spec(&self, argv: &[&str]) -> ContainerSpec {
        let mut s = ContainerSpec::new(format!("dir:{}", self.rootfs.display()));
        s.cmd = argv.iter().map(|a| a.to_string()).collect();
        s
    }

    /// Everything the container printed on stdout, in order.
    pub fn stdout(&self, id: &str) -> String {
        self.rt
            .logs(id, Default::default())
            .expect("logs")
            .map(|e| e.expect("log entry"))
            .filter(|e| e.stream == "stdout")
            .map(|e| e.log)
            .collect()
    }

    pub fn all_output(&self, id: &str) -> String {
        self.rt
            .logs(id, Default::default())
            .expect("logs")
            .map(|e| e.expect("log entry").log)
            .collect()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Ok(list) = self.rt.list() {
            for c in list {
                if let Err(e) = self.rt.remove(&c.id, true) {
                    eprintln!("cleanup of {} failed: {e:#}", c.id);
                }
            }
        }
    }
}
