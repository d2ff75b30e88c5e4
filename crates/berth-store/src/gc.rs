//! Garbage collection: layers no image uses, blobs nothing references, stale staging files.
//!
//! Writers that add content (import, load, pull, build) hold a shared [`ContentLease`] from
//! the moment their first blob is written until their image row exists; the collector takes
//! the same lock exclusively, so it never removes content that is about to be referenced.

use std::collections::HashSet;
use std::fs::{self, File};

use berth_oci::Digest;
use fs2::FileExt;

use crate::error::{Error, Result};
use crate::layers::remove_tree;
use crate::{parse_digest, Store};

/// A shared lock that keeps the garbage collector away while content is being added.
#[derive(Debug)]
pub struct ContentLease {
    file: File,
}

impl Drop for ContentLease {
    fn drop(&mut self) {
        let _ = FileExt::unlock(&self.file);
    }
}

/// What a collection removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GcReport {
    /// Chain IDs of removed layer snapshots.
    pub layers: Vec<Digest>,
    /// Removed blobs.
    pub blobs: Vec<Digest>,
    /// Bytes of removed layer snapshots (unpacked sizes, as Docker counts image size).
    pub layer_bytes: u64,
    /// Bytes of removed blobs.
    pub blob_bytes: u64,
    /// Bytes of removed staging entries of dead processes (`ROOT/tmp`).
    pub staging_bytes: u64,
}

impl GcReport {
    /// Every byte the collection freed.
    pub fn total_bytes(&self) -> u64 {
        self.layer_bytes + self.blob_bytes + self.staging_bytes
    }
}

/// The `blob_refs` holder of the blobs image `id` keeps.
pub(crate) fn image_holder(id: &Digest) -> String {
    format!("image:{id}")
}

impl Store {
    fn gc_lock_file(&self) -> Result<File> {
        let path = self.root.join("locks").join("gc.lock");
        File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(Error::io("opening lock", path))
    }

    /// Takes a shared lease that blocks garbage collection until dropped.
    pub fn content_lease(&self) -> Result<ContentLease> {
        let file = self.gc_lock_file()?;
        file.lock_shared()
            .map_err(Error::io("locking", self.root.join("locks/gc.lock")))?;
        Ok(ContentLease { file })
    }

    /// Removes layers with no image, blobs that no image, layer or `blob_refs` row names,
    /// layer directories without a record and staging leftovers of dead processes.
    pub fn gc(&self) -> Result<GcReport> {
        let lock = self.gc_lock_file()?;
        lock.lock_exclusive()
            .map_err(Error::io("locking", self.root.join("locks/gc.lock")))?;
        self.collect(lock)
    }

    /// [`Store::gc`] unless another process is adding content right now, in which case
    /// nothing is collected (`None`) and the garbage waits for the next collection.
    pub fn try_gc(&self) -> Result<Option<GcReport>> {
        let lock = self.gc_lock_file()?;
        match lock.try_lock_exclusive() {
            Ok(()) => self.collect(lock).map(Some),
            Err(e) if e.kind() == fs2::lock_contended_error().kind() => Ok(None),
            Err(e) => Err(Error::io("locking", self.root.join("locks/gc.lock"))(e)),
        }
    }

