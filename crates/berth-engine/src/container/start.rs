//! `start` and the two ways a process is watched: by the CLI (foreground `run`, `start -a`)
//! or by a detached monitor process.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::{Command, Stdio as StdStdio};

use super::launch::{record_exit, start_process, wait_exit};
use super::runtime::Stdio;
use super::{Container, ContainerError, Lifecycle, Result};

impl Lifecycle {
    /// Checks that `c` may start now.
    pub fn check_startable(&self, c: &Container) -> Result<()> {
        match c.status.refuses("start", c.id()) {
            None => Ok(()),
            Some(msg) => Err(ContainerError::BadStatus(msg)),
        }
    }

    /// Starts `c` detached: a monitor process (`exe _monitor ID`) launches and watches it.
    /// Returns once the process runs (or its start failed).
    pub fn start_detached(&self, c: &Container, exe: &Path) -> Result<()> {
        self.check_startable(c)?;
        if c.status.is_active() {
            return Ok(());
        }
        // A start by the user begins a new count of policy restarts, as Docker's.
        self.store().update_container(
            c.id(),
            &berth_store::containers::ContainerUpdate {
                restart_count: Some(0),
                ..Default::default()
            },
        )?;
        let mut child = Command::new(exe)
            .arg("--root")
            .arg(self.root())
            .arg("--runroot")
            .arg(self.runroot())
            .arg("_monitor")
            .arg(c.id())
            .stdin(StdStdio::null())
            .stdout(StdStdio::piped())
            .stderr(StdStdio::null())
            .spawn()
            .map_err(ContainerError::io("starting the monitor", exe))?;
        let out = child.stdout.take().expect("stdout is piped");
        let mut line = String::new();
        let _ = BufReader::new(out).read_line(&mut line);
        // The monitor outlives us; it is reparented when we exit, so do not wait for it.
        drop(child);
        let line = line.trim();
        if line.starts_with("OK") {
            return Ok(());
        }
        let (code, msg) = match line.strip_prefix("ERR ") {
            Some(rest) => rest.split_once(' ').unwrap_or(("125", rest)),
            None => ("125", "the monitor exited without a report"),
        };
        Err(ContainerError::Reported {
            code: code.parse().unwrap_or(125),
            message: msg.to_string(),
        })
    }

    /// Runs `c` in the foreground with the caller's stdio, waits, records the exit, and
    /// removes the container when `--rm`. Returns the exit status.
    ///
    /// The caller's stdin goes to a container created with `-i` only when `attach_stdin`
    /// (`run -i`, `start -i`); otherwise, as with Docker's `start -a`, its stdin is a pipe
    /// that stays open and empty until it exits.
    pub fn run_attached(&self, c: &Container, attach_stdin: bool) -> Result<i32> {
        self.check_startable(c)?;
        // runc hands the process over to us when `runc create` exits.
        let _ = nix::sys::prctl::set_child_subreaper(true);
        // With --rm nobody will read the log: give the process our stdio as is (the fast
        // path). Otherwise tee its output into the json-file log.
        let tee = !c.spec.host_config.auto_remove || c.spec.config.tty;
        let open_stdin = c.spec.config.open_stdin;
        let stdin_attached = open_stdin && attach_stdin;
        // The write end of an open, empty stdin, held until the container exits.
        let mut _held_stdin = None;
        let mut quiet_stdin = || -> Result<Option<OwnedFd>> {
            if stdin_attached {
                return Ok(None);
            }
            if open_stdin {
                let (r, w) = super::monitor::pipe()?;
                _held_stdin = Some(w);
                return Ok(Some(r));
            }
            Ok(Some(
                std::fs::File::open("/dev/null")
                    .map_err(ContainerError::io("opening", "/dev/null"))?
                    .into(),
            ))
        };
        let mut pipes = Vec::new();
        let stdio = if tee {
            let (out_r, out_w) = super::monitor::pipe()?;
            let (err_r, err_w) = super::monitor::pipe()?;
            pipes.push((out_r, "stdout"));
            pipes.push((err_r, "stderr"));
            Stdio {
                stdin: quiet_stdin()?,
                stdout: Some(out_w),
                stderr: Some(err_w),
            }
        } else {
            Stdio {
                stdin: quiet_stdin()?,
                stdout: None,
                stderr: None,
            }
        };
        let started = match start_process(self, c, stdio, &["created", "exited"]) {
            Ok(s) => s,
            Err(e) => {
                if c.spec.host_config.auto_remove {
                    let _ = self.remove_container(c, true, true);
                }
                return Err(e);
            }
        };
        crate::events::emit_container(self.root(), c, "start", &[]);
        // What earlier `--rm` runs left to delete goes while this one runs: only now, so
        // that the runtime forked a single-threaded process (its fast path) and the
        // sweeper's disk work did not compete with the container's setup.
        self.sweep_trash(true);
        // With --rm, a guard removes the container should this process die before it does
        // (berth has no daemon to do it); released once the CLI removed it itself.
        let mut guard = if c.spec.host_config.auto_remove {
            super::monitor::RmGuard::spawn(self, c.id(), started.pid)
        } else {
            None
        };
        // With a pty: sized like the caller's terminal now and after each SIGWINCH.
        let _forward = match started.pty_master.as_ref().map(|m| m.try_clone()) {
            Some(Ok(m)) => {
                super::tty::copy_window_size(&m);
                super::signals::forward_to_tty(started.pid, m)
            }
            _ => super::signals::forward_to(started.pid),
        };
        let code = if tee {
            let limits = super::logs::LogLimits::of(&c.spec, self.root());
            let mut log = super::monitor::LogWriter::open_bounded(&self.log_path(c.id()), limits)?;
            let mut raw = None;
            if let Some(master) = started.pty_master {
                pipes.clear();
                raw = super::tty::RawMode::enter();
                if stdin_attached {
                    super::tty::copy_stdin_to(
                        master
                            .try_clone()
                            .map_err(ContainerError::io("duplicating", "pty"))?,
                    );
                }
                pipes.push((master, "stdout"));
            }
            let code = super::monitor::pump(started.pid, pipes, &mut log, true);
            drop(raw);
            code
        } else {
            wait_exit(started.pid)
        };
        if c.spec.host_config.auto_remove {
            // Nobody will read the exit record of a --rm container: tear down directly.
            crate::events::emit_exit(self.root(), c, code, false);
            drop(started.network);
            let removed = self.remove_exited(c);
            if let Some(g) = guard.as_mut() {
                g.release();
            }
            removed?;
            return Ok(code);
        }
        let oom = record_exit(self, c, code)?;
        crate::events::emit_exit(self.root(), c, code, oom);
        Ok(code)
    }
}

/// Writes the monitor's one-line report.
pub fn report(out: &mut impl Write, result: &Result<i32>) {
    let _ = match result {
        Ok(pid) => writeln!(out, "OK {pid}"),
        Err(e) => writeln!(out, "ERR {} {}", e.exit_code(), e),
    };
    let _ = out.flush();
}
