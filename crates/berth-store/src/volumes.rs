//! The volume tables: volumes of the local driver and the containers that mount them.
//!
//! A volume's data lives at `ROOT/volumes/<name>/_data` ([`crate::Store::volume_dir`]).
//! Whether a volume is in use is decided in the transaction that removes it: a user row
//! whose container still has a row holds it; rows of containers that are gone are dropped
//! there. Creating a volume is `INSERT OR IGNORE` by name, so two processes creating the
//! same name end with one volume; a container's volumes are created (when missing) and
//! claimed in one transaction, so a `volume rm` racing a `run` has one winner.

use std::path::PathBuf;

use rusqlite::{params, Connection, OptionalExtension, Row, Transaction};

use crate::error::ErrorKind;

/// One volume as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeRecord {
    /// Unique name (64 hex digits for an anonymous volume).
    pub name: String,
    /// `local`.
    pub driver: String,
    /// JSON object of labels.
    pub labels: String,
    /// JSON object of driver options (`type`, `device`, `o`).
    pub options: String,
    /// Made for a container's `-v /path` or an image's `VOLUME`.
    pub anonymous: bool,
    /// Unix nanoseconds.
    pub created: i64,
}

/// Errors of the volume tables.
#[derive(Debug, thiserror::Error)]
pub enum VolumeStoreError {
    /// No volume has this name.
    #[error("get {0}: no such volume")]
    NotFound(String),
    /// Containers use the volume.
    #[error("remove {name}: volume is in use - [{}]", .containers.join(", "))]
    InUse {
        /// The volume.
        name: String,
        /// IDs of the containers that use it.
        containers: Vec<String>,
    },
    /// Moving the volume's directory aside failed.
    #[error("remove {name}: {source}")]
    Io {
        /// The volume.
        name: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The database failed.
    #[error("store database ({op}): {source}")]
    Db {
        /// What was being done.
        op: &'static str,
        /// SQLite's error.
        source: rusqlite::Error,
    },
}

impl VolumeStoreError {
    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            VolumeStoreError::NotFound(_) => ErrorKind::NotFound,
            VolumeStoreError::InUse { .. } => ErrorKind::Conflict,
            VolumeStoreError::Io { .. } | VolumeStoreError::Db { .. } => ErrorKind::Internal,
        }
    }
}

fn db(op: &'static str) -> impl FnOnce(rusqlite::Error) -> VolumeStoreError {
    move |source| VolumeStoreError::Db { op, source }
}

type Result<T> = std::result::Result<T, VolumeStoreError>;

const COLUMNS: &str = "name, driver, labels, options, anonymous, created";

fn row(r: &Row<'_>) -> rusqlite::Result<VolumeRecord> {
    Ok(VolumeRecord {
        name: r.get(0)?,
        driver: r.get(1)?,
        labels: r.get(2)?,
        options: r.get(3)?,
        anonymous: r.get(4)?,
        created: r.get(5)?,
    })
}

fn immediate(conn: &Connection) -> Result<Transaction<'_>> {
    Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)
        .map_err(db("starting transaction"))
}

fn insert_or_ignore(conn: &Connection, v: &VolumeRecord) -> Result<bool> {
    let n = conn
        .execute(
            &format!("INSERT OR IGNORE INTO volumes ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"),
            params![
                v.name,
                v.driver,
                v.labels,
                v.options,
                v.anonymous,
                v.created
            ],
        )
        .map_err(db("inserting volume"))?;
    Ok(n > 0)
}

fn get(conn: &Connection, name: &str) -> Result<Option<VolumeRecord>> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM volumes WHERE name = ?1"),
        [name],
        row,
    )
    .optional()
    .map_err(db("finding volume"))
}

/// Drops the claims of containers that have no row any more (removed, or a create that
/// died half-way).
fn drop_stale_users(conn: &Connection) -> Result<()> {
    conn.execute(
        "DELETE FROM volume_users WHERE container_id NOT IN (SELECT id FROM containers)",
        [],
    )
    .map_err(db("releasing volumes"))?;
    Ok(())
}

fn users(conn: &Connection, name: &str) -> Result<Vec<String>> {
    let mut st = conn
        .prepare_cached(
            "SELECT u.container_id FROM volume_users u JOIN containers c ON c.id = u.container_id \
             WHERE u.volume = ?1 ORDER BY u.container_id",
        )
        .map_err(db("reading volume users"))?;
    let rows = st
        .query_map([name], |r| r.get(0))
        .map_err(db("reading volume users"))?;
    rows.collect::<rusqlite::Result<_>>()
        .map_err(db("reading volume users"))
}

