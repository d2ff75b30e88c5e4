//! The OCI runtime behind a container: berth's own (`berth-runtime`) or another one driven
//! through its runc-compatible CLI (`--runtime runc|crun|PATH`).
//!
//! Either way the caller of [`OciRuntime::launch`] ends up waiting for the container's first
//! process: berth's runtime forks it as the caller's child; for runc the caller is a child
//! subreaper and inherits the process when `runc create` exits.

use std::fs;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio as StdStdio};

use serde_json::Value;

use super::ErrorKind;

/// Errors of a runtime.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// berth's own runtime failed.
    #[error(transparent)]
    Berth(#[from] berth_runtime::Error),
    /// The spec does not convert to the runtime's types.
    #[error("invalid runtime {what}: {detail}")]
    BadSpec {
        /// `spec` or `process`.
        what: &'static str,
        /// The decoding error.
        detail: String,
    },
    /// The external runtime could not be started.
    #[error("starting OCI runtime {runtime}: {source}")]
    Spawn {
        /// The runtime binary.
        runtime: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The external runtime reported a failure.
    #[error("OCI runtime {runtime} {op} failed: {message}")]
    Failed {
        /// The runtime binary.
        runtime: String,
        /// `create`, `start`, `delete`, `exec`.
        op: &'static str,
        /// What it printed.
        message: String,
    },
    /// A file the runtime needs could not be written or read.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Mounting or unmounting the rootfs on the host failed.
    #[error("{op} {path}: {source}")]
    Mount {
        /// What was being done.
        op: &'static str,
        /// The mount point.
        path: PathBuf,
        /// The errno.
        source: nix::Error,
    },
}

impl RuntimeError {
    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            RuntimeError::Berth(e) => match e.kind() {
                berth_runtime::ErrorKind::CommandNotFound => ErrorKind::CommandNotFound,
                berth_runtime::ErrorKind::CommandNotExecutable => ErrorKind::CommandNotExecutable,
                berth_runtime::ErrorKind::NotFound => ErrorKind::NotFound,
                berth_runtime::ErrorKind::InvalidArgument => ErrorKind::InvalidArgument,
                berth_runtime::ErrorKind::Conflict | berth_runtime::ErrorKind::AlreadyExists => {
                    ErrorKind::Conflict
                }
                _ => ErrorKind::Internal,
            },
            RuntimeError::Failed { message, .. } => {
                if message.contains("executable file not found")
                    || message.contains("no such file or directory")
                {
                    ErrorKind::CommandNotFound
                } else if message.contains("permission denied") {
                    ErrorKind::CommandNotExecutable
                } else {
                    ErrorKind::Internal
                }
            }
            _ => ErrorKind::Internal,
        }
    }
}

/// The three standard streams of a container's process; `None` inherits the caller's.
#[derive(Debug, Default)]
pub struct Stdio {
    /// Standard input.
    pub stdin: Option<OwnedFd>,
    /// Standard output.
    pub stdout: Option<OwnedFd>,
    /// Standard error.
    pub stderr: Option<OwnedFd>,
}

/// A mount making up the rootfs (an overlay of the image's layers and the rw layer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootfsMountSpec {
    /// File system type (`overlay`).
    pub typ: String,
    /// Source (`overlay`).
    pub source: String,
    /// Options, e.g. `lowerdir=a:b`, `upperdir=u`, `workdir=w`.
    pub options: Vec<String>,
}

/// What to launch.
#[derive(Debug)]
pub struct LaunchRequest<'a> {
    /// Container ID.
    pub id: &'a str,
    /// Bundle directory (`ROOT/containers/<id>`); `config.json` is written there.
    pub bundle: &'a Path,
    /// Where the runtime keeps its state.
    pub state_root: &'a Path,
    /// The OCI spec; `root.path` is the rootfs mount point.
    pub spec: &'a Value,
    /// The rootfs mount point.
    pub rootfs: &'a Path,
    /// Mounts that make up the rootfs.
    pub rootfs_mounts: &'a [RootfsMountSpec],
    /// Standard streams (ignored with a terminal).
    pub stdio: Stdio,
}

