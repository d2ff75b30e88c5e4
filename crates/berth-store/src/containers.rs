//! The container table: one row per container, its status and its last run.
//!
//! The store keeps the engine's configuration as opaque JSON; the engine owns its meaning.
//! Each write is one statement (or one short transaction), so many `berth` processes and
//! per-container monitors can update rows at once under SQLite's WAL locking.

use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::error::ErrorKind;

/// One container as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerRecord {
    /// 64 hex digits.
    pub id: String,
    /// Unique name, without a leading `/`.
    pub name: String,
    /// The image's ID (`sha256:...`).
    pub image_id: String,
    /// The image as the user named it.
    pub image_ref: String,
    /// Creation time, unix nanoseconds.
    pub created: i64,
    /// `created`, `running`, `restarting`, `exited`, `removing`, `dead`.
    pub status: String,
    /// PID of the container's first process on the host (0 when none).
    pub pid: i64,
    /// Start time of `pid` from `/proc/<pid>/stat`, to detect a reused PID.
    pub pid_start: i64,
    /// PID of the container's monitor (0 when none).
    pub monitor_pid: i64,
    /// Start time of `monitor_pid`.
    pub monitor_start: i64,
    /// Exit status of the last run.
    pub exit_code: i64,
    /// Whether the last run ended by the OOM killer.
    pub oom_killed: bool,
    /// Start of the last run, unix nanoseconds (0 = never started).
    pub started_at: i64,
    /// End of the last run, unix nanoseconds (0 = not finished).
    pub finished_at: i64,
    /// How many times the restart policy started it again.
    pub restart_count: i64,
    /// Whether the user stopped it (the restart policy then leaves it stopped).
    pub stopped_by_user: bool,
    /// Why the last start failed, if it did.
    pub error: String,
    /// The engine's configuration, JSON.
    pub config: String,
}

impl ContainerRecord {
    /// A container just created: status `created`, never run, no processes, no error.
    pub fn fresh(
        id: String,
        name: String,
        image_id: String,
        image_ref: String,
        created: i64,
        config: String,
    ) -> ContainerRecord {
        ContainerRecord {
            id,
            name,
            image_id,
            image_ref,
            created,
            status: "created".into(),
            pid: 0,
            pid_start: 0,
            monitor_pid: 0,
            monitor_start: 0,
            exit_code: 0,
            oom_killed: false,
            started_at: 0,
            finished_at: 0,
            restart_count: 0,
            stopped_by_user: false,
            error: String::new(),
            config,
        }
    }
}

/// A partial update: each `Some` field is written, the others are left alone.
#[derive(Debug, Clone, Default)]
pub struct ContainerUpdate {
    /// New status.
    pub status: Option<String>,
    /// New container PID and its start time.
    pub pid: Option<(i64, i64)>,
    /// New monitor PID and its start time.
    pub monitor: Option<(i64, i64)>,
    /// Exit status.
    pub exit_code: Option<i64>,
    /// OOM-killed flag.
    pub oom_killed: Option<bool>,
    /// Start time.
    pub started_at: Option<i64>,
    /// End time.
    pub finished_at: Option<i64>,
    /// Restart count.
    pub restart_count: Option<i64>,
    /// Stopped-by-user flag.
    pub stopped_by_user: Option<bool>,
    /// Start error.
    pub error: Option<String>,
    /// Only apply when the row's status is one of these (empty = always).
    pub only_if_status: Vec<String>,
}

