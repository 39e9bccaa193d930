//! The one error type of this crate: every variant says what failed and,
//! where the caller can act, what was expected instead.

use std::io;
use std::path::PathBuf;

/// Result alias used throughout `flotilla-net`.
pub type Result<T, E = NetError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// Creating namespaces, links or mounts needs root (CAP_NET_ADMIN and
    /// CAP_SYS_ADMIN in the initial user namespace).
    #[error(
        "container networking needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN): {what} was refused; \
         run flotilla as root or use network mode \"host\""
    )]
    NeedsRoot { what: String },

    /// Bad input from the caller (container id, network definition, hostname…).
    #[error("invalid {what}: {detail}")]
    Invalid { what: &'static str, detail: String },

    /// The kernel refused a netlink request.
    #[error("netlink: {op} failed: {source}")]
    Netlink {
        op: String,
        #[source]
        source: rtnetlink::Error,
    },

    /// A file or mount operation failed.
    #[error("{op} {path}: {source}", path = path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// Every address of the subnet is leased.
    #[error("network {network:?}: no free address left in {subnet} ({leased} leased)")]
    AddressesExhausted {
        network: String,
        subnet: String,
        leased: usize,
    },

    /// A persisted state file could not be understood.
    #[error("state file {path} is corrupt: {detail}", path = path.display())]
    CorruptState { path: PathBuf, detail: String },

    /// The container is already attached, in a different way.
    #[error("container {container_id:?} is already attached ({existing}); detach it first")]
    AlreadyAttached {
        container_id: String,
        existing: String,
    },

    /// `nft` refused a ruleset.
    #[error("nftables: applying the isolation rules failed: {detail}")]
    Nft { detail: String },

    /// A netlink object was expected but is not there.
    #[error("{what} not found")]
    NotFound { what: String },
}

impl NetError {
    pub(crate) fn invalid(what: &'static str, detail: impl Into<String>) -> Self {
        NetError::Invalid {
            what,
            detail: detail.into(),
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        let path = path.into();
        if source.kind() == io::ErrorKind::PermissionDenied && op_needs_privilege(op) {
            return NetError::NeedsRoot {
                what: format!("{op} {}", path.display()),
            };
        }
        NetError::Io { op, path, source }
    }

    pub(crate) fn netlink(op: impl Into<String>, source: rtnetlink::Error) -> Self {
        let op = op.into();
        if netlink_errno(&source) == Some(libc::EPERM) {
            return NetError::NeedsRoot { what: op };
        }
        NetError::Netlink { op, source }
    }
}

/// Only namespace and mount operations map EACCES/EPERM to "needs root";
/// a permission problem on an ordinary state file is reported as it is.
fn op_needs_privilege(op: &str) -> bool {
    op.contains("mount") || op.contains("namespace") || op.contains("setns")
}

/// The positive errno carried by a netlink error reply, if any.
pub(crate) fn netlink_errno(err: &rtnetlink::Error) -> Option<i32> {
    match err {
        rtnetlink::Error::NetlinkError(msg) => msg.code.map(|c| -c.get()),
        _ => None,
    }
}

/// Converts a nix errno into the crate's I/O error.
pub(crate) fn from_errno(op: &'static str, path: impl Into<PathBuf>, e: nix::Error) -> NetError {
    NetError::io(op, path, io::Error::from_raw_os_error(e as i32))
}
