//! `pause` and `resume`: freeze and thaw every process of a container through its cgroup's
//! freezer (v1 `freezer.state`, v2 `cgroup.freeze`).

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::{Container, Op, Status};
use crate::error::{Error, Result};

/// Where the freezer of a cgroup is driven, and how.
enum Freezer {
    /// v1: `freezer.state` takes `FROZEN` / `THAWED` and reads `FREEZING` on the way.
    V1(PathBuf),
    /// v2: `cgroup.freeze` takes `1` / `0`; `cgroup.events` says `frozen 1` once done.
    V2(PathBuf),
}

impl Container {
    fn freezer(&self) -> Option<Freezer> {
        let cg = self.state.cgroup.as_ref()?;
        if cg.v2 {
            cg.dirs.first().map(|d| Freezer::V2(d.clone()))
        } else {
            cg.controller_dir("freezer")
                .map(|d| Freezer::V1(d.to_path_buf()))
        }
    }

    /// Whether the container's cgroup is frozen (or freezing): its status is then `paused`.
    pub(crate) fn frozen(&self) -> bool {
        match self.freezer() {
            Some(Freezer::V1(d)) => fs::read_to_string(d.join("freezer.state"))
                .map(|s| matches!(s.trim(), "FROZEN" | "FREEZING"))
                .unwrap_or(false),
            Some(Freezer::V2(d)) => fs::read_to_string(d.join("cgroup.freeze"))
                .map(|s| s.trim() == "1")
                .unwrap_or(false),
            None => false,
        }
    }

    /// Freezes every process of the container; returns once the kernel reports them frozen.
    pub fn pause(&mut self) -> Result<()> {
        self.check(Op::Pause, "pause")?;
        self.set_frozen(true)?;
        self.state.status = Status::Paused;
        Ok(())
    }

    /// Thaws a paused container.
    pub fn resume(&mut self) -> Result<()> {
        self.check(Op::Resume, "resume")?;
        self.set_frozen(false)?;
        self.refresh();
        Ok(())
    }

    /// Writes the freezer and waits (up to 10 s) for the kernel to finish.
    pub(crate) fn set_frozen(&self, frozen: bool) -> Result<()> {
        let no_freezer = || Error::Sys {
            op: format!(
                "{} container {}: no freezer cgroup (v1 freezer controller or v2 cgroup.freeze)",
                if frozen { "pause" } else { "resume" },
                self.id()
            ),
            source: std::io::Error::from_raw_os_error(libc::ENOTSUP),
        };
        let (file, value, done): (PathBuf, &str, Box<dyn Fn() -> bool>) = match self
            .freezer()
            .ok_or_else(no_freezer)?
        {
            Freezer::V1(d) => {
                let state = d.join("freezer.state");
                let want = if frozen { "FROZEN" } else { "THAWED" };
                let probe = state.clone();
                (
                    state,
                    want,
                    Box::new(move || fs::read_to_string(&probe).is_ok_and(|s| s.trim() == want)),
                )
            }
            Freezer::V2(d) => {
                let events = d.join("cgroup.events");
                let want = if frozen { "frozen 1" } else { "frozen 0" };
                (
                    d.join("cgroup.freeze"),
                    if frozen { "1" } else { "0" },
                    Box::new(move || {
                        fs::read_to_string(&events)
                            .is_ok_and(|s| s.lines().any(|l| l.trim() == want))
                    }),
                )
            }
        };
        if !file.exists() {
            return Err(no_freezer());
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut wait = Duration::from_micros(100);
        loop {
            // v1 needs the state written again while it reads FREEZING (a task was busy).
            fs::write(&file, value).map_err(|e| Error::io("write", &file, e))?;
            if done() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::Sys {
                    op: format!("freezer of container {} did not settle", self.id()),
                    source: std::io::Error::from_raw_os_error(libc::EBUSY),
                });
            }
            std::thread::sleep(wait);
            wait = (wait * 2).min(Duration::from_millis(20));
        }
    }
}
