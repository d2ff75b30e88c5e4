//! `delete`: remove a stopped container (or, forced, kill it first): its cgroup and state.

use std::fs;
use std::time::{Duration, Instant};

use super::{Container, Op, Status};
use crate::error::{Error, Result};

impl Container {
    /// Deletes the container. A container that is not stopped is refused unless `force`,
    /// which kills it first. Removal keeps going past failures and reports the first.
    pub fn delete(self, force: bool) -> Result<()> {
        self.delete_with(force, None)
    }

    /// [`Container::delete`], but the state directory is renamed into `trash` (a directory
    /// on the same file system, made if missing) for the caller to delete later, off its
    /// critical path: on a file system that discards freed blocks at once, unlinking the
    /// state files waits for the disk. Falls back to deleting in place when the rename
    /// fails.
    pub fn delete_into_trash(self, force: bool, trash: &std::path::Path) -> Result<()> {
        self.delete_with(force, Some(trash))
    }

    fn delete_with(self, force: bool, trash: Option<&std::path::Path>) -> Result<()> {
        let poststop = self.poststop_hooks();
        let result = self.remove(force, trash);
        // A refused delete (a running container without force) deleted nothing.
        if !matches!(result, Err(Error::BadStatus { .. })) {
            poststop.run();
        }
        result
    }

    fn remove(mut self, force: bool, trash: Option<&std::path::Path>) -> Result<()> {
        let status = self.refresh();
        if status != Status::Stopped {
            if !force {
                self.check(Op::Delete, "delete")?;
            }
            let _ = nix::sys::signal::kill(self.pid(), nix::sys::signal::Signal::SIGKILL);
            if self.is_child {
                let _ = self.wait();
            } else {
                let deadline = Instant::now() + Duration::from_secs(5);
                while self.refresh() != Status::Stopped && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        }
        let mut first: Option<Error> = None;
        if let Some(cg) = &self.state.cgroup {
            if let Err(e) = cg.destroy() {
                first.get_or_insert(e.into());
            }
        }
        if let Some(trash) = trash {
            if move_to(&self.state_dir, trash) {
                return match first {
                    Some(e) => Err(e),
                    None => Ok(()),
                };
            }
        }
        if let Err(e) = fs::remove_dir_all(&self.state_dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                first.get_or_insert(Error::io("remove", &self.state_dir, e));
            }
        }
        match first {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Renames `dir` into `trash` under a name of its own (the same container may be deleted
/// more than once, e.g. between restarts); false if that failed.
fn move_to(dir: &std::path::Path, trash: &std::path::Path) -> bool {
    let Some(name) = dir.file_name() else {
        return false;
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut to_name = name.to_os_string();
    to_name.push(format!(".{nanos}"));
    let to = trash.join(to_name);
    match fs::rename(dir, &to) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && dir.exists() => {
            fs::create_dir_all(trash).is_ok() && fs::rename(dir, &to).is_ok()
        }
        Err(_) => false,
    }
}
