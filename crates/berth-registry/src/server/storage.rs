//! Where the registry keeps blobs, uploads, manifests and tags.
//!
//! [`Storage`] is the contract every backend keeps: content-addressed blobs that become
//! visible only whole and verified, uploads that live apart from blobs until committed, and
//! per-repository links (which blobs and manifests a repository holds, its tags, its
//! referrers). Every operation is keyed, stateless and idempotent, so several registry
//! replicas can share one backend. [`FsStorage`] is the embedded default: a directory.
//!
//! Layout of [`FsStorage`]:
//!
//! ```text
//! blobs/sha256/<2 hex>/<64 hex>                   content, renamed into place when verified
//! uploads/<id>/data                                upload in progress
//! uploads/<id>/owner                               "<repository>\n<subject>" that opened it
//! gc/<64 hex>.<random>                             a blob being swept (see `gc.rs`)
//! signing-key                                      the token HMAC key (hex, 0600)
//! repositories/<name>/_layers/<hex>                blob linked to the repository
//! repositories/<name>/_manifests/revisions/<hex>   manifest in the repository (holds its media type)
//! repositories/<name>/_manifests/tags/<tag>        tag -> "sha256:<hex>"
//! repositories/<name>/_referrers/<subject hex>/<hex>   descriptor JSON of a referrer
//! ```
//!
//! The directory is closed to other users (0700, fixed at every open): blobs are images'
//! layers, which may hold setuid binaries and secrets.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use berth_oci::writeback::WriteBehind;
use berth_oci::{Digest, Hasher};

use crate::name::RepoName;

/// What went wrong in a storage backend.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The blob does not exist.
    #[error("blob {0} not found")]
    BlobNotFound(Digest),
    /// The upload does not exist (never started, committed or cancelled).
    #[error("upload {0} not found")]
    UploadNotFound(String),
    /// The uploaded bytes do not hash to the digest given.
    #[error("upload {id}: content is {actual}, not {expected}")]
    DigestMismatch {
        /// The upload.
        id: String,
        /// The digest the client named.
        expected: Digest,
        /// The digest of the bytes received.
        actual: Digest,
    },
    /// An object store request failed (after its retries) or answered something unusable.
    #[error("object store: {op} {key}: {detail}")]
    Backend {
        /// The S3 operation.
        op: String,
        /// The key (or bucket) concerned.
        key: String,
        /// What the store answered, or why no answer came.
        detail: String,
    },
    /// An I/O error on a path.
    #[error("storage I/O on {path}: {source}")]
    Io {
        /// The path concerned.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

/// The broad kind of a [`StorageError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageErrorKind {
    /// Something asked for does not exist.
    NotFound,
    /// The content did not match its digest.
    InvalidContent,
    /// The backend failed.
    Internal,
}

impl StorageError {
    /// The kind of error.
    pub fn kind(&self) -> StorageErrorKind {
        match self {
            StorageError::BlobNotFound(_) | StorageError::UploadNotFound(_) => {
                StorageErrorKind::NotFound
            }
            StorageError::DigestMismatch { .. } => StorageErrorKind::InvalidContent,
            StorageError::Io { .. } | StorageError::Backend { .. } => StorageErrorKind::Internal,
        }
    }
}

/// A readable, seekable blob.
pub trait BlobRead: Read + Seek + Send {}
impl<T: Read + Seek + Send> BlobRead for T {}

/// An open upload: bytes appended in order.
pub trait UploadWrite: Write + Send {
    /// Bytes in the upload so far.
    fn len(&self) -> u64;
    /// Whether nothing has been written yet.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Ends the writes of this request, reporting any deferred write error (the bytes are
    /// made durable by [`Storage::commit_upload`], not here).
    fn finish(self: Box<Self>) -> io::Result<()> {
        Ok(())
    }
}

/// Which kind of link a repository holds to content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkKind {
    /// A blob (layer or config) pushed to or mounted into the repository.
    Layer,
    /// A manifest of the repository.
    Manifest,
}

