//! Safe extraction of one layer tar into a fresh, private directory that will
//! become an overlayfs lowerdir.
//!
//! Hand-written rather than `tar::Archive::unpack` because a layer needs what
//! no unpacker offers together: OCI whiteouts turned into overlayfs's native
//! form (0/0 character device, `trusted.overlay.opaque=y`), refusal (not
//! silent skipping) of hostile entries with the entry's name, and a check
//! that no parent component is a symlink before anything is written.
//! The directory is private to this import, so checking components with
//! `lstat` and then writing is race-free.

use crate::error::{ImageError, Result};
use crate::paths::{relative_entry_path, symlink_escapes};
use nix::sys::stat::{makedev, mknod, utimensat, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

/// Marker that makes a directory opaque (hides the lower layers' contents).
const OPAQUE_MARKER: &str = ".wh..wh..opq";
/// Prefix of a whiteout: `.wh.name` deletes `name` from lower layers.
const WHITEOUT_PREFIX: &str = ".wh.";
/// overlayfs's own xattrs must never come from an archive: they would let a
/// layer redirect lookups elsewhere (`redirect`, `metacopy`, …).
const OVERLAY_XATTR_PREFIX: &str = "trusted.overlay.";
/// Copy buffer: large reads keep decompression and writes efficient.
const COPY_BUFFER: usize = 256 * 1024;

/// How to unpack one layer.
pub(crate) struct UnpackOptions<'a> {
    /// Name of the layer for error messages (archive member or digest).
    pub layer: &'a str,
    /// Root may chown, create device nodes and whiteouts, set trusted xattrs.
    pub as_root: bool,
    /// Upper bound for any single entry's declared size when the stream
    /// length is known (an uncompressed tar on disk); None when unknown.
    pub max_entry_size: Option<u64>,
}

/// Unpack the tar stream `reader` into the existing empty directory `root`.
pub(crate) fn unpack_layer<R: Read>(
    reader: R,
    root: &Path,
    opts: &UnpackOptions<'_>,
) -> Result<()> {
    let mut unpacker = Unpacker {
        root,
        opts,
        known_dirs: HashSet::new(),
        deferred_dirs: Vec::new(),
        buffer: vec![0; COPY_BUFFER],
    };
    let mut archive = tar::Archive::new(reader);
    let entries = archive.entries().map_err(|e| unpacker.broken_stream(e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| unpacker.broken_stream(e))?;
        unpacker.entry(&mut entry)?;
    }
    unpacker.finish_dirs()
}

/// What to apply to a directory once all its children exist (writing
/// children changes a directory's mtime, and a read-only mode would stop them).
struct DeferredDir {
    path: PathBuf,
    mode: u32,
    mtime: u64,
}

struct Unpacker<'a> {
    root: &'a Path,
    opts: &'a UnpackOptions<'a>,
    /// Relative paths already verified to be real directories (not symlinks).
    known_dirs: HashSet<PathBuf>,
    deferred_dirs: Vec<DeferredDir>,
    buffer: Vec<u8>,
}