/// Errors of the container table.
#[derive(Debug, thiserror::Error)]
pub enum ContainerStoreError {
    /// No container has this name, ID or ID prefix.
    #[error("No such container: {0}")]
    NotFound(String),
    /// A prefix matches several containers.
    #[error("multiple containers match {input:?}: {}", .matches.join(", "))]
    Ambiguous {
        /// What was typed.
        input: String,
        /// Short IDs of the matches.
        matches: Vec<String>,
    },
    /// The name belongs to another container.
    #[error("Conflict. The container name \"/{name}\" is already in use by container \"{id}\". You have to remove (or rename) that container to be able to reuse that name.")]
    NameInUse {
        /// The name asked for.
        name: String,
        /// The container holding it.
        id: String,
    },
    /// The container's image was deleted before the container could be recorded (an `rmi`
    /// won the race).
    #[error("No such image: {0}")]
    ImageGone(String),
    /// The database failed.
    #[error("store database ({op}): {source}")]
    Db {
        /// What was being done.
        op: &'static str,
        /// SQLite's error.
        source: rusqlite::Error,
    },
}

impl ContainerStoreError {
    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ContainerStoreError::NotFound(_) | ContainerStoreError::ImageGone(_) => {
                ErrorKind::NotFound
            }
            ContainerStoreError::Ambiguous { .. } | ContainerStoreError::NameInUse { .. } => {
                ErrorKind::Conflict
            }
            ContainerStoreError::Db { .. } => ErrorKind::Internal,
        }
    }
}

fn db(op: &'static str) -> impl FnOnce(rusqlite::Error) -> ContainerStoreError {
    move |source| ContainerStoreError::Db { op, source }
}

type Result<T> = std::result::Result<T, ContainerStoreError>;

const COLUMNS: &str = "id, name, image_id, image_ref, created, status, pid, pid_start, \
    monitor_pid, monitor_start, exit_code, oom_killed, started_at, finished_at, \
    restart_count, stopped_by_user, error, config";

fn from_row(r: &Row<'_>) -> rusqlite::Result<ContainerRecord> {
    Ok(ContainerRecord {
        id: r.get(0)?,
        name: r.get(1)?,
        image_id: r.get(2)?,
        image_ref: r.get(3)?,
        created: r.get(4)?,
        status: r.get(5)?,
        pid: r.get(6)?,
        pid_start: r.get(7)?,
        monitor_pid: r.get(8)?,
        monitor_start: r.get(9)?,
        exit_code: r.get(10)?,
        oom_killed: r.get(11)?,
        started_at: r.get(12)?,
        finished_at: r.get(13)?,
        restart_count: r.get(14)?,
        stopped_by_user: r.get(15)?,
        error: r.get(16)?,
        config: r.get(17)?,
    })
}

/// Adds a container; a taken name is [`ContainerStoreError::NameInUse`]. Also records the
/// container as a user of its image, so `rmi` refuses to delete it.
pub fn insert(conn: &Connection, c: &ContainerRecord) -> Result<()> {
    let tx = rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)
        .map_err(db("starting insert"))?;
    // Checked in the transaction that inserts: an image deletion (which refuses while a
    // container row names the image) is either before it, and the container is not
    // created, or after it, and the image stays.
    let image_exists = tx
        .query_row("SELECT 1 FROM images WHERE id = ?1", [&c.image_id], |_| {
            Ok(())
        })
        .optional()
        .map_err(db("looking up the image"))?
        .is_some();
    if !image_exists {
        return Err(ContainerStoreError::ImageGone(c.image_id.clone()));
    }
    let res = tx.execute(
        &format!("INSERT INTO containers ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)"),
        params![
            c.id, c.name, c.image_id, c.image_ref, c.created, c.status, c.pid, c.pid_start,
            c.monitor_pid, c.monitor_start, c.exit_code, c.oom_killed, c.started_at,
            c.finished_at, c.restart_count, c.stopped_by_user, c.error, c.config
        ],
    );
    if let Err(e) = res {
        if let rusqlite::Error::SqliteFailure(f, _) = &e {
            if f.code == rusqlite::ErrorCode::ConstraintViolation {
                let holder: Option<String> = tx
                    .query_row(
                        "SELECT id FROM containers WHERE name = ?1",
                        [&c.name],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(db("looking up name"))?;
                if let Some(id) = holder {
                    return Err(ContainerStoreError::NameInUse {
                        name: c.name.clone(),
                        id,
                    });
                }
            }
        }
        return Err(db("inserting container")(e));
    }
    tx.execute(
        "INSERT OR IGNORE INTO image_users (image_id, user) VALUES (?1, ?2)",
        params![c.image_id, format!("container:{}", c.id)],
    )
    .map_err(db("recording image user"))?;
    tx.commit().map_err(db("committing insert"))
}

