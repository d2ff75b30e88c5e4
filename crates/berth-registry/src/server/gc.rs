//! `berth registry gc`: mark every blob that a manifest of any repository refers to, sweep
//! the unreferenced blobs older than a grace period, drop stale uploads and the debris of
//! interrupted writes. It runs while the registry serves pushes, with no read-only window.
//!
//! # Why a push that got 201 always pulls back whole
//!
//! The two sides and their steps:
//!
//! - A manifest PUT (`api.rs` `put_manifest`) *touches* every blob it references (sets its
//!   mtime to now; a touch of an absent blob fails and the PUT answers 400), at t1, then
//!   writes the manifest and its link at t2, checks at t3 that every blob it references is
//!   still in place, and answers 201 only if t3 - t1 is below the server's deadline
//!   ([`MANIFEST_PUT_DEADLINE`] by default). A HEAD of a blob (how a push learns it may skip the upload),
//!   a cross-repository mount and a commit of content already stored touch the blob too.
//! - A collection starts at S with the cutoff C = S - grace (`blob_min_age`, at least
//!   [`MANIFEST_PUT_DEADLINE`] to be safe; the default is [`DEFAULT_BLOB_MIN_AGE`]), marks
//!   what the manifests it lists (at L >= S) reference, then for each unmarked blob whose
//!   mtime is before C, *takes it out* (renames it into `gc/`, at R: from then on a touch of
//!   the blob fails) and only then judges the mtime again: deleted if still before C, else
//!   put back ([`Storage::sweep_blob`]).
//!
//! The interleavings of one PUT (t1 < t2) with one collection (S <= L, R):
//!
//! 1. t2 < L: the mark sees the manifest; its blobs are never candidates.
//! 2. t2 > L: then t1 > t2 - DEADLINE > S - grace = C, so the touch made the blob young:
//!    - t1 < R: the blob is taken out with an mtime after C; the judgment after R keeps it
//!      and puts it back.
//!    - t1 > R: the touch finds no blob (it is in `gc/`): the PUT fails with
//!      `MANIFEST_BLOB_UNKNOWN`, no 201 is given (the push is retried), unless the blob was
//!      put back before t1, in which case this collection is done with it.
//!
//!    - a touch that resolved the blob's path before R but set its mtime after the
//!      judgment (the deletion goes ahead): the check at t3 > R finds the blob gone and
//!      the PUT is not acknowledged.
//!
//!    So no blob of an acknowledged manifest is ever deleted. The one cost: a blob touched
//!    between the cheap mtime pre-check and R is absent for the microseconds between R and
//!    its return.
//! 3. A blob uploaded long ago (older than the grace) and referenced by nothing may be swept
//!    before its manifest arrives: the manifest PUT then fails (the touch finds nothing),
//!    never answers 201. The grace period is how long a push may take between its uploads
//!    and its manifest.
//!
//! Two collections at once each take a blob out under a name of their own; the second finds
//! nothing to take. A collector killed between taking a blob out and judging it leaves it in
//! `gc/`, put back by the next start or collection ([`Storage::clean_debris`]).

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use berth_oci::Digest;

use super::storage::{LinkKind, Storage, StorageError};
use crate::name::RepoName;
use crate::protocol::ManifestView;

/// The longest a manifest PUT may take from touching its blobs to writing its link; slower
/// ones are not acknowledged. A grace period at least this long makes collections safe
/// while pushes run.
pub const MANIFEST_PUT_DEADLINE: Duration = Duration::from_secs(60);

/// The grace period by default: blobs younger than this are never swept.
pub const DEFAULT_BLOB_MIN_AGE: Duration = Duration::from_secs(3600);

/// Upload sessions untouched this long are abandoned, by default.
pub const DEFAULT_UPLOAD_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// Temp files of interrupted writes older than this are removed (a write takes
/// milliseconds; a live replica's temp files are far younger).
pub const DEFAULT_TEMP_MAX_AGE: Duration = Duration::from_secs(15 * 60);

