//! Forwarding the signals a foreground `container run` receives (Ctrl-C,
//! SIGTERM, ...) to the container's init, like `docker run`'s sig-proxy.
//! The handler only makes one raw syscall on a pidfd kept in an atomic,
//! which is async-signal-safe and cannot hit a recycled pid.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering};

static TARGET: AtomicI32 = AtomicI32::new(-1);

const FORWARDED: &[i32] = &[
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

extern "C" fn forward(sig: libc::c_int) {
    let fd = TARGET.load(Ordering::Relaxed);
    if fd >= 0 {
        // SAFETY: raw syscall with plain integer arguments; async-signal-safe.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                fd,
                sig,
                std::ptr::null::<u8>(),
                0,
            )
        };
    }
}

/// Forwards signals to the process behind `pidfd` until dropped.
pub struct SignalProxy {
    pidfd: OwnedFd,
    previous: Vec<(i32, libc::sigaction)>,
}

impl SignalProxy {
    pub fn install(pidfd: OwnedFd) -> SignalProxy {
        TARGET.store(pidfd.as_raw_fd(), Ordering::Relaxed);
        let mut previous = Vec::new();
        for &sig in FORWARDED {
            // SAFETY: a zeroed sigaction is a valid starting point; the handler
            // is async-signal-safe; the old action is saved for restoring.
            unsafe {
                let mut new: libc::sigaction = std::mem::zeroed();
                new.sa_sigaction = forward as extern "C" fn(libc::c_int) as usize;
                new.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut new.sa_mask);
                let mut old: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(sig, &new, &mut old) == 0 {
                    previous.push((sig, old));
                }
            }
        }
        SignalProxy { pidfd, previous }
    }
}

impl Drop for SignalProxy {
    fn drop(&mut self) {
        for (sig, old) in &self.previous {
            // SAFETY: restoring the action saved by install.
            unsafe { libc::sigaction(*sig, old, std::ptr::null_mut()) };
        }
        TARGET.store(-1, Ordering::Relaxed);
        let _ = self.pidfd.as_raw_fd();
    }
}