/// The contract of a registry storage backend.
///
/// Blobs become visible atomically and only after their digest is verified: after a crash at
/// any point a blob is either absent or whole. All methods are blocking; the server calls
/// them from blocking threads.
pub trait Storage: Send + Sync + 'static {
    /// The size of a blob, or `None` when absent.
    fn blob_size(&self, digest: &Digest) -> Result<Option<u64>, StorageError>;
    /// Opens a blob for reading.
    fn open_blob(&self, digest: &Digest) -> Result<Box<dyn BlobRead>, StorageError>;
    /// Reads a whole (small) blob.
    fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>, StorageError>;
    /// Stores bytes whose digest the caller has computed as `digest`.
    fn put_blob(&self, digest: &Digest, bytes: &[u8]) -> Result<(), StorageError>;
    /// Deletes a blob; `false` when it was absent.
    fn delete_blob(&self, digest: &Digest) -> Result<bool, StorageError>;
    /// Every blob stored.
    fn list_blobs(&self) -> Result<Vec<Digest>, StorageError>;
    /// When a blob was stored or last touched, if the backend knows.
    fn blob_modified(&self, _digest: &Digest) -> Option<SystemTime> {
        None
    }
    /// Sets a blob's modification time to now (a manifest PUT that references it, a mount,
    /// a HEAD of a push); `false` when the blob is absent. The collector never sweeps a blob
    /// touched after its cutoff (see `gc.rs`).
    fn touch_blob(&self, digest: &Digest) -> Result<bool, StorageError>;
    /// Deletes a blob only if it was last modified before `cutoff`, judged after the blob
    /// has been taken out of reach of readers and touches, so a touch that lands at any
    /// moment either fails (the blob was gone) or keeps the blob. Returns the bytes freed,
    /// `None` when the blob was kept or absent.
    fn sweep_blob(&self, digest: &Digest, cutoff: SystemTime) -> Result<Option<u64>, StorageError>;

    /// Creates an empty upload owned by `owner` (the repository and subject that opened
    /// it, an opaque string to the backend).
    fn start_upload(&self, id: &str, owner: &str) -> Result<(), StorageError>;
    /// The owner an upload was started with, or `None` when it does not exist.
    fn upload_owner(&self, id: &str) -> Result<Option<String>, StorageError>;
    /// The bytes received by an upload, or `None` when it does not exist.
    fn upload_size(&self, id: &str) -> Result<Option<u64>, StorageError>;
    /// Opens an upload for appending.
    fn append_upload(&self, id: &str) -> Result<Box<dyn UploadWrite>, StorageError>;
    /// Verifies the upload against `digest` and makes it the blob `digest`; `hashed` is the
    /// hash state of the whole upload when the caller kept it (else the upload is re-read).
    /// On a mismatch the upload is removed and nothing is stored.
    fn commit_upload(
        &self,
        id: &str,
        digest: &Digest,
        hashed: Option<Hasher>,
    ) -> Result<u64, StorageError>;
    /// Removes an upload; `false` when it was absent.
    fn cancel_upload(&self, id: &str) -> Result<bool, StorageError>;
    /// Every upload with its last modification time.
    fn list_uploads(&self) -> Result<Vec<(String, SystemTime)>, StorageError>;

    /// Links content to a repository.
    fn link(
        &self,
        repo: &RepoName,
        kind: LinkKind,
        digest: &Digest,
        meta: &[u8],
    ) -> Result<(), StorageError>;
    /// The link's metadata, or `None` when the repository does not hold the content.
    fn linked(
        &self,
        repo: &RepoName,
        kind: LinkKind,
        digest: &Digest,
    ) -> Result<Option<Vec<u8>>, StorageError>;
    /// Removes a link; `false` when absent.
    fn unlink(
        &self,
        repo: &RepoName,
        kind: LinkKind,
        digest: &Digest,
    ) -> Result<bool, StorageError>;
    /// Every link of a kind in a repository.
    fn list_links(&self, repo: &RepoName, kind: LinkKind) -> Result<Vec<Digest>, StorageError>;

    /// Points a tag at a manifest.
    fn set_tag(&self, repo: &RepoName, tag: &str, digest: &Digest) -> Result<(), StorageError>;
    /// The manifest a tag points at.
    fn tag(&self, repo: &RepoName, tag: &str) -> Result<Option<Digest>, StorageError>;
    /// Removes a tag; `false` when absent.
    fn delete_tag(&self, repo: &RepoName, tag: &str) -> Result<bool, StorageError>;
    /// Removes a tag only while it still points at `digest`; `false` when it was absent or
    /// points elsewhere (a tag moved meanwhile by another replica is kept). Backends with
    /// conditional deletes make the check and the removal one step.
    fn delete_tag_if(
        &self,
        repo: &RepoName,
        tag: &str,
        digest: &Digest,
    ) -> Result<bool, StorageError> {
        if self.tag(repo, tag)?.as_ref() != Some(digest) {
            return Ok(false);
        }
        self.delete_tag(repo, tag)
    }
    /// The tags of a repository, sorted; `None` when the repository does not exist.
    fn tags(&self, repo: &RepoName) -> Result<Option<Vec<String>>, StorageError>;
    /// Every repository, sorted.
    fn repositories(&self) -> Result<Vec<String>, StorageError>;

    /// Records `descriptor` (JSON) as a referrer of `subject`.
    fn add_referrer(
        &self,
        repo: &RepoName,
        subject: &Digest,
        referrer: &Digest,
        descriptor: &[u8],
    ) -> Result<(), StorageError>;
    /// Removes a referrer record.
    fn remove_referrer(
        &self,
        repo: &RepoName,
        subject: &Digest,
        referrer: &Digest,
    ) -> Result<(), StorageError>;
    /// The descriptors (JSON) of the referrers of `subject`.
    fn referrers(&self, repo: &RepoName, subject: &Digest) -> Result<Vec<Vec<u8>>, StorageError>;

    /// The key that signs tokens: made once (random, 32 bytes), kept by the backend and the
    /// same for every replica and every restart; when two replicas start at once, both get
    /// the one that was stored first.
    fn signing_key(&self) -> Result<Vec<u8>, StorageError>;
    /// A URL the client may fetch the blob from directly (a presigned object URL), when the
    /// backend offers one and is configured to.
    fn blob_redirect(&self, _digest: &Digest) -> Option<String> {
        None
    }
    /// Removes what interrupted writes left behind (temp files older than `max_age`) and
    /// puts back blobs a killed collector had taken out; returns how many entries it handled.
    fn clean_debris(&self, max_age: Duration) -> Result<usize, StorageError>;
}