    fn collect(&self, lock: File) -> Result<GcReport> {
        let mut report = GcReport::default();
        // Unused layers, children before parents.
        loop {
            let victims: Vec<(String, i64)> = {
                let conn = self.conn.borrow();
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT chain_id, size FROM layers l WHERE refcount <= 0 AND NOT EXISTS \
                         (SELECT 1 FROM layers c WHERE c.parent = l.chain_id) AND NOT EXISTS \
                         (SELECT 1 FROM image_layers il WHERE il.chain_id = l.chain_id)",
                    )
                    .map_err(Error::db("finding unused layers"))?;
                let rows = stmt
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                    .map_err(Error::db("finding unused layers"))?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(Error::db("finding unused layers"))?
            };
            if victims.is_empty() {
                break;
            }
            for (chain, size) in victims {
                let d = parse_digest(&chain, "layers.chain_id")?;
                let l = self.lock_layer(&d)?;
                // Row first: a crash then leaves an orphan directory, removed below next time.
                // Checked again in the deleting statement: an image that took the layer
                // since the query above keeps it.
                let n = self
                    .conn
                    .borrow()
                    .execute(
                        "DELETE FROM layers WHERE chain_id = ?1 AND refcount <= 0 AND NOT EXISTS \
                         (SELECT 1 FROM layers c WHERE c.parent = ?1) AND NOT EXISTS \
                         (SELECT 1 FROM image_layers il WHERE il.chain_id = ?1)",
                        [&chain],
                    )
                    .map_err(Error::db("deleting layer"))?;
                if n == 0 {
                    continue;
                }
                remove_tree(&self.layer_dir(&d))?;
                // Its lock goes with it (a waiter finds the file unlinked and takes a new one).
                l.remove();
                report.layer_bytes += size.max(0) as u64;
                report.layers.push(d);
            }
        }
        // Layer directories without a row.
        let layers_dir = self.root.join("layers");
        let known: HashSet<String> = self
            .list_layers()?
            .into_iter()
            .map(|l| l.chain_id.hex().to_owned())
            .collect();
        for entry in
            fs::read_dir(&layers_dir).map_err(Error::io("listing", layers_dir.as_path()))?
        {
            let entry = entry.map_err(Error::io("listing", layers_dir.as_path()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if Digest::from_hex(&name).is_ok() && !known.contains(&name) {
                report.layer_bytes += crate::layers::content_size(&entry.path()).unwrap_or(0);
                remove_tree(&entry.path())?;
            }
        }
        // Lock files of layers that are gone (older releases left one per layer ever
        // stored), unlinked while held, as the collector does with a layer it removes.
        let locks = self.root.join("locks");
        for entry in fs::read_dir(&locks).map_err(Error::io("listing", locks.as_path()))? {
            let entry = entry.map_err(Error::io("listing", locks.as_path()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(hex) = name
                .strip_prefix("layer-")
                .and_then(|n| n.strip_suffix(".lock"))
            else {
                continue;
            };
            if known.contains(hex) {
                continue;
            }
            if let Ok(f) = File::options().write(true).open(entry.path()) {
                if f.try_lock_exclusive().is_ok() && crate::staging::still_names(&entry.path(), &f)
                {
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
        // Unreferenced blobs.
        let referenced: HashSet<String> = {
            let conn = self.conn.borrow();
            let mut stmt = conn
                .prepare_cached(
                    "SELECT id FROM images UNION SELECT manifest_digest FROM images \
                     UNION SELECT blob_digest FROM layers UNION SELECT digest FROM blob_refs",
                )
                .map_err(Error::db("finding referenced blobs"))?;
            let rows = stmt
                .query_map([], |r| r.get::<_, String>(0))
                .map_err(Error::db("finding referenced blobs"))?;
            rows.collect::<rusqlite::Result<HashSet<_>>>()
                .map_err(Error::db("finding referenced blobs"))?
        };
        for d in self.blobs.list()? {
            if !referenced.contains(&d.to_string()) {
                if let Ok(Some(size)) = crate::blobs::BlobReader::blob_size(&self.blobs, &d) {
                    report.blob_bytes += size;
                }
                self.blobs.remove(&d)?;
                report.blobs.push(d);
            }
        }
        // Staging leftovers of processes that died.
        let swept = self.sweep_staging()?;
        report.staging_bytes += swept.bytes;
        let _ = FileExt::unlock(&lock);
        Ok(report)
    }

    /// Keeps `digest` alive through garbage collection on behalf of `holder`.
    pub fn add_blob_ref(&self, digest: &Digest, holder: &str) -> Result<()> {
        self.add_blob_refs(std::slice::from_ref(digest), holder)
    }

    /// Keeps `digests` alive for as long as image `id` exists: blobs an image needs but no
    /// row of its names (the index it was pulled as, the other platforms' manifests, configs
    /// and layers, which a push sends on). [`Store::delete_image`] drops them.
    pub fn keep_blobs_for_image(&self, id: &Digest, digests: &[Digest]) -> Result<()> {
        self.add_blob_refs(digests, &image_holder(id))
    }

    /// Keeps `digests` alive on behalf of `holder`, in one transaction.
    fn add_blob_refs(&self, digests: &[Digest], holder: &str) -> Result<()> {
        let mut conn = self.conn.borrow_mut();
        let tx = conn
            .transaction()
            .map_err(Error::db("adding blob references"))?;
        for d in digests {
            tx.execute(
                "INSERT OR IGNORE INTO blob_refs (digest, holder) VALUES (?1, ?2)",
                [d.to_string(), holder.to_owned()],
            )
            .map_err(Error::db("adding blob reference"))?;
        }
        tx.commit().map_err(Error::db("adding blob references"))?;
        Ok(())
    }

    /// Drops every blob reference of `holder`.
    pub fn remove_blob_refs(&self, holder: &str) -> Result<()> {
        self.conn
            .borrow()
            .execute("DELETE FROM blob_refs WHERE holder = ?1", [holder])
            .map_err(Error::db("removing blob references"))?;
        Ok(())
    }
}
