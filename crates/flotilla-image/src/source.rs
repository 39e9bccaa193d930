//! Random access to the members of an import archive, whether it is a tar
//! file on disk (indexed once, then read by offset without extracting) or an
//! unpacked directory.

use crate::error::{ImageError, Result};
use crate::paths::relative_entry_path;
use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Symlink hops allowed when resolving a member (docker save links duplicate
/// layers to one another).
const MAX_SYMLINK_HOPS: usize = 8;

/// One member opened for reading, with its size.
pub(crate) struct Member {
    pub reader: Box<dyn Read>,
    pub size: u64,
}

/// An archive whose members can be read by name (`manifest.json`, `blobs/sha256/…`).
pub(crate) enum Source {
    Tar(TarSource),
    Dir(DirSource),
}

impl Source {
    /// Open `path` as a directory source or an (uncompressed) tar source.
    pub(crate) fn open(path: &Path) -> Result<Source> {
        let meta = fs::metadata(path).map_err(|e| ImageError::io_at("reading", path, e))?;
        if meta.is_dir() {
            Ok(Source::Dir(DirSource {
                base: path.to_path_buf(),
            }))
        } else {
            Ok(Source::Tar(TarSource::index(path)?))
        }
    }

    pub(crate) fn describe(&self) -> String {
        match self {
            Source::Tar(t) => t.path.display().to_string(),
            Source::Dir(d) => d.base.display().to_string(),
        }
    }

    pub(crate) fn contains(&self, name: &str) -> bool {
        match self {
            Source::Tar(t) => t.resolve(name).is_ok(),
            Source::Dir(d) => d.resolve(name).map(|p| p.is_file()).unwrap_or(false),
        }
    }

    /// Open member `name` (a path relative to the archive root).
    pub(crate) fn open_member(&self, name: &str) -> Result<Member> {
        match self {
            Source::Tar(t) => t.open_member(name),
            Source::Dir(d) => d.open_member(name),
        }
    }

    /// Read a small member (JSON documents) fully, refusing more than `limit` bytes.
    pub(crate) fn read_small(&self, name: &str, limit: u64) -> Result<Vec<u8>> {
        let member = self.open_member(name)?;
        if member.size > limit {
            return Err(ImageError::hostile(
                name,
                format!(
                    "declares {} bytes; a JSON document may have at most {limit}",
                    member.size
                ),
            ));
        }
        let mut bytes = Vec::with_capacity(member.size as usize);
        member
            .reader
            .take(limit + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| ImageError::io(format!("reading {name} from {}", self.describe()), e))?;
        if bytes.len() as u64 != member.size {
            return Err(ImageError::malformed(
                name,
                format!(
                    "truncated: declares {} bytes, read {}",
                    member.size,
                    bytes.len()
                ),
            ));
        }
        Ok(bytes)
    }

    /// Names at the archive root (to detect the format).
    pub(crate) fn has_root_member(&self, name: &str) -> bool {
        self.contains(name)
    }
}

/// Normalise a member name as referenced by a manifest; refuse escapes.
pub(crate) fn member_name(name: &str) -> Result<String> {
    match relative_entry_path(name.as_bytes()) {
        Ok(Some(path)) => Ok(path.to_string_lossy().into_owned()),
        Ok(None) => Err(ImageError::hostile(
            name,
            "names the archive root, expected a file",
        )),
        Err(reason) => Err(ImageError::hostile(name, reason)),
    }
}

/// What the index knows about one tar member.
enum TarMember {
    File { offset: u64, size: u64 },
    Symlink { target: Vec<u8> },
}

/// A tar file indexed by member name; members are read by seeking.
pub(crate) struct TarSource {
    path: PathBuf,
    members: HashMap<String, TarMember>,
}

impl TarSource {
    /// Walk the tar's headers once (seeking over data) and record where each
    /// regular file's data lives. Hostile member names are refused here.
    pub(crate) fn index(path: &Path) -> Result<TarSource> {
        let file = File::open(path).map_err(|e| ImageError::io_at("opening", path, e))?;
        let total = file
            .metadata()
            .map_err(|e| ImageError::io_at("reading", path, e))?
            .len();
        let mut archive = tar::Archive::new(io::BufReader::new(file));
        let broken = |e: io::Error| {
            ImageError::malformed(
                path.display().to_string(),
                format!("not a readable tar archive: {e}"),
            )
        };
        let mut members = HashMap::new();
        for entry in archive.entries_with_seek().map_err(broken)? {
            let entry = entry.map_err(broken)?;
            let raw = entry.path_bytes().into_owned();
            let shown = String::from_utf8_lossy(&raw).into_owned();
            let Some(rel) =
                relative_entry_path(&raw).map_err(|reason| ImageError::hostile(&shown, reason))?
            else {
                continue;
            };
            let name = rel.to_string_lossy().into_owned();
            let kind = entry.header().entry_type();
            if kind.is_file() {
                let offset = entry.raw_file_position();
                let size = entry.size();
                if offset.checked_add(size).is_none_or(|end| end > total) {
                    return Err(ImageError::hostile(
                        shown,
                        format!("declares {size} bytes at offset {offset}, beyond the end of the {total}-byte archive"),
                    ));
                }
                members.insert(name, TarMember::File { offset, size });
            } else if kind.is_symlink() {
                if let Some(target) = entry.link_name_bytes() {
                    members.insert(
                        name,
                        TarMember::Symlink {
                            target: target.into_owned(),
                        },
                    );
                }
            }
        }
        Ok(TarSource {
            path: path.to_path_buf(),
            members,
        })
    }

    /// Follow symlink members (relative to their directory) to a file member.
    fn resolve(&self, name: &str) -> Result<(u64, u64)> {
        let mut current = member_name(name)?;
        for _ in 0..=MAX_SYMLINK_HOPS {
            match self.members.get(&current) {
                Some(TarMember::File { offset, size }) => return Ok((*offset, *size)),
                Some(TarMember::Symlink { target }) => {
                    let dir = Path::new(&current)
                        .parent()
                        .unwrap_or(Path::new(""))
                        .to_path_buf();
                    let joined = dir.join(std::ffi::OsStr::new(&*String::from_utf8_lossy(target)));
                    current = lexical_normalize(&joined).ok_or_else(|| {
                        ImageError::hostile(name, "symlink member points outside the archive")
                    })?;
                }
                None => {
                    return Err(ImageError::malformed(
                        self.path.display().to_string(),
                        format!("member {name:?} is missing"),
                    ))
                }
            }
        }
        Err(ImageError::hostile(name, "too many symlink hops"))
    }

    fn open_member(&self, name: &str) -> Result<Member> {
        let (offset, size) = self.resolve(name)?;
        let mut file =
            File::open(&self.path).map_err(|e| ImageError::io_at("opening", &self.path, e))?;
        file.seek(SeekFrom::Start(offset))
            .map_err(|e| ImageError::io_at("seeking in", &self.path, e))?;
        Ok(Member {
            reader: Box::new(file.take(size)),
            size,
        })
    }
}

/// Resolve `.` and `..` lexically; None when `..` climbs above the root.
fn lexical_normalize(path: &Path) -> Option<String> {
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for component in path.components() {
        match component {
            std::path::Component::Normal(p) => parts.push(p),
            std::path::Component::ParentDir => {
                parts.pop()?;
            }
            std::path::Component::CurDir => {}
            _ => return None,
        }
    }
    let joined: PathBuf = parts.iter().collect();
    Some(joined.to_string_lossy().into_owned())
}

/// An unpacked archive directory (an OCI layout or `docker save` output on disk).
pub(crate) struct DirSource {
    base: PathBuf,
}

impl DirSource {
    /// The member's path, which must resolve (after symlinks) inside the base.
    fn resolve(&self, name: &str) -> Result<PathBuf> {
        let rel = member_name(name)?;
        let path = self.base.join(&rel);
        let real = fs::canonicalize(&path).map_err(|e| ImageError::io_at("opening", &path, e))?;
        let base = fs::canonicalize(&self.base)
            .map_err(|e| ImageError::io_at("opening", &self.base, e))?;
        if !real.starts_with(&base) {
            return Err(ImageError::hostile(
                name,
                format!("resolves to {}, outside {}", real.display(), base.display()),
            ));
        }
        Ok(real)
    }

    fn open_member(&self, name: &str) -> Result<Member> {
        let path = self.resolve(name)?;
        // Check before opening: opening a FIFO or device could block or have effects.
        let meta = fs::metadata(&path).map_err(|e| ImageError::io_at("reading", &path, e))?;
        if !meta.is_file() {
            return Err(ImageError::malformed(name, "expected a regular file"));
        }
        let file = File::open(&path).map_err(|e| ImageError::io_at("opening", &path, e))?;
        Ok(Member {
            reader: Box::new(file),
            size: meta.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_symlink_targets_inside_the_archive() {
        assert_eq!(
            lexical_normalize(Path::new("a/../b/layer.tar")).as_deref(),
            Some("b/layer.tar")
        );
        assert_eq!(lexical_normalize(Path::new("../x")), None);
    }
}
