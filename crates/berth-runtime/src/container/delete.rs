//! `delete`: remove a stopped container (or, forced, kill it first): its cgroup and state.

use std::fs;
use std::time::{Duration, Instant};

use super::{Container, Op, Status};
use crate::error::{Error, Result};

impl Container {
    /// Deletes the container. A container that is not stopped is refused unless `force`,
    /// which kills it first. Removal keeps going past failures and reports the first.
    pub fn delete(mut self, force: bool) -> Result<()> {
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
