//! Staging: every temporary path a berth process makes in `ROOT/tmp/` (or next to a
//! `save -o` output) is owned by a live lock, so the next command can tell debris from
//! work in progress and sweep it, whatever killed its owner (SIGKILL included).
//!
//! # Contract
//! - A staging entry `DIR/NAME` (a file or a directory) has an owner lock `DIR/NAME.lock`,
//!   an empty file that its owner holds `flock(LOCK_EX)` from before the entry exists until
//!   after it is gone. The kernel drops the lock when the owner dies, however it dies.
//! - Names are `KIND-RANDOM` (fresh entries) or a fixed name chosen by the caller
//!   ([`Staging::named_in`], for work that processes share, e.g. one download per blob):
//!   `KIND` says what made it (`blob`, `layer`, `pull`, `import`, `load`, `save`,
//!   `build-run`, `build-layer`, ...), so `ls ROOT/tmp` tells a human what is there.
//! - [`Staging`] removes its entry, then unlinks its lock, when dropped; an entry that was
//!   moved into place (a blob renamed into `blobs/`, a snapshot into `layers/`) simply is
//!   no longer there to remove.
//! - [`sweep`] removes every entry whose lock it can take with `LOCK_NB` (its owner is dead),
//!   then the lock; it never blocks and never touches an entry whose owner lives. It is
//!   O(entries in the directory): an empty `ROOT/tmp` costs one `getdents`. A directory tree
//!   is removed without crossing into mounts left on it (they are detached first), so a
//!   dead build step's overlay or bind mounts never lead the sweep into other data.
//! - Entries without a lock (made by an older berth) are removed only when their name says
//!   `KIND-PID-...` and that process is gone (the rule of older releases); anything else
//!   unknown is left alone: the sweep deletes nothing it cannot account for.
//! - Race between a new owner and a sweeper: the owner creates the lock file, locks it and
//!   then checks that the path still names the file it locked (a sweeper that won the lock
//!   first unlinked it); if not, it starts again. A sweeper removes the entry and unlinks
//!   the lock while holding it. So an entry never exists without a held lock beside it,
//!   except after its owner died.
//!
//! [`crate::Store::open`] sweeps `ROOT/tmp`; prunes and `system df` call
//! [`crate::Store::sweep_staging`] to report what they removed.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use fs2::FileExt;

use crate::error::{Error, Result};

/// The suffix of an owner lock file.
pub const LOCK_SUFFIX: &str = ".lock";

/// A staging entry (file or directory) owned by this process through its held lock.
/// Dropping it removes the entry (if still there) and the lock.
#[derive(Debug)]
pub struct Staging {
    path: PathBuf,
    lock_path: PathBuf,
    lock: Option<File>,
}

/// What a [`sweep`] removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepReport {
    /// Entries removed.
    pub entries: u64,
    /// Bytes of the files removed.
    pub bytes: u64,
}

impl Staging {
    /// A fresh, empty directory `dir/KIND-RANDOM/`, owned by this process.
    pub fn new_dir_in(dir: &Path, kind: &str) -> Result<Staging> {
        let s = Self::claim_fresh(dir, kind)?;
        fs::create_dir(&s.path).map_err(Error::io("creating a staging directory", &s.path))?;
        Ok(s)
    }

