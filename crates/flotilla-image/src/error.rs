//! The one error type of the image store. Every variant names what was wrong
//! (the image, blob or archive entry) and, where it helps, what was expected.

use std::io;
use std::path::Path;

/// What can go wrong opening the store, importing, resolving or removing images.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// No image matches the given name, ID or digest prefix.
    #[error("image {0:?} not found in the local store; import it first with `flotilla image import <archive> --name <name>`")]
    NotFound(String),

    /// An ID or digest prefix matches more than one image.
    #[error(
        "image reference {reference:?} is ambiguous: it matches {matches:?}; give more of the ID"
    )]
    Ambiguous {
        reference: String,
        matches: Vec<String>,
    },

    /// A name that is not a valid image reference.
    #[error("invalid image name {name:?}: {reason}")]
    InvalidName { name: String, reason: String },

    /// A blob's content does not hash to the digest that names it.
    #[error("blob {blob}: digest mismatch: expected {expected}, content hashes to {actual}")]
    DigestMismatch {
        blob: String,
        expected: String,
        actual: String,
    },

    /// An archive entry that would escape or abuse the target directory; the
    /// import is refused as a whole.
    #[error("refusing archive entry {entry:?}: {reason}")]
    HostileEntry { entry: String, reason: String },

    /// A missing or malformed piece of the archive (manifest, config, index, tar stream…).
    #[error("{what}: {reason}")]
    Malformed { what: String, reason: String },

    /// The operation needs root (overlayfs whiteouts, device nodes, opaque xattrs).
    #[error("{0}")]
    NeedsRoot(String),

    /// An I/O error, with what was being done when it happened.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
}

/// Result alias for the image store.
pub type Result<T, E = ImageError> = std::result::Result<T, E>;

impl ImageError {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        ImageError::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn io_at(action: &str, path: &Path, source: io::Error) -> Self {
        ImageError::Io {
            context: format!("{action} {}", path.display()),
            source,
        }
    }

    pub(crate) fn malformed(what: impl Into<String>, reason: impl ToString) -> Self {
        ImageError::Malformed {
            what: what.into(),
            reason: reason.to_string(),
        }
    }

    pub(crate) fn hostile(entry: impl Into<String>, reason: impl Into<String>) -> Self {
        ImageError::HostileEntry {
            entry: entry.into(),
            reason: reason.into(),
        }
    }
}
