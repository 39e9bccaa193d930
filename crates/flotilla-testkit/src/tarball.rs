//! Writing tar archives entry by entry, including entries no well-behaved
//! tar writer would produce (for the hostile-archive builders).

use sha2::{Digest, Sha256};
use std::io::Write;

/// An in-memory tar archive under construction.
pub struct TarBuf {
    builder: tar::Builder<Vec<u8>>,
}

impl Default for TarBuf {
    fn default() -> Self {
        Self::new()
    }
}

impl TarBuf {
    pub fn new() -> Self {
        let mut builder = tar::Builder::new(Vec::new());
        builder.mode(tar::HeaderMode::Deterministic);
        TarBuf { builder }
    }

    fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_size(size);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(1_700_000_000);
        header
    }

    /// Put raw bytes in the name field: no validation, so `..` and absolute
    /// paths get through (the tar crate's own setters refuse them).
    fn raw_name(header: &mut tar::Header, name: &str) {
        let field = &mut header.as_old_mut().name;
        assert!(
            name.len() < field.len(),
            "name too long for a raw header: {name}"
        );
        field.fill(0);
        field[..name.len()].copy_from_slice(name.as_bytes());
    }

    fn raw_link(header: &mut tar::Header, target: &str) {
        let field = &mut header.as_old_mut().linkname;
        assert!(target.len() < field.len(), "link target too long: {target}");
        field.fill(0);
        field[..target.len()].copy_from_slice(target.as_bytes());
    }

    fn append(&mut self, mut header: tar::Header, name: &str, data: &[u8]) -> &mut Self {
        Self::raw_name(&mut header, name);
        header.set_cksum();
        self.builder
            .append(&header, data)
            .expect("appending to an in-memory tar");
        self
    }

    pub fn dir(&mut self, name: &str) -> &mut Self {
        self.append(Self::header(tar::EntryType::Directory, 0o755, 0), name, &[])
    }

    pub fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        self.append(
            Self::header(tar::EntryType::Regular, 0o644, data.len() as u64),
            name,
            data,
        )
    }

    pub fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        let mut header = Self::header(tar::EntryType::Symlink, 0o777, 0);
        Self::raw_link(&mut header, target);
        self.append(header, name, &[])
    }

    pub fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        let mut header = Self::header(tar::EntryType::Link, 0o644, 0);
        Self::raw_link(&mut header, target);
        self.append(header, name, &[])
    }

    pub fn char_device(&mut self, name: &str, major: u32, minor: u32) -> &mut Self {
        let mut header = Self::header(tar::EntryType::Char, 0o666, 0);
        header.set_device_major(major).expect("device major");
        header.set_device_minor(minor).expect("device minor");
        self.append(header, name, &[])
    }

    /// A regular file whose header claims `declared` bytes while only `data`
    /// follows (the archive is then cut short by [`TarBuf::finish_truncated`]
    /// or simply ends).
    pub fn file_declaring(&mut self, name: &str, declared: u64, data: &[u8]) -> &mut Self {
        let mut header = Self::header(tar::EntryType::Regular, 0o644, declared);
        Self::raw_name(&mut header, name);
        header.set_cksum();
        let inner = self.builder.get_mut();
        inner.extend_from_slice(header.as_bytes());
        inner.extend_from_slice(data);
        self
    }

    /// Append the whole of another directory tree under `prefix` ("." for the root).
    pub fn dir_tree(&mut self, prefix: &str, root: &std::path::Path) -> &mut Self {
        self.builder.follow_symlinks(false);
        self.builder
            .append_dir_all(prefix, root)
            .expect("tarring a directory");
        self
    }

    /// Finish with the two zero blocks.
    pub fn finish(self) -> Vec<u8> {
        self.builder
            .into_inner()
            .expect("finishing an in-memory tar")
    }

    /// The raw bytes written so far, without the end-of-archive blocks.
    pub fn finish_truncated(mut self) -> Vec<u8> {
        std::mem::take(self.builder.get_mut())
    }
}

/// `sha256:<hex>` of some bytes.
pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

/// Gzip some bytes.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).expect("gzip in memory");
    encoder.finish().expect("gzip in memory")
}
