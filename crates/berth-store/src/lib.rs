//! berth-store: the local store of images — content-addressed blobs, unpacked layer
//! snapshots and SQLite metadata — shared safely by many `berth` processes at once.
//!
//! It knows nothing of container processes or HTTP. Layout under the root:
//!
//! ```text
//! ROOT/berth.db               SQLite, WAL mode: images, tags, layers (+ others' tables)
//! ROOT/blobs/sha256/<hex>     blobs, written to tmp/, verified, fsynced, renamed
//! ROOT/layers/<chain-hex>/    one unpacked snapshot per layer (overlay lower dirs)
//! ROOT/locks/                 per-layer and garbage-collection file locks
//! ROOT/tmp/                   staging, same file system as blobs/ and layers/
//! ROOT/volumes/<name>/_data   volumes' data (rows in [`volumes`])
//! ```
//!
//! # Main types and calls
//! - [`Store::open`] — creates the layout, opens the database, runs [`migrations`].
//! - Blobs: [`Store::blobs`] gives a [`BlobStore`], which is an [`Ingester`]
//!   (`begin_blob()` → write → [`BlobWriter::commit`]`(expected)`, `ingest`, `put_bytes`) and
//!   a [`BlobReader`] (`open_blob`, `read_blob`, `blob_size`).
//! - Layers: unpack into [`Store::staging_dir`], then [`Store::commit_layer`]`(staging,
//!   parent_chain, &NewLayer)` → [`LayerRecord`] (stored once even when two processes race);
//!   [`Store::layer`], [`Store::layer_dir`], [`chain_id`].
//! - Images: [`Store::add_image`]`(&NewImage, &tags)` (moves tags; the old image stays,
//!   untagged), [`Store::tag_image`], [`Store::untag`], [`Store::resolve_image`]`(input,
//!   normalized_ref)` (full ID, tag, or unique ID prefix; ambiguity is an error listing the
//!   matches), [`Store::image`], [`Store::list_images`], [`Store::delete_image`].
//! - Snapshotter: [`Store::image_lowerdirs`]`(id)` returns the overlay lower directories,
//!   topmost first. It mounts nothing; the caller mounts.
//! - Users of images: [`Store::add_image_user`] / [`Store::image_users`] (containers record
//!   the image they use, so `rmi` refuses without force); [`Store::add_blob_ref`] keeps a
//!   blob alive for a non-image holder (build cache).
//! - [`Store::content_lease`] (hold while adding content: import, load, pull, build) and
//!   [`Store::gc`] (waits for leases) / [`Store::try_gc`] (skips while one is held). Do not
//!   call either while holding a lease in the same process: `flock` would deadlock.
//! - Other tables: [`Store::with_conn`] / [`Store::with_tx`] give SQL access to the same
//!   database for the containers, networks and build-cache code.
//!
//! # Adding tables (containers, networks, build cache)
//! Write `src/migrations/NNNN_what.sql` and append a [`migrations::Migration`] with the next
//! version to [`migrations::MIGRATIONS`]; then use [`Store::with_tx`] for writes (an
//! `IMMEDIATE` transaction, so concurrent processes queue on the busy timeout instead of
//! failing) and [`Store::with_conn`] for reads. Never change a shipped migration.
//!
//! - Staging: every temp path in `tmp/` is a [`Staging`] entry owned by a held `flock` on
//!   its `NAME.lock` ([`Store::stage_dir`], [`Store::stage_file`], [`Store::stage_named`]);
//!   [`OutputFile`] writes a file next to its destination that has no name until whole.
//!
//! # Crash safety
//! Blobs and snapshots are staged in `tmp/` and renamed into place before any row names
//! them; rows change in transactions; what a dead process staged is swept by the next
//! [`Store::open`] (its owner lock is free); [`Store::gc`] removes what a crash left
//! unreferenced (snapshot directories without a row, unreferenced blobs, lock files of
//! removed layers). A missing or empty database beside stored content is an error
//! ([`Error::DatabaseLost`]), never a new store; a full disk is [`Error::NoSpace`].
//!
//! # Concurrency
//! Whether an image may be deleted and whether a container may be recorded on it are
//! decided in the transactions that delete and insert ([`Store::delete_image`] refuses
//! while a container uses the image; inserting a container checks that its image exists),
//! so `rmi` and `run` racing each other end with one winner and no dangling row.
//!
//! # Example
//! ```
//! use berth_store::{Ingester, BlobReader, Store};
//! let dir = tempfile::tempdir().unwrap();
//! let store = Store::open(dir.path()).unwrap();
//! let info = store.blobs().put_bytes(b"{}").unwrap();
//! assert_eq!(store.blobs().read_blob(&info.digest).unwrap(), b"{}");
//! assert!(store.list_images().unwrap().is_empty());
//! ```