    /// A fresh, empty file `dir/KIND-RANDOM` opened for reading and writing, owned by this
    /// process.
    pub fn new_file_in(dir: &Path, kind: &str) -> Result<(Staging, File)> {
        let s = Self::claim_fresh(dir, kind)?;
        let f = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&s.path)
            .map_err(Error::io("creating a staging file", &s.path))?;
        Ok((s, f))
    }

    /// The entry `dir/NAME`, owned by this process once every other live owner of the same
    /// name let it go (blocks until then). The entry may exist already: left by an owner
    /// that died (the caller may resume it) or by one that finished without removing it.
    pub fn named_in(dir: &Path, name: &str) -> Result<Staging> {
        let path = dir.join(name);
        let lock_path = dir.join(format!("{name}{LOCK_SUFFIX}"));
        loop {
            let file = File::options()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&lock_path)
                .map_err(Error::io("creating owner lock", &lock_path))?;
            file.lock_exclusive()
                .map_err(Error::io("locking", &lock_path))?;
            if still_names(&lock_path, &file) {
                return Ok(Staging {
                    path,
                    lock_path,
                    lock: Some(file),
                });
            }
        }
    }

    fn claim_fresh(dir: &Path, kind: &str) -> Result<Staging> {
        loop {
            let (file, lock_path) = tempfile::Builder::new()
                .prefix(&format!("{kind}-"))
                .suffix(LOCK_SUFFIX)
                .tempfile_in(dir)
                .map_err(Error::io("creating owner lock in", dir))?
                .keep()
                .map_err(|e| Error::io("creating owner lock in", dir)(e.error))?;
            // A sweeper may have taken the fresh, unlocked file first and unlinked it.
            match file.try_lock_exclusive() {
                Ok(()) if still_names(&lock_path, &file) => {
                    let path = entry_of(&lock_path);
                    return Ok(Staging {
                        path,
                        lock_path,
                        lock: Some(file),
                    });
                }
                Ok(()) => continue,
                Err(e) if e.kind() == fs2::lock_contended_error().kind() => continue,
                Err(e) => return Err(Error::io("locking", lock_path)(e)),
            }
        }
    }

    /// The entry's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if let Err(e) = remove_entry(&self.path) {
            log::warn!("removing {}: {e}", self.path.display());
        }
        let _ = fs::remove_file(&self.lock_path);
        if let Some(f) = self.lock.take() {
            let _ = FileExt::unlock(&f);
        }
    }
}

/// The entry a lock file owns: its path without [`LOCK_SUFFIX`].
fn entry_of(lock_path: &Path) -> PathBuf {
    let s = lock_path.as_os_str().to_string_lossy();
    PathBuf::from(s.strip_suffix(LOCK_SUFFIX).unwrap_or(&s).to_owned())
}

