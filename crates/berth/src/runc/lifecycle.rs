//! The lifecycle verbs of the runc face: `create`, `start`, `run`, `state`, `kill`,
//! `delete`, `pause`/`resume`, `list`. Each loads the container from `ROOT/<id>` and makes
//! one runtime call; errors use runc's words where the shim matches on them
//! ("does not exist", "container not running").

use std::path::{Path, PathBuf};

use anyhow::Context;
use berth_runtime::{oci::Spec, Console, Container, ContainerConfig, ErrorKind, Status};

use super::CreateOpts;

pub(crate) fn state_dir(root: &Path, id: &str) -> anyhow::Result<PathBuf> {
    berth_runtime::validate_id(id)?;
    Ok(root.join(id))
}

pub(crate) fn load(root: &Path, id: &str) -> anyhow::Result<Container> {
    Ok(Container::load(&state_dir(root, id)?)?)
}

/// The config of a container made from `bundle`: the spec read once, a `slice:prefix:name`
/// cgroupsPath turned into the path systemd would give it, the console and pid file.
pub(crate) fn bundle_config(
    state_dir: PathBuf,
    id: &str,
    bundle: &Path,
    console_socket: Option<&Path>,
    pid_file: Option<&Path>,
) -> anyhow::Result<ContainerConfig> {
    let bundle =
        std::fs::canonicalize(bundle).with_context(|| format!("bundle {}", bundle.display()))?;
    let path = bundle.join("config.json");
    let mut spec = Spec::load(&path).with_context(|| format!("load {}", path.display()))?;
    if let Some(linux) = spec.linux_mut() {
        let systemd = linux
            .cgroups_path()
            .as_deref()
            .and_then(|p| p.to_str())
            .filter(|p| super::is_systemd_form(p))
            .map(str::to_owned);
        if let Some(p) = systemd {
            let fs_path = super::systemd_to_cgroupfs(&p).map_err(anyhow::Error::msg)?;
            linux.set_cgroups_path(Some(fs_path));
        }
    }
    let terminal = spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    let mut cfg = ContainerConfig::new(id, state_dir, &bundle, spec);
    // Relative to where we were called, not to the bundle, as runc.
    cfg.pid_file = pid_file.map(absolute);
    cfg.console = match (console_socket, terminal) {
        (Some(p), _) => Some(Console::Socket(absolute(p))),
        (None, true) => Some(Console::Return),
        (None, false) => None,
    };
    Ok(cfg)
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

fn check_create(opts: &CreateOpts) -> anyhow::Result<()> {
    if opts.preserve_fds > 0 {
        anyhow::bail!(
            "--preserve-fds {} is not supported: berth passes only stdio to the container",
            opts.preserve_fds
        );
    }
    Ok(())
}

pub(crate) fn create(root: &Path, opts: &CreateOpts) -> anyhow::Result<()> {
    check_create(opts)?;
    let cfg = bundle_config(
        state_dir(root, &opts.id)?,
        &opts.id,
        &opts.bundle,
        opts.console_socket.as_deref(),
        opts.pid_file.as_deref(),
    )?;
    if matches!(cfg.console, Some(Console::Return)) {
        anyhow::bail!("cannot allocate tty if runc will detach without setting console socket");
    }
    berth_runtime::create(cfg).with_context(|| format!("create container {}", opts.id))?;
    Ok(())
}

pub(crate) fn start(root: &Path, id: &str) -> anyhow::Result<()> {
    let mut c = load(root, id)?;
    match c.status() {
        Status::Created => {}
        Status::Stopped => anyhow::bail!("cannot start a container that has stopped"),
        Status::Running => anyhow::bail!("cannot start an already running container"),
        s => anyhow::bail!("cannot start a container in the {s} state"),
    }
    c.start().with_context(|| format!("start container {id}"))?;
    Ok(())
}

pub(crate) fn run(root: &Path, opts: &CreateOpts, detach: bool, keep: bool) -> anyhow::Result<i32> {
    check_create(opts)?;
    let cfg = bundle_config(
        state_dir(root, &opts.id)?,
        &opts.id,
        &opts.bundle,
        opts.console_socket.as_deref(),
        opts.pid_file.as_deref(),
    )?;
    if detach && matches!(cfg.console, Some(Console::Return)) {
        anyhow::bail!("cannot allocate tty if runc will detach without setting console socket");
    }
    let forwarded = if detach {
        None
    } else {
        Some(berth_runtime::signals::block_forwarded()?)
    };
    let mut c = berth_runtime::run(cfg).with_context(|| format!("run container {}", opts.id))?;
    if detach {
        return Ok(0);
    }
    if let Some(set) = forwarded {
        berth_runtime::signals::forward_to(set, c.pid());
    }
    let proxy = c.take_pty_master().map(berth_runtime::pty::proxy_stdio);
    let status = c.wait()?;
    if let Some(p) = proxy {
        let _ = p.join();
    }
    if !keep {
        c.delete(true)
            .with_context(|| format!("delete container {}", opts.id))?;
    }
    Ok(status.map_or(0, |s| s.code))
}

/// runc's `state` JSON of a container.
pub(crate) fn state_json(c: &mut Container) -> serde_json::Value {
    let s = c.state();
    let mut out = serde_json::json!({
        "ociVersion": s.oci_version,
        "id": s.id,
        "pid": if s.status == Status::Stopped { 0 } else { s.pid },
        "status": s.status,
        "bundle": s.bundle,
        "rootfs": s.rootfs,
        "created": s.created,
        "owner": s.owner,
    });
    if !s.annotations.is_empty() {
        out["annotations"] = serde_json::json!(s.annotations);
    }
    out
}

pub(crate) fn state(root: &Path, id: &str) -> anyhow::Result<()> {
    let mut c = load(root, id)?;
    println!("{}", serde_json::to_string_pretty(&state_json(&mut c))?);
    Ok(())
}

pub(crate) fn kill(root: &Path, id: &str, signal: Option<&str>, all: bool) -> anyhow::Result<()> {
    let sig = crate::cmd::runtime::parse_signal(signal.unwrap_or("SIGTERM"))?;
    let mut c = load(root, id)?;
    match c.kill(sig, all) {
        Ok(()) => Ok(()),
        // The shim takes these words for "already gone".
        Err(e) if e.kind() == ErrorKind::Conflict => anyhow::bail!("container not running"),
        Err(e) => Err(anyhow::Error::new(e).context(format!("kill container {id}"))),
    }
}

pub(crate) fn delete(root: &Path, id: &str, force: bool) -> anyhow::Result<()> {
    let dir = state_dir(root, id)?;
    let mut c = match Container::load(&dir) {
        Ok(c) => c,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            // A create that died before its state file: its directory may be left.
            let _ = std::fs::remove_dir_all(&dir);
            if force {
                return Ok(());
            }
            anyhow::bail!("container does not exist");
        }
        Err(e) => return Err(e.into()),
    };
    let status = c.status();
    // Like runc: a created (never started) container is deleted without --force too.
    let force = force || status == Status::Created;
    if !force && status != Status::Stopped {
        anyhow::bail!("cannot delete container {id} that is not stopped: {status}");
    }
    if status == Status::Paused {
        // Killed through the runtime, which thaws it: a v1 freezer holds even killed tasks.
        let _ = c.kill(berth_runtime::Signal::SIGKILL, true);
    }
    c.delete(force)
        .with_context(|| format!("delete container {id}"))?;
    Ok(())
}