/// The container with exactly this ID.
pub fn get(conn: &Connection, id: &str) -> Result<ContainerRecord> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM containers WHERE id = ?1"),
        [id],
        from_row,
    )
    .optional()
    .map_err(db("reading container"))?
    .ok_or_else(|| ContainerStoreError::NotFound(id.to_string()))
}

/// Finds a container by full ID, exact name, or unique ID prefix (in that order, as Docker).
pub fn resolve(conn: &Connection, input: &str) -> Result<ContainerRecord> {
    let key = input.strip_prefix('/').unwrap_or(input);
    if key.is_empty() {
        return Err(ContainerStoreError::NotFound(input.to_string()));
    }
    let exact = conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM containers WHERE id = ?1 OR name = ?1 ORDER BY id = ?1 DESC LIMIT 1"),
            [key],
            from_row,
        )
        .optional()
        .map_err(db("resolving container"))?;
    if let Some(c) = exact {
        return Ok(c);
    }
    if !key.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ContainerStoreError::NotFound(input.to_string()));
    }
    let lower = key.to_ascii_lowercase();
    let mut stmt = conn
        .prepare(&format!(
            "SELECT {COLUMNS} FROM containers WHERE id >= ?1 AND id < ?2 LIMIT 10"
        ))
        .map_err(db("resolving container"))?;
    let upper = format!("{lower}\u{7f}");
    let found: Vec<ContainerRecord> = stmt
        .query_map(params![lower, upper], from_row)
        .map_err(db("resolving container"))?
        .collect::<rusqlite::Result<_>>()
        .map_err(db("resolving container"))?;
    match found.len() {
        0 => Err(ContainerStoreError::NotFound(input.to_string())),
        1 => Ok(found.into_iter().next().expect("one element")),
        _ => Err(ContainerStoreError::Ambiguous {
            input: input.to_string(),
            matches: found.iter().map(|c| c.id[..12].to_string()).collect(),
        }),
    }
}

/// Every container, newest first.
pub fn list(conn: &Connection) -> Result<Vec<ContainerRecord>> {
    let mut stmt = conn
        .prepare(&format!(
            "SELECT {COLUMNS} FROM containers ORDER BY created DESC, id"
        ))
        .map_err(db("listing containers"))?;
    let rows = stmt
        .query_map([], from_row)
        .map_err(db("listing containers"))?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(db("listing containers"));
    rows
}

