//! Content-addressed blobs under `ROOT/blobs/sha256/<hex>`.
//!
//! Contract of [`Ingester`]: bytes are written to a temp file in `ROOT/tmp/` (same file
//! system), hashed while written, checked against the expected digest when one is given (a
//! mismatch stores nothing), fsynced, renamed into place, and the directory fsynced. A blob
//! path therefore either does not exist or holds exactly the bytes of its digest.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use berth_oci::{Digest, Hasher};

use crate::error::{Error, Result};
use crate::staging::Staging;

/// What the store knows of a blob after writing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    /// The sha256 of the bytes.
    pub digest: Digest,
    /// Their length.
    pub size: u64,
}

/// Reads blobs by digest.
pub trait BlobReader {
    /// Opens the blob for reading.
    fn open_blob(&self, digest: &Digest) -> Result<File>;
    /// The blob's size, or `None` when it is not stored.
    fn blob_size(&self, digest: &Digest) -> Result<Option<u64>>;
    /// Reads a whole (small) blob, e.g. a manifest or config.
    fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        self.open_blob(digest)?
            .read_to_end(&mut buf)
            .map_err(Error::Read)?;
        Ok(buf)
    }
}

/// Writes blobs, verifying their digest.
pub trait Ingester {
    /// Starts a blob; write its bytes, then [`BlobWriter::commit`].
    fn begin_blob(&self) -> Result<BlobWriter>;
    /// Copies `reader` into a blob; with `expected`, a mismatch stores nothing.
    fn ingest(&self, reader: &mut dyn Read, expected: Option<&Digest>) -> Result<BlobInfo> {
        let mut w = self.begin_blob()?;
        io::copy(reader, &mut w).map_err(Error::Read)?;
        w.commit(expected)
    }
    /// Stores bytes held in memory.
    fn put_bytes(&self, bytes: &[u8]) -> Result<BlobInfo> {
        let mut w = self.begin_blob()?;
        w.write_all(bytes).map_err(Error::Read)?;
        w.commit(None)
    }
}

/// The blob directory of one store root.
#[derive(Debug, Clone)]
pub struct BlobStore {
    dir: PathBuf,
    tmp: PathBuf,
}

impl BlobStore {
    /// Blobs under `root/blobs/sha256`, staged in `root/tmp`.
    pub fn new(root: &Path) -> Result<Self> {
        let dir = root.join("blobs").join("sha256");
        let tmp = root.join("tmp");
        for d in [&dir, &tmp] {
            fs::create_dir_all(d).map_err(Error::io("creating", d.as_path()))?;
        }
        Ok(BlobStore { dir, tmp })
    }

    /// Where the blob lives (whether or not it exists).
    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.dir.join(digest.hex())
    }

    /// Whether the blob is stored.
    pub fn contains(&self, digest: &Digest) -> bool {
        self.path(digest).is_file()
    }

    /// Removes a blob; a missing blob is not an error.
    pub fn remove(&self, digest: &Digest) -> Result<()> {
        let p = self.path(digest);
        match fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("removing", p)(e)),
        }
    }

    /// Every stored blob's digest (files whose names are not digests are skipped).
    pub fn list(&self) -> Result<Vec<Digest>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(Error::io("listing", self.dir.as_path()))? {
            let entry = entry.map_err(Error::io("listing", self.dir.as_path()))?;
            if let Some(name) = entry.file_name().to_str() {
                if let Ok(d) = Digest::from_hex(name) {
                    out.push(d);
                }
            }
        }
        Ok(out)
    }

    /// Reads a whole (small) blob; the same as [`BlobReader::read_blob`], callable without
    /// importing the trait.
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>> {
        BlobReader::read_blob(self, digest)
    }

    /// The staging directory (same file system as the blobs).
    pub fn tmp_dir(&self) -> &Path {
        &self.tmp
    }
}