pub(crate) fn pause(root: &Path, id: &str, freeze: bool) -> anyhow::Result<()> {
    let mut c = load(root, id)?;
    let status = c.status();
    if freeze {
        if status != Status::Running && status != Status::Created {
            anyhow::bail!("container not running");
        }
        c.pause().with_context(|| format!("pause container {id}"))?;
    } else {
        if status != Status::Paused {
            anyhow::bail!("container not paused");
        }
        c.resume()
            .with_context(|| format!("resume container {id}"))?;
    }
    Ok(())
}

pub(crate) fn list(root: &Path, format: &str, quiet: bool) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    if let Ok(dir) = std::fs::read_dir(root) {
        for e in dir.flatten() {
            let id = e.file_name().to_string_lossy().into_owned();
            if let Ok(mut c) = load(root, &id) {
                rows.push(state_json(&mut c));
            }
        }
    }
    rows.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    if quiet {
        for r in &rows {
            println!("{}", r["id"].as_str().unwrap_or(""));
        }
    } else if format == "json" {
        println!("{}", serde_json::Value::Array(rows));
    } else {
        println!(
            "{:<12}{:<10}{:<10}{:<40}{:<31}OWNER",
            "ID", "PID", "STATUS", "BUNDLE", "CREATED"
        );
        for r in &rows {
            println!(
                "{:<12}{:<10}{:<10}{:<40}{:<31}root",
                r["id"].as_str().unwrap_or(""),
                r["pid"],
                r["status"].as_str().unwrap_or(""),
                r["bundle"].as_str().unwrap_or(""),
                r["created"].as_str().unwrap_or(""),
            );
        }
    }
    Ok(())
}
