//! Checksums of the files a catalog lists: a CRC-32 of the whole file,
//! computed while the file is written and compared by `CHECK TABLE`, so
//! that a flipped bit anywhere, in a page no query has read yet as well,
//! is found. (Parquet's own page CRCs are not written by the parquet
//! crate.) CRC-32 costs a fraction of a percent of a write; it finds
//! damage, not tampering.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

use crate::error::{Error, Result};

/// A writer that checksums what passes through it.
pub struct ChecksumWriter<W> {
    inner: W,
    hasher: crc32fast::Hasher,
}

impl<W: Write> ChecksumWriter<W> {
    pub fn new(inner: W) -> Self {
        ChecksumWriter {
            inner,
            hasher: crc32fast::Hasher::new(),
        }
    }

    /// The inner writer and the checksum of everything written.
    pub fn finish(self) -> (W, String) {
        (self.inner, format_crc(self.hasher.finalize()))
    }
}

impl<W: Write> Write for ChecksumWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The checksum of the file at `path`, as [`ChecksumWriter`] computes it.
pub fn file_checksum(path: &Path) -> Result<String> {
    if super::remote::is_remote(path) {
        let bytes = super::remote::read_all(path)?;
        return Ok(format_crc(crc32fast::hash(&bytes)));
    }
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(format_crc(hasher.finalize()))
}

/// The algorithm is part of the value, so another can be added later.
fn format_crc(crc: u32) -> String {
    format!("crc32:{crc:08x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_written_checksum_is_the_file_checksum_and_finds_one_flipped_bit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut w = ChecksumWriter::new(File::create(&path).unwrap());
        for chunk in [&b"spectral"[..], &[7u8; 5000][..], b"bands"] {
            w.write_all(chunk).unwrap();
        }
        let (_, written) = w.finish();
        assert_eq!(file_checksum(&path).unwrap(), written);
        assert!(
            written.starts_with("crc32:") && written.len() == 14,
            "{written}"
        );

        let mut bytes = std::fs::read(&path).unwrap();
        bytes[2500] ^= 0x10;
        std::fs::write(&path, bytes).unwrap();
        assert_ne!(file_checksum(&path).unwrap(), written);
        let err = file_checksum(&dir.path().join("missing")).unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
    }
}
