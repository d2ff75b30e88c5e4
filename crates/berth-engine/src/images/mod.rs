//! Image use cases: import, save, load, list, tag, remove, inspect, history, prune, disk
//! usage. Each takes a request and returns values the CLI renders; nothing here prints.

use std::io;
use std::path::PathBuf;

use berth_oci::{Digest, ImageRef};

use crate::{Engine, Error, ErrorKind};

mod archive;
mod commit;
mod config;
mod import;
mod inspect;
mod list;
mod remove;
#[cfg(test)]
mod tests;

pub use archive::{ArchiveFormat, LayerProgress, LoadReport, ProgressFn};
pub use commit::CommitImage;
pub use config::apply_changes;
pub use import::{ImportRequest, ImportSource};
pub use inspect::{DiskUsage, HistoryEntry, ImageInspect};
pub use list::{ImageFilter, ImageSummary, ListOptions};
pub use remove::{PruneFilter, PruneReport, RemoveAction};

/// Failures of the image use cases.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// A file could not be opened, read or written.
    #[error("{op} {}: {}", .path.display(), os_error_text(.error))]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error (not a `source`: the message says it, in Go's words).
        error: io::Error,
    },
    /// Reading standard input failed.
    #[error("reading standard input: {0}")]
    Stdin(#[source] io::Error),
    /// A layer could not be applied (not a tar, hostile entry, ...).
    #[error("{what}: {source}")]
    Layer {
        /// Which input or layer.
        what: String,
        /// Why.
        source: berth_oci::LayerError,
    },
    /// A `--change` instruction is not valid.
    #[error("invalid --change {change:?}: {reason}")]
    BadChange {
        /// The instruction as given.
        change: String,
        /// What is wrong.
        reason: String,
    },
    /// An archive entry's content does not match the digest it is stored under.
    #[error("{path}: content has digest {actual}, not the one it is named by ({expected})")]
    BlobMismatch {
        /// The archive and entry.
        path: String,
        /// The digest the entry is named by.
        expected: Digest,
        /// The digest of its content.
        actual: Digest,
    },
    /// A layer's content does not match the diff ID its config lists.
    #[error("layer {index} ({path}) has diff ID {actual}, but the image config says {expected}")]
    DiffIdMismatch {
        /// Position of the layer, from 0.
        index: usize,
        /// The archive entry.
        path: String,
        /// Diff ID in the config.
        expected: Digest,
        /// Diff ID of the content.
        actual: Digest,
    },
    /// The config lists another number of layers than the manifest.
    #[error("image config lists {config} layers but the archive has {archive}")]
    LayerCount {
        /// Layers in the config.
        config: usize,
        /// Layers in the archive.
        archive: usize,
    },
    /// The image is used (by a container) and force was not given.
    #[error("conflict: unable to {action} {target} (must be forced) - image is being used by {}", .users.join(", "))]
    InUse {
        /// `delete` or `remove repository reference`.
        action: &'static str,
        /// What was to be removed.
        target: String,
        /// Who uses it.
        users: Vec<String>,
    },
    /// A running container uses the image: not even force deletes it.
    #[error("conflict: unable to delete {target} (cannot be forced) - image is being used by {}", .users.join(", "))]
    InUseRunning {
        /// The image.
        target: String,
        /// The running containers.
        users: Vec<String>,
    },
    /// Deleting by ID an image tagged in several repositories needs force.
    #[error("conflict: unable to delete {0} (must be forced) - image is referenced in multiple repositories")]
    MultipleRepositories(String),
    /// A `--filter` is not understood.
    #[error("invalid filter {0:?}")]
    BadFilter(String),
    /// `load` was given something that is not an image archive.
    #[error("{path} is not a valid image archive: {source}")]
    InvalidArchive {
        /// The file (`-` for standard input).
        path: String,
        /// What is wrong with it.
        source: Box<berth_oci::archive::ArchiveError>,
    },
    /// A filter's time is neither a duration, a Unix time nor a date.
    #[error("failed to parse value as time or duration: {0:?}")]
    BadTime(String),
    /// An archive holds no image.
    #[error("{0}: the archive holds no image")]
    EmptyArchive(String),
    /// `save` without any image.
    #[error("no image to save")]
    NothingToSave,
    /// An image's stored config or manifest is not valid JSON.
    #[error("image {id}: stored {what} is invalid: {source}")]
    BadStoredJson {
        /// The image.
        id: Digest,
        /// config or manifest.
        what: &'static str,
        /// The parser's complaint.
        source: serde_json::Error,
    },
}

