//! The default seccomp profile: allow everything except the syscalls Docker's
//! default profile blocks for being dangerous in a container (kernel keyring,
//! mounts and namespace changes, module loading, kexec, tracing, bpf, clock
//! and swap control, reboot...), which fail with EPERM.
//!
//! This is an allow-list-by-default profile, deliberately smaller than
//! Docker's (which allow-lists ~350 syscalls and filters clone flags with
//! argument rules); it blocks what Docker blocks by name. Names must exist in
//! libseccomp for this architecture (libcontainer rejects unknown ones).

use serde_json::{json, Value};

/// Syscalls denied with EPERM (Docker's default profile denies these too).
pub const BLOCKED_SYSCALLS: &[&str] = &[
    "acct",
    "add_key",
    "bpf",
    "clock_adjtime",
    "clock_settime",
    "create_module",
    "delete_module",
    "finit_module",
    "fsconfig",
    "fsmount",
    "fsopen",
    "fspick",
    "get_kernel_syms",
    "init_module",
    "ioperm",
    "iopl",
    "kcmp",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "lookup_dcookie",
    "mount",
    "mount_setattr",
    "move_mount",
    "name_to_handle_at",
    "nfsservctl",
    "open_by_handle_at",
    "open_tree",
    "perf_event_open",
    "pivot_root",
    "process_vm_readv",
    "process_vm_writev",
    "ptrace",
    "query_module",
    "quotactl",
    "reboot",
    "request_key",
    "setns",
    "settimeofday",
    "swapoff",
    "swapon",
    "sysfs",
    "_sysctl",
    "umount2",
    "unshare",
    "uselib",
    "userfaultfd",
    "ustat",
    "vm86",
    "vm86old",
];

/// The `linux.seccomp` object of the OCI spec for the host architecture.
pub fn default_profile() -> Value {
    let names: Vec<&str> = BLOCKED_SYSCALLS
        .iter()
        .copied()
        .filter(|name| exists_on_this_arch(name))
        .collect();
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": architectures(),
        "syscalls": [{
            "names": names,
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": libc::EPERM,
        }],
    })
}

fn architectures() -> Vec<&'static str> {
    if cfg!(target_arch = "x86_64") {
        vec!["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    } else if cfg!(target_arch = "aarch64") {
        vec!["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    } else {
        vec![]
    }
}

/// A few legacy syscalls exist only on 32-bit x86 or only on x86; leave them
/// out elsewhere so libseccomp does not reject the profile.
fn exists_on_this_arch(name: &str) -> bool {
    match name {
        "vm86" | "vm86old" => false,
        "ioperm" | "iopl" | "create_module" | "get_kernel_syms" | "query_module" | "uselib"
        | "_sysctl" | "sysfs" | "ustat" | "nfsservctl" => cfg!(target_arch = "x86_64"),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn profile_blocks_the_dangerous_ones_with_eperm() {
        let p = super::default_profile();
        let names = p["syscalls"][0]["names"].as_array().unwrap();
        for must in [
            "keyctl",
            "mount",
            "unshare",
            "setns",
            "ptrace",
            "bpf",
            "reboot",
            "kexec_load",
        ] {
            assert!(names.iter().any(|n| n == must), "{must} missing");
        }
        assert_eq!(p["syscalls"][0]["errnoRet"], libc::EPERM);
        let _: oci_spec::runtime::LinuxSeccomp = serde_json::from_value(p).unwrap();
    }
}
