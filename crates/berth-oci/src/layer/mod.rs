//! Layer tar streams: applying a layer securely into a snapshot directory, and writing layers
//! from an overlay upper directory or from a whole directory.
//!
//! - [`apply_layer`] reads a tar layer (plain, gzip or zstd, told apart by their magic bytes),
//!   decompressing, hashing and extracting in one pass, into ONE snapshot directory (an overlay
//!   lower dir). OCI whiteouts become overlayfs whiteouts. Every file-system operation is
//!   relative to a file descriptor of the snapshot root, and path lookups use `openat2` with
//!   `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS`, so no entry can create, change or follow a path
//!   outside it.
//! - [`diff_upper`] turns an overlay upper dir into an OCI layer tar (whiteout devices become
//!   `.wh.` files, opaque dirs get `.wh..wh..opq`); [`write_dir_tar`] tars a whole directory.
//!   Both are deterministic.
//!
//! ```
//! use berth_oci::layer::{apply_layer, write_dir_tar, ApplyOptions, DiffOptions};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let src = tempfile::tempdir()?;
//! std::fs::write(src.path().join("hello"), b"hi")?;
//! let mut layer = Vec::new();
//! let written = write_dir_tar(src.path(), &mut layer, &DiffOptions::default())?;
//!
//! let snapshot = tempfile::tempdir()?;
//! let applied = apply_layer(&layer[..], snapshot.path(), &ApplyOptions::default())?;
//! assert_eq!(applied.diff_id, written.diff_id);
//! assert_eq!(std::fs::read(snapshot.path().join("hello"))?, b"hi");
//! # Ok(())
//! # }
//! ```
//!
//! ## Security rules of [`apply_layer`]
//! - Absolute names count from the snapshot root (`/etc/x` is `etc/x`), as in Docker.
//! - A name whose `..` would climb above the root is refused; `a/../b` is `b`.
//! - Parents are resolved beneath the root: a parent that is a symlink pointing outside the
//!   snapshot (absolute symlinks included) fails the layer, so `a -> /etc` then `a/passwd` fails.
//!   Relative symlinks that stay inside are followed, as Docker does.
//! - Hardlink targets are resolved the same way and must be earlier entries of the snapshot.
//! - Symlinks are created as given (their targets are never followed by the applier).
//! - Device nodes are created when [`ApplyOptions::allow_devices`] is set (the default) and
//!   the process may (`CAP_MKNOD`); they are refused with an error naming the entry otherwise.
//!   The runtime's device cgroup decides what a container may open, as with Docker.
//! - `trusted.overlay.*` and `user.overlay.*` xattrs in the tar are dropped: only real
//!   whiteout entries may produce overlay metadata.
//! - Any failure fails the whole layer. The snapshot directory is then half-written: **the
//!   caller must delete it** (with [`remove_snapshot`], which copes with what a layer may
//!   leave, such as directories of mode 000) and never use it.
//!   Apply into a fresh temporary directory and rename it into place on success.

mod apply;
pub(crate) mod fsops;
mod write;

use std::io;
use std::path::PathBuf;

pub use apply::{apply_layer, apply_layer_stream, AppliedLayer, AppliedStream, ApplyOptions};
pub use write::{diff_upper, write_dir_tar, DiffOptions, DiffStats};

use crate::media::Compression;

/// The xattr overlayfs reads to make a directory opaque (root mounts).
pub const OPAQUE_XATTR: &str = "trusted.overlay.opaque";
/// The xattr overlayfs reads to make a directory opaque (`userxattr` mounts, rootless).
pub const OPAQUE_USER_XATTR: &str = "user.overlay.opaque";
/// The prefix of an OCI whiteout file name.
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// The name of the OCI opaque-directory marker.
pub const WHITEOUT_OPAQUE: &str = ".wh..wh..opq";

/// What kind of failure a [`LayerError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerErrorKind {
    /// The layer is malformed or hostile.
    InvalidArgument,
    /// The operation is not permitted to this process.
    PermissionDenied,
    /// An I/O error on the local file system or the stream.
    Io,
}

