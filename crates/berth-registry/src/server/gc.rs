//! `berth registry gc`: mark every blob that a manifest of any repository refers to, sweep
//! the rest, and drop stale uploads.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use berth_oci::Digest;

use super::storage::{LinkKind, Storage, StorageError};
use crate::name::RepoName;
use crate::protocol::ManifestView;

/// What gc should do.
#[derive(Debug, Clone)]
pub struct GcOptions {
    /// Report without deleting.
    pub dry_run: bool,
    /// Uploads untouched for this long are removed.
    pub upload_max_age: Duration,
    /// Unreferenced blobs younger than this are kept: a push uploads blobs before the
    /// manifest that references them.
    pub blob_min_age: Duration,
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions {
            dry_run: false,
            upload_max_age: Duration::from_secs(24 * 3600),
            blob_min_age: Duration::ZERO,
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
}

/// Runs mark and sweep over a storage.
pub fn gc(storage: &dyn Storage, opts: &GcOptions) -> Result<GcReport, StorageError> {
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
    let mut report = GcReport {
        marked: marked.len(),
        ..Default::default()
    };
    let now = SystemTime::now();
    for blob in storage.list_blobs()? {
        if marked.contains(&blob) {
            continue;
        }
        if !opts.blob_min_age.is_zero() {
            let age = storage
                .blob_modified(&blob)
                .and_then(|m| now.duration_since(m).ok());
            // Unknown age counts as young: keeping is the safe side.
            let young = match age {
                Some(age) => age < opts.blob_min_age,
                None => true,
            };
            if young {
                continue;
            }
        }
        report.bytes_freed += storage.blob_size(&blob)?.unwrap_or(0);
        if !opts.dry_run {
            storage.delete_blob(&blob)?;
        }
        report.swept.push(blob);
    }
    if !opts.dry_run {
        // Links to swept blobs would promise content that is gone.
        let swept: HashSet<&Digest> = report.swept.iter().collect();
        for name in storage.repositories()? {
            let Ok(repo) = RepoName::new(&name) else {
                continue;
            };
            for d in storage.list_links(&repo, LinkKind::Layer)? {
                if swept.contains(&d) {
                    storage.unlink(&repo, LinkKind::Layer, &d)?;
                }
            }
        }
    }
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
