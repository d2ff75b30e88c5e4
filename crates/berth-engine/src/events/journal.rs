//! The events journal: `<root>/events/journal` (and the previous one, `journal.1`).
//!
//! Writers: one JSON line per event, written with a single `write(2)` on an `O_APPEND`
//! descriptor while holding a shared lock on `<root>/events/lock`; lines stay below
//! `PIPE_BUF`, so concurrent writers' lines never interleave. When the journal passes
//! [`MAX_JOURNAL`] bytes, the writer that noticed takes the lock exclusively and renames it
//! to `journal.1` (the older one goes): no write can land in a file after its rename.
//!
//! Readers watch the directory with inotify (no polling loop): a write, a creation or a
//! rename wakes them; they read what was appended since their offset, and when the name
//! `journal` points at a new file they finish the old one first and continue at the start
//! of the new.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::{Event, EventsError};

/// The size at which the journal is rotated.
pub const MAX_JOURNAL: u64 = 8 << 20;

/// Longest line written: `PIPE_BUF`, so one `write` stays one unit.
const MAX_LINE: usize = 4096;

/// `<root>/events`.
pub fn dir(root: &Path) -> PathBuf {
    root.join("events")
}

fn journal_path(root: &Path) -> PathBuf {
    dir(root).join("journal")
}

fn ensure_dir(root: &Path) -> Result<PathBuf, EventsError> {
    let d = dir(root);
    if !d.is_dir() {
        std::fs::create_dir_all(&d).map_err(EventsError::io("creating", &d))?;
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700));
    }
    Ok(d)
}

fn lock_file(root: &Path) -> Result<File, EventsError> {
    let p = dir(root).join("lock");
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&p)
        .map_err(EventsError::io("opening", p))
}

/// One line of JSON for `event`, under [`MAX_LINE`] bytes (labels are dropped first,
/// then the action's detail is cut, when an event would be longer).
fn line_of(event: &Event) -> Vec<u8> {
    let mut line = serde_json::to_vec(event).unwrap_or_default();
    if line.len() >= MAX_LINE {
        let mut small = event.clone();
        small.actor.attributes.retain(|k, _| {
            matches!(
                k.as_str(),
                "name" | "image" | "exitCode" | "signal" | "container" | "type"
            )
        });
        let mut cut = 200.min(small.action.len());
        while !small.action.is_char_boundary(cut) {
            cut -= 1;
        }
        small.action.truncate(cut);
        small.status = small.status.chars().take(200).collect();
        line = serde_json::to_vec(&small).unwrap_or_default();
        line.truncate(MAX_LINE - 1);
    }
    line.push(b'\n');
    line
}

/// Appends `event` (see the module docs).
pub fn append(root: &Path, event: &Event) -> Result<(), EventsError> {
    append_rotating_at(root, event, MAX_JOURNAL)
}

fn append_rotating_at(root: &Path, event: &Event, max: u64) -> Result<(), EventsError> {
    ensure_dir(root)?;
    let lock = lock_file(root)?;
    let path = journal_path(root);
    let line = line_of(event);
    let size = {
        rustix::fs::flock(lock.as_fd(), rustix::fs::FlockOperation::LockShared)
            .map_err(|e| EventsError::io("locking", dir(root).join("lock"))(e.into()))?;
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&path)
            .map_err(EventsError::io("opening", &path))?;
        f.write_all(&line)
            .map_err(EventsError::io("appending to", &path))?;
        f.metadata().map(|m| m.len()).unwrap_or(0)
        // The shared lock goes with `lock` below, or at the upgrade.
    };
    if size > max {
        rotate(root, &lock, &path, max)?;
    }
    Ok(())
}

fn rotate(root: &Path, lock: &File, path: &Path, max: u64) -> Result<(), EventsError> {
    // Another writer may rotate first: check the size again under the exclusive lock.
    rustix::fs::flock(lock.as_fd(), rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| EventsError::io("locking", dir(root).join("lock"))(e.into()))?;
    if std::fs::metadata(path).is_ok_and(|m| m.len() > max) {
        let old = dir(root).join("journal.1");
        std::fs::rename(path, &old).map_err(EventsError::io("rotating", path))?;
    }
    Ok(())
}

/// A journal file being read: the file, the bytes of a line not finished yet.
struct Cursor {
    file: File,
    ino: u64,
    partial: Vec<u8>,
}

impl Cursor {
    fn open(path: &Path) -> Result<Cursor, EventsError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(EventsError::io("opening", path))?;
        let ino = file.metadata().map(|m| m.ino()).unwrap_or(0);
        Ok(Cursor {
            file,
            ino,
            partial: Vec::new(),
        })
    }

    /// Reads what was appended; calls `each` per complete line; false when `each` said stop.
    fn drain(&mut self, each: &mut dyn FnMut(Event) -> bool) -> bool {
        let mut buf = [0u8; 64 * 1024];
        loop {
            let n = match self.file.read(&mut buf) {
                Ok(0) | Err(_) => return true,
                Ok(n) => n,
            };
            self.partial.extend_from_slice(&buf[..n]);
            let mut start = 0;
            while let Some(nl) = self.partial[start..].iter().position(|b| *b == b'\n') {
                let line = &self.partial[start..start + nl];
                start += nl + 1;
                if let Ok(ev) = serde_json::from_slice::<Event>(line) {
                    if !each(ev) {
                        return false;
                    }
                }
            }
            self.partial.drain(..start);
        }
    }
}

