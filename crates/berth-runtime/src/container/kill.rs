//! `kill`: send a signal to the container's init (or all its processes).

use std::os::fd::AsFd;

use nix::sys::signal::Signal;

use super::{proc_start_time, Container, Op};
use crate::error::{Error, Result};

impl Container {
    /// Sends `signal` to the container's init, or with `all` to every process of its cgroup.
    /// A paused container killed with SIGKILL is thawed, so that its processes die (a v1
    /// freezer holds even killed tasks).
    pub fn kill(&mut self, signal: Signal, all: bool) -> Result<()> {
        let status = self.check(Op::Kill, "kill")?;
        let sent = self.send(signal, all);
        if status == super::Status::Paused && signal == Signal::SIGKILL {
            let _ = self.set_frozen(false);
        }
        sent
    }

    fn send(&mut self, signal: Signal, all: bool) -> Result<()> {
        if all {
            if let Some(cg) = &self.state.cgroup {
                for pid in cg.pids() {
                    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal);
                }
                return Ok(());
            }
        }
        // A pidfd pins the process; checking the start time after opening it rules out a
        // reused pid.
        let pidfd = crate::sys::pidfd_open(self.pid())
            .map_err(|e| Error::sys(format!("kill container {}", self.id()), e))?;
        match proc_start_time(self.state.pid) {
            Some((start, _)) if start == self.state.pid_start_time => {}
            _ => {
                return Err(Error::BadStatus {
                    id: self.id().to_string(),
                    status: "stopped".into(),
                    op: "kill",
                })
            }
        }
        crate::sys::pidfd_send_signal(pidfd.as_fd(), signal as i32)
            .map_err(|e| Error::sys(format!("kill container {}", self.id()), e))
    }
}
