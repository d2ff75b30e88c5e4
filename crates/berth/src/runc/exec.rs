//! `exec`: another process in a running container, from a process.json (`--process`, what
//! the shim sends) or from the command line (`exec ID CMD ARGS...`, runc's manual form).

use std::path::{Path, PathBuf};

use anyhow::Context;
use berth_runtime::oci::{Process, Spec};
use berth_runtime::{Console, Status, Stdio};
use clap::Args;

/// `exec`'s options, runc's names.
#[derive(Debug, Args)]
pub struct ExecOpts {
    /// A process.json (OCI `process` object) to run instead of CMD.
    #[arg(short = 'p', long)]
    process: Option<PathBuf>,
    /// Do not wait for the process: write its pid and exit.
    #[arg(short = 'd', long)]
    detach: bool,
    /// File to write the process's pid to.
    #[arg(long = "pid-file")]
    pid_file: Option<PathBuf>,
    /// Unix socket to send the pty master to.
    #[arg(long = "console-socket")]
    console_socket: Option<PathBuf>,
    /// Give the process a terminal.
    #[arg(short = 't', long)]
    tty: bool,
    /// Working directory in the container.
    #[arg(long)]
    cwd: Option<String>,
    /// Extra environment, KEY=VALUE.
    #[arg(short = 'e', long = "env")]
    env: Vec<String>,
    /// uid[:gid] to run as.
    #[arg(short = 'u', long)]
    user: Option<String>,
    /// Set no_new_privileges.
    #[arg(long = "no-new-privs")]
    no_new_privs: bool,
    /// Pass this many descriptors after stdio (only 0 supported).
    #[arg(long = "preserve-fds", default_value_t = 0)]
    preserve_fds: u32,
    /// Exec even when the container is paused (refused: it would hang).
    #[arg(long = "ignore-paused")]
    ignore_paused: bool,
    /// Container ID.
    id: String,
    /// Command and arguments (without --process).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

fn process_of(root: &Path, opts: &ExecOpts) -> anyhow::Result<Process> {
    if let Some(path) = &opts.process {
        let text = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
        let mut p: Process = serde_json::from_slice(&text)
            .with_context(|| format!("parse process {}", path.display()))?;
        if opts.tty {
            p.set_terminal(Some(true));
        }
        return Ok(p);
    }
    if opts.command.is_empty() {
        anyhow::bail!("exec: give a command or --process");
    }
    // The container's own process is the template, as runc.
    let config = super::lifecycle::state_dir(root, &opts.id)?.join("config.json");
    let spec = Spec::load(&config).with_context(|| format!("load {}", config.display()))?;
    let mut p = spec.process().clone().unwrap_or_default();
    p.set_args(Some(opts.command.clone()));
    p.set_terminal(Some(opts.tty));
    if let Some(cwd) = &opts.cwd {
        p.set_cwd(cwd.into());
    }
    if !opts.env.is_empty() {
        let mut env = p.env().clone().unwrap_or_default();
        env.extend(opts.env.iter().cloned());
        p.set_env(Some(env));
    }
    if opts.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if let Some(u) = &opts.user {
        let (uid, gid) = u.split_once(':').unwrap_or((u, "0"));
        let mut user = p.user().clone();
        user.set_uid(uid.parse().with_context(|| format!("bad uid in {u:?}"))?);
        user.set_gid(gid.parse().with_context(|| format!("bad gid in {u:?}"))?);
        p.set_user(user);
    }
    Ok(p)
}

/// Writes `pid` to `path` atomically (a reader never sees a partial number).
pub(crate) fn write_pid_file(path: &Path, pid: i32) -> anyhow::Result<()> {
    let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let tmp = path.with_file_name(format!(
        ".{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("pid")
    ));
    std::fs::write(&tmp, pid.to_string()).with_context(|| format!("write {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("rename to {}", path.display()))?;
    Ok(())
}

pub(crate) fn exec(root: &Path, opts: ExecOpts) -> anyhow::Result<i32> {
    if opts.preserve_fds > 0 {
        anyhow::bail!(
            "--preserve-fds {} is not supported: berth passes only stdio to the process",
            opts.preserve_fds
        );
    }
    let mut c = super::lifecycle::load(root, &opts.id)?;
    match c.status() {
        Status::Running => {}
        Status::Paused => anyhow::bail!("cannot exec in a paused container"),
        Status::Stopped => anyhow::bail!("cannot exec in a stopped container"),
        s => anyhow::bail!("cannot exec in a container that is {s}"),
    }
    let process = process_of(root, &opts)?;
    let terminal = process.terminal().unwrap_or(false);
    let console = match (&opts.console_socket, terminal) {
        (Some(p), true) => Some(Console::Socket(
            std::path::absolute(p).unwrap_or_else(|_| p.clone()),
        )),
        (None, true) if opts.detach => {
            anyhow::bail!("cannot allocate tty if runc will detach without setting console socket")
        }
        (None, true) => Some(Console::Return),
        (_, false) => None,
    };
    let forwarded = if opts.detach {
        None
    } else {
        Some(berth_runtime::signals::block_forwarded()?)
    };
    let mut p = c
        .exec(&process, Stdio::default(), console)
        .with_context(|| format!("exec in container {}", opts.id))?;
    if let Some(path) = &opts.pid_file {
        write_pid_file(path, p.pid.as_raw())?;
    }
    if opts.detach {
        return Ok(0);
    }
    if let Some(set) = forwarded {
        berth_runtime::signals::forward_to(set, p.pid);
    }
    let proxy = p.pty_master.take().map(berth_runtime::pty::proxy_stdio);
    let status = p.wait()?;
    if let Some(t) = proxy {
        let _ = t.join();
    }
    Ok(status.code)
}
