//! flotilla-image: the content-addressed OCI image store under
//! `<data-dir>` (default `/var/lib/flotilla` as root).
//!
//! On disk (see ARCHITECTURE.md):
//!
//! ```text
//! images/            OCI image layout: oci-layout, index.json, blobs/sha256/<hex>
//! images/refs.json   name → manifest digest
//! images/lock        flock: one writer (import/remove) at a time, across processes
//! layers/<hex>/      each layer unpacked once per diff ID, a read-only overlayfs lowerdir
//! tmp/               staging for imports in progress (same filesystem, so renames are atomic)
//! ```
//!
//! Public API, used by the CLI and by `flotilla-runtime`:
//!
//! - [`ImageStore::open`]`(data_dir)` creates or opens the store.
//! - [`ImageStore::import`]`(path, name)` / [`ImageStore::import_with`] imports a
//!   `docker save` archive, an OCI layout (directory or tar) or a root
//!   filesystem (tar, `.tar.gz`, `.tar.zst`, or a directory), detected by
//!   content. Blob digests are verified; whiteouts become overlayfs whiteouts
//!   (0/0 char devices, `trusted.overlay.opaque=y`), which needs root; hostile
//!   entries are refused by name; a failed import leaves nothing behind.
//! - [`ImageStore::list`] lists [`ImageSummary`]s.
//! - [`ImageStore::resolve`]`(name | id | digest prefix)` returns a
//!   [`ResolvedImage`]: ID, names, the `oci_spec` image config, and the
//!   unpacked layer directories bottom first.
//! - [`ImageStore::remove`]`(name | id)` untags, and deletes the image and its
//!   unshared blobs and layers once no name is left.
//!
//! Errors are [`ImageError`]; [`ImageError::NotFound`] tells the user how to import.

mod catalog;
mod digest;
mod error;
mod formats;
mod ingest;
mod paths;
mod reference;
mod source;
mod store;
mod unpack;

pub use error::{ImageError, Result};
pub use formats::ArchiveFormat;
pub use oci_spec::image::ImageConfiguration;
pub use reference::normalize_name;
pub use store::{ImageStore, ImageSummary, ImportOptions, RemoveOutcome, ResolvedImage};
