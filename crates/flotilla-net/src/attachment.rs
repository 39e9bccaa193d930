//! What a container got from `attach`, and its persisted record so a
//! restarted process (or `detach` after a crash) can find it again.

use std::fs;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{NetError, Result};
use crate::network::NetworkMode;

/// The facts the runtime needs to start a container in its network.
/// `Default` is the attachment of a container with no network at all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// Named network namespace to put in the OCI spec; `None` for host mode.
    pub netns_path: Option<PathBuf>,
    /// The container's address on its first bridge, eth0 (`None` for
    /// none/host).
    pub ipv4: Option<Ipv4Addr>,
    /// Prefix length of `ipv4` (0 when there is no address).
    pub prefix_len: u8,
    /// Default gateway (the first bridge's address).
    pub gateway: Option<Ipv4Addr>,
    /// Host-side veth of eth0.
    pub host_veth: Option<String>,
    /// Nameservers for the container's resolv.conf.
    pub dns: Vec<IpAddr>,
    /// Every interface's address as (network name, address), in interface
    /// order (eth0, eth1…); the first is `ipv4`. Empty for none/host.
    #[serde(default)]
    pub addresses: Vec<(String, Ipv4Addr)>,
    /// Host-side veths of every interface, in the same order.
    #[serde(default)]
    pub host_veths: Vec<String>,
    /// `dns` is the node's embedded DNS server (the first network's
    /// gateway): resolv.conf then also says `options ndots:0`, so every
    /// name goes to it as written first.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub embedded_dns: bool,
}

/// The persisted form: the attachment plus how it was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct AttachmentRecord {
    pub container_id: String,
    pub mode: NetworkMode,
    pub hostname: String,
    pub attachment: Attachment,
}

/// One JSON file per container under `<state>/attachments/`.
pub(crate) struct RecordStore {
    dir: PathBuf,
}

impl RecordStore {
    pub fn new(state_dir: &Path) -> Self {
        RecordStore {
            dir: state_dir.join("attachments"),
        }
    }

    pub fn ensure_dir(&self) -> Result<()> {
        fs::create_dir_all(&self.dir).map_err(|e| NetError::io("creating directory", &self.dir, e))
    }

    fn path(&self, container_id: &str) -> PathBuf {
        self.dir.join(format!("{container_id}.json"))
    }

    pub fn load(&self, container_id: &str) -> Result<Option<AttachmentRecord>> {
        let path = self.path(container_id);
        let text = match fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(NetError::io("reading", path, e)),
        };
        serde_json::from_slice(&text)
            .map(Some)
            .map_err(|e| NetError::CorruptState {
                path,
                detail: e.to_string(),
            })
    }

    pub fn save(&self, record: &AttachmentRecord) -> Result<()> {
        self.ensure_dir()?;
        let bytes = serde_json::to_vec_pretty(record).expect("attachment record serialises");
        write_atomically(&self.path(&record.container_id), &bytes)
    }

    pub fn remove(&self, container_id: &str) -> Result<()> {
        let path = self.path(container_id);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(NetError::io("removing", path, e)),
        }
    }
}

/// Writes `bytes` to `path` so a reader sees either the old or the new
/// content, never a torn file, even across a crash: temp file in the same
/// directory, fsync, rename, fsync the directory.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("state");
    let tmp = dir.join(format!(".{file_name}.tmp.{}", std::process::id()));
    let result = (|| -> io::Result<()> {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        fs::File::open(dir)?.sync_all()
    })();
    result.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        NetError::io("writing", path, e)
    })
}