/// Whether `path` still names the file `file` has open.
pub(crate) fn still_names(path: &Path, file: &File) -> bool {
    match (fs::metadata(path), file.metadata()) {
        (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
        _ => false,
    }
}

/// Removes the staging entries in `dir` whose owners are dead (see the module docs).
/// `keep` is asked about each dead entry (by name) and may spare it.
pub fn sweep(dir: &Path, keep: &dyn Fn(&str) -> bool) -> Result<SweepReport> {
    sweep_with(dir, keep, &|_| {})
}

/// [`sweep`], calling `on_dead` with each owned entry whose owner is dead, under its taken
/// lock and before it is removed: what a dead owner left running (a build step's
/// processes and cgroups) is stopped there.
pub fn sweep_with(
    dir: &Path,
    keep: &dyn Fn(&str) -> bool,
    on_dead: &dyn Fn(&Path),
) -> Result<SweepReport> {
    let mut report = SweepReport::default();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(report),
        Err(e) => return Err(Error::io("listing", dir)(e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(Error::io("listing", dir))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    for name in &names {
        if let Some(entry) = name.strip_suffix(LOCK_SUFFIX) {
            if keep(entry) {
                continue;
            }
            report.add(sweep_owned(&dir.join(name), &dir.join(entry), on_dead)?);
        } else if !names.iter().any(|n| n.len() == name.len() + LOCK_SUFFIX.len()
            && n.starts_with(name.as_str())
            && n.ends_with(LOCK_SUFFIX))
            // Listing is not a snapshot: look again before calling it lockless.
            && !dir.join(format!("{name}{LOCK_SUFFIX}")).exists()
            && (legacy_owner_dead(name) || legacy_partial_stale(&dir.join(name), name))
            && !keep(name)
        {
            let p = dir.join(name);
            let bytes = remove_entry(&p).map_err(Error::io("removing", &p))?;
            report.add(SweepReport { entries: 1, bytes });
        }
    }
    Ok(report)
}

/// Removes `entry` and `lock_path` when the lock is free; nothing when its owner lives.
fn sweep_owned(lock_path: &Path, entry: &Path, on_dead: &dyn Fn(&Path)) -> Result<SweepReport> {
    let file = match File::options().write(true).open(lock_path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(SweepReport::default()),
        Err(e) => return Err(Error::io("opening owner lock", lock_path)(e)),
    };
    match file.try_lock_exclusive() {
        Ok(()) => {}
        Err(e) if e.kind() == fs2::lock_contended_error().kind() => {
            return Ok(SweepReport::default())
        }
        Err(e) => return Err(Error::io("locking", lock_path)(e)),
    }
    if !still_names(lock_path, &file) {
        // Another sweeper removed it meanwhile (and a new owner may use the name now).
        return Ok(SweepReport::default());
    }
    let existed = fs::symlink_metadata(entry).is_ok();
    if existed {
        on_dead(entry);
    }
    let bytes = remove_entry(entry).map_err(Error::io("removing", entry))?;
    fs::remove_file(lock_path).map_err(Error::io("removing", lock_path))?;
    Ok(SweepReport {
        entries: u64::from(existed),
        bytes,
    })
}

impl SweepReport {
    fn add(&mut self, other: SweepReport) {
        self.entries += other.entries;
        self.bytes += other.bytes;
    }
}

/// Names older berth releases gave staging entries: `KIND-PID-RANDOM` with a one-word kind
/// (`blob-`, `layer-`); true when that process is gone.
fn legacy_owner_dead(name: &str) -> bool {
    let pid = name.split('-').nth(1).and_then(|p| p.parse::<u32>().ok());
    match pid {
        Some(pid) => !Path::new(&format!("/proc/{pid}")).exists(),
        None => false,
    }
}

/// Partial downloads of older releases (`pull-<hex>.partial`, no pid, no lock) that no
/// one wrote to for [`LEGACY_PARTIAL_AGE`]: a writer of an older berth still at work keeps
/// its file's mtime fresh.
fn legacy_partial_stale(path: &Path, name: &str) -> bool {
    name.starts_with("pull-")
        && name.ends_with(".partial")
        && fs::symlink_metadata(path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > LEGACY_PARTIAL_AGE)
}

/// See [`legacy_partial_stale`].
const LEGACY_PARTIAL_AGE: std::time::Duration = std::time::Duration::from_secs(600);

/// The bytes of the files under `dir`'s staging entries (live or dead), for `system df`.
pub fn usage(dir: &Path) -> Result<u64> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(Error::io("listing", dir)(e)),
    };
    let mut total = 0;
    for entry in entries.flatten() {
        total += tree_bytes(&entry.path());
    }
    Ok(total)
}

fn tree_bytes(p: &Path) -> u64 {
    let Ok(meta) = fs::symlink_metadata(p) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    let dev = meta.dev();
    let mut total = 0;
    let mut todo = vec![p.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                // Not into mounts: what they show is not staging's.
                if m.dev() == dev {
                    todo.push(e.path());
                }
            } else {
                total += m.len();
            }
        }
    }
    total
}

/// Removes a file or a directory tree (missing is fine) and returns the bytes of the files
/// removed. A mount found inside the tree (a killed build step's overlay or bind) is
/// detached first, so the removal never reaches into what it showed.
pub(crate) fn remove_entry(p: &Path) -> io::Result<u64> {
    let meta = match fs::symlink_metadata(p) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    if !meta.is_dir() {
        fs::remove_file(p)?;
        return Ok(meta.len());
    }
    let parent_dev = p
        .parent()
        .and_then(|d| fs::symlink_metadata(d).ok())
        .map_or(meta.dev(), |m| m.dev());
    remove_dir_tree(p, parent_dev)
}