impl Unpacker<'_> {
    fn broken_stream(&self, e: io::Error) -> ImageError {
        ImageError::malformed(
            format!("layer {}", self.opts.layer),
            format!("broken or truncated tar stream: {e}"),
        )
    }

    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<()> {
        let raw = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let kind = entry.header().entry_type();
        let rel = match relative_entry_path(&raw)
            .map_err(|reason| ImageError::hostile(&shown, reason))?
        {
            Some(rel) => rel,
            None if kind.is_dir() => {
                // `./` carries the layer root's own mode, owner and mtime.
                self.set_owner(self.root, entry.header(), &shown)?;
                self.defer_dir(self.root.to_path_buf(), entry.header());
                return Ok(());
            }
            None => {
                return Err(ImageError::hostile(
                    shown,
                    "the archive root must be a directory",
                ))
            }
        };
        if matches!(kind, tar::EntryType::XGlobalHeader) {
            return Ok(());
        }
        let name = rel.file_name().map(|n| n.as_bytes()).unwrap_or_default();
        if name.starts_with(WHITEOUT_PREFIX.as_bytes()) {
            return self.whiteout(&rel, name, &shown);
        }
        self.ensure_parents(&rel, &shown)?;
        let path = self.root.join(&rel);
        let xattrs = archive_xattrs(entry, &shown)?;
        match kind {
            tar::EntryType::Directory => {
                if !self.clear_target(&rel, true)? {
                    fs::create_dir(&path)
                        .map_err(|e| ImageError::io_at("creating directory", &path, e))?;
                }
                self.known_dirs.insert(rel.clone());
                self.set_owner(&path, entry.header(), &shown)?;
                set_xattrs(&path, &xattrs, &shown)?;
                self.defer_dir(path, entry.header());
            }
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                self.clear_target(&rel, false)?;
                self.write_file(entry, &path, &shown, &xattrs)?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| ImageError::hostile(&shown, "symlink without a target"))?
                    .into_owned();
                if symlink_escapes(&rel, &target) {
                    return Err(ImageError::hostile(
                        shown,
                        format!(
                            "symlink target {:?} climbs above the layer root",
                            String::from_utf8_lossy(&target)
                        ),
                    ));
                }
                self.clear_target(&rel, false)?;
                std::os::unix::fs::symlink(OsStr::from_bytes(&target), &path)
                    .map_err(|e| ImageError::io_at("creating symlink", &path, e))?;
                self.set_owner(&path, entry.header(), &shown)?;
                set_xattrs(&path, &xattrs, &shown)?;
                set_mtime(&path, entry.header().mtime().unwrap_or(0));
            }
            tar::EntryType::Link => self.hard_link(entry, &rel, &shown)?,
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                self.clear_target(&rel, false)?;
                self.special_file(entry.header(), kind, &path, &shown)?;
                set_xattrs(&path, &xattrs, &shown)?;
            }
            other => {
                return Err(ImageError::hostile(
                    shown,
                    format!("unsupported tar entry type {other:?}"),
                ));
            }
        }
        Ok(())
    }

    /// `.wh..wh..opq` marks the parent opaque; `.wh.name` hides `name`.
    /// Other `.wh..wh.*` names are aufs bookkeeping and carry nothing.
    fn whiteout(&mut self, rel: &Path, name: &[u8], shown: &str) -> Result<()> {
        if !self.opts.as_root {
            return Err(ImageError::NeedsRoot(format!(
                "layer {}: entry {shown:?} is a whiteout; converting whiteouts to overlayfs form needs root",
                self.opts.layer
            )));
        }
        self.ensure_parents(rel, shown)?;
        let parent_rel = rel.parent().unwrap_or(Path::new(""));
        let parent = self.root.join(parent_rel);
        if name == OPAQUE_MARKER.as_bytes() {
            return xattr::set(&parent, "trusted.overlay.opaque", b"y").map_err(|e| {
                ImageError::io_at(
                    "marking directory opaque (trusted.overlay.opaque)",
                    &parent,
                    e,
                )
            });
        }
        if name.starts_with(b".wh..wh.") {
            return Ok(());
        }
        let hidden = &name[WHITEOUT_PREFIX.len()..];
        if hidden.is_empty() || hidden == b"." || hidden == b".." {
            return Err(ImageError::hostile(
                shown,
                "whiteout without a valid name to hide",
            ));
        }
        let hidden_rel = parent_rel.join(OsStr::from_bytes(hidden));
        self.clear_target(&hidden_rel, false)?;
        let path = self.root.join(&hidden_rel);
        mknod(&path, SFlag::S_IFCHR, Mode::empty(), makedev(0, 0))
            .map_err(|e| ImageError::io_at("creating whiteout device", &path, e.into()))
    }

    /// Make every parent directory of `rel` exist as a real directory, refusing
    /// to go through a symlink or a non-directory.
    fn ensure_parents(&mut self, rel: &Path, shown: &str) -> Result<()> {
        let Some(parent) = rel.parent() else {
            return Ok(());
        };
        let mut current = PathBuf::new();
        for component in parent.components() {
            current.push(component);
            if self.known_dirs.contains(&current) {
                continue;
            }
            let path = self.root.join(&current);
            match fs::symlink_metadata(&path) {
                Ok(meta) if meta.is_dir() => {}
                Ok(meta) if meta.file_type().is_symlink() => {
                    return Err(ImageError::hostile(
                        shown,
                        format!(
                            "its parent {} is a symlink; writing through it could escape the layer",
                            current.display()
                        ),
                    ));
                }
                Ok(_) => {
                    return Err(ImageError::hostile(
                        shown,
                        format!("its parent {} is not a directory", current.display()),
                    ))
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    fs::create_dir(&path)
                        .map_err(|e| ImageError::io_at("creating directory", &path, e))?;
                    fs::set_permissions(&path, fs::Permissions::from_mode(0o755))
                        .map_err(|e| ImageError::io_at("setting mode of", &path, e))?;
                }
                Err(e) => return Err(ImageError::io_at("inspecting", &path, e)),
            }
            self.known_dirs.insert(current.clone());
        }
        Ok(())
    }

    /// Remove whatever an earlier entry left at `rel` (later entries win, as
    /// in tar). Returns true when an existing directory is kept because the
    /// new entry is a directory too.
    fn clear_target(&mut self, rel: &Path, new_is_dir: bool) -> Result<bool> {
        let path = self.root.join(rel);
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() && new_is_dir => Ok(true),
            Ok(meta) if meta.is_dir() => {
                self.known_dirs.retain(|known| !known.starts_with(rel));
                fs::remove_dir_all(&path)
                    .map_err(|e| ImageError::io_at("replacing directory", &path, e))?;
                Ok(false)
            }
            Ok(_) => {
                fs::remove_file(&path).map_err(|e| ImageError::io_at("replacing", &path, e))?;
                Ok(false)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(ImageError::io_at("inspecting", &path, e)),
        }
    }

    fn write_file<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        path: &Path,
        shown: &str,
        xattrs: &[(String, Vec<u8>)],
    ) -> Result<()> {
        let declared = entry.size();
        if let Some(limit) = self.opts.max_entry_size {
            if declared > limit {
                return Err(ImageError::hostile(
                    shown,
                    format!(
                        "declares {declared} bytes, more than the whole archive ({limit} bytes)"
                    ),
                ));
            }
        }
        // create_new (O_CREAT|O_EXCL) never follows a symlink at the final component.
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| ImageError::io_at("creating", path, e))?;
        let mut written: u64 = 0;
        loop {
            let n = match entry.read(&mut self.buffer) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(ImageError::malformed(
                        format!("layer {} entry {shown:?}", self.opts.layer),
                        e,
                    ))
                }
            };
            file.write_all(&self.buffer[..n])
                .map_err(|e| ImageError::io_at("writing", path, e))?;
            written += n as u64;
        }
        let sparse = entry.header().entry_type() == tar::EntryType::GNUSparse;
        if !sparse && written != declared {
            return Err(ImageError::malformed(
                format!("layer {} entry {shown:?}", self.opts.layer),
                format!(
                    "truncated: declares {declared} bytes but the stream ended after {written}"
                ),
            ));
        }
        let header = entry.header();
        if self.opts.as_root {
            let (uid, gid) = owner(header, shown)?;
            std::os::unix::fs::fchown(&file, Some(uid), Some(gid))
                .map_err(|e| ImageError::io_at("changing owner of", path, e))?;
        }
        // After chown: chown clears set-id bits and file capabilities.
        file.set_permissions(fs::Permissions::from_mode(mode(header, shown)?))
            .map_err(|e| ImageError::io_at("setting mode of", path, e))?;
        set_xattrs(path, xattrs, shown)?;
        let mtime = UNIX_EPOCH + Duration::from_secs(header.mtime().unwrap_or(0));
        file.set_times(fs::FileTimes::new().set_modified(mtime).set_accessed(mtime))
            .map_err(|e| ImageError::io_at("setting times of", path, e))?;
        Ok(())
    }

    fn hard_link<R: Read>(
        &mut self,
        entry: &tar::Entry<'_, R>,
        rel: &Path,
        shown: &str,
    ) -> Result<()> {
        let raw_target = entry
            .link_name_bytes()
            .ok_or_else(|| ImageError::hostile(shown, "hard link without a target"))?
            .into_owned();
        let target_shown = String::from_utf8_lossy(&raw_target).into_owned();
        let target_rel = relative_entry_path(&raw_target)
            .map_err(|reason| {
                ImageError::hostile(
                    shown,
                    format!("hard link target {target_shown:?}: {reason}"),
                )
            })?
            .ok_or_else(|| ImageError::hostile(shown, "hard link to the archive root"))?;
        // The target must already be in this layer, reached without symlinks.
        let mut current = PathBuf::new();
        for component in target_rel.parent().unwrap_or(Path::new("")).components() {
            current.push(component);
            let meta = fs::symlink_metadata(self.root.join(&current));
            if !matches!(meta, Ok(ref m) if m.is_dir()) {
                return Err(ImageError::hostile(
                    shown,
                    format!("hard link target {target_shown:?} goes through {}, which is not a directory in this layer", current.display()),
                ));
            }
        }
        let target = self.root.join(&target_rel);
        match fs::symlink_metadata(&target) {
            Ok(meta) if meta.is_dir() => {
                return Err(ImageError::hostile(
                    shown,
                    format!("hard link to directory {target_shown:?}"),
                ))
            }
            Ok(_) => {}
            Err(_) => {
                return Err(ImageError::hostile(
                    shown,
                    format!(
                        "hard link target {target_shown:?} is not an earlier entry of this layer"
                    ),
                ))
            }
        }
        self.ensure_parents(rel, shown)?;
        if rel == target_rel {
            return Ok(());
        }
        self.clear_target(rel, false)?;
        let path = self.root.join(rel);
        // link(2) does not follow a symlink target: it links the symlink itself.
        fs::hard_link(&target, &path).map_err(|e| ImageError::io_at("creating hard link", &path, e))
    }

    fn special_file(
        &self,
        header: &tar::Header,
        kind: tar::EntryType,
        path: &Path,
        shown: &str,
    ) -> Result<()> {
        let perm = Mode::from_bits_truncate(mode(header, shown)?);
        if kind == tar::EntryType::Fifo {
            nix::unistd::mkfifo(path, perm)
                .map_err(|e| ImageError::io_at("creating fifo", path, e.into()))?;
        } else {
            if !self.opts.as_root {
                return Err(ImageError::hostile(
                    shown,
                    "device node; only root may import device nodes",
                ));
            }
            let major = header.device_major().ok().flatten().unwrap_or(0);
            let minor = header.device_minor().ok().flatten().unwrap_or(0);
            let flag = if kind == tar::EntryType::Char {
                SFlag::S_IFCHR
            } else {
                SFlag::S_IFBLK
            };
            mknod(path, flag, perm, makedev(major.into(), minor.into()))
                .map_err(|e| ImageError::io_at("creating device node", path, e.into()))?;
        }
        self.set_owner(path, header, shown)?;
        fs::set_permissions(path, fs::Permissions::from_mode(mode(header, shown)?))
            .map_err(|e| ImageError::io_at("setting mode of", path, e))?;
        set_mtime(path, header.mtime().unwrap_or(0));
        Ok(())
    }

    fn set_owner(&self, path: &Path, header: &tar::Header, shown: &str) -> Result<()> {
        if !self.opts.as_root {
            return Ok(());
        }
        let (uid, gid) = owner(header, shown)?;
        std::os::unix::fs::lchown(path, Some(uid), Some(gid))
            .map_err(|e| ImageError::io_at("changing owner of", path, e))
    }

    fn defer_dir(&mut self, path: PathBuf, header: &tar::Header) {
        let mode = header.mode().map(|m| m & 0o7777).unwrap_or(0o755);
        let mtime = header.mtime().unwrap_or(0);
        self.deferred_dirs.push(DeferredDir { path, mode, mtime });
    }

    /// Apply directory modes and mtimes deepest first, after all children exist.
    fn finish_dirs(&mut self) -> Result<()> {
        let mut dirs = std::mem::take(&mut self.deferred_dirs);
        dirs.sort_by_key(|d| std::cmp::Reverse(d.path.components().count()));
        for dir in dirs {
            // A later entry may have replaced the directory with something else.
            match fs::symlink_metadata(&dir.path) {
                Ok(meta) if meta.is_dir() => {}
                _ => continue,
            }
            fs::set_permissions(&dir.path, fs::Permissions::from_mode(dir.mode))
                .map_err(|e| ImageError::io_at("setting mode of", &dir.path, e))?;
            set_mtime(&dir.path, dir.mtime);
        }
        Ok(())
    }
}

