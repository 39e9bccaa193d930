//! flotilla-testkit: test-only helpers that build test images on the fly from
//! Debian's static busybox (`/bin/busybox`, package `busybox-static`).
//!
//! Every builder takes a directory to write into and returns the path of what
//! it built there, so a test's own temp dir holds everything and cleans it up.
//! The helpers panic with a clear message on failure (they are only used by
//! tests), except [`docker_save_archive`], which returns a `Result` because it
//! depends on a working `dockerd`.

mod busybox;
mod docker;
pub mod hostile;
mod oci;
pub mod tarball;

pub use busybox::{busybox_rootfs, busybox_rootfs_tar, BUSYBOX};
pub use docker::{docker_save_archive, CACHE_DIR, DOCKER_SAVE_CMD, DOCKER_SAVE_NAME};
pub use oci::{
    busybox_docker25_archive, busybox_oci_layout, docker_save_from_parts, tar_dir,
    tiny_docker_save, two_layer_tars, DOCKER25_NAME, OCI_LAYOUT_NAME,
};