fn remove_dir_tree(dir: &Path, dev: u64) -> io::Result<u64> {
    let mut meta = fs::symlink_metadata(dir)?;
    if meta.dev() != dev {
        detach(dir)?;
        meta = fs::symlink_metadata(dir)?;
        if meta.dev() != dev {
            return Err(io::Error::other(format!(
                "{} is still a mount point after detaching it",
                dir.display()
            )));
        }
    }
    let mut total = 0;
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            // A directory a layer locked (mode 000): open it to its owner and go on.
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
            fs::read_dir(dir)?
        }
        Err(e) => return Err(e),
    };
    for e in entries {
        let e = e?;
        let m = fs::symlink_metadata(e.path())?;
        if m.is_dir() {
            total += remove_dir_tree(&e.path(), dev)?;
        } else {
            match fs::remove_file(e.path()) {
                Ok(()) => total += m.len(),
                Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                Err(err) => return Err(err),
            }
        }
    }
    match fs::remove_dir(dir) {
        Ok(()) => Ok(total),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(total),
        Err(e) => Err(e),
    }
}

/// Detaches the mount at `p` (`umount2(MNT_DETACH)`).
fn detach(p: &Path) -> io::Result<()> {
    rustix::mount::unmount(p, rustix::mount::UnmountFlags::DETACH).map_err(io::Error::from)
}

/// The kind of the temp names an [`OutputFile`] may leave beside its output.
const OUTPUT_KIND: &str = ".berth-save";

/// A file written next to its final path (`save -o`), that has no name until it is
/// complete: an `O_TMPFILE` file linked into place by [`OutputFile::publish`], so a killed
/// writer leaves nothing. Where the file system has no `O_TMPFILE`, a staging file
/// `.berth-save-*` with its owner lock stands in, swept by the next `OutputFile` made in
/// the same directory.
#[derive(Debug)]
pub struct OutputFile {
    file: File,
    dir: PathBuf,
    /// The named stand-in, when `O_TMPFILE` is not supported.
    named: Option<Staging>,
}

impl OutputFile {
    /// A new, empty output file in `dir`.
    pub fn create_in(dir: &Path) -> Result<OutputFile> {
        use rustix::fs::{Mode, OFlags, CWD};
        // Stand-ins of writers that died.
        sweep(dir, &|name| !name.starts_with(OUTPUT_KIND))?;
        let flags = OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC;
        match rustix::fs::openat(CWD, dir, flags, Mode::from_raw_mode(0o644)) {
            Ok(fd) => Ok(OutputFile {
                file: File::from(fd),
                dir: dir.to_owned(),
                named: None,
            }),
            Err(e) if e == rustix::io::Errno::OPNOTSUPP || e == rustix::io::Errno::ISDIR => {
                let (named, file) = Staging::new_file_in(dir, OUTPUT_KIND)?;
                Ok(OutputFile {
                    file,
                    dir: dir.to_owned(),
                    named: Some(named),
                })
            }
            Err(e) => Err(Error::io("creating a file in", dir)(io::Error::from(e))),
        }
    }

    /// The file, to write to.
    pub fn file(&mut self) -> &mut File {
        &mut self.file
    }