fn owner(header: &tar::Header, shown: &str) -> Result<(u32, u32)> {
    let bad = |what: &str, e: io::Error| {
        ImageError::hostile(shown, format!("unreadable {what} in tar header: {e}"))
    };
    let uid = header.uid().map_err(|e| bad("uid", e))?;
    let gid = header.gid().map_err(|e| bad("gid", e))?;
    let uid = u32::try_from(uid)
        .map_err(|_| ImageError::hostile(shown, format!("uid {uid} out of range")))?;
    let gid = u32::try_from(gid)
        .map_err(|_| ImageError::hostile(shown, format!("gid {gid} out of range")))?;
    Ok((uid, gid))
}

fn mode(header: &tar::Header, shown: &str) -> Result<u32> {
    header
        .mode()
        .map(|m| m & 0o7777)
        .map_err(|e| ImageError::hostile(shown, format!("unreadable mode in tar header: {e}")))
}

/// Extended attributes recorded as PAX `SCHILY.xattr.<name>` records.
fn archive_xattrs<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    shown: &str,
) -> Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    let Some(extensions) = entry
        .pax_extensions()
        .map_err(|e| ImageError::hostile(shown, format!("unreadable PAX header: {e}")))?
    else {
        return Ok(out);
    };
    for extension in extensions {
        let extension = extension
            .map_err(|e| ImageError::hostile(shown, format!("unreadable PAX record: {e}")))?;
        let Ok(key) = extension.key() else { continue };
        if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
            if name.starts_with(OVERLAY_XATTR_PREFIX) {
                return Err(ImageError::hostile(
                    shown,
                    format!("carries overlayfs-internal xattr {name}"),
                ));
            }
            out.push((name.to_string(), extension.value_bytes().to_vec()));
        }
    }
    Ok(out)
}

