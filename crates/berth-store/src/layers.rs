//! Layer snapshots: one unpacked directory per layer under `ROOT/layers/<chain-id-hex>/`,
//! and the snapshotter view of an image (its lower directories, which the caller mounts).
//!
//! Contract: a snapshot is unpacked into a staging directory in `ROOT/tmp/`, then
//! [`Store::commit_layer`] takes the layer's file lock, renames it into place (unless another
//! process stored the same layer first, in which case the copy is dropped) and records it.
//! A layer row therefore always has a complete directory.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use berth_oci::Digest;
use fs2::FileExt;
use rusqlite::{params, OptionalExtension};

use crate::blobs::sync_dir;
use crate::error::{Error, Result};
use crate::staging::{self, Staging, SweepReport};
use crate::{now_unix, parse_digest, Store};

/// A stored layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerRecord {
    /// Chain ID (identifies the snapshot).
    pub chain_id: Digest,
    /// Digest of the uncompressed tar.
    pub diff_id: Digest,
    /// Digest of the blob as stored.
    pub blob_digest: Digest,
    /// Media type of the blob.
    pub media_type: String,
    /// Size of the blob.
    pub blob_size: u64,
    /// Chain ID of the layer below, if any.
    pub parent: Option<Digest>,
    /// Bytes of unpacked content, as Docker counts a layer's size: the sizes of the
    /// snapshot's files and symlinks (not directories), each hardlinked inode once.
    pub size: u64,
    /// How many images use it.
    pub refcount: u64,
}

/// A layer to record, after its content was unpacked into a staging directory.
#[derive(Debug, Clone)]
pub struct NewLayer {
    /// Digest of the uncompressed tar.
    pub diff_id: Digest,
    /// Digest of the stored blob.
    pub blob_digest: Digest,
    /// Its media type.
    pub media_type: String,
    /// Its size.
    pub blob_size: u64,
    /// The size of the uncompressed tar. Not recorded: the layer's size is measured in the
    /// snapshot (see [`LayerRecord::size`]).
    pub size: u64,
}

/// An exclusive lock on one layer, held while it is created or removed.
#[derive(Debug)]
pub struct LayerLock {
    file: File,
    path: PathBuf,
}

impl LayerLock {
    /// Unlinks the lock file while holding it (the layer is gone): a process waiting on it
    /// sees it unlinked once it gets it and takes a fresh one.
    pub(crate) fn remove(self) {
        let _ = fs::remove_file(&self.path);
    }
}

impl Drop for LayerLock {
    fn drop(&mut self) {
        let _ = FileExt::unlock(&self.file);
    }
}

/// The chain ID of a layer with diff ID `diff_id` over the chain `parent`:
/// `parent == None` gives `diff_id`, otherwise `sha256(parent + " " + diff_id)`.
pub fn chain_id(parent: Option<&Digest>, diff_id: &Digest) -> Digest {
    match parent {
        None => diff_id.clone(),
        Some(p) => Digest::of(format!("{p} {diff_id}").as_bytes()),
    }
}

impl Store {
    /// The snapshot directory of a layer (whether or not it exists).
    pub fn layer_dir(&self, chain_id: &Digest) -> PathBuf {
        self.root.join("layers").join(chain_id.hex())
    }

    /// A fresh directory `ROOT/tmp/layer-*` to unpack a snapshot into, removed when
    /// dropped, swept after its process died (see [`crate::staging`]).
    pub fn staging_dir(&self) -> Result<Staging> {
        self.stage_dir("layer")
    }

    /// The staging area, `ROOT/tmp` (same file system as blobs and layers).
    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// A fresh directory `ROOT/tmp/KIND-*` owned by this process (see [`crate::staging`]).
    pub fn stage_dir(&self, kind: &str) -> Result<Staging> {
        Staging::new_dir_in(&self.tmp_dir(), kind)
    }

    /// A fresh file `ROOT/tmp/KIND-*` owned by this process (see [`crate::staging`]).
    pub fn stage_file(&self, kind: &str) -> Result<(Staging, File)> {
        Staging::new_file_in(&self.tmp_dir(), kind)
    }

    /// The entry `ROOT/tmp/NAME`, owned by this process once other live owners of the name
    /// let it go (blocks until then; see [`Staging::named_in`]).
    pub fn stage_named(&self, name: &str) -> Result<Staging> {
        Staging::named_in(&self.tmp_dir(), name)
    }

    /// Removes the staging entries of dead processes (see [`crate::staging::sweep`]).
    pub fn sweep_staging(&self) -> Result<SweepReport> {
        staging::sweep(&self.tmp_dir(), &|_| false)
    }

    /// Bytes held in `ROOT/tmp` (live and dead staging), for `system df`.
    pub fn staging_bytes(&self) -> Result<u64> {
        staging::usage(&self.tmp_dir())
    }

    /// Takes the layer's exclusive lock (blocking until other processes release it).
    pub fn lock_layer(&self, chain_id: &Digest) -> Result<LayerLock> {
        let dir = self.root.join("locks");
        let path = dir.join(format!("layer-{}.lock", chain_id.hex()));
        loop {
            let file = File::options()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .map_err(Error::io("opening lock", path.as_path()))?;
            file.lock_exclusive()
                .map_err(Error::io("locking", path.as_path()))?;
            // The collector unlinks a removed layer's lock while holding it.
            if crate::staging::still_names(&path, &file) {
                return Ok(LayerLock { file, path });
            }
        }
    }

