//! `berth runtime`: the low-level OCI runtime, compatible with runc's command line
//! (`create`, `start`, `run`, `state`, `kill`, `delete`, `spec`), so a bundle made by
//! `runc spec` runs under berth. State lives in `RUNROOT/runtime/<id>`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use berth_runtime::{Container, ContainerConfig};
use clap::{Args, Subcommand};

use super::GlobalOpts;

/// runc-compatible low-level commands.
#[derive(Debug, Args)]
pub struct RuntimeArgs {
    #[command(subcommand)]
    pub command: RuntimeCommand,
}

/// Options shared by `create` and `run`.
#[derive(Debug, Args)]
pub struct BundleOpts {
    /// Path to the bundle directory (holding config.json).
    #[arg(short = 'b', long, default_value = ".")]
    pub bundle: PathBuf,
    /// Unix socket to send the pty master to (process.terminal).
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// File to write the container's pid to.
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Container ID.
    pub id: String,
}

/// The runtime's verbs.
#[derive(Debug, Subcommand)]
pub enum RuntimeCommand {
    /// Create a container; its process waits for `start`.
    Create(BundleOpts),
    /// Start a created container.
    Start {
        /// Container ID.
        id: String,
    },
    /// Create and start a container; in the foreground, wait and exit with its status.
    Run {
        #[command(flatten)]
        opts: BundleOpts,
        /// Do not wait for the container.
        #[arg(short = 'd', long)]
        detach: bool,
    },
    /// Print the container's state as JSON.
    State {
        /// Container ID.
        id: String,
    },
    /// Send a signal (default SIGTERM) to the container's init.
    Kill {
        /// Send it to every process of the container.
        #[arg(short = 'a', long)]
        all: bool,
        /// Container ID.
        id: String,
        /// Signal name or number.
        signal: Option<String>,
    },
    /// Delete a stopped container (with --force, a running one too).
    Delete {
        /// Kill the container first if it runs.
        #[arg(short = 'f', long)]
        force: bool,
        /// Container ID.
        id: String,
    },
    /// Link `berth-runc` (berth with runc's command line, for containerd's runc shim as its
    /// `BinaryName`) to this binary in a directory.
    Install {
        /// Directory to put the `berth-runc` link in.
        #[arg(long, default_value = "/usr/local/bin")]
        dir: PathBuf,
    },
    /// Write a config.json template like `runc spec`.
    Spec {
        /// Directory to write config.json into.
        #[arg(short = 'b', long, default_value = ".")]
        bundle: PathBuf,
    },
}

fn state_dir(g: &GlobalOpts, id: &str) -> anyhow::Result<PathBuf> {
    berth_runtime::validate_id(id)?;
    Ok(g.runroot.join("runtime").join(id))
}

fn load(g: &GlobalOpts, id: &str) -> anyhow::Result<Container> {
    Ok(Container::load(&state_dir(g, id)?)?)
}

fn config(g: &GlobalOpts, opts: &BundleOpts) -> anyhow::Result<ContainerConfig> {
    crate::runc::bundle_config(
        state_dir(g, &opts.id)?,
        &opts.id,
        &opts.bundle,
        opts.console_socket.as_deref(),
        opts.pid_file.as_deref(),
    )
}

pub(crate) fn parse_signal(s: &str) -> anyhow::Result<berth_runtime::Signal> {
    parse_signal_inner(s).with_context(|| format!("invalid signal {s:?}"))
}

fn parse_signal_inner(s: &str) -> Option<berth_runtime::Signal> {
    use std::str::FromStr;
    if let Ok(n) = s.parse::<i32>() {
        return berth_runtime::Signal::try_from(n).ok();
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    berth_runtime::Signal::from_str(&name).ok()
}

/// Runs one `berth runtime` verb.
pub fn run(g: &GlobalOpts, args: RuntimeArgs) -> anyhow::Result<i32> {
    match args.command {
        RuntimeCommand::Create(opts) => {
            let cfg = config(g, &opts)?;
            berth_runtime::create(cfg).with_context(|| format!("create container {}", opts.id))?;
            Ok(0)
        }
        RuntimeCommand::Start { id } => {
            load(g, &id)?
                .start()
                .with_context(|| format!("start container {id}"))?;
            Ok(0)
        }
        RuntimeCommand::Run { opts, detach } => {
            let cfg = config(g, &opts)?;
            // In the foreground, signals for us go to the container (blocked from here on,
            // so none is lost or kills us while it starts).
            let forwarded = if detach {
                None
            } else {
                Some(berth_runtime::signals::block_forwarded()?)
            };
            let mut c =
                berth_runtime::run(cfg).with_context(|| format!("run container {}", opts.id))?;
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
            c.delete(true)
                .with_context(|| format!("delete container {}", opts.id))?;
            Ok(status.map_or(0, |s| s.code))
        }
        RuntimeCommand::State { id } => {
            let mut c = load(g, &id)?;
            let s = c.state();
            let out = serde_json::json!({
                "ociVersion": s.oci_version,
                "id": s.id,
                "pid": if s.status == berth_runtime::Status::Stopped { 0 } else { s.pid },
                "status": s.status,
                "bundle": s.bundle,
                "rootfs": s.rootfs,
                "created": s.created,
                "owner": s.owner,
            });
            println!("{}", serde_json::to_string_pretty(&out)?);
            Ok(0)
        }
        RuntimeCommand::Kill { all, id, signal } => {
            let sig = parse_signal(signal.as_deref().unwrap_or("TERM"))?;
            load(g, &id)?
                .kill(sig, all)
                .with_context(|| format!("kill container {id}"))?;
            Ok(0)
        }
        RuntimeCommand::Delete { force, id } => {
            load(g, &id)?
                .delete(force)
                .with_context(|| format!("delete container {id}"))?;
            Ok(0)
        }
        RuntimeCommand::Install { dir } => {
            let link = install(&dir)?;
            println!("{}", link.display());
            Ok(0)
        }
        RuntimeCommand::Spec { bundle } => {
            write_spec(&bundle)?;
            Ok(0)
        }
    }
}

pub(crate) fn write_spec(bundle: &Path) -> anyhow::Result<()> {
    let path = bundle.join("config.json");
    if path.exists() {
        anyhow::bail!("File {} exists. Remove it first", path.display());
    }
    let text = serde_json::to_string_pretty(&berth_runtime::spec::runc_spec())?;
    std::fs::write(&path, text + "\n").with_context(|| format!("write {}", path.display()))?;
    Ok(())
}

/// Makes `DIR/berth-runc` a symbolic link to this binary (replacing an older link atomically);
/// returns the link's path.
fn install(dir: &Path) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("find this binary")?;
    let exe = std::fs::canonicalize(&exe).with_context(|| format!("resolve {}", exe.display()))?;
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let link = dir.join(crate::runc::RUNC_NAME);
    let tmp = dir.join(format!(
        ".{}.{}",
        crate::runc::RUNC_NAME,
        std::process::id()
    ));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&exe, &tmp)
        .with_context(|| format!("link {} to {}", tmp.display(), exe.display()))?;
    std::fs::rename(&tmp, &link).with_context(|| format!("rename to {}", link.display()))?;
    Ok(link)
}