/// Best effort, like Docker: a filesystem without xattr support, or an
/// attribute namespace we may not write (trusted.* as non-root), loses the
/// attribute with a warning rather than failing the import.
fn set_xattrs(path: &Path, xattrs: &[(String, Vec<u8>)], shown: &str) -> Result<()> {
    for (name, value) in xattrs {
        if let Err(e) = xattr::set(path, name, value) {
            tracing::warn!(entry = shown, xattr = name.as_str(), error = %e, "could not set extended attribute");
        }
    }
    Ok(())
}

/// Set atime and mtime without following a symlink. Best effort: mtimes
/// are informational, a failure must not fail the import.
fn set_mtime(path: &Path, mtime: u64) {
    let spec = TimeSpec::new(mtime.min(i64::MAX as u64) as i64, 0);
    if let Err(e) = utimensat(None, path, &spec, &spec, UtimensatFlags::NoFollowSymlink) {
        tracing::debug!(path = %path.display(), error = %e, "could not set mtime");
    }
}

/// Remove a tree even when an unpacked layer made some directories read-only
/// for a non-root owner.
pub(crate) fn remove_tree(path: &Path) -> io::Result<()> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(first) => {
            make_writable(path);
            fs::remove_dir_all(path).map_err(|_| first)
        }
    }
}