/// Applies `u` to the container `id`; returns whether a row changed (false when the
/// container is gone or its status is not in `u.only_if_status`).
pub fn update(conn: &Connection, id: &str, u: &ContainerUpdate) -> Result<bool> {
    let mut sets: Vec<String> = Vec::new();
    let mut vals: Vec<rusqlite::types::Value> = Vec::new();
    let mut push = |col: &str, v: rusqlite::types::Value| {
        vals.push(v);
        sets.push(format!("{col} = ?{}", vals.len()));
    };
    use rusqlite::types::Value;
    if let Some(s) = &u.status {
        push("status", Value::Text(s.clone()));
    }
    if let Some((p, s)) = u.pid {
        push("pid", Value::Integer(p));
        push("pid_start", Value::Integer(s));
    }
    if let Some((p, s)) = u.monitor {
        push("monitor_pid", Value::Integer(p));
        push("monitor_start", Value::Integer(s));
    }
    if let Some(v) = u.exit_code {
        push("exit_code", Value::Integer(v));
    }
    if let Some(v) = u.oom_killed {
        push("oom_killed", Value::Integer(v as i64));
    }
    if let Some(v) = u.started_at {
        push("started_at", Value::Integer(v));
    }
    if let Some(v) = u.finished_at {
        push("finished_at", Value::Integer(v));
    }
    if let Some(v) = u.restart_count {
        push("restart_count", Value::Integer(v));
    }
    if let Some(v) = u.stopped_by_user {
        push("stopped_by_user", Value::Integer(v as i64));
    }
    if let Some(v) = &u.error {
        push("error", Value::Text(v.clone()));
    }
    if sets.is_empty() {
        return Ok(true);
    }
    vals.push(Value::Text(id.to_string()));
    let mut sql = format!(
        "UPDATE containers SET {} WHERE id = ?{}",
        sets.join(", "),
        vals.len()
    );
    if !u.only_if_status.is_empty() {
        let mut marks = Vec::new();
        for s in &u.only_if_status {
            vals.push(Value::Text(s.clone()));
            marks.push(format!("?{}", vals.len()));
        }
        sql.push_str(&format!(" AND status IN ({})", marks.join(", ")));
    }
    let n = conn
        .execute(&sql, rusqlite::params_from_iter(vals))
        .map_err(db("updating container"))?;
    Ok(n > 0)
}

/// Renames container `id` to `name`; a name another container holds is
/// [`ContainerStoreError::NameInUse`] (the table's unique index decides, so two renames to
/// one name cannot both win).
pub fn rename(conn: &Connection, id: &str, name: &str) -> Result<()> {
    let res = conn.execute(
        "UPDATE containers SET name = ?1 WHERE id = ?2",
        params![name, id],
    );
    match res {
        Ok(0) => Err(ContainerStoreError::NotFound(id.to_string())),
        Ok(_) => Ok(()),
        Err(rusqlite::Error::SqliteFailure(f, _))
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            let holder: String = conn
                .query_row("SELECT id FROM containers WHERE name = ?1", [name], |r| {
                    r.get(0)
                })
                .map_err(db("looking up name"))?;
            Err(ContainerStoreError::NameInUse {
                name: name.to_string(),
                id: holder,
            })
        }
        Err(e) => Err(db("renaming container")(e)),
    }
}

/// Replaces the stored configuration of container `id` (`update`); false when gone.
pub fn set_config(conn: &Connection, id: &str, config: &str) -> Result<bool> {
    conn.execute(
        "UPDATE containers SET config = ?1 WHERE id = ?2",
        params![config, id],
    )
    .map(|n| n > 0)
    .map_err(db("updating container configuration"))
}

/// Removes the container's row and its claim on its image.
pub fn delete(conn: &Connection, id: &str) -> Result<()> {
    let tx = rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)
        .map_err(db("starting delete"))?;
    tx.execute("DELETE FROM containers WHERE id = ?1", [id])
        .map_err(db("deleting container"))?;
    tx.execute(
        "DELETE FROM image_users WHERE user = ?1",
        [format!("container:{id}")],
    )
    .map_err(db("releasing image"))?;
    tx.commit().map_err(db("committing delete"))
}

impl crate::Store {
    /// Adds a container row (see [`insert`]).
    pub fn insert_container(&self, c: &ContainerRecord) -> Result<()> {
        insert(&self.conn.borrow(), c)
    }

    /// The container with exactly this ID (see [`get`]).
    pub fn container(&self, id: &str) -> Result<ContainerRecord> {
        get(&self.conn.borrow(), id)
    }

    /// Finds a container by ID, name or unique prefix (see [`resolve`]).
    pub fn resolve_container(&self, input: &str) -> Result<ContainerRecord> {
        resolve(&self.conn.borrow(), input)
    }

    /// Every container, newest first.
    pub fn list_containers(&self) -> Result<Vec<ContainerRecord>> {
        list(&self.conn.borrow())
    }