/// Calls `sink` for each event recorded at or after `since` (when given) and then for each
/// new one, until `until` passes or `sink` returns false.
pub fn follow(
    root: &Path,
    since: Option<i64>,
    until: Option<i64>,
    mut sink: impl FnMut(&Event) -> bool,
) -> Result<(), EventsError> {
    use rustix::fs::inotify;
    let d = ensure_dir(root)?;
    // Watch first, so that nothing written between the replay and the watch is missed.
    let ino = inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK)
        .map_err(|e| EventsError::io("inotify_init", &d)(e.into()))?;
    inotify::add_watch(
        &ino,
        &d,
        inotify::WatchFlags::MODIFY | inotify::WatchFlags::CREATE | inotify::WatchFlags::MOVED_TO,
    )
    .map_err(|e| EventsError::io("watching", &d)(e.into()))?;
    let path = journal_path(root);
    let in_window = |ev: &Event| {
        since.is_none_or(|s| ev.time_nano >= s) && until.is_none_or(|u| ev.time_nano <= u)
    };
    let stopped = std::cell::Cell::new(false);
    let mut each = |ev: Event| -> bool {
        if until.is_some_and(|u| ev.time_nano > u) || (in_window(&ev) && !sink(&ev)) {
            stopped.set(true);
            return false;
        }
        true
    };
    let mut cur = Cursor::open(&path)?;
    if since.is_some() {
        if let Ok(old) = File::open(dir(root).join("journal.1")) {
            let mut old = Cursor {
                file: old,
                ino: 0,
                partial: Vec::new(),
            };
            if !old.drain(&mut each) {
                return Ok(());
            }
        }
        if !cur.drain(&mut each) {
            return Ok(());
        }
    } else {
        cur.file
            .seek(SeekFrom::End(0))
            .map_err(EventsError::io("seeking", &path))?;
    }
    let now = crate::container::now_nanos();
    if until.is_some_and(|u| u <= now) {
        return Ok(());
    }
    let mut events_buf = [std::mem::MaybeUninit::<u8>::uninit(); 4096];
    loop {
        let timeout = match until {
            Some(u) => {
                let left = u - crate::container::now_nanos();
                if left <= 0 {
                    return Ok(());
                }
                // Whole milliseconds, rounded up, so the last wake is past `until`.
                ((left + 999_999) / 1_000_000).min(i32::MAX as i64) as i32
            }
            None => -1,
        };
        let mut fds = [nix::poll::PollFd::new(
            ino.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        let timeout = if timeout < 0 {
            nix::poll::PollTimeout::NONE
        } else {
            nix::poll::PollTimeout::try_from(timeout).unwrap_or(nix::poll::PollTimeout::MAX)
        };
        match nix::poll::poll(&mut fds, timeout) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(EventsError::io("waiting for events", &d)(e.into())),
        }
        // Empty the inotify queue: what changed is read from the files themselves.
        let mut reader = inotify::Reader::new(&ino, &mut events_buf);
        while reader.next().is_ok() {}
        if !cur.drain(&mut each) || stopped.get() {
            return Ok(());
        }
        // Rotated: finish the old file (no writer can reach it any more), then the new one.
        if let Ok(m) = std::fs::metadata(&path) {
            if m.ino() != cur.ino {
                if !cur.drain(&mut each) {
                    return Ok(());
                }
                cur = Cursor::open(&path)?;
                if !cur.drain(&mut each) {
                    return Ok(());
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::EventType;
    use super::*;

    #[test]
    fn concurrent_appenders_write_whole_lines_and_readers_replay_them() {
        let root = tempfile::tempdir().unwrap();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let r = root.path().to_path_buf();
                std::thread::spawn(move || {
                    for i in 0..200 {
                        let ev = Event::new(EventType::Container, "start", &format!("{t}-{i}"))
                            .attr("pad", "x".repeat(5000));
                        append(&r, &ev).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let text = std::fs::read_to_string(journal_path(root.path())).unwrap();
        assert_eq!(text.lines().count(), 800);
        for l in text.lines() {
            assert!(l.len() < MAX_LINE);
            serde_json::from_str::<Event>(l).unwrap();
        }
        let mut n = 0;
        let until = crate::container::now_nanos();
        follow(root.path(), Some(0), Some(until), |_| {
            n += 1;
            true
        })
        .unwrap();
        assert_eq!(n, 800);
    }

    #[test]
    fn a_follower_sees_an_event_appended_later_across_a_rotation() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path().to_path_buf();
        append(&r, &Event::new(EventType::Image, "pull", "old")).unwrap();
        let writer = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(100));
            // A small bound: the journal is rotated after `tag`, `untag` starts a new one.
            append_rotating_at(&r, &Event::new(EventType::Image, "tag", "one"), 250).unwrap();
            append_rotating_at(&r, &Event::new(EventType::Image, "untag", "two"), 250).unwrap();
        });
        let mut seen = Vec::new();
        follow(root.path(), None, None, |ev| {
            seen.push(ev.action.clone());
            seen.len() < 2
        })
        .unwrap();
        writer.join().unwrap();
        assert_eq!(seen, ["tag", "untag"]);
        assert!(dir(root.path()).join("journal.1").exists());
    }
}