fn make_writable(path: &Path) {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return;
    };
    if !meta.is_dir() {
        return;
    }
    let _ = fs::set_permissions(path, fs::Permissions::from_mode(0o700));
    if let Ok(entries) = fs::read_dir(path) {
        for entry in entries.flatten() {
            make_writable(&entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_testkit::tarball::TarBuf;

    fn unpack(bytes: &[u8], as_root: bool) -> (tempfile::TempDir, Result<()>) {
        let dir = tempfile::tempdir().unwrap();
        let opts = UnpackOptions {
            layer: "test-layer",
            as_root,
            max_entry_size: None,
        };
        let result = unpack_layer(bytes, dir.path(), &opts);
        (dir, result)
    }

    #[test]
    fn device_nodes_and_whiteouts_need_root() {
        let mut tar = TarBuf::new();
        tar.dir("dev").char_device("dev/null", 1, 3);
        let (_dir, result) = unpack(&tar.finish(), false);
        let err = result.unwrap_err().to_string();
        assert!(
            err.contains("dev/null") && err.contains("only root"),
            "{err}"
        );

        let mut tar = TarBuf::new();
        tar.dir("etc").file("etc/.wh.passwd", b"");
        let (_dir, result) = unpack(&tar.finish(), false);
        let err = result.unwrap_err();
        assert!(matches!(err, ImageError::NeedsRoot(_)), "{err}");
        assert!(err.to_string().contains("etc/.wh.passwd"), "{err}");
    }

    #[test]
    fn truncated_entry_inside_a_stream_is_refused_by_name() {
        let mut tar = TarBuf::new();
        tar.file("ok", b"fine")
            .file_declaring("short.bin", 4096, &[1u8; 1024]);
        let (_dir, result) = unpack(&tar.finish_truncated(), true);
        let err = result.unwrap_err().to_string();
        assert!(
            err.contains("short.bin") && err.contains("truncated"),
            "{err}"
        );
    }

    #[test]
    fn later_entries_replace_earlier_ones_and_whiteouts_become_devices() {
        use std::os::unix::fs::FileTypeExt;
        let mut tar = TarBuf::new();
        tar.file("a", b"one")
            .file("a", b"two")
            .dir("d")
            .file("d/x", b"x")
            .file("d/.wh.gone", b"")
            .file("d/.wh..wh..opq", b"");
        let (dir, result) = unpack(&tar.finish(), true);
        result.unwrap();
        assert_eq!(fs::read_to_string(dir.path().join("a")).unwrap(), "two");
        let gone = fs::symlink_metadata(dir.path().join("d/gone")).unwrap();
        assert!(gone.file_type().is_char_device());
        assert_eq!(
            xattr::get(dir.path().join("d"), "trusted.overlay.opaque")
                .unwrap()
                .as_deref(),
            Some(&b"y"[..])
        );
        assert!(!dir.path().join("d/.wh.gone").exists());
    }

    #[test]
    fn preserves_owner_mode_mtime_and_xattrs() {
        use std::os::unix::fs::MetadataExt;
        let mut builder = tar::Builder::new(Vec::new());
        builder
            .append_pax_extensions([("SCHILY.xattr.user.flotilla", b"kept".as_slice())])
            .unwrap();
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_path("owned.txt").unwrap();
        header.set_size(2);
        header.set_mode(0o4751);
        header.set_uid(1234);
        header.set_gid(5678);
        header.set_mtime(1_600_000_000);
        header.set_cksum();
        builder.append(&header, &b"hi"[..]).unwrap();
        let (dir, result) = unpack(&builder.into_inner().unwrap(), true);
        result.unwrap();
        let path = dir.path().join("owned.txt");
        let meta = fs::metadata(&path).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (1234, 5678));
        assert_eq!(
            meta.mode() & 0o7777,
            0o4751,
            "set-id bit must survive chown"
        );
        assert_eq!(meta.mtime(), 1_600_000_000);
        // user.* xattrs need filesystem support (ext4, xfs, btrfs, tmpfs ≥ 6.6).
        if let Ok(Some(value)) = xattr::get(&path, "user.flotilla") {
            assert_eq!(value, b"kept");
        }
    }
}