/// The embedded backend: a directory, with atomic writes (temp file, fsync, rename, fsync of
/// the directory).
#[derive(Debug, Clone)]
pub struct FsStorage {
    root: PathBuf,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StorageError + '_ {
    move |source| StorageError::Io {
        path: path.to_owned(),
        source,
    }
}

fn not_found_is_none<T>(r: io::Result<T>) -> io::Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

struct FileUpload {
    // Flushed while the upload arrives, so the fsync of the commit is short; its pages stay
    // cached for the pulls that follow a push.
    file: WriteBehind,
    len: u64,
}

impl Write for FileUpload {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.len += n as u64;
        Ok(n)
    }
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        let n = self.file.write_vectored(bufs)?;
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl UploadWrite for FileUpload {
    fn len(&self) -> u64 {
        self.len
    }
    fn finish(self: Box<Self>) -> io::Result<()> {
        self.file.finish().map(drop)
    }
}

/// Creates `dir` and its missing parents, closed to other users.
fn mkdirs(dir: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Creates (truncating) a file readable by its owner only.
fn create_private(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

/// Takes every permission of group and others from `path` when it has any (a storage made
/// by an older berth): 0755 becomes 0700, 0644 becomes 0600.
fn close_to_others(path: &Path) -> io::Result<()> {
    let mode = fs::metadata(path)?.permissions().mode();
    if mode & 0o077 != 0 {
        fs::set_permissions(path, fs::Permissions::from_mode(mode & 0o700))?;
    }
    Ok(())
}

/// Whether a file was last modified before `cutoff` (unknown times count as recent: keeping
/// is the safe side).
fn modified_before(meta: &fs::Metadata, cutoff: SystemTime) -> bool {
    meta.modified().map(|m| m < cutoff).unwrap_or(false)
}

/// Sets the modification time of `path` to now; `Ok(false)` when it does not exist.
fn touch(path: &Path) -> io::Result<bool> {
    use rustix::fs::{utimensat, AtFlags, Timestamps, CWD, UTIME_NOW, UTIME_OMIT};
    let times = Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: 0,
            tv_nsec: UTIME_OMIT,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: 0,
            tv_nsec: UTIME_NOW,
        },
    };
    match utimensat(CWD, path, &times, AtFlags::empty()) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::NOENT) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Renames `from` to `to` unless `to` exists (`Ok(false)` then).
fn rename_noreplace(from: &Path, to: &Path) -> io::Result<bool> {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    match renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::EXIST) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// The name of the file that holds the token signing key.
const SIGNING_KEY: &str = "signing-key";

impl FsStorage {
    /// Opens (creating) a storage directory, closed to other users (its mode is fixed when
    /// an older berth made it open).
    pub fn open(root: impl Into<PathBuf>) -> Result<FsStorage, StorageError> {
        let root = root.into();
        mkdirs(&root).map_err(io_err(&root))?;
        close_to_others(&root).map_err(io_err(&root))?;
        for sub in ["blobs", "blobs/sha256", "uploads", "repositories", "gc"] {
            let p = root.join(sub);
            mkdirs(&p).map_err(io_err(&p))?;
            close_to_others(&p).map_err(io_err(&p))?;
        }
        Ok(FsStorage { root })
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn blob_path(&self, d: &Digest) -> PathBuf {
        let hex = d.hex();
        self.root.join("blobs/sha256").join(&hex[..2]).join(hex)
    }

    /// The directory of an upload.
    fn upload_path(&self, id: &str) -> Result<PathBuf, StorageError> {
        // Upload ids are server-made; refuse anything that could leave the directory.
        if id.is_empty()
            || id.len() > 64
            || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(StorageError::UploadNotFound(id.chars().take(80).collect()));
        }
        Ok(self.root.join("uploads").join(id))
    }

    fn upload_data(&self, id: &str) -> Result<PathBuf, StorageError> {
        Ok(self.upload_path(id)?.join("data"))
    }

    fn repo_dir(&self, repo: &RepoName) -> PathBuf {
        self.root.join("repositories").join(repo.as_str())
    }

    fn link_path(&self, repo: &RepoName, kind: LinkKind, d: &Digest) -> PathBuf {
        let sub = match kind {
            LinkKind::Layer => "_layers",
            LinkKind::Manifest => "_manifests/revisions",
        };
        self.repo_dir(repo).join(sub).join(d.hex())
    }

