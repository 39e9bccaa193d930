//! Pure checks on paths found inside archives: where an entry lands, and
//! whether a symlink target climbs out of the layer root.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// Normalise an archive entry path to a path relative to the extraction root.
/// `Ok(None)` means the root itself (`.` or `./`). Absolute paths and `..`
/// components are refused: the reason is returned for the error message.
pub(crate) fn relative_entry_path(raw: &[u8]) -> Result<Option<PathBuf>, &'static str> {
    if raw.is_empty() {
        return Err("empty path");
    }
    if raw.contains(&0) {
        return Err("path contains a NUL byte");
    }
    if raw[0] == b'/' {
        return Err("absolute path (expected a path relative to the archive root)");
    }
    let mut out = PathBuf::new();
    for component in Path::new(OsStr::from_bytes(raw)).components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir => return Err("path contains a '..' component"),
            Component::RootDir | Component::Prefix(_) => {
                return Err("absolute path (expected a path relative to the archive root)")
            }
        }
    }
    Ok((!out.as_os_str().is_empty()).then_some(out))
}

/// True when a relative symlink at `link` (relative to the root) points above
/// the root, e.g. `etc/x -> ../../host`. Absolute targets are resolved inside
/// the container's root at run time, so they do not escape.
pub(crate) fn symlink_escapes(link: &Path, target: &[u8]) -> bool {
    let target = Path::new(OsStr::from_bytes(target));
    if target.is_absolute() {
        return false;
    }
    let mut depth = link.parent().map_or(0, |p| p.components().count());
    for component in target.components() {
        match component {
            Component::ParentDir if depth == 0 => return true,
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_relative_paths() {
        assert_eq!(
            relative_entry_path(b"./bin/sh").unwrap(),
            Some(PathBuf::from("bin/sh"))
        );
        assert_eq!(
            relative_entry_path(b"bin//sh/").unwrap(),
            Some(PathBuf::from("bin/sh"))
        );
        assert_eq!(relative_entry_path(b"./").unwrap(), None);
        assert_eq!(relative_entry_path(b".").unwrap(), None);
    }

    #[test]
    fn refuses_escapes() {
        assert!(relative_entry_path(b"/etc/passwd").is_err());
        assert!(relative_entry_path(b"../x").is_err());
        assert!(relative_entry_path(b"a/../../x").is_err());
        assert!(relative_entry_path(b"a/../b").is_err());
        assert!(relative_entry_path(b"").is_err());
    }

    #[test]
    fn symlink_escape_detection() {
        assert!(!symlink_escapes(Path::new("bin/sh"), b"/bin/busybox"));
        assert!(!symlink_escapes(Path::new("bin/sh"), b"busybox"));
        assert!(!symlink_escapes(
            Path::new("usr/bin/x"),
            b"../../bin/busybox"
        ));
        assert!(symlink_escapes(
            Path::new("usr/bin/x"),
            b"../../../etc/shadow"
        ));
        assert!(symlink_escapes(Path::new("x"), b".."));
        assert!(!symlink_escapes(Path::new("a/b"), b"./c/../d"));
    }
}
