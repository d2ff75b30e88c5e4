//! Opening the SQLite database: WAL mode, a busy timeout, foreign keys, migrations.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};

use crate::error::{Error, Result};
use crate::migrations::{Migration, MIGRATIONS};

/// How long a writer waits for another process's transaction before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Refuses a store whose database is missing or empty while it holds content: SQLite
/// would take such a file for a new, empty database, and the next collection would
/// delete every blob and layer no row names (all of them). Costs one `stat` when the
/// database is there.
pub fn check_not_lost(root: &Path, path: &Path) -> Result<()> {
    let state = match std::fs::metadata(path) {
        Ok(m) if m.len() > 0 => return Ok(()),
        Ok(_) => "is empty",
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "is missing",
        Err(e) => return Err(Error::io("reading metadata of", path)(e)),
    };
    let count = |d: &Path| std::fs::read_dir(d).map_or(0, |e| e.count());
    let blobs = count(&root.join("blobs").join("sha256"));
    let layers = count(&root.join("layers"));
    if blobs == 0 && layers == 0 {
        return Ok(());
    }
    Err(Error::DatabaseLost {
        path: path.to_owned(),
        state,
        root: root.to_owned(),
        blobs,
        layers,
    })
}

/// Opens (creating if needed) the database at `path` and brings its schema up to date.
/// On a full file system the error says so, naming the file ([`Error::NoSpace`]).
pub fn open(path: &Path) -> Result<Connection> {
    open_inner(path).map_err(|e| e.at_db(path))
}

fn open_inner(path: &Path) -> Result<Connection> {
    if !path.exists() {
        create(path)?;
    }
    let conn = Connection::open(path).map_err(Error::db("opening"))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(Error::db("setting busy timeout"))?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .map_err(Error::db("reading journal mode"))?;
    if !mode.eq_ignore_ascii_case("wal") {
        // Switching modes takes an exclusive lock that the busy handler does not always
        // cover; retry briefly when another process is doing the same.
        let mut tries = 0;
        loop {
            match conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get::<_, String>(0)) {
                Ok(_) => break,
                Err(_) if tries < 200 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => return Err(Error::db("enabling WAL")(e)),
            }
        }
    }
    // Every berth process is the database's first connection, and the first connection
    // rebuilds the WAL index by reading and checksumming every frame of the log: with
    // SQLite's default (checkpoint at 1000 pages) that is up to 4 MB read by every
    // command. A short log keeps that cheap; the checkpoint it costs every few commands
    // is a few pages.
    conn.execute_batch(
        "PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON; PRAGMA wal_autocheckpoint=128;",
    )
    .map_err(Error::db("setting pragmas"))?;
    migrate(conn, MIGRATIONS)
}

/// Creates the database at `path` whole or not at all: built in a temp file next to it
/// (in WAL mode, migrated) without syncing each step, synced once, then hard-linked into
/// place, which fails if another process put one there first (then its is used). Six
/// fsyncs become two, and a crash leaves no half-made database. Where hard links are not
/// supported, [`open`] creates the database in place as before.
fn create(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let tmp = tempfile::Builder::new()
        .prefix(".berth.db-new-")
        .tempfile_in(dir)
        .map_err(Error::io("creating a temp database in", dir))?;
    {
        let conn = Connection::open(tmp.path()).map_err(Error::db("creating"))?;
        conn.execute_batch("PRAGMA synchronous=OFF;")
            .map_err(Error::db("setting pragmas"))?;
        conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get::<_, String>(0))
            .map_err(Error::db("enabling WAL"))?;
        let conn = migrate(conn, MIGRATIONS)?;
        // Closing the last connection checkpoints the log into the file and removes it.
        conn.close()
            .map_err(|(_, e)| Error::db("closing the new database")(e))?;
    }
    // The mode a database created in place has (the temp file's is 0600).
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o644))
        .map_err(Error::io("setting the mode of", tmp.path()))?;
    tmp.as_file()
        .sync_all()
        .map_err(Error::io("syncing", tmp.path()))?;
    match std::fs::hard_link(tmp.path(), path) {
        Ok(()) => crate::blobs::sync_dir(dir),
        // Another process was first, or hard links are not supported here: either way
        // `open` opens (or creates) what is at `path`.
        Err(_) => Ok(()),
    }
}

/// Applies the migrations newer than the database's `user_version`.
pub fn migrate(mut conn: Connection, migrations: &[Migration]) -> Result<Connection> {
    let known = migrations.last().map_or(0, |m| m.version);
    let current: u32 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(Error::db("reading schema version"))?;
    if current == known {
        return Ok(conn);
    }
    if current > known {
        return Err(Error::SchemaTooNew {
            found: current,
            known,
        });
    }
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(Error::db("starting migration"))?;
    // Another process may have migrated while we waited for the lock.
    let current: u32 = tx
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(Error::db("reading schema version"))?;
    for m in migrations.iter().filter(|m| m.version > current) {
        log::debug!("store: applying migration {} ({})", m.version, m.name);
        tx.execute_batch(m.sql).map_err(Error::db("migrating"))?;
        tx.pragma_update(None, "user_version", m.version)
            .map_err(Error::db("setting schema version"))?;
    }
    tx.commit().map_err(Error::db("committing migration"))?;
    Ok(conn)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_in_order() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version as usize, i + 1, "migration {}", m.name);
        }
    }

    #[test]
    fn concurrent_first_opens_share_one_database() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("berth.db");
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|i| {
                    let p = &p;
                    s.spawn(move || {
                        let c = open(p).unwrap();
                        c.execute_batch(&format!("CREATE TABLE t{i} (x)")).unwrap();
                        c.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
                            r.get::<_, i64>(0)
                        })
                        .unwrap()
                    })
                })
                .collect();
            for h in handles {
                assert!(h.join().unwrap() > 1);
            }
        });
        let c = open(&p).unwrap();
        let v: u32 = c
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, MIGRATIONS.len() as u32);
        let mode: String = c
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        // Every process's table is in the one database: none was replaced.
        let tables: i64 = c
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name GLOB 't[0-9]'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(tables, 8);
        // No temp database is left next to it.
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with("berth.db"))
            .collect();
        assert!(names.is_empty(), "{names:?}");
    }

    #[test]
    fn open_twice_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("berth.db");
        drop(open(&p).unwrap());
        let c = open(&p).unwrap();
        let v: u32 = c
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, MIGRATIONS.len() as u32);
    }
}
