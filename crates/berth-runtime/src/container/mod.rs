//! A container's lifecycle, runc's semantics: [`create`] (set up, waiting before exec),
//! [`Container::start`], [`Container::state`], [`Container::kill`], [`Container::delete`],
//! plus [`run`] (create and start in one go) and [`Container::exec`]. One file per verb; the
//! legal status transitions are decided in [`Status::allows`].

mod create;
mod delete;
mod exec;
mod init;
mod kill;
mod pause;
mod ps;
mod start;
mod update;

use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::cgroups::Cgroup;
use crate::error::{Error, Result};

pub use create::{create, run, ContainerConfig};
pub use exec::ExecProcess;

/// File names inside a container's state directory.
pub(crate) const STATE_FILE: &str = "state.json";
pub(crate) const FIFO_FILE: &str = "exec.fifo";
pub(crate) const CONFIG_FILE: &str = "config.json";

/// A container's status, as runc reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Being set up.
    Creating,
    /// Set up, waiting for `start` before exec'ing the command.
    Created,
    /// The command runs.
    Running,
    /// The command has exited.
    Stopped,
    /// Its processes are frozen (`pause`) until `resume`.
    Paused,
}

/// Operations whose legality depends on the status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `start`.
    Start,
    /// `kill`.
    Kill,
    /// `delete` without force.
    Delete,
    /// `exec`.
    Exec,
    /// `pause`.
    Pause,
    /// `resume`.
    Resume,
    /// `update` of the resources.
    Update,
}

impl Status {
    /// Whether `op` is legal in this status (the one place that decides).
    pub fn allows(self, op: Op) -> bool {
        matches!(
            (self, op),
            (Status::Created, Op::Start)
                | (Status::Created | Status::Running | Status::Paused, Op::Kill)
                | (Status::Stopped, Op::Delete)
                | (Status::Running, Op::Exec)
                | (Status::Running | Status::Created, Op::Pause)
                | (Status::Paused, Op::Resume)
                | (
                    Status::Created | Status::Running | Status::Paused,
                    Op::Update
                )
        )
    }

    /// The lowercase name (`created`, `running`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Stopped => "stopped",
            Status::Paused => "paused",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The persisted state of a container: runc's `state` fields plus what berth needs to find
/// the process and its cgroup again.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    /// OCI version of the spec.
    pub oci_version: String,
    /// Container ID.
    pub id: String,
    /// Status when last looked at.
    pub status: Status,
    /// Pid of the container's init, as seen on the host.
    pub pid: i32,
    /// The bundle directory.
    pub bundle: PathBuf,
    /// The rootfs on the host.
    pub rootfs: PathBuf,
    /// Creation time, RFC 3339.
    pub created: String,
    /// Owner (always `""`: root).
    pub owner: String,
    /// The spec's annotations.
    #[serde(default)]
    pub annotations: HashMap<String, String>,
    /// Start time of `pid` in clock ticks since boot, to tell it from a reused pid.
    #[serde(default)]
    pub pid_start_time: u64,
    /// The container's cgroup.
    #[serde(default)]
    pub cgroup: Option<Cgroup>,
    /// Namespaces the container created or joined (`/proc/<pid>/ns` names: `pid`, `mnt`,
    /// `net`, ...): the ones `exec` enters.
    #[serde(default)]
    pub namespaces: Vec<String>,
}

/// How the container's process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitStatus {
    /// Docker's convention: the exit code, or 128 + signal number.
    pub code: i32,
    /// The signal that killed it, if any.
    pub signal: Option<i32>,
}

/// A container created by this runtime.
#[derive(Debug)]
pub struct Container {
    pub(crate) state: State,
    pub(crate) state_dir: PathBuf,
    /// Read end of the init's sync pipe while this process created it (start errors).
    pub(crate) sync: Option<OwnedFd>,
    pub(crate) pty_master: Option<OwnedFd>,
    /// True when the init is our child (we can waitpid it).
    pub(crate) is_child: bool,
    pub(crate) warnings: Vec<String>,
}

/// Rejects IDs that could escape the state directory or confuse cgroup paths.
pub fn validate_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 1024
        && id != "."
        && id != ".."
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidId { id: id.to_string() })
    }
}