    /// Applies a partial update (see [`update`]).
    pub fn update_container(&self, id: &str, u: &ContainerUpdate) -> Result<bool> {
        update(&self.conn.borrow(), id, u)
    }

    /// Removes a container row (see [`delete`]).
    pub fn delete_container(&self, id: &str) -> Result<()> {
        delete(&self.conn.borrow(), id)
    }

    /// Renames a container (see [`rename`]).
    pub fn rename_container(&self, id: &str, name: &str) -> Result<()> {
        rename(&self.conn.borrow(), id, name)
    }

    /// Replaces a container's configuration (see [`set_config`]).
    pub fn set_container_config(&self, id: &str, config: &str) -> Result<bool> {
        set_config(&self.conn.borrow(), id, config)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn rec(id: &str, name: &str) -> ContainerRecord {
        ContainerRecord::fresh(
            id.to_string(),
            name.to_string(),
            "sha256:aa".into(),
            "busybox".into(),
            1,
            "{}".into(),
        )
    }

    #[test]
    fn a_container_of_a_deleted_image_is_not_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::db::open(&dir.path().join("berth.db")).unwrap();
        let e = insert(&conn, &rec(&"ab".repeat(32), "one")).unwrap_err();
        assert!(matches!(e, ContainerStoreError::ImageGone(_)), "{e}");
        assert_eq!(list(&conn).unwrap().len(), 0);
    }

    #[test]
    fn insert_resolve_update_delete() {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::db::open(&dir.path().join("berth.db")).unwrap();
        conn.execute(
            "INSERT INTO images (id, manifest_digest, manifest_media_type, created, \
             created_unix, size, added) VALUES ('sha256:aa', 'sha256:bb', '', '', 0, 0, 0)",
            [],
        )
        .unwrap();
        let a = "ab".repeat(32);
        let b = "ac".repeat(32);
        insert(&conn, &rec(&a, "one")).unwrap();
        insert(&conn, &rec(&b, "two")).unwrap();
        let e = insert(&conn, &rec(&"cd".repeat(32), "one")).unwrap_err();
        assert!(matches!(e, ContainerStoreError::NameInUse { .. }), "{e}");
        assert!(e.to_string().contains("is already in use by container"));
        assert_eq!(resolve(&conn, "one").unwrap().id, a);
        assert_eq!(resolve(&conn, "/two").unwrap().id, b);
        assert_eq!(resolve(&conn, "abab").unwrap().id, a);
        assert!(matches!(
            resolve(&conn, "a").unwrap_err(),
            ContainerStoreError::Ambiguous { .. }
        ));
        assert!(matches!(
            resolve(&conn, "zz").unwrap_err(),
            ContainerStoreError::NotFound(_)
        ));
        let changed = update(
            &conn,
            &a,
            &ContainerUpdate {
                status: Some("running".into()),
                pid: Some((42, 7)),
                only_if_status: vec!["created".into()],
                ..Default::default()
            },
        )
        .unwrap();
        assert!(changed);
        let again = update(
            &conn,
            &a,
            &ContainerUpdate {
                status: Some("running".into()),
                only_if_status: vec!["created".into()],
                ..Default::default()
            },
        )
        .unwrap();
        assert!(!again);
        let got = get(&conn, &a).unwrap();
        assert_eq!(
            (got.status.as_str(), got.pid, got.pid_start),
            ("running", 42, 7)
        );
        assert_eq!(list(&conn).unwrap().len(), 2);
        let users: i64 = conn
            .query_row("SELECT count(*) FROM image_users", [], |r| r.get(0))
            .unwrap();
        assert_eq!(users, 2);
        delete(&conn, &a).unwrap();
        assert!(get(&conn, &a).is_err());
        let users: i64 = conn
            .query_row("SELECT count(*) FROM image_users", [], |r| r.get(0))
            .unwrap();
        assert_eq!(users, 1);
    }
}
