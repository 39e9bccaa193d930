//! Named network namespaces without `ip netns`: a namespace is kept alive by
//! bind-mounting `/proc/thread-self/ns/net` of a thread that unshared it onto
//! `<dir>/<name>`; `<dir>` is a shared mount point (as `ip netns add` makes
//! `/run/netns`) so the binds propagate to mount namespaces created later.

use std::fs;
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::statfs::{statfs, NSFS_MAGIC};

use crate::error::{from_errno, NetError, Result};

/// Where Flotilla keeps its named network namespaces.
pub const DEFAULT_NETNS_DIR: &str = "/run/flotilla/netns";

/// True if `path` is a bind mount of a namespace (not just an empty file).
pub fn is_netns_mount(path: &Path) -> bool {
    statfs(path)
        .map(|s| s.filesystem_type() == NSFS_MAGIC)
        .unwrap_or(false)
}

/// Creates the named namespace `<dir>/<name>` (reusing it when it already
/// exists) and returns its path.
pub fn create(dir: &Path, name: &str) -> Result<PathBuf> {
    ensure_shared_dir(dir)?;
    let path = dir.join(name);
    if is_netns_mount(&path) {
        return Ok(path);
    }
    fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| NetError::io("creating namespace file", &path, e))?;

    // unshare(CLONE_NEWNET) moves only the calling thread; doing it in a
    // thread of its own leaves the caller's threads in the host namespace.
    let target = path.clone();
    let result = std::thread::spawn(move || -> Result<()> {
        unshare(CloneFlags::CLONE_NEWNET)
            .map_err(|e| from_errno("unsharing network namespace for", &target, e))?;
        mount(
            Some("/proc/thread-self/ns/net"),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| from_errno("bind-mounting network namespace onto", &target, e))
    })
    .join()
    .unwrap_or_else(|p| std::panic::resume_unwind(p));
    if let Err(e) = result {
        let _ = fs::remove_file(&path);
        return Err(e);
    }
    Ok(path)
}

/// Unmounts and removes a named namespace; absent is success.
pub fn remove(path: &Path) -> Result<()> {
    // MNT_DETACH: a process still inside the namespace (or holding the file
    // open) must not make detach fail; the kernel frees it when unused.
    loop {
        match umount2(path, MntFlags::MNT_DETACH) {
            Ok(()) => continue, // stacked binds from an earlier crash: peel all
            Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => break,
            Err(e) => return Err(from_errno("unmounting network namespace", path, e)),
        }
    }
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(NetError::io("removing namespace file", path, e)),
    }
}

/// Runs `f` on a fresh thread that has joined the network namespace at
/// `path` (sockets it opens belong to that namespace). The caller's threads
/// are untouched.
pub fn in_netns<T, F>(path: &Path, f: F) -> Result<T>
where
    T: Send,
    F: FnOnce() -> Result<T> + Send,
{
    let ns =
        fs::File::open(path).map_err(|e| NetError::io("opening network namespace", path, e))?;
    std::thread::scope(|s| {
        s.spawn(|| {
            setns(ns.as_fd(), CloneFlags::CLONE_NEWNET)
                .map_err(|e| from_errno("joining network namespace (setns)", path, e))?;
            f()
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

/// Makes `dir` exist and be a shared mount point, like `ip netns add`
/// does for /run/netns. Serialised across processes with a lock file next
/// to `dir`, so two processes never stack two binds.
fn ensure_shared_dir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(|e| NetError::io("creating directory", dir, e))?;
    let lock_path = dir.with_extension("lock");
    let lock_file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| NetError::io("opening", &lock_path, e))?;
    let _lock = Flock::lock(lock_file, FlockArg::LockExclusive)
        .map_err(|(_, e)| from_errno("locking", &lock_path, e))?;

    let canonical = dir
        .canonicalize()
        .map_err(|e| NetError::io("resolving", dir, e))?;
    let mountinfo = fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| NetError::io("reading", "/proc/self/mountinfo", e))?;
    match mount_state(&mountinfo, &canonical) {
        MountState::Shared => return Ok(()),
        MountState::Private => {}
        MountState::NotAMountPoint => {
            mount(
                Some(&canonical),
                &canonical,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(|e| from_errno("bind-mounting (namespace directory)", &canonical, e))?;
        }
    }
    mount(
        None::<&str>,
        &canonical,
        None::<&str>,
        MsFlags::MS_SHARED | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| from_errno("making shared mount (namespace directory)", &canonical, e))
}

#[derive(Debug, PartialEq, Eq)]
enum MountState {
    NotAMountPoint,
    Private,
    Shared,
}

/// Reads the state of the topmost mount at `dir` from mountinfo text. Pure.
fn mount_state(mountinfo: &str, dir: &Path) -> MountState {
    let wanted = dir.to_string_lossy();
    let mut state = MountState::NotAMountPoint;
    for line in mountinfo.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        // 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw
        let (Some(mount_point), Some(dash)) =
            (fields.get(4), fields.iter().position(|f| *f == "-"))
        else {
            continue;
        };
        if unescape_mountinfo(mount_point) != wanted {
            continue;
        }
        // Later lines are mounted on top of earlier ones: the last wins.
        state = if fields[6.min(dash)..dash]
            .iter()
            .any(|f| f.starts_with("shared:"))
        {
            MountState::Shared
        } else {
            MountState::Private
        };
    }
    state
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match octal {
            Some(d) if bytes[i] == b'\\' => {
                let v = u16::from(d[0] - b'0') * 64
                    + u16::from(d[1] - b'0') * 8
                    + u16::from(d[2] - b'0');
                out.push(v as u8); // the kernel only escapes bytes, so v <= 0o377
                i += 4;
            }
            _ => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_state_uses_the_top_mount() {
        let info = "22 1 0:21 / /run rw shared:5 - tmpfs tmpfs rw\n\
                    40 22 0:21 /flotilla/netns /run/flotilla/netns rw - tmpfs tmpfs rw\n";
        let dir = Path::new("/run/flotilla/netns");
        assert_eq!(mount_state(info, dir), MountState::Private);
        let shared = format!(
            "{info}41 40 0:21 /flotilla/netns /run/flotilla/netns rw shared:9 - tmpfs tmpfs rw\n"
        );
        assert_eq!(mount_state(&shared, dir), MountState::Shared);
        assert_eq!(
            mount_state(info, Path::new("/run/other")),
            MountState::NotAMountPoint
        );
    }

    #[test]
    fn mountinfo_unescapes_spaces() {
        assert_eq!(unescape_mountinfo("/a\\040b"), "/a b");
    }
}