/// A launched process.
#[derive(Debug)]
pub struct Launched {
    /// Host PID of the container's first process.
    pub pid: i32,
    /// The pty master when the spec asked for a terminal.
    pub pty_master: Option<OwnedFd>,
}

/// An OCI runtime as the lifecycle uses it.
pub trait OciRuntime {
    /// Creates and starts the container; its first process runs when this returns.
    fn launch(&self, req: LaunchRequest<'_>) -> Result<Launched, RuntimeError>;
    /// Releases what the container held after its process ended (cgroup, state, mounts).
    fn cleanup(&self, id: &str, state_root: &Path, rootfs: &Path) -> Result<(), RuntimeError>;
    /// Starts one more process in the running container; returns its PID (a child of the
    /// caller) and the pty master when `process.terminal` is set.
    fn exec(
        &self,
        id: &str,
        state_root: &Path,
        bundle: &Path,
        process: &Value,
        stdio: Stdio,
    ) -> Result<Launched, RuntimeError>;
}

/// Picks the runtime a container asked for: `""` is berth's own.
pub fn for_name(name: &str) -> Box<dyn OciRuntime> {
    match name {
        "" | "berth" => Box::new(super::launch::BerthRuntime),
        other => Box::new(CliRuntime {
            binary: other.to_string(),
        }),
    }
}

/// Mounts the rootfs on the host (for runtimes that expect a ready rootfs).
pub fn mount_rootfs_on_host(rootfs: &Path, mounts: &[RootfsMountSpec]) -> Result<(), RuntimeError> {
    for m in mounts {
        let data = m.options.join(",");
        nix::mount::mount(
            Some(m.source.as_str()),
            rootfs,
            Some(m.typ.as_str()),
            nix::mount::MsFlags::empty(),
            Some(data.as_str()),
        )
        .map_err(|source| RuntimeError::Mount {
            op: "mounting the rootfs at",
            path: rootfs.to_path_buf(),
            source,
        })?;
    }
    Ok(())
}

/// Unmounts a host-mounted rootfs (absent mounts are fine).
pub fn unmount_rootfs_on_host(rootfs: &Path) -> Result<(), RuntimeError> {
    loop {
        match nix::mount::umount2(rootfs, nix::mount::MntFlags::MNT_DETACH) {
            Ok(()) => continue,
            Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => return Ok(()),
            Err(source) => {
                return Err(RuntimeError::Mount {
                    op: "unmounting the rootfs at",
                    path: rootfs.to_path_buf(),
                    source,
                })
            }
        }
    }
}

/// A runc-compatible runtime driven through its command line.
#[derive(Debug, Clone)]
pub struct CliRuntime {
    /// `runc`, `crun` or a path.
    pub binary: String,
}

impl CliRuntime {
    fn cmd(&self, state_root: &Path) -> Command {
        let mut c = Command::new(&self.binary);
        c.arg("--root").arg(state_root.join(self.state_dir_name()));
        c
    }

    fn state_dir_name(&self) -> String {
        Path::new(&self.binary)
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_else(|| "oci".into())
    }

    fn run_quiet(&self, mut c: Command, op: &'static str) -> Result<(), RuntimeError> {
        let out = c
            .stdin(StdStdio::null())
            .stdout(StdStdio::null())
            .stderr(StdStdio::piped())
            .output()
            .map_err(|source| RuntimeError::Spawn {
                runtime: self.binary.clone(),
                source,
            })?;
        if !out.status.success() {
            return Err(RuntimeError::Failed {
                runtime: self.binary.clone(),
                op,
                message: last_line(&String::from_utf8_lossy(&out.stderr)),
            });
        }
        Ok(())
    }

