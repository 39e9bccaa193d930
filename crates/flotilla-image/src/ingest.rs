//! One pass over a layer blob: copy it into the staging area, hash it (blob
//! digest), decompress and hash again (diff ID), and unpack it — reading the
//! input only once, which keeps imports fast.

use crate::digest::{HashingReader, TeeReader};
use crate::error::{ImageError, Result};
use crate::unpack::{unpack_layer, UnpackOptions};
use oci_spec::image::MediaType;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, BufWriter, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

const READ_BUFFER: usize = 256 * 1024;
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// How a layer blob is compressed, from its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    pub(crate) fn sniff(head: &[u8]) -> Compression {
        if head.starts_with(&GZIP_MAGIC) {
            Compression::Gzip
        } else if head.starts_with(&ZSTD_MAGIC) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// The OCI layer media type for a blob compressed this way.
    pub(crate) fn layer_media_type(self) -> MediaType {
        match self {
            Compression::None => MediaType::ImageLayer,
            Compression::Gzip => MediaType::ImageLayerGzip,
            Compression::Zstd => MediaType::ImageLayerZstd,
        }
    }
}

/// Wrap a buffered compressed stream in the matching decoder.
pub(crate) fn decoder<'a, R: BufRead + 'a>(
    compression: Compression,
    input: R,
    what: &str,
) -> Result<Box<dyn Read + 'a>> {
    Ok(match compression {
        Compression::None => Box::new(input),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(input)),
        Compression::Zstd => Box::new(ZstdFrames::new(input, what)?),
    })
}

/// Decodes every zstd frame in a stream: `zstd -T0` and pzstd write several
/// frames, while ruzstd's streaming decoder stops after one.
struct ZstdFrames<R: BufRead> {
    decoder: Option<ruzstd::decoding::StreamingDecoder<R, ruzstd::decoding::FrameDecoder>>,
}

impl<R: BufRead> ZstdFrames<R> {
    fn new(input: R, what: &str) -> Result<Self> {
        let decoder = ruzstd::decoding::StreamingDecoder::new(input)
            .map_err(|e| ImageError::malformed(what, format!("bad zstd stream: {e}")))?;
        Ok(ZstdFrames {
            decoder: Some(decoder),
        })
    }
}

impl<R: BufRead> Read for ZstdFrames<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let Some(decoder) = self.decoder.as_mut() else {
                return Ok(0);
            };
            let n = decoder.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            // End of a frame: another frame follows unless the input is exhausted.
            let (mut input, frame_decoder) =
                self.decoder.take().expect("decoder present").into_parts();
            if input.fill_buf()?.is_empty() {
                return Ok(0);
            }
            let decoder =
                ruzstd::decoding::StreamingDecoder::new_with_decoder(input, frame_decoder)
                    .map_err(|e| {
                        io::Error::new(io::ErrorKind::InvalidData, format!("bad zstd frame: {e}"))
                    })?;
            self.decoder = Some(decoder);
        }
    }
}

/// What the archive promises about a layer; checked after the pass.
pub(crate) struct LayerExpectations<'a> {
    /// Name for errors (archive member).
    pub name: &'a str,
    pub blob_digest: Option<&'a str>,
    pub diff_id: Option<&'a str>,
    /// False when the unpacked layer is already in the store: only verify.
    pub unpack: bool,
    pub as_root: bool,
    /// Length of the raw stream when known: bounds entry sizes of an uncompressed layer.
    pub raw_size: Option<u64>,
}

/// A layer copied, verified and (maybe) unpacked into the staging area.
pub(crate) struct StagedLayer {
    pub blob_digest: String,
    pub blob_size: u64,
    pub diff_id: String,
    pub media_type: MediaType,
    /// The staged blob file, to be renamed into `blobs/sha256/`; None when the store has it.
    pub blob_file: Option<PathBuf>,
    /// The staged unpacked directory, to be renamed into `layers/`; None when the store has it.
    pub layer_dir: Option<PathBuf>,
}

/// Copy, hash, decompress and unpack one layer blob from `input` into
/// `staging` (files named after `slot`, unique within this import).
pub(crate) fn ingest_layer(
    input: impl Read,
    staging: &Path,
    slot: usize,
    expect: &LayerExpectations<'_>,
) -> Result<StagedLayer> {
    let blob_file = staging.join(format!("blob-{slot}"));
    let layer_dir = staging.join(format!("layer-{slot}"));
    let out = File::create(&blob_file).map_err(|e| ImageError::io_at("creating", &blob_file, e))?;
    let mut tee = TeeReader::new(input, BufWriter::with_capacity(READ_BUFFER, out));
    let (compression, diff_id, raw_len) = {
        let mut buffered = BufReader::with_capacity(READ_BUFFER, &mut tee);
        let head = buffered
            .fill_buf()
            .map_err(|e| ImageError::io(format!("reading layer {}", expect.name), e))?;
        let compression = Compression::sniff(head);
        let raw_len = head.len();
        let diff_id = {
            let mut plain = HashingReader::new(decoder(compression, &mut buffered, expect.name)?);
            if expect.unpack {
                fs::create_dir(&layer_dir)
                    .map_err(|e| ImageError::io_at("creating", &layer_dir, e))?;
                fs::set_permissions(&layer_dir, fs::Permissions::from_mode(0o755))
                    .map_err(|e| ImageError::io_at("setting mode of", &layer_dir, e))?;
                let opts = UnpackOptions {
                    layer: expect.name,
                    as_root: expect.as_root,
                    max_entry_size: if compression == Compression::None {
                        expect.raw_size
                    } else {
                        None
                    },
                };
                unpack_layer(&mut plain, &layer_dir, &opts)?;
            }
            let (diff_id, _) = plain.finish().map_err(|e| {
                ImageError::malformed(
                    format!("layer {}", expect.name),
                    format!("broken or truncated stream: {e}"),
                )
            })?;
            diff_id
        };
        // Whatever follows the compressed stream still belongs to the blob.
        io::copy(&mut buffered, &mut io::sink())
            .map_err(|e| ImageError::io(format!("reading layer {}", expect.name), e))?;
        (compression, diff_id, raw_len)
    };
    let (blob_digest, blob_size, _) = tee.finish().map_err(|e| {
        ImageError::io(
            format!("copying layer {} to {}", expect.name, blob_file.display()),
            e,
        )
    })?;
    if raw_len == 0 {
        return Err(ImageError::malformed(
            format!("layer {}", expect.name),
            "empty blob",
        ));
    }
    if let Some(expected) = expect.blob_digest {
        if expected != blob_digest {
            return Err(ImageError::DigestMismatch {
                blob: expect.name.to_string(),
                expected: expected.to_string(),
                actual: blob_digest,
            });
        }
    }
    if let Some(expected) = expect.diff_id {
        if expected != diff_id {
            return Err(ImageError::DigestMismatch {
                blob: format!("{} (uncompressed layer, config diff_id)", expect.name),
                expected: expected.to_string(),
                actual: diff_id,
            });
        }
    }
    Ok(StagedLayer {
        blob_digest,
        blob_size,
        diff_id,
        media_type: compression.layer_media_type(),
        blob_file: Some(blob_file),
        layer_dir: expect.unpack.then_some(layer_dir),
    })
}