/// Start time (field 22 of /proc/<pid>/stat) and state letter of a process.
pub(crate) fn proc_start_time(pid: i32) -> Option<(u64, char)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: parse after the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let state = fields.first()?.chars().next()?;
    Some((fields.get(19)?.parse().ok()?, state))
}

impl Container {
    /// Loads the container whose state lives in `state_dir`.
    pub fn load(state_dir: &Path) -> Result<Container> {
        let path = state_dir.join(STATE_FILE);
        let text = match fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotFound {
                    id: state_dir
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                })
            }
            Err(e) => return Err(Error::io("read", &path, e)),
        };
        let state: State =
            serde_json::from_slice(&text).map_err(|source| Error::State { path, source })?;
        let mut c = Container {
            state,
            state_dir: state_dir.to_path_buf(),
            sync: None,
            pty_master: None,
            is_child: false,
            warnings: Vec::new(),
        };
        c.refresh();
        Ok(c)
    }

    pub(crate) fn save(&self) -> Result<()> {
        let path = self.state_dir.join(STATE_FILE);
        let tmp = self.state_dir.join(".state.json.tmp");
        let data = serde_json::to_vec(&self.state).map_err(|source| Error::State {
            path: path.clone(),
            source,
        })?;
        fs::write(&tmp, data).map_err(|e| Error::io("write", &tmp, e))?;
        fs::rename(&tmp, &path).map_err(|e| Error::io("rename", &path, e))
    }

    /// Re-reads the status from the kernel: a pid that is gone, a zombie, or a different
    /// process (start time differs) means stopped.
    pub fn refresh(&mut self) -> Status {
        if self.state.status == Status::Stopped || self.state.pid <= 0 {
            self.state.status = Status::Stopped;
            return Status::Stopped;
        }
        let status = match proc_start_time(self.state.pid) {
            Some((start, st)) if start == self.state.pid_start_time && st != 'Z' && st != 'X' => {
                if self.frozen() {
                    Status::Paused
                } else if self.state_dir.join(FIFO_FILE).exists() {
                    Status::Created
                } else {
                    Status::Running
                }
            }
            _ => Status::Stopped,
        };
        self.state.status = status;
        status
    }

    /// The container's ID.
    pub fn id(&self) -> &str {
        &self.state.id
    }

    /// The host pid of the container's init.
    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.state.pid)
    }

    /// The current status.
    pub fn status(&mut self) -> Status {
        self.refresh()
    }

    /// The state, refreshed.
    pub fn state(&mut self) -> &State {
        self.refresh();
        &self.state
    }

    /// The directory holding the state file.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// Warnings from setting up (limits this host cannot enforce).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The pty master, when the process has a terminal and [`crate::Console::Return`] was asked.
    pub fn take_pty_master(&mut self) -> Option<OwnedFd> {
        self.pty_master.take()
    }

    /// The container's cgroup.
    pub fn cgroup(&self) -> Option<&Cgroup> {
        self.state.cgroup.as_ref()
    }

    /// Whether the kernel OOM killer killed a process of the container.
    pub fn oom_killed(&self) -> bool {
        self.state
            .cgroup
            .as_ref()
            .map(|c| c.oom_killed().unwrap_or(false))
            .unwrap_or(false)
    }

    /// Memory, CPU and pids usage of the container.
    pub fn stats(&self) -> Result<crate::cgroups::CgroupStats> {
        match &self.state.cgroup {
            Some(c) => Ok(c.stats()?),
            None => Ok(Default::default()),
        }
    }

    /// Waits for the container's init to exit. When this process created it (its parent),
    /// the exit status is returned; otherwise waits via a pidfd and returns `None`.
    pub fn wait(&mut self) -> Result<Option<ExitStatus>> {
        use nix::sys::wait::{waitpid, WaitStatus};
        if self.is_child {
            loop {
                match waitpid(self.pid(), None) {
                    Ok(WaitStatus::Exited(_, code)) => {
                        self.state.status = Status::Stopped;
                        return Ok(Some(ExitStatus { code, signal: None }));
                    }
                    Ok(WaitStatus::Signaled(_, sig, _)) => {
                        self.state.status = Status::Stopped;
                        return Ok(Some(ExitStatus {
                            code: 128 + sig as i32,
                            signal: Some(sig as i32),
                        }));
                    }
                    Ok(_) => continue,
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(e) => {
                        return Err(Error::sys(format!("wait for container {}", self.id()), e))
                    }
                }
            }
        }
        if self.refresh() == Status::Stopped {
            return Ok(None);
        }
        let pidfd = match crate::sys::pidfd_open(self.pid()) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Ok(None),
            Err(e) => return Err(Error::sys("pidfd_open", e)),
        };
        if self.refresh() == Status::Stopped {
            return Ok(None);
        }
        loop {
            use std::os::fd::AsFd;
            let mut fds = [nix::poll::PollFd::new(
                pidfd.as_fd(),
                nix::poll::PollFlags::POLLIN,
            )];
            match nix::poll::poll(&mut fds, nix::poll::PollTimeout::NONE) {
                Ok(_) => break,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(Error::sys("poll pidfd", e)),
            }
        }
        self.state.status = Status::Stopped;
        Ok(None)
    }

    pub(crate) fn check(&mut self, op: Op, name: &'static str) -> Result<Status> {
        let status = self.refresh();
        if status.allows(op) {
            Ok(status)
        } else {
            Err(Error::BadStatus {
                id: self.state.id.clone(),
                status: status.to_string(),
                op: name,
            })
        }
    }
}

