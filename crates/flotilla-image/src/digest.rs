//! SHA-256 digests: the store's content addresses. Readers that hash what
//! flows through them let an import copy, verify and unpack in one pass.

use sha2::{Digest as _, Sha256};
use std::io::{self, Read, Write};

/// `sha256:<64 lowercase hex>` of a byte slice.
pub(crate) fn sha256_of(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

/// The hex part of a well-formed `sha256:<hex>` digest, or None.
pub(crate) fn sha256_hex(digest: &str) -> Option<&str> {
    let hex = digest.strip_prefix("sha256:")?;
    is_sha256_hex(hex).then_some(hex)
}

/// True for exactly 64 lowercase hex digits.
pub(crate) fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Hashes and counts every byte read through it.
pub(crate) struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// Read the rest of the stream (so the digest covers all of it) and
    /// return `(sha256:<hex>, bytes read)`.
    pub(crate) fn finish(mut self) -> io::Result<(String, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((format!("sha256:{:x}", self.hasher.finalize()), self.count))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// Hashes every byte read through it and also writes it to `copy`
/// (the staged blob file).
pub(crate) struct TeeReader<R, W> {
    inner: R,
    copy: W,
    hasher: Sha256,
    count: u64,
}

impl<R: Read, W: Write> TeeReader<R, W> {
    pub(crate) fn new(inner: R, copy: W) -> Self {
        TeeReader {
            inner,
            copy,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// Drain the rest of the stream into the copy and return
    /// `(sha256:<hex>, bytes read, the copy)`.
    pub(crate) fn finish(mut self) -> io::Result<(String, u64, W)> {
        io::copy(&mut self, &mut io::sink())?;
        self.copy.flush()?;
        Ok((
            format!("sha256:{:x}", self.hasher.finalize()),
            self.count,
            self.copy,
        ))
    }
}

impl<R: Read, W: Write> Read for TeeReader<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.copy.write_all(&buf[..n])?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_of_empty_is_the_well_known_one() {
        assert_eq!(
            sha256_of(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn hex_validation() {
        let good = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(sha256_hex(&format!("sha256:{good}")), Some(good));
        assert_eq!(sha256_hex(good), None);
        assert_eq!(sha256_hex("sha256:E3B0"), None);
        assert!(!is_sha256_hex(&good.to_uppercase()));
    }

    #[test]
    fn tee_copies_and_hashes_everything() {
        let mut tee = TeeReader::new(&b"hello world"[..], Vec::new());
        let mut first = [0u8; 5];
        tee.read_exact(&mut first).unwrap();
        let (digest, count, copy) = tee.finish().unwrap();
        assert_eq!(copy, b"hello world");
        assert_eq!(count, 11);
        assert_eq!(digest, sha256_of(b"hello world"));
    }
}