impl ImageError {
    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ImageError::Io { error, .. } if error.kind() == io::ErrorKind::NotFound => {
                ErrorKind::NotFound
            }
            ImageError::Io { .. } | ImageError::Stdin(_) | ImageError::BadStoredJson { .. } => {
                ErrorKind::Internal
            }
            ImageError::Layer { source, .. } => match source.kind() {
                berth_oci::layer::LayerErrorKind::Io => ErrorKind::Internal,
                _ => ErrorKind::InvalidArgument,
            },
            ImageError::InUse { .. }
            | ImageError::InUseRunning { .. }
            | ImageError::MultipleRepositories(_) => ErrorKind::Conflict,
            ImageError::BadChange { .. }
            | ImageError::BlobMismatch { .. }
            | ImageError::DiffIdMismatch { .. }
            | ImageError::LayerCount { .. }
            | ImageError::BadFilter(_)
            | ImageError::BadTime(_)
            | ImageError::EmptyArchive(_)
            | ImageError::NothingToSave => ErrorKind::InvalidArgument,
            ImageError::InvalidArchive { source, .. } => match source.kind() {
                berth_oci::archive::ArchiveErrorKind::Io => ErrorKind::Internal,
                berth_oci::archive::ArchiveErrorKind::InvalidArgument => ErrorKind::InvalidArgument,
            },
        }
    }
}

impl Engine {
    /// Resolves what a user typed (a reference, a full ID, or a unique ID prefix) to an
    /// image ID. A name without a tag means `:latest`; an ambiguous prefix is an error that
    /// lists the matches.
    pub fn resolve_image(&self, input: &str) -> Result<Digest, Error> {
        let normalized = ImageRef::parse(input).ok().map(|r| r.to_string());
        match self.store.resolve_image(input, normalized.as_deref()) {
            Err(berth_store::Error::ImageNotFound(_)) => {
                // Say what was looked for the way Docker does: `name:latest`.
                let shown = ImageRef::parse(input)
                    .ok()
                    .filter(|_| !looks_like_id(input))
                    .map(|r| r.familiar_string())
                    .unwrap_or_else(|| input.to_owned());
                Err(berth_store::Error::ImageNotFound(shown).into())
            }
            other => Ok(other?),
        }
    }

    /// Passes `r` on; when it failed, first collects what the failed pull, import or load
    /// stored that nothing references (blobs and layers of an image never recorded), so a
    /// failure leaves nothing to clean by hand. Skipped while another process adds content
    /// (its next collection takes it). Call it after the content lease was dropped.
    pub(crate) fn collect_after_failure<T>(&self, r: Result<T, Error>) -> Result<T, Error> {
        if r.is_err() {
            if let Err(e) = self.store.try_gc() {
                log::warn!("collecting what the failed operation stored: {e}");
            }
        }
        r
    }

    fn image_record(&self, id: &Digest) -> Result<berth_store::ImageRecord, Error> {
        self.store
            .image(id)?
            .ok_or_else(|| berth_store::Error::ImageNotFound(id.to_string()).into())
    }

    fn image_config(&self, id: &Digest) -> Result<serde_json::Value, Error> {
        let bytes = self.store.blobs().read_blob(id)?;
        serde_json::from_slice(&bytes).map_err(|source| {
            ImageError::BadStoredJson {
                id: id.clone(),
                what: "config",
                source,
            }
            .into()
        })
    }
}

/// An OS error as Go (Docker) words it: `no such file or directory`, without Rust's
/// `(os error 2)` tail.
pub(crate) fn os_error_text(e: &io::Error) -> String {
    let text = e.to_string();
    let text = match (e.raw_os_error(), text.rfind(" (os error ")) {
        (Some(_), Some(i)) => text[..i].to_owned(),
        _ => text,
    };
    let mut chars = text.chars();
    match chars.next() {
        // "No such file" -> "no such file", but keep acronyms ("EOF") as they are.
        Some(c)
            if c.is_ascii_uppercase() && chars.next().is_some_and(|n| n.is_ascii_lowercase()) =>
        {
            c.to_ascii_lowercase().to_string() + &text[1..]
        }
        _ => text,
    }
}

/// Whether `s` is written like an image ID or ID prefix rather than a name.
pub(crate) fn looks_like_id(s: &str) -> bool {
    let hex = s.strip_prefix("sha256:").unwrap_or(s);
    !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The familiar form of a stored full reference (`docker.io/library/x:1` → `x:1`).
pub fn familiar(reference: &str) -> String {
    ImageRef::parse_no_default(reference)
        .map(|r| r.familiar_string())
        .unwrap_or_else(|_| reference.to_owned())
}

/// Current time as RFC 3339 with nanoseconds, UTC.
pub(crate) fn now_rfc3339() -> String {
    format_rfc3339(time::OffsetDateTime::now_utc())
}

pub(crate) fn format_rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Parses an RFC 3339 time into Unix seconds (0 when empty or invalid).
pub(crate) fn parse_rfc3339(s: &str) -> i64 {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp())
        .unwrap_or(0)
}
