//! Bringing `lo` up in a fresh network namespace for `--network none`.
//!
//! For `none` the namespace is created by libcontainer with the container
//! (it dies with it, nothing to detach), and the monitor raises loopback
//! between create and start: one setns + two ioctls instead of a netlink
//! session and a bind-mounted named namespace, which keeps `container run`
//! fast. Hand-written because it is three syscalls; no crate does just this.

use anyhow::{Context as _, Result};
use nix::sched::{setns, CloneFlags};
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Sets IFF_UP on `lo` inside the network namespace of `pid`.
pub fn up_in_netns_of(pid: i32) -> Result<()> {
    let original = File::open("/proc/self/ns/net").context("opening our network namespace")?;
    let target = File::open(format!("/proc/{pid}/ns/net"))
        .context("opening the container's network namespace")?;
    setns(&target, CloneFlags::CLONE_NEWNET)
        .context("entering the container's network namespace")?;
    let result = set_lo_up();
    setns(&original, CloneFlags::CLONE_NEWNET).context("returning to our network namespace")?;
    result
}

fn set_lo_up() -> Result<()> {
    // SAFETY: plain socket(2); the fd is owned right away.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(std::io::Error::last_os_error()).context("socket for interface ioctls");
    }
    // SAFETY: raw is a fresh fd we own.
    let sock = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: ifreq is plain old data; all-zero is valid; "lo" fits IFNAMSIZ.
    unsafe {
        let mut ifr: libc::ifreq = std::mem::zeroed();
        ifr.ifr_name[0] = b'l' as libc::c_char;
        ifr.ifr_name[1] = b'o' as libc::c_char;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr) < 0 {
            return Err(std::io::Error::last_os_error()).context("reading lo's flags");
        }
        ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &ifr) < 0 {
            return Err(std::io::Error::last_os_error()).context("bringing lo up");
        }
    }
    Ok(())
}
