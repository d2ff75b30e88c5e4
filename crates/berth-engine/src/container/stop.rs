//! `stop`, `kill` and `restart`.

use std::time::{Duration, Instant};

use berth_store::containers::ContainerUpdate;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::{procfs, Container, ContainerError, Lifecycle, Result};

fn signal_of(n: i32) -> Result<Signal> {
    Signal::try_from(n).map_err(ContainerError::sys("choosing a signal"))
}

impl Lifecycle {
    /// Sends signal `sig` to the container's first process.
    pub fn kill_container(&self, c: &Container, sig: i32) -> Result<()> {
        if !c.status.is_active() || !procfs::is_alive(c.record.pid, c.record.pid_start) {
            return Err(ContainerError::BadStatus(format!(
                "cannot kill container: {}: container {} is not running",
                c.name(),
                c.id()
            )));
        }
        kill(Pid::from_raw(c.record.pid as i32), signal_of(sig)?)
            .map_err(ContainerError::sys("sending the signal"))?;
        crate::events::emit_container(self.root(), c, "kill", &[("signal", sig.to_string())]);
        // Docker resumes a paused container after the signal, so that it is delivered.
        self.resume_after_signal(c);
        Ok(())
    }

    /// `restart`: stops `c` (`signal`, then SIGKILL after `timeout`), starts it again
    /// detached through `exe`'s monitor, and records Docker's `restart` event.
    pub fn restart_container(
        &self,
        c: &Container,
        timeout: Option<i64>,
        signal: Option<i32>,
        exe: &std::path::Path,
    ) -> Result<()> {
        self.stop_container(c, timeout, signal)?;
        let c = self.find(c.id())?;
        self.start_detached(&c, exe)?;
        crate::events::emit_container(self.root(), &c, "restart", &[]);
        Ok(())
    }

    /// Waits until the container's process is gone and its end is recorded, up to
    /// `timeout`; returns whether it ended.
    pub fn wait_stopped(&self, c: &Container, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut step = Duration::from_millis(2);
        loop {
            let alive = procfs::is_alive(c.record.pid, c.record.pid_start);
            if !alive {
                // Give the watcher a moment to record the exit.
                let record_deadline = Instant::now() + Duration::from_secs(5);
                loop {
                    match self.find(c.id()) {
                        Ok(now) if now.status.is_active() && now.record.pid == c.record.pid => {}
                        _ => return true,
                    }
                    if Instant::now() > record_deadline {
                        return true;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(step);
            step = (step * 2).min(Duration::from_millis(50));
        }
    }

    /// Stops the container: its stop signal, then SIGKILL after `timeout` seconds (the
    /// container's `--stop-timeout`, default 10; -1 waits for ever).
    pub fn stop_container(
        &self,
        c: &Container,
        timeout: Option<i64>,
        signal: Option<i32>,
    ) -> Result<()> {
        self.store().update_container(
            c.id(),
            &ContainerUpdate {
                stopped_by_user: Some(true),
                ..Default::default()
            },
        )?;
        let c = self.find(c.id())?;
        if c.status == super::ContainerStatus::Restarting
            && !procfs::is_alive(c.record.pid, c.record.pid_start)
        {
            // Between two runs of its restart policy: it just stays stopped.
            self.store().update_container(
                c.id(),
                &ContainerUpdate {
                    status: Some("exited".into()),
                    only_if_status: vec!["restarting".into()],
                    ..Default::default()
                },
            )?;
            return Ok(());
        }
        if !c.status.is_active() {
            if c.status == super::ContainerStatus::Restarting {
                self.store().update_container(
                    c.id(),
                    &ContainerUpdate {
                        status: Some("exited".into()),
                        ..Default::default()
                    },
                )?;
            }
            return Ok(());
        }
        let secs = timeout.unwrap_or(c.spec.stop_timeout);
        let sig = signal.unwrap_or(c.spec.stop_signal);
        let pid = Pid::from_raw(c.record.pid as i32);
        if procfs::is_alive(c.record.pid, c.record.pid_start) {
            let _ = kill(pid, signal_of(sig)?);
            crate::events::emit_container(self.root(), &c, "kill", &[("signal", sig.to_string())]);
            self.resume_after_signal(&c);
            let wait = if secs < 0 {
                Duration::from_secs(u64::MAX / 4)
            } else {
                Duration::from_secs(secs as u64)
            };
            if self.wait_stopped(&c, wait) {
                crate::events::emit_container(self.root(), &c, "stop", &[]);
                return Ok(());
            }
            if procfs::is_alive(c.record.pid, c.record.pid_start) {
                let _ = kill(pid, Signal::SIGKILL);
                crate::events::emit_container(self.root(), &c, "kill", &[("signal", "9".into())]);
            }
        }
        if !self.wait_stopped(&c, Duration::from_secs(10)) {
            return Err(ContainerError::BadStatus(format!(
                "cannot stop container: {}: tried to kill container, but did not receive an exit event",
                c.id()
            )));
        }
        crate::events::emit_container(self.root(), &c, "stop", &[]);
        Ok(())
    }
}