    fn log_error(&self, log: &Path) -> Option<String> {
        let text = fs::read_to_string(log).ok()?;
        text.lines().rev().find_map(|l| {
            let v: Value = serde_json::from_str(l).ok()?;
            (v["level"] == "error").then(|| v["msg"].as_str().unwrap_or("").to_string())
        })
    }
}

fn last_line(s: &str) -> String {
    s.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .to_string()
}

fn stdio_of(fd: Option<OwnedFd>) -> StdStdio {
    match fd {
        Some(fd) => StdStdio::from(fd),
        None => StdStdio::inherit(),
    }
}

impl OciRuntime for CliRuntime {
    fn launch(&self, req: LaunchRequest<'_>) -> Result<Launched, RuntimeError> {
        let io = |op| {
            let p = req.bundle.join("config.json");
            move |source| RuntimeError::Io {
                op,
                path: p,
                source,
            }
        };
        if req.spec["process"]["terminal"] == true {
            return Err(RuntimeError::Failed {
                runtime: self.binary.clone(),
                op: "create",
                message: "-t is not supported with an external runtime".into(),
            });
        }
        mount_rootfs_on_host(req.rootfs, req.rootfs_mounts)?;
        let result = (|| {
            let text = serde_json::to_vec(req.spec).expect("a JSON value serializes");
            fs::write(req.bundle.join("config.json"), text).map_err(io("writing"))?;
            let pid_file = req.bundle.join("runtime.pid");
            let log = req.bundle.join("runtime.log");
            let _ = fs::remove_file(&pid_file);
            let _ = fs::remove_file(&log);
            let mut c = self.cmd(req.state_root);
            c.arg("--log")
                .arg(&log)
                .arg("--log-format")
                .arg("json")
                .arg("create")
                .arg("--bundle")
                .arg(req.bundle)
                .arg("--pid-file")
                .arg(&pid_file)
                .arg(req.id)
                .stdin(stdio_of(req.stdio.stdin))
                .stdout(stdio_of(req.stdio.stdout))
                .stderr(stdio_of(req.stdio.stderr));
            let status = c.status().map_err(|source| RuntimeError::Spawn {
                runtime: self.binary.clone(),
                source,
            })?;
            if !status.success() {
                let message = self
                    .log_error(&log)
                    .unwrap_or_else(|| format!("exit status {status}"));
                let _ = self.run_quiet(
                    {
                        let mut d = self.cmd(req.state_root);
                        d.args(["delete", "-f", req.id]);
                        d
                    },
                    "delete",
                );
                return Err(RuntimeError::Failed {
                    runtime: self.binary.clone(),
                    op: "create",
                    message,
                });
            }
            let pid: i32 = fs::read_to_string(&pid_file)
                .map_err(|source| RuntimeError::Io {
                    op: "reading",
                    path: pid_file.clone(),
                    source,
                })?
                .trim()
                .parse()
                .unwrap_or(0);
            let mut s = self.cmd(req.state_root);
            s.args(["start", req.id]);
            self.run_quiet(s, "start")?;
            Ok(Launched {
                pid,
                pty_master: None,
            })
        })();
        if result.is_err() {
            let _ = unmount_rootfs_on_host(req.rootfs);
        }
        result
    }

    fn cleanup(&self, id: &str, state_root: &Path, rootfs: &Path) -> Result<(), RuntimeError> {
        let mut d = self.cmd(state_root);
        d.args(["delete", "-f", id]);
        let r1 = self.run_quiet(d, "delete");
        let r2 = unmount_rootfs_on_host(rootfs);
        match (r1, r2) {
            (Err(e), _)
                if !e.to_string().contains("does not exist")
                    && !e.to_string().contains("not exist") =>
            {
                Err(e)
            }
            (_, Err(e)) => Err(e),
            _ => Ok(()),
        }
    }

    fn exec(
        &self,
        id: &str,
        state_root: &Path,
        bundle: &Path,
        process: &Value,
        stdio: Stdio,
    ) -> Result<Launched, RuntimeError> {
        let file = bundle.join(format!("exec-{}.json", std::process::id()));
        fs::write(
            &file,
            serde_json::to_vec(process).expect("a JSON value serializes"),
        )
        .map_err(|source| RuntimeError::Io {
            op: "writing",
            path: file.clone(),
            source,
        })?;
        let mut c = self.cmd(state_root);
        c.arg("exec").arg("--process").arg(&file).arg(id);
        c.stdin(stdio_of(stdio.stdin))
            .stdout(stdio_of(stdio.stdout))
            .stderr(stdio_of(stdio.stderr));
        let child = c.spawn().map_err(|source| RuntimeError::Spawn {
            runtime: self.binary.clone(),
            source,
        })?;
        Ok(Launched {
            pid: child.id() as i32,
            pty_master: None,
        })
    }
}