/// What gc should do.
#[derive(Debug, Clone)]
pub struct GcOptions {
    /// Report without deleting.
    pub dry_run: bool,
    /// Uploads untouched for this long are removed.
    pub upload_max_age: Duration,
    /// Unreferenced blobs modified (stored or touched) more recently than this are kept: a
    /// push uploads blobs before the manifest that references them. Below
    /// [`MANIFEST_PUT_DEADLINE`] a collection is safe only while no push runs.
    pub blob_min_age: Duration,
    /// Temp files older than this are removed.
    pub temp_max_age: Duration,
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions {
            dry_run: false,
            upload_max_age: DEFAULT_UPLOAD_MAX_AGE,
            blob_min_age: DEFAULT_BLOB_MIN_AGE,
            temp_max_age: DEFAULT_TEMP_MAX_AGE,
        }
    }
}

/// What gc found and did.
#[derive(Debug, Clone, Default)]
pub struct GcReport {
    /// Blobs kept (referenced).
    pub marked: usize,
    /// Blobs deleted (or that would be, on a dry run).
    pub swept: Vec<Digest>,
    /// Bytes freed (or that would be).
    pub bytes_freed: u64,
    /// Stale uploads removed.
    pub uploads_removed: usize,
    /// Temp files removed and blobs of a killed collection put back.
    pub debris_removed: usize,
}

/// Runs mark and sweep over a storage.
pub fn gc(storage: &dyn Storage, opts: &GcOptions) -> Result<GcReport, StorageError> {
    // The cutoff is fixed before the mark begins (see the module's reasoning).
    let start = SystemTime::now();
    let cutoff = start
        .checked_sub(opts.blob_min_age)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let mut report = GcReport::default();
    if !opts.dry_run {
        report.debris_removed = storage.clean_debris(opts.temp_max_age)?;
    }
    let mut marked: HashSet<Digest> = HashSet::new();
    for name in storage.repositories()? {
        let Ok(repo) = RepoName::new(&name) else {
            continue;
        };
        for m in storage.list_links(&repo, LinkKind::Manifest)? {
            let bytes = match storage.read_blob(&m) {
                Ok(b) => b,
                Err(StorageError::BlobNotFound(_)) => continue,
                Err(e) => return Err(e),
            };
            marked.insert(m.clone());
            if let Ok(view) = serde_json::from_slice::<ManifestView>(&bytes) {
                for d in view.references() {
                    marked.insert(d.digest.clone());
                }
            }
        }
    }
    report.marked = marked.len();
    for blob in storage.list_blobs()? {
        if marked.contains(&blob) {
            continue;
        }
        // The cheap check first; unknown times count as young (keeping is the safe side).
        let old = storage.blob_modified(&blob).is_some_and(|m| m < cutoff);
        if !old {
            continue;
        }
        if opts.dry_run {
            report.bytes_freed += storage.blob_size(&blob)?.unwrap_or(0);
            report.swept.push(blob);
            continue;
        }
        // Judged again once out of reach: a touch since the check above keeps it.
        if let Some(bytes) = storage.sweep_blob(&blob, cutoff)? {
            report.bytes_freed += bytes;
            report.swept.push(blob);
        }
    }
    // A repository's links to swept blobs stay: removing them is a check-then-act that a
    // push re-uploading the blob (its link already there) and putting its manifest between
    // the check and the unlink loses (the blob then answers BLOB_UNKNOWN to the repository
    // whose manifest was acknowledged). A stale link promises nothing: every reader checks
    // the blob itself, and only someone who had the bytes could have made the link.
    let now = SystemTime::now();
    for (id, modified) in storage.list_uploads()? {
        let age = now.duration_since(modified).unwrap_or_default();
        if age >= opts.upload_max_age {
            if !opts.dry_run {
                storage.cancel_upload(&id)?;
            }
            report.uploads_removed += 1;
        }
    }
    Ok(report)
}