    /// Syncs the file and puts it at `path` (replacing what is there), then syncs the
    /// directory.
    pub fn publish(self, path: &Path) -> Result<()> {
        use std::os::fd::AsRawFd;
        self.file.sync_all().map_err(Error::io("syncing", path))?;
        let renamed = match &self.named {
            Some(named) => fs::rename(named.path(), path),
            None => {
                let link = |at: &Path| {
                    rustix::fs::linkat(
                        rustix::fs::CWD,
                        format!("/proc/self/fd/{}", self.file.as_raw_fd()),
                        rustix::fs::CWD,
                        at,
                        rustix::fs::AtFlags::SYMLINK_FOLLOW,
                    )
                    .map_err(io::Error::from)
                };
                match link(path) {
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                        // Replacing a file: linked under a staging name, renamed over it.
                        let (named, f) = Staging::new_file_in(&self.dir, OUTPUT_KIND)?;
                        drop(f);
                        fs::remove_file(named.path())
                            .and_then(|()| link(named.path()))
                            .and_then(|()| fs::rename(named.path(), path))
                    }
                    other => other,
                }
            }
        };
        renamed.map_err(Error::io("renaming into", path))?;
        crate::blobs::sync_dir(&self.dir)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn live_entries_stay_and_dropped_ones_go() {
        let dir = tempfile::tempdir().unwrap();
        let d = Staging::new_dir_in(dir.path(), "layer").unwrap();
        fs::write(d.path().join("x"), b"12345").unwrap();
        let (f, _file) = Staging::new_file_in(dir.path(), "blob").unwrap();
        assert_eq!(names(dir.path()).len(), 4);
        // Owners live (this process holds the locks on other descriptions): kept.
        assert_eq!(
            sweep(dir.path(), &|_| false).unwrap(),
            SweepReport::default()
        );
        assert!(usage(dir.path()).unwrap() >= 5);
        drop(d);
        drop(f);
        assert!(names(dir.path()).is_empty());
    }

    #[test]
    fn a_dead_owners_entry_is_swept() {
        let dir = tempfile::tempdir().unwrap();
        let d = Staging::new_dir_in(dir.path(), "import").unwrap();
        fs::create_dir(d.path().join("sub")).unwrap();
        fs::write(d.path().join("sub/x"), b"123").unwrap();
        // The owner's death: its lock is released without the Drop running.
        let mut d = d;
        drop(d.lock.take());
        std::mem::forget(d);
        let r = sweep(dir.path(), &|_| false).unwrap();
        assert_eq!(
            r,
            SweepReport {
                entries: 1,
                bytes: 3
            }
        );
        assert!(names(dir.path()).is_empty());
    }

    #[test]
    fn named_entries_are_owned_one_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let a = Staging::named_in(dir.path(), "pull-abc.partial").unwrap();
        fs::write(a.path(), b"part").unwrap();
        let p = dir.path().to_owned();
        let waiter = std::thread::spawn(move || {
            let b = Staging::named_in(&p, "pull-abc.partial").unwrap();
            fs::read(b.path()).ok()
        });
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert!(!waiter.is_finished());
        // Released without removing (as a dead owner): the next owner finds the entry.
        let mut a = a;
        drop(a.lock.take());
        std::mem::forget(a);
        assert_eq!(waiter.join().unwrap(), Some(b"part".to_vec()));
        assert!(names(dir.path()).is_empty());
    }

    #[test]
    fn an_output_file_has_no_name_until_published() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.tar");
        for round in [&b"one"[..], b"two"] {
            let mut out = OutputFile::create_in(dir.path()).unwrap();
            std::io::Write::write_all(out.file(), round).unwrap();
            assert!(names(dir.path()).iter().all(|n| n == "out.tar"));
            out.publish(&target).unwrap();
            assert_eq!(fs::read(&target).unwrap(), round);
            assert_eq!(names(dir.path()), vec!["out.tar".to_owned()]);
        }
        // Dropped unpublished: nothing.
        let out = OutputFile::create_in(dir.path()).unwrap();
        drop(out);
        assert_eq!(names(dir.path()), vec!["out.tar".to_owned()]);
    }

    #[test]
    fn unknown_lockless_entries_are_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("mystery"), b"x").unwrap();
        fs::write(dir.path().join("blob-999999999-abc"), b"x").unwrap();
        // An older release's partial download: kept while fresh, swept once stale.
        let partial = dir.path().join(format!("pull-{}.partial", "ab".repeat(32)));
        fs::write(&partial, b"x").unwrap();
        sweep(dir.path(), &|_| false).unwrap();
        assert_eq!(names(dir.path()).len(), 2);
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        fs::File::options()
            .write(true)
            .open(&partial)
            .unwrap()
            .set_modified(old)
            .unwrap();
        sweep(dir.path(), &|_| false).unwrap();
        assert_eq!(names(dir.path()), vec!["mystery".to_owned()]);
    }
}