impl BlobReader for BlobStore {
    fn open_blob(&self, digest: &Digest) -> Result<File> {
        let p = self.path(digest);
        File::open(&p).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                Error::BlobNotFound(digest.clone())
            } else {
                Error::io("opening", p)(e)
            }
        })
    }

    fn blob_size(&self, digest: &Digest) -> Result<Option<u64>> {
        let p = self.path(digest);
        match fs::metadata(&p) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("reading metadata of", p)(e)),
        }
    }
}

impl Ingester for BlobStore {
    fn begin_blob(&self) -> Result<BlobWriter> {
        let (staging, file) = Staging::new_file_in(&self.tmp, "blob")?;
        Ok(BlobWriter {
            dir: self.dir.clone(),
            staging,
            file: BufWriter::with_capacity(1 << 20, file),
            hasher: Hasher::new(),
        })
    }
}

/// A blob being written: hashed as bytes pass, stored only by [`BlobWriter::commit`].
/// Dropping it without committing removes the temp file.
pub struct BlobWriter {
    dir: PathBuf,
    /// The temp file's owner lock (see [`crate::staging`]).
    staging: Staging,
    file: BufWriter<File>,
    hasher: Hasher,
}

impl BlobWriter {
    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.hasher.len()
    }

    /// Whether nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.hasher.is_empty()
    }

    /// The digest of what was written so far (the blob's digest once all is written).
    pub fn digest(&self) -> Digest {
        self.hasher.clone().finish()
    }

    /// Starts writing what was written so far to the disk without waiting for it, so that
    /// the final [`BlobWriter::commit`] of a large blob (which syncs) waits only for the
    /// last part. Writers that stream big blobs call it every few megabytes.
    pub fn start_writeback(&mut self) -> io::Result<()> {
        self.file.flush()?;
        berth_oci::writeback::start_writeback(self.file.get_ref())
    }

    /// Verifies the digest (when `expected` is given), fsyncs, renames into place and
    /// fsyncs the directory. A blob that exists already is kept and the copy dropped.
    pub fn commit(self, expected: Option<&Digest>) -> Result<BlobInfo> {
        let size = self.hasher.len();
        let digest = self.hasher.finish();
        let buf = self.file;
        if let Some(expected) = expected {
            if *expected != digest {
                return Err(Error::DigestMismatch {
                    expected: expected.clone(),
                    actual: digest,
                });
            }
        }
        let tmp = buf.into_inner().map_err(|e| Error::Read(e.into_error()))?;
        let target = self.dir.join(digest.hex());
        if target.is_file() {
            return Ok(BlobInfo { digest, size });
        }
        let staged = self.staging.path();
        tmp.sync_data().map_err(Error::io("syncing", staged))?;
        fs::rename(staged, &target).map_err(Error::io("renaming into", target.as_path()))?;
        sync_dir(&self.dir)?;
        Ok(BlobInfo { digest, size })
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// fsyncs a directory so that renames into it survive a crash.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(Error::io("syncing directory", dir))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ingest_verifies_and_dedupes() {
        let root = tempfile::tempdir().unwrap();
        let blobs = BlobStore::new(root.path()).unwrap();
        let info = blobs.put_bytes(b"hello").unwrap();
        assert_eq!(info.digest, Digest::of(b"hello"));
        assert_eq!(blobs.read_blob(&info.digest).unwrap(), b"hello");
        let again = blobs
            .ingest(&mut &b"hello"[..], Some(&Digest::of(b"hello")))
            .unwrap();
        assert_eq!(again, info);
        let bad = blobs.ingest(&mut &b"evil"[..], Some(&Digest::of(b"good")));
        assert!(matches!(bad, Err(Error::DigestMismatch { .. })));
        assert!(!blobs.contains(&Digest::of(b"evil")));
        assert_eq!(fs::read_dir(blobs.tmp_dir()).unwrap().count(), 0);
        assert_eq!(blobs.list().unwrap(), vec![info.digest]);
    }
}