impl crate::Store {
    /// `ROOT/volumes/<name>`: the volume's directory (its data is in `_data`).
    pub fn volume_dir(&self, name: &str) -> PathBuf {
        self.root().join("volumes").join(name)
    }

    /// Adds `v` unless a volume of its name exists; returns the stored volume and whether
    /// this call created it.
    pub fn create_volume(&self, v: &VolumeRecord) -> Result<(VolumeRecord, bool)> {
        let conn = self.conn.borrow();
        let tx = immediate(&conn)?;
        let created = insert_or_ignore(&tx, v)?;
        let rec = get(&tx, &v.name)?.ok_or_else(|| VolumeStoreError::NotFound(v.name.clone()))?;
        tx.commit().map_err(db("committing"))?;
        Ok((rec, created))
    }

    /// The volume named `name`, if any.
    pub fn volume(&self, name: &str) -> Result<Option<VolumeRecord>> {
        get(&self.conn.borrow(), name)
    }

    /// Every volume, by name.
    pub fn list_volumes(&self) -> Result<Vec<VolumeRecord>> {
        let conn = self.conn.borrow();
        let mut st = conn
            .prepare_cached(&format!("SELECT {COLUMNS} FROM volumes ORDER BY name"))
            .map_err(db("listing volumes"))?;
        let rows = st.query_map([], row).map_err(db("listing volumes"))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(db("listing volumes"))
    }

    /// The IDs of the containers (with a row) that use the volume.
    pub fn volume_users(&self, name: &str) -> Result<Vec<String>> {
        users(&self.conn.borrow(), name)
    }

