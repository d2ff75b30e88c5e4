//! The store's error type: one enum, each variant naming what it concerns, with a [`ErrorKind`].

use std::io;
use std::path::{Path, PathBuf};

use berth_oci::Digest;

/// What kind of failure an [`Error`] is, for callers that map errors to exit codes or
/// protocol error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The thing asked for does not exist.
    NotFound,
    /// The thing to create exists already.
    AlreadyExists,
    /// The input is not valid.
    InvalidArgument,
    /// The request conflicts with the current state (in use, ambiguous).
    Conflict,
    /// Content did not match its digest, or stored state is damaged.
    DataLoss,
    /// The operating system or the database failed.
    Internal,
}

/// Errors of the local store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file system operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done (`creating`, `renaming`, ...).
        op: &'static str,
        /// The path concerned.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Reading the content being ingested failed.
    #[error("reading content: {0}")]
    Read(#[source] io::Error),
    /// The database failed.
    #[error("store database ({op}): {source}")]
    Db {
        /// What was being done.
        op: &'static str,
        /// The SQLite error.
        source: rusqlite::Error,
    },
    /// The database is missing or empty while the store holds content: refusing to start
    /// over (a collection would delete every blob and layer).
    #[error(
        "store database {} {state} but {} holds {blobs} blobs and {layers} layers: \
         refusing to treat it as a new store; restore the database or move {} aside",
        path.display(), root.display(), root.display()
    )]
    DatabaseLost {
        /// The database file.
        path: PathBuf,
        /// `is empty` or `is missing`.
        state: &'static str,
        /// The store's root.
        root: PathBuf,
        /// Blob files found.
        blobs: usize,
        /// Layer directories found.
        layers: usize,
    },
    /// The database could not be read or written because its file system is full.
    #[error("{}: no space left on device (store database, {op})", path.display())]
    NoSpace {
        /// The database file.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// SQLite's words for it (an I/O error of its shared memory file, often), kept for
        /// debugging but not shown: the user's problem is the full disk.
        sqlite: rusqlite::Error,
    },
    /// The database was written by a newer berth.
    #[error("store database schema version {found} is newer than this berth supports ({known})")]
    SchemaTooNew {
        /// Version found on disk.
        found: u32,
        /// Latest version this build knows.
        known: u32,
    },
    /// Content hashed to another digest than expected; nothing was stored.
    #[error("content digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// The digest announced.
        expected: Digest,
        /// The digest of the bytes seen.
        actual: Digest,
    },
    /// A blob is not in the store.
    #[error("blob {0} not found in the store")]
    BlobNotFound(Digest),
    /// No image matches the reference or ID.
    #[error("No such image: {0}")]
    ImageNotFound(String),
    /// A short ID matches several images.
    #[error("short ID {input:?} is ambiguous: it matches {}", list_ids(.matches))]
    AmbiguousImage {
        /// What the user typed.
        input: String,
        /// The IDs it matches.
        matches: Vec<Digest>,
    },
    /// The image is used (by containers, or another holder) and was not deleted.
    #[error("image {} is in use by {}", .id.short(), .users.join(", "))]
    ImageInUse {
        /// The image.
        id: Digest,
        /// Its users, as [`crate::Store::image_users`] words them.
        users: Vec<String>,
    },
    /// A layer snapshot is not in the store.
    #[error("layer {0} not found in the store")]
    LayerNotFound(Digest),
    /// The image's layer chain is broken (a parent missing).
    #[error("layer {chain_id} has parent {parent} that is not in the store")]
    MissingParent {
        /// The layer being added.
        chain_id: Digest,
        /// Its parent chain ID.
        parent: Digest,
    },
    /// A stored record cannot be decoded.
    #[error("corrupt store record {what}: {detail}")]
    Corrupt {
        /// Which record.
        what: String,
        /// What is wrong with it.
        detail: String,
    },
}

fn list_ids(ids: &[Digest]) -> String {
    ids.iter()
        .map(|d| d.short().to_owned())
        .collect::<Vec<_>>()
        .join(", ")
}

impl Error {
    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Io { .. }
            | Error::Read(_)
            | Error::Db { .. }
            | Error::NoSpace { .. }
            | Error::SchemaTooNew { .. } => ErrorKind::Internal,
            Error::DigestMismatch { .. }
            | Error::Corrupt { .. }
            | Error::MissingParent { .. }
            | Error::DatabaseLost { .. } => ErrorKind::DataLoss,
            Error::BlobNotFound(_) | Error::ImageNotFound(_) | Error::LayerNotFound(_) => {
                ErrorKind::NotFound
            }
            Error::AmbiguousImage { .. } | Error::ImageInUse { .. } => ErrorKind::Conflict,
        }
    }

    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }

    pub(crate) fn db(op: &'static str) -> impl FnOnce(rusqlite::Error) -> Error {
        move |source| Error::Db { op, source }
    }

    /// [`Error::db`] for the database at `path`: a failure that comes from a full file
    /// system (SQLite's "database or disk is full", or an I/O error such as its shared
    /// memory file failing to grow while the file system has no space left) becomes
    /// [`Error::NoSpace`], naming the file.
    pub(crate) fn db_at(op: &'static str, path: &Path) -> impl FnOnce(rusqlite::Error) -> Error {
        let path = path.to_owned();
        move |source| {
            if is_disk_full(&source, &path) {
                log::debug!("{}: {op}: {source}", path.display());
                Error::NoSpace {
                    path,
                    op,
                    sqlite: source,
                }
            } else {
                Error::Db { op, source }
            }
        }
    }

    /// Turns an [`Error::Db`] from the database at `path` into [`Error::NoSpace`] when its
    /// file system is full.
    pub(crate) fn at_db(self, path: &Path) -> Error {
        match self {
            Error::Db { op, source } => Error::db_at(op, path)(source),
            e => e,
        }
    }
}

fn is_disk_full(e: &rusqlite::Error, path: &Path) -> bool {
    let rusqlite::Error::SqliteFailure(f, _) = e else {
        return false;
    };
    match f.code {
        rusqlite::ErrorCode::DiskFull => true,
        rusqlite::ErrorCode::SystemIoFailure | rusqlite::ErrorCode::CannotOpen => {
            let dir = path.parent().unwrap_or(path);
            // Less than SQLite needs to grow its files (the shared memory index alone
            // takes 32 KiB at a time): the I/O error is the full disk.
            rustix::fs::statvfs(dir).is_ok_and(|s| s.f_bavail.saturating_mul(s.f_frsize) < 1 << 20)
        }
        _ => false,
    }
}

/// Results of the store.
pub type Result<T, E = Error> = std::result::Result<T, E>;
