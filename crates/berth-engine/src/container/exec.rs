//! `exec`: one more process in a running container (its namespaces and cgroup).

use serde_json::json;

use super::create::merge_env;
use super::launch::wait_exit;
use super::layered::MountedRoot;
use super::runtime::{self, Stdio};
use super::{options, procfs, user, Container, ContainerError, ContainerStatus, Lifecycle, Result};

/// `exec` as asked.
#[derive(Debug, Clone, Default)]
pub struct ExecRequest {
    /// The command.
    pub cmd: Vec<String>,
    /// `-e`.
    pub env: Vec<String>,
    /// `-u`.
    pub user: Option<String>,
    /// `-w`.
    pub workdir: Option<String>,
    /// `-t`.
    pub tty: bool,
    /// `-i`.
    pub interactive: bool,
    /// `-d`.
    pub detach: bool,
    /// `--privileged`.
    pub privileged: bool,
}

impl Lifecycle {
    /// Runs `req` in `c`; returns its exit status (0 at once with `detach`).
    pub fn exec(&self, c: &Container, req: &ExecRequest) -> Result<i32> {
        if c.status == ContainerStatus::Paused {
            if let Some(msg) = c.status.refuses("exec", c.id()) {
                return Err(ContainerError::BadStatus(msg));
            }
        }
        if c.status != ContainerStatus::Running {
            return Err(ContainerError::BadStatus(format!(
                "container {} is not running",
                c.id()
            )));
        }
        if req.cmd.is_empty() {
            return Err(ContainerError::NoCommand);
        }
        let env_flags = options::parse_env(&req.env, &|k| std::env::var(k).ok())?;
        let env = merge_env(&c.spec.config.env, &env_flags);
        let (uid, gid, gids) = match &req.user {
            Some(u) => {
                let r = user::resolve_user(&container_root(c)?, u)?;
                (r.uid, r.gid, r.additional_gids)
            }
            None => (c.spec.uid, c.spec.gid, c.spec.additional_gids.clone()),
        };
        let caps: Vec<String> = if req.privileged {
            options::host_caps()
        } else {
            c.spec.capabilities.clone()
        };
        let cwd = req
            .workdir
            .clone()
            .or_else(|| Some(c.spec.config.working_dir.clone()).filter(|w| !w.is_empty()))
            .unwrap_or_else(|| "/".into());
        let mut process = json!({
            "terminal": req.tty,
            "args": req.cmd,
            "env": env,
            "cwd": cwd,
            "user": {"uid": uid, "gid": gid, "additionalGids": gids},
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "noNewPrivileges": c.spec.security.no_new_privileges,
        });
        // The pty starts at the caller's size (the process may ask at once, before any resize).
        if let Some((rows, cols)) = super::tty::caller_size().filter(|_| req.tty) {
            process["consoleSize"] = json!({"height": rows, "width": cols});
        }
        let rt = runtime::for_name(&c.spec.host_config.runtime);
        let state_root = self.runroot().join("runtime");
        let stdio = if req.interactive {
            Stdio::default()
        } else {
            let null = std::fs::File::open("/dev/null")
                .map_err(ContainerError::io("opening", "/dev/null"))?;
            Stdio {
                stdin: Some(null.into()),
                stdout: None,
                stderr: None,
            }
        };
        let launched = rt
            .exec(
                c.id(),
                &state_root,
                &self.container_dir(c.id()),
                &process,
                stdio,
            )
            .map_err(exec_failed)?;
        let what = req.cmd.join(" ");
        let exec_id = format!("{}", launched.pid);
        let ev = |action: &str, extra: &[(&str, String)]| {
            let mut all = vec![("execID", exec_id.clone())];
            all.extend(extra.iter().cloned());
            crate::events::emit_container(self.root(), c, &format!("{action}: {what}"), &all);
        };
        ev("exec_create", &[]);
        ev("exec_start", &[]);
        if req.detach {
            return Ok(0);
        }
        let Some(master) = launched.pty_master else {
            let _fwd = super::signals::forward_to(launched.pid);
            let code = wait_exit(launched.pid);
            crate::events::emit_container(
                self.root(),
                c,
                "exec_die",
                &[("execID", exec_id), ("exitCode", code.to_string())],
            );
            return Ok(code);
        };
        super::tty::copy_window_size(&master);
        let _fwd = match master.try_clone() {
            Ok(m) => super::signals::forward_to_tty(launched.pid, m),
            Err(_) => super::signals::forward_to(launched.pid),
        };
        // `exec -t`: the process writes to the pty; copy it to our stdout (and, with -i,
        // our stdin to it), else its output is lost.
        let raw = if req.interactive {
            super::tty::RawMode::enter()
        } else {
            None
        };
        if req.interactive {
            if let Ok(m) = master.try_clone() {
                super::tty::copy_stdin_to(m);
            }
        }
        let drained = copy_pty_to_stdout(master);
        let code = wait_exit(launched.pid);
        // What the process wrote just before it exited is still in the pty: let it through.
        let _ = drained.recv_timeout(std::time::Duration::from_millis(500));
        drop(raw);
        crate::events::emit_container(
            self.root(),
            c,
            "exec_die",
            &[("execID", exec_id), ("exitCode", code.to_string())],
        );
        Ok(code)
    }
}

/// The root file system of the running container `c`, as its first process sees it
/// (`/proc/PID/root`, its mounts included), for lookups that stay inside it whatever the
/// container swaps in. The PID is checked again once the root is open: had the process
/// exited and its PID been reused, the handle could be another process's root (the host's).
fn container_root(c: &Container) -> Result<MountedRoot> {
    let path = format!("/proc/{}/root", c.record.pid);
    let root = MountedRoot::open(path.as_ref()).map_err(ContainerError::io("opening", &path))?;
    if !procfs::is_alive(c.record.pid, c.record.pid_start) {
        return Err(ContainerError::BadStatus(format!(
            "container {} is not running",
            c.id()
        )));
    }
    Ok(root)
}

/// The runtime's failure to start an exec'd process as Docker reports it: 127 when the
/// command does not exist, 126 for anything else (bad cwd, not executable, init failure).
fn exec_failed(e: runtime::RuntimeError) -> ContainerError {
    let code = if e.kind() == super::ErrorKind::CommandNotFound {
        127
    } else {
        126
    };
    let detail = match &e {
        runtime::RuntimeError::Berth(berth_runtime::Error::Init { step, source }) => {
            format!("{step}: {}", os_error_text(source))
        }
        other => other.to_string(),
    };
    ContainerError::ExecFailed { detail, code }
}

/// An OS error as runc words it: `no such file or directory`, without Rust's `(os error 2)`.
fn os_error_text(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => nix::errno::Errno::from_raw(n).desc().to_lowercase(),
        None => e.to_string(),
    }
}

/// Copies the pty master to stdout from a helper thread until the pty closes (EOF or EIO
/// once no process holds the slave); the receiver hears when that happened.
fn copy_pty_to_stdout(master: std::os::fd::OwnedFd) -> std::sync::mpsc::Receiver<()> {
    use std::io::{Read, Write};
    let (tx, rx) = std::sync::mpsc::channel();
    let _ = std::thread::Builder::new()
        .name("pty-out".into())
        .spawn(move || {
            let mut m = std::fs::File::from(master);
            let mut buf = [0u8; 8192];
            let mut out = std::io::stdout();
            loop {
                match m.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if out.write_all(&buf[..n]).and_then(|()| out.flush()).is_err() {
                            break;
                        }
                    }
                }
            }
            let _ = tx.send(());
        });
    rx
}