    /// For every volume in use, how many containers use it.
    pub fn volume_user_counts(&self) -> Result<std::collections::HashMap<String, usize>> {
        let conn = self.conn.borrow();
        let mut st = conn
            .prepare_cached(
                "SELECT u.volume, count(*) FROM volume_users u \
                 JOIN containers c ON c.id = u.container_id GROUP BY u.volume",
            )
            .map_err(db("counting volume users"))?;
        let rows = st
            .query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as usize))
            })
            .map_err(db("counting volume users"))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(db("counting volume users"))
    }

    /// In one transaction: creates each of `new` that does not exist, then records
    /// `container_id` as a user of each volume in `names` (which must exist by then: a
    /// volume removed meanwhile is [`VolumeStoreError::NotFound`], and nothing is claimed).
    /// Returns the names of the volumes this call created.
    pub fn claim_volumes(
        &self,
        container_id: &str,
        new: &[VolumeRecord],
        names: &[String],
    ) -> Result<Vec<String>> {
        let conn = self.conn.borrow();
        let tx = immediate(&conn)?;
        let mut created = Vec::new();
        for v in new {
            if insert_or_ignore(&tx, v)? {
                created.push(v.name.clone());
            }
        }
        for n in names {
            if get(&tx, n)?.is_none() {
                return Err(VolumeStoreError::NotFound(n.clone()));
            }
            tx.execute(
                "INSERT OR IGNORE INTO volume_users (volume, container_id) VALUES (?1, ?2)",
                params![n, container_id],
            )
            .map_err(db("claiming volume"))?;
        }
        tx.commit().map_err(db("committing"))?;
        Ok(created)
    }

    /// Removes the volume `name` when no container uses it (else
    /// [`VolumeStoreError::InUse`]); `set_aside` runs inside the transaction, after the
    /// check, and should move the volume's directory out of its place (it is what makes
    /// the removal: when it fails, the row stays). With `force`, a volume that is in use is
    /// removed anyway (Docker's `volume rm -f` only ignores a missing one; berth's callers
    /// pass `false` for a user's `rm`).
    pub fn delete_volume(
        &self,
        name: &str,
        force: bool,
        set_aside: impl FnOnce(&VolumeRecord) -> std::io::Result<()>,
    ) -> Result<VolumeRecord> {
        let conn = self.conn.borrow();
        let tx = immediate(&conn)?;
        drop_stale_users(&tx)?;
        let rec = get(&tx, name)?.ok_or_else(|| VolumeStoreError::NotFound(name.to_string()))?;
        let using = users(&tx, name)?;
        if !using.is_empty() && !force {
            return Err(VolumeStoreError::InUse {
                name: name.to_string(),
                containers: using,
            });
        }
        tx.execute("DELETE FROM volumes WHERE name = ?1", [name])
            .map_err(db("deleting volume"))?;
        set_aside(&rec).map_err(|source| VolumeStoreError::Io {
            name: name.to_string(),
            source,
        })?;
        tx.commit().map_err(db("committing"))?;
        Ok(rec)
    }

    /// Removes, in one transaction, every volume that no container uses and that `keep`
    /// does not keep; `set_aside` runs for each (see [`Self::delete_volume`]); a volume it
    /// fails for stays. Returns the removed volumes.
    pub fn prune_volumes(
        &self,
        keep: impl Fn(&VolumeRecord) -> bool,
        mut set_aside: impl FnMut(&VolumeRecord) -> std::io::Result<()>,
    ) -> Result<Vec<VolumeRecord>> {
        let conn = self.conn.borrow();
        let tx = immediate(&conn)?;
        drop_stale_users(&tx)?;
        let unused: Vec<VolumeRecord> = {
            let mut st = tx
                .prepare(&format!(
                    "SELECT {COLUMNS} FROM volumes WHERE name NOT IN \
                     (SELECT volume FROM volume_users) ORDER BY name"
                ))
                .map_err(db("listing unused volumes"))?;
            let rows = st
                .query_map([], row)
                .map_err(db("listing unused volumes"))?;
            rows.collect::<rusqlite::Result<_>>()
                .map_err(db("listing unused volumes"))?
        };
        let mut removed = Vec::new();
        for v in unused.into_iter().filter(|v| !keep(v)) {
            if let Err(e) = set_aside(&v) {
                log::warn!("volume prune: {}: {e}", v.name);
                continue;
            }
            tx.execute("DELETE FROM volumes WHERE name = ?1", [&v.name])
                .map_err(db("deleting volume"))?;
            removed.push(v);
        }
        tx.commit().map_err(db("committing"))?;
        Ok(removed)
    }

    /// Drops `container_id`'s claims (its removal; the rows would be ignored anyway once
    /// its row is gone).
    pub fn release_volumes(&self, container_id: &str) -> Result<()> {
        self.conn
            .borrow()
            .execute(
                "DELETE FROM volume_users WHERE container_id = ?1",
                [container_id],
            )
            .map_err(db("releasing volumes"))?;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::containers::ContainerRecord;
    use crate::Store;

    fn vol(name: &str, anonymous: bool) -> VolumeRecord {
        VolumeRecord {
            name: name.into(),
            driver: "local".into(),
            labels: "{}".into(),
            options: "{}".into(),
            anonymous,
            created: 1,
        }
    }

    fn container(store: &Store, id: &str) {
        // A container row needs its image row: insert both by SQL.
        store
            .with_conn(|c| {
                c.execute(
                    "INSERT INTO containers (id, name, image_id, image_ref, created, status, config) \
                     VALUES (?1, ?1, 'sha256:x', 'x', 1, 'created', '{}')",
                    [id],
                )
            })
            .unwrap();
        let _ = ContainerRecord::fresh;
    }

    #[test]
    fn create_is_once_per_name_and_in_use_blocks_removal() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let (_, made) = s.create_volume(&vol("data", false)).unwrap();
        assert!(made);
        let (rec, made) = s.create_volume(&vol("data", true)).unwrap();
        assert!(!made && !rec.anonymous);
        container(&s, "c1");
        s.claim_volumes("c1", &[vol("anon", true)], &["data".into(), "anon".into()])
            .unwrap();
        let e = s.delete_volume("data", false, |_| Ok(())).unwrap_err();
        assert_eq!(e.to_string(), "remove data: volume is in use - [c1]");
        assert_eq!(e.kind(), ErrorKind::Conflict);
        // Nothing unused to prune.
        assert!(s.prune_volumes(|_| false, |_| Ok(())).unwrap().is_empty());
        // The container's row goes: its claims no longer count.
        s.with_conn(|c| c.execute("DELETE FROM containers WHERE id = 'c1'", []))
            .unwrap();
        let pruned = s.prune_volumes(|v| !v.anonymous, |_| Ok(())).unwrap();
        assert_eq!(pruned.len(), 1);
        assert_eq!(pruned[0].name, "anon");
        // A failing set-aside keeps the row.
        assert!(s
            .delete_volume("data", false, |_| Err(std::io::Error::other("busy")))
            .is_err());
        assert!(s.volume("data").unwrap().is_some());
        s.delete_volume("data", false, |_| Ok(())).unwrap();
        assert!(s.list_volumes().unwrap().is_empty());
        assert_eq!(
            s.delete_volume("data", false, |_| Ok(()))
                .unwrap_err()
                .kind(),
            ErrorKind::NotFound
        );
    }

    #[test]
    fn claiming_a_removed_volume_claims_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        container(&s, "c1");
        let e = s
            .claim_volumes("c1", &[vol("new", true)], &["new".into(), "gone".into()])
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert!(s.volume("new").unwrap().is_none());
    }
}
