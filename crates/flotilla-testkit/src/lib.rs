//! flotilla-testkit: test-only helpers that build test images on the fly from
//! Debian's static busybox (`/bin/busybox`, package `busybox-static`).
//!
//! Every builder takes a directory to write into and returns the path of what
//! it built there, so a test's own temp dir holds everything and cleans it up.
//! The helpers panic with a clear message on failure (they are only used by
//! tests), except [`docker_save_archive`], which returns a `Result` because it
//! depends on a working `dockerd`.

mod busybox;

pub use busybox::{busybox_rootfs, busybox_rootfs_tar, BUSYBOX};