    /// Writes `bytes` to `path` atomically: a temp file beside it, fsync, rename, dir fsync.
    fn write_atomic(&self, path: &Path, bytes: &[u8]) -> Result<(), StorageError> {
        let dir = path.parent().unwrap_or(&self.root);
        mkdirs(dir).map_err(io_err(dir))?;
        let tmp = dir.join(format!(".tmp-{}", random_id()));
        let res = (|| {
            let mut f = create_private(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
            fs::rename(&tmp, path)?;
            sync_dir(dir)
        })();
        if res.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        res.map_err(io_err(path))
    }

    /// Moves a verified file into the blob store.
    fn install_blob(&self, from: &Path, d: &Digest) -> Result<(), StorageError> {
        let to = self.blob_path(d);
        let dir = to.parent().unwrap_or(&self.root);
        mkdirs(dir).map_err(io_err(dir))?;
        fs::rename(from, &to).map_err(io_err(&to))?;
        sync_dir(dir).map_err(io_err(dir))
    }

    /// Puts a blob the collector had taken out back in place (or drops it when the same
    /// content was stored again meanwhile).
    fn restore_swept(&self, taken: &Path, d: &Digest) -> io::Result<()> {
        if !rename_noreplace(taken, &self.blob_path(d))? {
            fs::remove_file(taken)?;
        }
        Ok(())
    }

    /// Removes `.tmp-*` files older than `cutoff` under `dir`, recursively, and closes to
    /// other users what an older berth left open (the storage's own mode already bars
    /// them; this keeps a copied or re-exposed tree closed too).
    fn remove_old_temps(dir: &Path, cutoff: SystemTime, removed: &mut usize) -> io::Result<()> {
        let rd = match fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        for entry in rd {
            let entry = entry?;
            // (gone meanwhile: swept, committed or renamed by another replica)
            let Some(meta) = not_found_is_none(entry.metadata())? else {
                continue;
            };
            let mode = meta.permissions().mode();
            if mode & 0o077 != 0 && !meta.file_type().is_symlink() {
                not_found_is_none(fs::set_permissions(
                    entry.path(),
                    fs::Permissions::from_mode(mode & 0o700),
                ))?;
            }
            if meta.is_dir() {
                Self::remove_old_temps(&entry.path(), cutoff, removed)?;
            } else if entry.file_name().to_string_lossy().starts_with(".tmp-")
                && modified_before(&meta, cutoff)
                && not_found_is_none(fs::remove_file(entry.path()))?.is_some()
            {
                *removed += 1;
            }
        }
        Ok(())
    }
}

/// A random identifier of 32 hex characters.
pub fn random_id() -> String {
    let raw: [u8; 16] = rand::random();
    hex::encode(raw)
}

fn list_dir_names(dir: &Path) -> io::Result<Vec<String>> {
    let mut out = Vec::new();
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for entry in rd {
        let entry = entry?;
        if let Some(name) = entry.file_name().to_str() {
            if !name.starts_with('.') {
                out.push(name.to_owned());
            }
        }
    }
    out.sort();
    Ok(out)
}

impl Storage for FsStorage {
    fn blob_size(&self, digest: &Digest) -> Result<Option<u64>, StorageError> {
        let p = self.blob_path(digest);
        Ok(not_found_is_none(fs::metadata(&p))
            .map_err(io_err(&p))?
            .map(|m| m.len()))
    }

    fn open_blob(&self, digest: &Digest) -> Result<Box<dyn BlobRead>, StorageError> {
        let p = self.blob_path(digest);
        match File::open(&p) {
            Ok(f) => Ok(Box::new(f)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(StorageError::BlobNotFound(digest.clone()))
            }
            Err(e) => Err(io_err(&p)(e)),
        }
    }

    fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>, StorageError> {
        let p = self.blob_path(digest);
        match fs::read(&p) {
            Ok(b) => Ok(b),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(StorageError::BlobNotFound(digest.clone()))
            }
            Err(e) => Err(io_err(&p)(e)),
        }
    }

    fn put_blob(&self, digest: &Digest, bytes: &[u8]) -> Result<(), StorageError> {
        // Stored already: touched instead, so it counts as new to the collector.
        if self.touch_blob(digest)? {
            return Ok(());
        }
        self.write_atomic(&self.blob_path(digest), bytes)
    }

    fn delete_blob(&self, digest: &Digest) -> Result<bool, StorageError> {
        let p = self.blob_path(digest);
        Ok(not_found_is_none(fs::remove_file(&p))
            .map_err(io_err(&p))?
            .is_some())
    }

    fn list_blobs(&self) -> Result<Vec<Digest>, StorageError> {
        let base = self.root.join("blobs/sha256");
        let mut out = Vec::new();
        for prefix in list_dir_names(&base).map_err(io_err(&base))? {
            let dir = base.join(&prefix);
            for name in list_dir_names(&dir).map_err(io_err(&dir))? {
                if let Ok(d) = Digest::from_hex(&name) {
                    out.push(d);
                }
            }
        }
        Ok(out)
    }

    fn blob_modified(&self, digest: &Digest) -> Option<SystemTime> {
        fs::metadata(self.blob_path(digest)).ok()?.modified().ok()
    }

    fn touch_blob(&self, digest: &Digest) -> Result<bool, StorageError> {
        let p = self.blob_path(digest);
        touch(&p).map_err(io_err(&p))
    }