#![deny(missing_docs)]

use std::cell::RefCell;
use std::fs;
use std::path::{Path, PathBuf};

use berth_oci::Digest;
use rusqlite::{Connection, TransactionBehavior};

pub mod blobs;
pub mod build_cache;
pub mod containers;
pub mod db;
mod error;
pub mod gc;
pub mod images;
pub mod layers;
pub mod migrations;
pub mod networks;
pub mod staging;
pub mod volumes;

pub use blobs::{BlobInfo, BlobReader, BlobStore, BlobWriter, Ingester};
pub use build_cache::{BuildCachePrune, BuildCacheRecord};
pub use error::{Error, ErrorKind, Result};
pub use gc::{ContentLease, GcReport};
pub use images::{ImageRecord, NewImage, TagMove};
pub use layers::{chain_id, LayerLock, LayerRecord, NewLayer};
pub use staging::{OutputFile, Staging, SweepReport};
pub use volumes::{VolumeRecord, VolumeStoreError};

/// The store under one root directory. One per process (or thread): it holds one database
/// connection.
#[derive(Debug)]
pub struct Store {
    root: PathBuf,
    blobs: BlobStore,
    conn: RefCell<Connection>,
}

impl Store {
    /// Opens the store at `root`, creating its layout and database as needed.
    ///
    /// ROOT and the directories of the layout are made (or, in a store made by an older
    /// berth, fixed to be) private to the store's owner: mode 0700, owned by the caller.
    /// Other users must not reach anything under ROOT: the layer snapshots hold images'
    /// setuid binaries and device nodes, and containers' rw layers whatever their processes
    /// made (the CVE-2021-41091 class).
    pub fn open(root: &Path) -> Result<Store> {
        private_dir(root)?;
        for sub in ["blobs", "blobs/sha256", "layers", "locks", "tmp"] {
            private_dir(&root.join(sub))?;
        }
        let blobs = BlobStore::new(root)?;
        db::check_not_lost(root, &root.join("berth.db"))?;
        let conn = db::open(&root.join("berth.db"))?;
        // Debris of dead processes (see `staging`): one getdents when there is none.
        if let Err(e) = staging::sweep(&root.join("tmp"), &|_| false) {
            log::warn!("sweeping {}: {e}", root.join("tmp").display());
        }
        Ok(Store {
            root: root.to_path_buf(),
            blobs,
            conn: RefCell::new(conn),
        })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The blob store.
    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    /// Runs `f` with the database connection (reads, single statements).
    pub fn with_conn<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        f(&self.conn.borrow()).map_err(Error::db_at("query", &self.db_path()))
    }

    fn db_path(&self) -> PathBuf {
        self.root.join("berth.db")
    }

    /// Runs `f` in an `IMMEDIATE` transaction, committed when `f` returns `Ok`.
    pub fn with_tx<T>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<T>,
    ) -> Result<T> {
        let mut conn = self.conn.borrow_mut();
        let db = self.db_path();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(Error::db_at("starting transaction", &db))?;
        let v = f(&tx).map_err(Error::db_at("transaction", &db))?;
        tx.commit().map_err(Error::db_at("committing", &db))?;
        Ok(v)
    }
}

/// Makes `dir` a directory closed to other users: created with mode 0700 (its parents with
/// the usual modes) when missing; an existing one gets mode 0700 and, when the caller is
/// root and someone else owns it, the caller as owner. Used for the store's root and
/// layout and for the engine's runroot.
pub fn private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(Error::io("creating", parent))?;
    }
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(Error::io("creating", dir)(e)),
    }
    // The umask may have taken bits off a new directory, and an existing one (an older
    // berth made them 0755) keeps its mode: set it whenever it is not 0700.
    let md = fs::metadata(dir).map_err(Error::io("securing", dir))?;
    if !md.is_dir() {
        return Err(Error::io("securing", dir)(std::io::Error::from(
            std::io::ErrorKind::NotADirectory,
        )));
    }
    let euid = rustix::process::geteuid();
    if euid.is_root() && md.uid() != 0 {
        let egid = rustix::process::getegid();
        std::os::unix::fs::chown(dir, Some(euid.as_raw()), Some(egid.as_raw()))
            .map_err(Error::io("securing", dir))?;
    }
    if md.mode() & 0o7777 != 0o700 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(Error::io("securing", dir))?;
    }
    Ok(())
}

pub(crate) fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub(crate) fn parse_digest(s: &str, what: &str) -> Result<Digest> {
    s.parse()
        .map_err(|e: berth_oci::DigestError| Error::Corrupt {
            what: what.to_owned(),
            detail: e.to_string(),
        })
}

#[cfg(test)]
mod tests;