/// Waits for the init to report its user namespace (`U`).
pub(crate) fn expect_userns(fd: &OwnedFd) -> Result<()> {
    let mut file = fs::File::from(fd.try_clone().map_err(|e| Error::sys("dup sync pipe", e))?);
    let mut b = [0u8; 1];
    match file.read(&mut b) {
        Ok(1) if b[0] == b'U' => Ok(()),
        Ok(1) => {
            let mut rest = Vec::new();
            let _ = file.read_to_end(&mut rest);
            Err(init::decode_failure(&rest))
        }
        Ok(_) => Err(Error::Init {
            step: "container init died before its user namespace was set up".into(),
            source: std::io::Error::from_raw_os_error(libc::EPIPE),
        }),
        Err(e) => Err(Error::sys("read sync pipe", e)),
    }
}

/// Reads the init's report from the sync pipe: `Ok(true)` for "ready" (`R`, waiting for
/// start), `Ok(false)` for "about to exec" (`X`) followed by end of file (the exec happened),
/// an error for a failure record (`E`) or an init that died without a word.
pub(crate) fn read_sync(fd: &OwnedFd) -> Result<bool> {
    let mut file = fs::File::from(fd.try_clone().map_err(|e| Error::sys("dup sync pipe", e))?);
    let mut about_to_exec = false;
    loop {
        let mut b = [0u8; 1];
        match file.read(&mut b) {
            Ok(0) if about_to_exec => return Ok(false),
            Ok(0) => {
                return Err(Error::Init {
                    step: "container init died before exec".into(),
                    source: std::io::Error::from_raw_os_error(libc::EPIPE),
                })
            }
            Ok(_) if b[0] == b'R' => return Ok(true),
            Ok(_) if b[0] == b'X' => about_to_exec = true,
            Ok(_) => {
                let mut rest = Vec::new();
                let _ = file.read_to_end(&mut rest);
                return Err(init::decode_failure(&rest));
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::sys("read sync pipe", e)),
        }
    }
}

/// The two ends of a container process's console: what the child gets (a console socket
/// connection, or one end of a socketpair to send the pty master over) and what the caller
/// keeps (the other end, when the caller asked for the master back).
pub(crate) fn console_ends(
    console: Option<&crate::process::Console>,
    terminal: bool,
) -> crate::error::Result<(Option<std::os::fd::OwnedFd>, Option<std::os::fd::OwnedFd>)> {
    use crate::error::Error;
    use crate::process::Console;
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    Ok(match (console, terminal) {
        (Some(Console::Socket(path)), true) => (
            Some(
                crate::pty::connect_console_socket(path)
                    .map_err(|e| Error::io("connect console socket", path, e))?,
            ),
            None,
        ),
        (Some(Console::Return), true) => {
            let (a, b) = socketpair(
                AddressFamily::Unix,
                SockType::Stream,
                None,
                SockFlag::SOCK_CLOEXEC,
            )
            .map_err(|e| Error::sys("socketpair", e))?;
            (Some(b), Some(a))
        }
        _ => (None, None),
    })
}