    fn sweep_blob(&self, digest: &Digest, cutoff: SystemTime) -> Result<Option<u64>, StorageError> {
        let p = self.blob_path(digest);
        // Out of reach first (a touch of the blob's path fails from here on), then judged
        // by the time it was last touched before that.
        let taken = self
            .root
            .join("gc")
            .join(format!("{}.{}", digest.hex(), random_id()));
        match fs::rename(&p, &taken) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&p)(e)),
        }
        let meta = fs::metadata(&taken).map_err(io_err(&taken));
        match meta {
            Ok(m) if modified_before(&m, cutoff) => {
                fs::remove_file(&taken).map_err(io_err(&taken))?;
                Ok(Some(m.len()))
            }
            other => {
                self.restore_swept(&taken, digest).map_err(io_err(&p))?;
                other.map(|_| None)
            }
        }
    }

    fn start_upload(&self, id: &str, owner: &str) -> Result<(), StorageError> {
        let dir = self.upload_path(id)?;
        // A fresh directory: an id never names two uploads.
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(io_err(&dir))?;
        let res = (|| {
            create_private(&dir.join("owner"))?.write_all(owner.as_bytes())?;
            create_private(&dir.join("data")).map(drop)
        })();
        if let Err(e) = res {
            let _ = fs::remove_dir_all(&dir);
            return Err(io_err(&dir)(e));
        }
        Ok(())
    }

    fn upload_owner(&self, id: &str) -> Result<Option<String>, StorageError> {
        let p = self.upload_path(id)?.join("owner");
        not_found_is_none(fs::read_to_string(&p)).map_err(io_err(&p))
    }

    fn upload_size(&self, id: &str) -> Result<Option<u64>, StorageError> {
        let p = self.upload_data(id)?;
        Ok(not_found_is_none(fs::metadata(&p))
            .map_err(io_err(&p))?
            .map(|m| m.len()))
    }

    fn append_upload(&self, id: &str) -> Result<Box<dyn UploadWrite>, StorageError> {
        let p = self.upload_data(id)?;
        let file = match OpenOptions::new().append(true).open(&p) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StorageError::UploadNotFound(id.to_owned()))
            }
            Err(e) => return Err(io_err(&p)(e)),
        };
        let len = file.metadata().map_err(io_err(&p))?.len();
        Ok(Box::new(FileUpload {
            file: WriteBehind::keeping(file),
            len,
        }))
    }

    fn commit_upload(
        &self,
        id: &str,
        digest: &Digest,
        hashed: Option<Hasher>,
    ) -> Result<u64, StorageError> {
        let dir = self.upload_path(id)?;
        let p = dir.join("data");
        let mut file = match File::open(&p) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StorageError::UploadNotFound(id.to_owned()))
            }
            Err(e) => return Err(io_err(&p)(e)),
        };
        let len = file.metadata().map_err(io_err(&p))?.len();
        let hasher = match hashed {
            Some(h) if h.len() == len => h,
            _ => {
                let mut h = Hasher::new();
                let mut buf = vec![0u8; 1 << 20];
                loop {
                    let n = file.read(&mut buf).map_err(io_err(&p))?;
                    if n == 0 {
                        break;
                    }
                    h.update(&buf[..n]);
                }
                h
            }
        };
        let actual = hasher.finish();
        if &actual != digest {
            let _ = fs::remove_dir_all(&dir);
            return Err(StorageError::DigestMismatch {
                id: id.to_owned(),
                expected: digest.clone(),
                actual,
            });
        }
        // Another upload of the same content won; ours is redundant (the blob is touched:
        // a push is about to reference it).
        if !self.touch_blob(digest)? {
            file.sync_all().map_err(io_err(&p))?;
            drop(file);
            self.install_blob(&p, digest)?;
        }
        let _ = fs::remove_dir_all(&dir);
        Ok(len)
    }

    fn cancel_upload(&self, id: &str) -> Result<bool, StorageError> {
        let p = self.upload_path(id)?;
        // (a plain file: an upload of a berth that kept no owner)
        let removed = match fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => fs::remove_dir_all(&p),
            Ok(_) => fs::remove_file(&p),
            Err(e) => Err(e),
        };
        Ok(not_found_is_none(removed).map_err(io_err(&p))?.is_some())
    }

    fn list_uploads(&self) -> Result<Vec<(String, SystemTime)>, StorageError> {
        let dir = self.root.join("uploads");
        let mut out = Vec::new();
        for name in list_dir_names(&dir).map_err(io_err(&dir))? {
            let p = dir.join(&name);
            // The data's time (the last byte received), else the directory's.
            let meta = match not_found_is_none(fs::metadata(p.join("data"))) {
                Ok(Some(m)) => Some(m),
                _ => not_found_is_none(fs::metadata(&p)).map_err(io_err(&p))?,
            };
            if let Some(m) = meta {
                out.push((name, m.modified().unwrap_or(SystemTime::UNIX_EPOCH)));
            }
        }
        Ok(out)
    }

    fn link(
        &self,
        repo: &RepoName,
        kind: LinkKind,
        digest: &Digest,
        meta: &[u8],
    ) -> Result<(), StorageError> {
        let p = self.link_path(repo, kind, digest);
        if let Some(existing) = not_found_is_none(fs::read(&p)).map_err(io_err(&p))? {
            if existing == meta {
                return Ok(());
            }
        }
        self.write_atomic(&p, meta)
    }

    fn linked(
        &self,
        repo: &RepoName,
        kind: LinkKind,
        digest: &Digest,
    ) -> Result<Option<Vec<u8>>, StorageError> {
        let p = self.link_path(repo, kind, digest);
        not_found_is_none(fs::read(&p)).map_err(io_err(&p))
    }

    fn unlink(
        &self,
        repo: &RepoName,
        kind: LinkKind,
        digest: &Digest,
    ) -> Result<bool, StorageError> {
        let p = self.link_path(repo, kind, digest);
        Ok(not_found_is_none(fs::remove_file(&p))
            .map_err(io_err(&p))?
            .is_some())
    }

    fn list_links(&self, repo: &RepoName, kind: LinkKind) -> Result<Vec<Digest>, StorageError> {
        let p = self.link_path(repo, kind, &Digest::of(b""));
        let dir = p.parent().unwrap_or(&self.root);
        Ok(list_dir_names(dir)
            .map_err(io_err(dir))?
            .iter()
            .filter_map(|n| Digest::from_hex(n).ok())
            .collect())
    }

    fn set_tag(&self, repo: &RepoName, tag: &str, digest: &Digest) -> Result<(), StorageError> {
        let p = self.repo_dir(repo).join("_manifests/tags").join(tag);
        if let Some(existing) = not_found_is_none(fs::read(&p)).map_err(io_err(&p))? {
            if existing == digest.to_string().as_bytes() {
                return Ok(());
            }
        }
        self.write_atomic(&p, digest.to_string().as_bytes())
    }

    fn tag(&self, repo: &RepoName, tag: &str) -> Result<Option<Digest>, StorageError> {
        let p = self.repo_dir(repo).join("_manifests/tags").join(tag);
        Ok(not_found_is_none(fs::read_to_string(&p))
            .map_err(io_err(&p))?
            .and_then(|s| s.trim().parse().ok()))
    }

    fn delete_tag(&self, repo: &RepoName, tag: &str) -> Result<bool, StorageError> {
        let p = self.repo_dir(repo).join("_manifests/tags").join(tag);
        Ok(not_found_is_none(fs::remove_file(&p))
            .map_err(io_err(&p))?
            .is_some())
    }

    fn tags(&self, repo: &RepoName) -> Result<Option<Vec<String>>, StorageError> {
        let dir = self.repo_dir(repo);
        if !dir.join("_manifests").is_dir() && !dir.join("_layers").is_dir() {
            return Ok(None);
        }
        let tags = dir.join("_manifests/tags");
        Ok(Some(list_dir_names(&tags).map_err(io_err(&tags))?))
    }

    fn repositories(&self) -> Result<Vec<String>, StorageError> {
        fn walk(dir: &Path, prefix: &str, out: &mut Vec<String>) -> io::Result<()> {
            for name in list_dir_names(dir)? {
                if name.starts_with('_') {
                    continue;
                }
                let sub = dir.join(&name);
                if !sub.is_dir() {
                    continue;
                }
                let full = if prefix.is_empty() {
                    name.clone()
                } else {
                    format!("{prefix}/{name}")
                };
                if sub.join("_manifests").is_dir() || sub.join("_layers").is_dir() {
                    out.push(full.clone());
                }
                walk(&sub, &full, out)?;
            }
            Ok(())
        }
        let base = self.root.join("repositories");
        let mut out = Vec::new();
        walk(&base, "", &mut out).map_err(io_err(&base))?;
        out.sort();
        Ok(out)
    }

    fn add_referrer(
        &self,
        repo: &RepoName,
        subject: &Digest,
        referrer: &Digest,
        descriptor: &[u8],
    ) -> Result<(), StorageError> {
        let p = self
            .repo_dir(repo)
            .join("_referrers")
            .join(subject.hex())
            .join(referrer.hex());
        self.write_atomic(&p, descriptor)
    }

    fn remove_referrer(
        &self,
        repo: &RepoName,
        subject: &Digest,
        referrer: &Digest,
    ) -> Result<(), StorageError> {
        let p = self
            .repo_dir(repo)
            .join("_referrers")
            .join(subject.hex())
            .join(referrer.hex());
        not_found_is_none(fs::remove_file(&p)).map_err(io_err(&p))?;
        Ok(())
    }

    fn referrers(&self, repo: &RepoName, subject: &Digest) -> Result<Vec<Vec<u8>>, StorageError> {
        let dir = self.repo_dir(repo).join("_referrers").join(subject.hex());
        let mut out = Vec::new();
        for name in list_dir_names(&dir).map_err(io_err(&dir))? {
            let p = dir.join(name);
            if let Some(b) = not_found_is_none(fs::read(&p)).map_err(io_err(&p))? {
                out.push(b);
            }
        }
        Ok(out)
    }

    fn signing_key(&self) -> Result<Vec<u8>, StorageError> {
        let path = self.root.join(SIGNING_KEY);
        let read = |path: &Path| -> Result<Option<Vec<u8>>, StorageError> {
            let Some(text) = not_found_is_none(fs::read_to_string(path)).map_err(io_err(path))?
            else {
                return Ok(None);
            };
            match hex::decode(text.trim()) {
                Ok(key) if key.len() >= 32 => Ok(Some(key)),
                _ => Err(StorageError::Io {
                    path: path.to_owned(),
                    source: io::Error::new(
                        io::ErrorKind::InvalidData,
                        "not a signing key (64 hex characters); remove it to make a new one",
                    ),
                }),
            }
        };
        if let Some(key) = read(&path)? {
            close_to_others(&path).map_err(io_err(&path))?;
            return Ok(key);
        }
        // Written whole beside it, then renamed without replacing: of two replicas starting
        // at once, the first rename wins and the other reads the winner's key.
        let key: [u8; 32] = rand::random();
        let tmp = self.root.join(format!(".tmp-{}", random_id()));
        let res = (|| {
            let mut f = create_private(&tmp)?;
            f.write_all(hex::encode(key).as_bytes())?;
            f.sync_all()?;
            let won = rename_noreplace(&tmp, &path)?;
            if !won {
                fs::remove_file(&tmp)?;
            }
            sync_dir(&self.root)
        })();
        if let Err(e) = res {
            let _ = fs::remove_file(&tmp);
            return Err(io_err(&path)(e));
        }
        read(&path)?.ok_or_else(|| {
            io_err(&path)(io::Error::new(
                io::ErrorKind::NotFound,
                "vanished after writing",
            ))
        })
    }

    fn clean_debris(&self, max_age: Duration) -> Result<usize, StorageError> {
        let cutoff = SystemTime::now()
            .checked_sub(max_age)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let mut n = 0;
        // Blobs a collector took out and did not get to judge (it was killed): back in
        // place, the next collection judges them again.
        let gc = self.root.join("gc");
        for name in list_dir_names(&gc).map_err(io_err(&gc))? {
            let p = gc.join(&name);
            let Some(d) = name
                .split('.')
                .next()
                .and_then(|h| Digest::from_hex(h).ok())
            else {
                continue;
            };
            let old = match not_found_is_none(fs::symlink_metadata(&p)).map_err(io_err(&p))? {
                // (ctime: when it was renamed into gc/)
                Some(m) => {
                    i128::from(m.ctime()) * 1_000_000_000 + i128::from(m.ctime_nsec())
                        < unix_nanos(cutoff)
                }
                None => false,
            };
            if old {
                self.restore_swept(&p, &d).map_err(io_err(&p))?;
                n += 1;
            }
        }
        for sub in ["blobs", "repositories", "uploads", ""] {
            let dir = self.root.join(sub);
            if sub.is_empty() {
                // The top level only (temp files of the signing key).
                for name in fs::read_dir(&dir).map_err(io_err(&dir))? {
                    let entry = name.map_err(io_err(&dir))?;
                    if entry.file_name().to_string_lossy().starts_with(".tmp-") {
                        let m = entry.metadata().map_err(io_err(&dir))?;
                        if modified_before(&m, cutoff) {
                            let _ = fs::remove_file(entry.path());
                            n += 1;
                        }
                    }
                }
            } else {
                Self::remove_old_temps(&dir, cutoff, &mut n).map_err(io_err(&dir))?;
            }
        }
        Ok(n)
    }
}