/// Why a layer could not be applied or written.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    /// The target directory could not be opened.
    #[error("cannot open layer target directory {path}: {source}")]
    Target {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The compressed stream is corrupt.
    #[error("invalid {compression:?} layer stream: {source}")]
    Decompress {
        /// The compression detected from the magic bytes.
        compression: Compression,
        /// The decoder's complaint.
        source: io::Error,
    },
    /// The tar stream is malformed or truncated.
    #[error("invalid tar stream{}: {source}", after_entry(.after))]
    Tar {
        /// The last entry read successfully, if any.
        after: Option<String>,
        /// The reader's complaint.
        source: io::Error,
    },
    /// An entry would create, change or follow a path outside the snapshot.
    #[error("layer entry {entry:?} escapes the snapshot: {reason}")]
    Escape {
        /// The entry's name as in the tar.
        entry: String,
        /// How it escapes.
        reason: &'static str,
    },
    /// An entry is invalid (bad name, bad whiteout, unsupported type...).
    #[error("invalid layer entry {entry:?}: {reason}")]
    InvalidEntry {
        /// The entry's name as in the tar.
        entry: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A device node entry was refused by policy or lack of privilege.
    #[error("layer entry {entry:?}: device node refused: {reason}")]
    DeviceRefused {
        /// The entry's name as in the tar.
        entry: String,
        /// Why.
        reason: &'static str,
    },
    /// A file-system operation for an entry failed.
    #[error("layer entry {entry:?}: {op} failed: {source}")]
    Entry {
        /// The entry's name as in the tar.
        entry: String,
        /// The operation (`create file`, `mkdir`, `chown`...).
        op: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// Reading a source file while writing a tar failed.
    #[error("cannot read {path} for the layer tar: {source}")]
    Read {
        /// The file, relative to the tarred directory.
        path: String,
        /// The OS error.
        source: io::Error,
    },
    /// The upper dir uses an overlayfs feature whose changes a diff cannot see (the data or
    /// the renamed directory's content is in a lower layer).
    #[error("cannot diff {path}: overlayfs {feature} is in use; mount the overlay with redirect_dir=off,metacopy=off")]
    UnsupportedOverlay {
        /// The file, relative to the upper dir.
        path: String,
        /// `redirect_dir` or `metacopy`.
        feature: &'static str,
    },
    /// Writing the tar stream failed.
    #[error("cannot write layer tar: {source}")]
    Write {
        /// The OS error.
        source: io::Error,
    },
}

/// Removes a snapshot directory and everything in it, also what a layer made hard to remove
/// (directories of mode 000), without following any symlink in it. Absent is fine. Use it to
/// clean up after a failed [`apply_layer`].
pub fn remove_snapshot(dir: &std::path::Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let name = match dir.file_name() {
        Some(n) => n.as_bytes().to_vec(),
        None => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} names no directory to remove", dir.display()),
            ))
        }
    };
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => std::path::Path::new("."),
    };
    let pfd = rustix::fs::open(
        parent,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(fsops::err)?;
    fsops::remove_at(std::os::fd::AsFd::as_fd(&pfd), &name).map_err(fsops::err)
}

fn after_entry(after: &Option<String>) -> String {
    match after {
        Some(e) => format!(" after entry {e:?}"),
        None => String::new(),
    }
}

impl LayerError {
    /// The kind of failure.
    pub fn kind(&self) -> LayerErrorKind {
        match self {
            LayerError::Decompress { .. }
            | LayerError::Tar { .. }
            | LayerError::Escape { .. }
            | LayerError::InvalidEntry { .. }
            | LayerError::UnsupportedOverlay { .. } => LayerErrorKind::InvalidArgument,
            LayerError::DeviceRefused { .. } => LayerErrorKind::PermissionDenied,
            LayerError::Entry { source, .. }
                if source.kind() == io::ErrorKind::PermissionDenied =>
            {
                LayerErrorKind::PermissionDenied
            }
            LayerError::Target { .. }
            | LayerError::Entry { .. }
            | LayerError::Read { .. }
            | LayerError::Write { .. } => LayerErrorKind::Io,
        }
    }
}