    /// Stores the snapshot unpacked in `staging` as the layer `new` over `parent`, once: if
    /// the layer exists already, `staging` is dropped and the existing record returned.
    pub fn commit_layer(
        &self,
        staging: Staging,
        parent: Option<&Digest>,
        new: &NewLayer,
    ) -> Result<LayerRecord> {
        let chain = chain_id(parent, &new.diff_id);
        if let Some(p) = parent {
            if self.layer(p)?.is_none() {
                return Err(Error::MissingParent {
                    chain_id: chain,
                    parent: p.clone(),
                });
            }
        }
        let _lock = self.lock_layer(&chain)?;
        if let Some(rec) = self.layer(&chain)? {
            return Ok(rec);
        }
        let target = self.layer_dir(&chain);
        if target.exists() {
            // Left by a crash between rename and insert: complete (rename is atomic), but
            // replace it rather than trust it.
            fs::remove_dir_all(&target).map_err(Error::io("removing stale", target.as_path()))?;
        }
        let size = content_size(staging.path())?;
        // Once renamed, dropping `staging` finds nothing to remove and releases its lock.
        fs::rename(staging.path(), &target).map_err(Error::io("renaming into", &target))?;
        drop(staging);
        sync_dir(target.parent().unwrap_or(&self.root))?;
        self.conn
            .borrow()
            .execute(
                "INSERT INTO layers (chain_id, diff_id, blob_digest, media_type, blob_size, \
                 parent, size, refcount, created) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0, ?8)",
                params![
                    chain.to_string(),
                    new.diff_id.to_string(),
                    new.blob_digest.to_string(),
                    new.media_type,
                    new.blob_size as i64,
                    parent.map(|p| p.to_string()),
                    size as i64,
                    now_unix()
                ],
            )
            .map_err(Error::db("recording layer"))?;
        self.layer(&chain)?
            .ok_or_else(|| Error::LayerNotFound(chain.clone()))
    }

    /// A layer's record.
    pub fn layer(&self, chain_id: &Digest) -> Result<Option<LayerRecord>> {
        let conn = self.conn.borrow();
        let mut stmt = conn
            .prepare_cached(
                "SELECT chain_id, diff_id, blob_digest, media_type, blob_size, parent, size, \
                 refcount FROM layers WHERE chain_id = ?1",
            )
            .map_err(Error::db("looking up layer"))?;
        let row = stmt
            .query_row([chain_id.to_string()], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, Option<String>>(5)?,
                    r.get::<_, i64>(6)?,
                    r.get::<_, i64>(7)?,
                ))
            })
            .optional()
            .map_err(Error::db("looking up layer"))?;
        let Some((c, d, b, mt, bs, p, s, rc)) = row else {
            return Ok(None);
        };
        Ok(Some(LayerRecord {
            chain_id: parse_digest(&c, "layers.chain_id")?,
            diff_id: parse_digest(&d, "layers.diff_id")?,
            blob_digest: parse_digest(&b, "layers.blob_digest")?,
            media_type: mt,
            blob_size: bs as u64,
            parent: p.map(|p| parse_digest(&p, "layers.parent")).transpose()?,
            size: s as u64,
            refcount: rc.max(0) as u64,
        }))
    }

    /// The layers of an image, bottom first.
    pub fn image_layers(&self, id: &Digest) -> Result<Vec<LayerRecord>> {
        let image = self
            .image(id)?
            .ok_or_else(|| Error::ImageNotFound(id.to_string()))?;
        image
            .layers
            .iter()
            .map(|c| {
                self.layer(c)?
                    .ok_or_else(|| Error::LayerNotFound(c.clone()))
            })
            .collect()
    }

    /// The snapshotter's answer for an image: its layer directories in overlayfs `lowerdir`
    /// order (topmost layer first). Nothing is mounted; the caller mounts.
    pub fn image_lowerdirs(&self, id: &Digest) -> Result<Vec<PathBuf>> {
        let image = self
            .image(id)?
            .ok_or_else(|| Error::ImageNotFound(id.to_string()))?;
        Ok(image
            .layers
            .iter()
            .rev()
            .map(|c| self.layer_dir(c))
            .collect())
    }

    /// Every layer record.
    pub fn list_layers(&self) -> Result<Vec<LayerRecord>> {
        let chains: Vec<String> = {
            let conn = self.conn.borrow();
            let mut stmt = conn
                .prepare_cached("SELECT chain_id FROM layers ORDER BY chain_id")
                .map_err(Error::db("listing layers"))?;
            let rows = stmt
                .query_map([], |r| r.get::<_, String>(0))
                .map_err(Error::db("listing layers"))?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
                .map_err(Error::db("listing layers"))?
        };
        let mut out = Vec::new();
        for c in chains {
            let d = parse_digest(&c, "layers.chain_id")?;
            if let Some(rec) = self.layer(&d)? {
                out.push(rec);
            }
        }
        Ok(out)
    }
}

/// The unpacked size of a snapshot as Docker reports a layer's: the sizes of everything
/// but directories, each inode once (hardlinks), symlinks not followed.
pub(crate) fn content_size(dir: &Path) -> Result<u64> {
    use std::os::unix::fs::MetadataExt;
    let mut seen = std::collections::HashSet::new();
    let mut total = 0u64;
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let entries = match fs::read_dir(&d) {
            Ok(e) => e,
            // A directory the layer locked (mode 000) when not running as root.
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => continue,
            Err(e) => return Err(Error::io("measuring", d)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(Error::io("measuring", d.as_path()))?;
            // DirEntry::metadata does not follow symlinks.
            let meta = entry
                .metadata()
                .map_err(Error::io("measuring", entry.path()))?;
            if meta.is_dir() {
                todo.push(entry.path());
            } else if meta.len() > 0 && (meta.nlink() < 2 || seen.insert(meta.ino())) {
                total += meta.len();
            }
        }
    }
    Ok(total)
}

pub(crate) fn remove_tree(path: &Path) -> Result<()> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("removing", path)(e)),
    }
}