fn unix_nanos(t: SystemTime) -> i128 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The suite every backend must pass.
    pub fn storage_contract(s: &dyn Storage) {
        let repo = RepoName::new("a/b").unwrap();
        let data = b"hello blob";
        let d = Digest::of(data);
        assert_eq!(s.blob_size(&d).unwrap(), None);

        // Upload with a wrong digest: nothing stored.
        s.start_upload("u1", "a/b\nalice").unwrap();
        assert_eq!(s.upload_owner("u1").unwrap().as_deref(), Some("a/b\nalice"));
        s.append_upload("u1").unwrap().write_all(data).unwrap();
        let wrong = Digest::of(b"other");
        let err = s.commit_upload("u1", &wrong, None).unwrap_err();
        assert_eq!(err.kind(), StorageErrorKind::InvalidContent);
        assert_eq!(s.blob_size(&wrong).unwrap(), None);
        assert_eq!(s.upload_size("u1").unwrap(), None);

        // Two appends, then commit.
        s.start_upload("u2", "a/b\n").unwrap();
        assert!(
            s.start_upload("u2", "c/d\n").is_err(),
            "an id names one upload"
        );
        assert_eq!(s.upload_owner("u2").unwrap().as_deref(), Some("a/b\n"));
        s.append_upload("u2")
            .unwrap()
            .write_all(&data[..4])
            .unwrap();
        let mut w = s.append_upload("u2").unwrap();
        assert_eq!(w.len(), 4);
        w.write_all(&data[4..]).unwrap();
        drop(w);
        assert_eq!(s.commit_upload("u2", &d, None).unwrap(), data.len() as u64);
        assert_eq!(s.blob_size(&d).unwrap(), Some(data.len() as u64));
        assert_eq!(s.read_blob(&d).unwrap(), data);
        assert!(s.list_blobs().unwrap().contains(&d));

        s.link(&repo, LinkKind::Layer, &d, b"").unwrap();
        assert!(s.linked(&repo, LinkKind::Layer, &d).unwrap().is_some());
        s.link(&repo, LinkKind::Manifest, &d, b"type").unwrap();
        assert_eq!(
            s.list_links(&repo, LinkKind::Manifest).unwrap(),
            vec![d.clone()]
        );
        s.set_tag(&repo, "v1", &d).unwrap();
        assert_eq!(s.tag(&repo, "v1").unwrap(), Some(d.clone()));
        assert_eq!(s.tags(&repo).unwrap(), Some(vec!["v1".to_owned()]));
        assert_eq!(s.repositories().unwrap(), vec!["a/b".to_owned()]);
        assert!(s.delete_tag(&repo, "v1").unwrap());
        assert!(s.unlink(&repo, LinkKind::Layer, &d).unwrap());
        assert!(s.delete_blob(&d).unwrap());
        assert!(!s.delete_blob(&d).unwrap());
        assert!(s.upload_path_safe_rejects());
    }

    trait UploadIdCheck {
        fn upload_path_safe_rejects(&self) -> bool;
    }
    impl UploadIdCheck for dyn Storage + '_ {
        fn upload_path_safe_rejects(&self) -> bool {
            self.start_upload("../escape", "").is_err()
        }
    }

    #[test]
    fn fs_storage_keeps_the_contract() {
        let dir = tempfile::tempdir().unwrap();
        let s = FsStorage::open(dir.path()).unwrap();
        storage_contract(&s);
    }

    #[test]
    fn signing_key_is_made_once_private_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("storage");
        let replicas: Vec<_> = (0..8)
            .map(|_| {
                let root = root.clone();
                std::thread::spawn(move || FsStorage::open(root).unwrap().signing_key().unwrap())
            })
            .collect();
        let keys: Vec<Vec<u8>> = replicas.into_iter().map(|t| t.join().unwrap()).collect();
        assert!(keys.iter().all(|k| k == &keys[0] && k.len() == 32));
        let again = FsStorage::open(&root).unwrap().signing_key().unwrap();
        assert_eq!(again, keys[0]);
        let mode = fs::metadata(root.join(SIGNING_KEY))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let names: Vec<String> = fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(!names.iter().any(|n| n.starts_with(".tmp-")), "{names:?}");
    }

    #[test]
    fn an_open_storage_is_closed_on_open_and_debris_is_cleaned() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("storage");
        fs::create_dir_all(root.join("blobs/sha256")).unwrap();
        for p in [&root, &root.join("blobs")] {
            fs::set_permissions(p, fs::Permissions::from_mode(0o755)).unwrap();
        }
        let s = FsStorage::open(&root).unwrap();
        for p in [&root, &root.join("blobs"), &root.join("uploads")] {
            let mode = fs::metadata(p).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "{} is {mode:o}", p.display());
        }
        // A temp file of an interrupted write, an old and a young one.
        let d = Digest::of(b"x");
        s.put_blob(&d, b"x").unwrap();
        let blob_dir = s.blob_path(&d).parent().unwrap().to_owned();
        let old = blob_dir.join(".tmp-old");
        let young = blob_dir.join(".tmp-young");
        fs::write(&old, b"half").unwrap();
        fs::write(&young, b"half").unwrap();
        File::options()
            .write(true)
            .open(&old)
            .unwrap()
            .set_modified(SystemTime::now() - Duration::from_secs(3600))
            .unwrap();
        // A blob a killed collector had taken out (judged long ago).
        let e = Digest::of(b"taken");
        s.put_blob(&e, b"taken").unwrap();
        let taken = root.join("gc").join(format!("{}.x", e.hex()));
        fs::rename(s.blob_path(&e), &taken).unwrap();
        // A file and a directory an older berth left open, deep inside.
        let deep = root.join("repositories/x/_layers");
        fs::create_dir_all(&deep).unwrap();
        fs::write(deep.join("f"), b"").unwrap();
        fs::set_permissions(&deep, fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(deep.join("f"), fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(s.clean_debris(Duration::from_secs(600)).unwrap(), 1);
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&deep), 0o700);
        assert_eq!(mode(&deep.join("f")), 0o600);
        assert!(!old.exists() && young.exists() && taken.exists());
        assert_eq!(s.clean_debris(Duration::ZERO).unwrap(), 2);
        assert!(!young.exists() && !taken.exists());
        assert_eq!(s.read_blob(&e).unwrap(), b"taken");
    }

    #[test]
    fn a_blob_touched_before_the_sweep_judges_it_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let s = FsStorage::open(dir.path()).unwrap();
        let d = Digest::of(b"layer");
        s.put_blob(&d, b"layer").unwrap();
        let past = SystemTime::now() - Duration::from_secs(7200);
        File::options()
            .write(true)
            .open(s.blob_path(&d))
            .unwrap()
            .set_modified(past)
            .unwrap();
        let cutoff = SystemTime::now() - Duration::from_secs(3600);
        assert!(s.blob_modified(&d).unwrap() < cutoff);
        assert!(s.touch_blob(&d).unwrap());
        assert_eq!(s.sweep_blob(&d, cutoff).unwrap(), None);
        assert_eq!(s.read_blob(&d).unwrap(), b"layer");
        assert!(fs::read_dir(dir.path().join("gc"))
            .unwrap()
            .next()
            .is_none());
        // Once old again it goes; a touch of it then fails.
        File::options()
            .write(true)
            .open(s.blob_path(&d))
            .unwrap()
            .set_modified(past)
            .unwrap();
        assert_eq!(s.sweep_blob(&d, cutoff).unwrap(), Some(5));
        assert!(!s.touch_blob(&d).unwrap());
    }
}
