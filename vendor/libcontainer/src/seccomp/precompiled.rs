//! Flotilla patch: seccomp filters compiled once and cached as BPF.
//!
//! Building a profile's filter with libseccomp (a rule per syscall, then its
//! BPF generation) took ~0.4 ms of every container start, inside the
//! container's init just before exec. The program depends only on the
//! profile, the libseccomp version and the kernel (libseccomp probes which
//! actions it supports), so it is compiled once, by the runtime process
//! before it forks the container, and kept in a cache directory that the
//! caller puts on a tmpfs (emptied by a reboot, i.e. by a kernel change).
//! Init then installs the stored program with one `seccomp(2)` call, which
//! is what libseccomp's own load does.
//!
//! Only profiles without filter flags or notify actions are precompiled:
//! those need load-time flags or a listener fd; they keep the original path.
//!
//! A cache entry holds its key (libseccomp version + the profile's JSON) in
//! full and is used only when that matches byte for byte, so a hash
//! collision in the file name can never select another profile's program.

use std::fs;
use std::io::{self, Read, Seek, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;

use oci_spec::runtime::LinuxSeccomp;

use super::{Result, SeccompError, build_filter, is_notify};

/// A compiled filter: the `struct sock_filter` array libseccomp generated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeccompBpf(Vec<libc::sock_filter>);

impl SeccompBpf {
    fn from_bytes(bytes: &[u8]) -> Option<Self> {
        const SIZE: usize = std::mem::size_of::<libc::sock_filter>();
        if bytes.is_empty() || bytes.len() % SIZE != 0 {
            return None;
        }
        let program = bytes
            .chunks_exact(SIZE)
            .map(|c| libc::sock_filter {
                code: u16::from_ne_bytes([c[0], c[1]]),
                jt: c[2],
                jf: c[3],
                k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
            })
            .collect();
        Some(Self(program))
    }

    /// Installs the filter on the calling thread, as libseccomp's
    /// `seccomp_load` does for a profile without flags: no_new_privs or
    /// CAP_SYS_ADMIN is required, exactly as there.
    pub fn load(&self) -> Result<()> {
        let prog = libc::sock_fprog {
            len: self.0.len() as u16,
            filter: self.0.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: prog points at a live, well-formed sock_filter array for
        // the duration of the call; the kernel copies it.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                0,
                &prog as *const libc::sock_fprog,
            )
        };
        if rc != 0 {
            return Err(SeccompError::LoadBpf(io::Error::last_os_error()));
        }
        Ok(())
    }
}

/// Whether a profile can be precompiled (no filter flags, no notify action).
pub fn is_precompilable(seccomp: &LinuxSeccomp) -> bool {
    seccomp.flags().as_ref().is_none_or(|f| f.is_empty()) && !is_notify(seccomp)
}

/// The program for `seccomp`, from `cache_dir` or compiled (and stored
/// there). `Ok(None)` when the profile cannot be precompiled. A cache that
/// cannot be written is not an error: the compiled program is still used.
pub fn cached_or_compiled(seccomp: &LinuxSeccomp, cache_dir: &Path) -> Result<Option<SeccompBpf>> {
    if !is_precompilable(seccomp) {
        return Ok(None);
    }
    let key = cache_key(seccomp)?;
    let path = cache_dir.join(format!("{:016x}.bpf", fnv1a(&key)));
    if let Ok(stored) = fs::read(&path) {
        if let Some(bpf) = stored.strip_prefix(key.as_slice()).and_then(SeccompBpf::from_bytes) {
            return Ok(Some(bpf));
        }
    }
    let bytes = compile(seccomp)?;
    let bpf = SeccompBpf::from_bytes(&bytes)
        .ok_or_else(|| SeccompError::Cache(io::Error::other("libseccomp exported no program")))?;
    if let Err(err) = store(cache_dir, &path, &key, &bytes) {
        tracing::warn!(?err, ?path, "could not cache the compiled seccomp filter");
    }
    Ok(Some(bpf))
}

/// The exact bytes a cache entry must start with: libseccomp's version and
/// the profile as JSON, each length-prefixed.
fn cache_key(seccomp: &LinuxSeccomp) -> Result<Vec<u8>> {
    let version = libseccomp::ScmpVersion::current()
        .map(|v| v.to_string())
        .unwrap_or_default();
    let profile = serde_json::to_vec(seccomp)
        .map_err(|err| SeccompError::Cache(io::Error::other(err)))?;
    let mut key = Vec::with_capacity(profile.len() + version.len() + 16);
    for part in [version.as_bytes(), profile.as_slice()] {
        key.extend_from_slice(&(part.len() as u64).to_le_bytes());
        key.extend_from_slice(part);
    }
    Ok(key)
}

/// FNV-1a, 64 bits: only names the file; the key inside decides.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100000001b3)
    })
}

/// libseccomp's BPF for the profile, exported through a memfd (its
/// `export_bpf_mem` needs libseccomp 2.6; Debian 12 has 2.5).
fn compile(seccomp: &LinuxSeccomp) -> Result<Vec<u8>> {
    let mut ctx = build_filter(seccomp)?;
    // A binary search over syscall numbers instead of libseccomp's default
    // linear list: the same decisions, but the kernel, which runs the
    // program for every syscall number when it is installed (to cache
    // constant results), walks ~8 instructions per number instead of ~50.
    ctx.set_ctl_optimize(2)
        .map_err(|err| SeccompError::ExportBpf { source: err })?;
    // SAFETY: memfd_create with a static NUL-terminated name.
    let raw = unsafe { libc::memfd_create(c"seccomp-bpf".as_ptr(), libc::MFD_CLOEXEC) };
    if raw < 0 {
        return Err(SeccompError::Cache(io::Error::last_os_error()));
    }
    // SAFETY: raw is a fresh fd nobody else owns.
    let mut file = fs::File::from(unsafe { OwnedFd::from_raw_fd(raw) });
    ctx.export_bpf(&file)
        .map_err(|err| SeccompError::ExportBpf { source: err })?;
    let mut bytes = Vec::new();
    file.rewind()
        .and_then(|_| file.read_to_end(&mut bytes))
        .map_err(SeccompError::Cache)?;
    Ok(bytes)
}

/// Writes key + program to a temporary file and renames it into place, so a
/// concurrent reader sees a whole entry or none.
fn store(cache_dir: &Path, path: &Path, key: &[u8], bytes: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(cache_dir)?;
    let tmp = cache_dir.join(format!(".{}.tmp", std::process::id()));
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(key)?;
    file.write_all(bytes)?;
    drop(file);
    fs::rename(&tmp, path)
}
