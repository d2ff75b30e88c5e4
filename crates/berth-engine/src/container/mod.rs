//! The container lifecycle: create, start, stop, kill, remove, list, inspect, logs, wait,
//! exec, top, stats, prune, and the per-container monitor.
//!
//! [`Lifecycle`] is opened on the store's root; each verb lives in its own file and opens
//! with the status check that decides whether it may proceed ([`ContainerStatus::can_become`]).
//! A container's process is started by whoever will wait for it: the CLI for a foreground
//! `run`, the monitor ([`monitor`]) otherwise; both record the exit in the store.
//!
//! berth has no daemon, so a watcher's death is noticed by the next command
//! ([`Lifecycle::find`], [`Lifecycle::all`]): a foreground `run` is recorded as the watcher
//! from the container's creation, and when it died the next command undoes a half-made
//! start, marks a running container exited, and removes a `--rm` one. While the process
//! still runs, a `--rm` container has a guard ([`monitor::RmGuard`]) that adopts it when its
//! CLI dies and removes it at its end, as Docker's daemon does. A remover records itself
//! likewise: a removal whose remover died is finished by the next `rm` or `prune`.

pub mod command;
pub mod commit;
pub mod copy;
pub mod create;
pub mod diff;
pub mod exec;
pub mod export;
pub mod health;
pub mod init;
pub mod inspect;
pub mod isolation;
pub mod launch;
pub mod layered;
pub mod list;
pub mod logs;
pub mod model;
pub mod monitor;
pub mod names;
pub mod options;
pub mod pause;
pub mod procfs;
pub mod remove;
pub mod rename;
pub mod request;
pub mod runtime;
pub mod signals;
pub mod start;
pub mod status;
pub mod stop;
pub mod top;
pub mod tty;
pub mod update;
pub mod user;

use std::path::{Path, PathBuf};

use berth_store::containers::{ContainerRecord, ContainerStoreError};
use berth_store::Store;

pub use model::{Config, ContainerSpec, HostConfig};
pub use options::OptionError;
pub use request::CreateRequest;
pub use status::ContainerStatus;

/// What kind of failure a [`ContainerError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The container or image does not exist.
    NotFound,
    /// Bad input.
    InvalidArgument,
    /// The state forbids it (name in use, running container, ambiguous prefix).
    Conflict,
    /// The container's command does not exist (exit 127).
    CommandNotFound,
    /// The container's command cannot be executed (exit 126).
    CommandNotExecutable,
    /// The system, the store or the runtime failed.
    Internal,
}

/// Errors of the container lifecycle.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    /// A flag value is invalid.
    #[error(transparent)]
    Option(#[from] OptionError),
    /// The store's container table failed or found nothing.
    #[error(transparent)]
    Table(#[from] ContainerStoreError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] berth_store::Error),
    /// An isolation setting cannot be applied now (a `container:NAME` mode whose
    /// container is not running, a device gone since create).
    #[error("{0}")]
    Isolation(String),
    /// The image is not in the store.
    #[error("Unable to find image '{0}' locally")]
    ImageNotFound(String),
    /// The image reference does not parse.
    #[error("invalid reference format: {0}")]
    BadReference(String),
    /// The image's configuration blob cannot be read.
    #[error("image {image}: bad configuration: {detail}")]
    ImageConfig {
        /// The image ID.
        image: String,
        /// What is wrong.
        detail: String,
    },
    /// `--user` cannot be resolved.
    #[error(transparent)]
    User(#[from] user::UserError),
    /// The command to run is missing.
    #[error("exec: {0:?}: executable file not found in $PATH")]
    CommandNotFound(String),
    /// The command exists but is not executable.
    #[error("exec: {0:?}: permission denied")]
    CommandNotExecutable(String),
    /// No command at all (no CMD, no ENTRYPOINT, no arguments).
    #[error("no command specified")]
    NoCommand,
    /// The status forbids the operation.
    #[error("{0}")]
    BadStatus(String),
    /// The runtime spec cannot be built.
    #[error(transparent)]
    Spec(#[from] crate::spec::SpecError),
    /// The container's network cannot be set up (a published port in use, ...).
    #[error(transparent)]
    Network(#[from] crate::network::NetworkError),
    /// The OCI runtime failed.
    #[error(transparent)]
    Runtime(#[from] runtime::RuntimeError),
    /// A volume cannot be created, claimed, filled or mounted.
    #[error(transparent)]
    Volume(#[from] crate::volume::VolumeError),
    /// A file operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path concerned.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A system call failed.
    #[error("{op}: {source}")]
    Sys {
        /// What was being done.
        op: &'static str,
        /// The errno.
        source: nix::Error,
    },
    /// The monitor did not report a start.
    #[error("container {id}: the monitor failed to start it: {detail}")]
    Monitor {
        /// Container ID.
        id: String,
        /// What the monitor said.
        detail: String,
    },
    /// A failure reported by a monitor process, with the exit status it stands for.
    #[error("{message}")]
    Reported {
        /// 125, 126 or 127.
        code: i32,
        /// The monitor's message.
        message: String,
    },
    /// `exec` could not start its process in the container (Docker: exit 126, or 127 when
    /// the command does not exist).
    #[error("OCI runtime exec failed: exec failed: unable to start container process: {detail}")]
    ExecFailed {
        /// What failed, in runc's words (`chdir to cwd ("/x") set in config.json failed: ...`).
        detail: String,
        /// 126 or 127.
        code: i32,
    },
    /// Several errors during a teardown that went on regardless.
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Many(Vec<ContainerError>),
}

impl ContainerError {
    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        use berth_store::ErrorKind as S;
        match self {
            ContainerError::Option(_)
            | ContainerError::BadReference(_)
            | ContainerError::User(_)
            | ContainerError::Isolation(_) => ErrorKind::InvalidArgument,
            ContainerError::Table(e) => match e.kind() {
                S::NotFound => ErrorKind::NotFound,
                S::Conflict | S::AlreadyExists => ErrorKind::Conflict,
                _ => ErrorKind::Internal,
            },
            ContainerError::Store(e) => match e.kind() {
                S::NotFound => ErrorKind::NotFound,
                S::Conflict | S::AlreadyExists => ErrorKind::Conflict,
                S::InvalidArgument => ErrorKind::InvalidArgument,
                _ => ErrorKind::Internal,
            },
            ContainerError::ImageNotFound(_) => ErrorKind::NotFound,
            ContainerError::CommandNotFound(_) => ErrorKind::CommandNotFound,
            ContainerError::CommandNotExecutable(_) => ErrorKind::CommandNotExecutable,
            ContainerError::NoCommand => ErrorKind::InvalidArgument,
            ContainerError::BadStatus(_) => ErrorKind::Conflict,
            ContainerError::Spec(e) => match e.kind() {
                crate::spec::SpecErrorKind::InvalidArgument => ErrorKind::InvalidArgument,
                crate::spec::SpecErrorKind::Internal => ErrorKind::Internal,
            },
            ContainerError::Runtime(e) => e.kind(),
            ContainerError::Volume(e) => match e.kind() {
                crate::ErrorKind::NotFound => ErrorKind::NotFound,
                crate::ErrorKind::InvalidArgument => ErrorKind::InvalidArgument,
                crate::ErrorKind::Conflict | crate::ErrorKind::AlreadyExists => ErrorKind::Conflict,
                _ => ErrorKind::Internal,
            },
            ContainerError::Network(e) => match e.kind() {
                crate::ErrorKind::NotFound => ErrorKind::NotFound,
                crate::ErrorKind::InvalidArgument => ErrorKind::InvalidArgument,
                crate::ErrorKind::Conflict | crate::ErrorKind::AlreadyExists => ErrorKind::Conflict,
                _ => ErrorKind::Internal,
            },
            ContainerError::Reported { code, .. } | ContainerError::ExecFailed { code, .. } => {
                match code {
                    127 => ErrorKind::CommandNotFound,
                    126 => ErrorKind::CommandNotExecutable,
                    _ => ErrorKind::Internal,
                }
            }
            ContainerError::Many(v) => v.first().map_or(ErrorKind::Internal, |e| e.kind()),
            ContainerError::ImageConfig { .. }
            | ContainerError::Io { .. }
            | ContainerError::Sys { .. }
            | ContainerError::Monitor { .. } => ErrorKind::Internal,
        }
    }

    /// Docker's exit status for this error: 127, 126 or 125.
    pub fn exit_code(&self) -> i32 {
        match self.kind() {
            ErrorKind::CommandNotFound => 127,
            ErrorKind::CommandNotExecutable => 126,
            _ => 125,
        }
    }

    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| ContainerError::Io { op, path, source }
    }

    pub(crate) fn sys(op: &'static str) -> impl FnOnce(nix::Error) -> Self {
        move |source| ContainerError::Sys { op, source }
    }
}

/// Results of the lifecycle.
pub type Result<T, E = ContainerError> = std::result::Result<T, E>;

/// The container lifecycle on one root.
#[derive(Debug)]
pub struct Lifecycle {
    store: Store,
    root: PathBuf,
    runroot: PathBuf,
}

impl Lifecycle {
    /// Opens the store under `root`; `runroot` holds runtime state.
    pub fn open(root: &Path, runroot: &Path) -> Result<Lifecycle> {
        let store = Store::open(root)?;
        // Monitor sockets, netns files and mount points: closed to other users (0700).
        berth_store::private_dir(runroot)?;
        // RUN steps of builds that were killed: their processes, cgroups and state go.
        crate::build::runner::sweep_dead_steps(runroot);
        Ok(Lifecycle {
            store,
            root: root.to_path_buf(),
            runroot: runroot.to_path_buf(),
        })
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Persistent root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Runtime root.
    pub fn runroot(&self) -> &Path {
        &self.runroot
    }

    /// Makes sure the runtime root is a directory we can use, before anything is created
    /// or attached: a bad `--runroot` is then one error line, with nothing to undo (and no
    /// teardown warning about a network namespace that could never be pinned there).
    pub fn ensure_runroot(&self) -> Result<()> {
        let dir = self.runroot.join("runtime");
        std::fs::create_dir_all(&dir).map_err(ContainerError::io("creating", dir))
    }

    /// `ROOT/containers/<id>`.
    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.root.join("containers").join(id)
    }

    /// The json-file log of a container.
    pub fn log_path(&self, id: &str) -> PathBuf {
        self.container_dir(id).join(format!("{id}-json.log"))
    }

    /// `RUNROOT/containers/<id>`: runtime state of berth's runtime.
    pub fn run_dir(&self, id: &str) -> PathBuf {
        self.runroot.join("containers").join(id)
    }

    /// Finds a container by name, ID or prefix, with its status made current first.
    pub fn find(&self, input: &str) -> Result<Container> {
        let rec = self.store.resolve_container(input)?;
        let rec = self
            .refresh(rec)
            .ok_or_else(|| ContainerStoreError::NotFound(input.to_string()))?;
        Container::from_record(rec)
    }

    /// Every container, newest first, each with its status made current.
    pub fn all(&self) -> Result<Vec<Container>> {
        let recs = self.store.list_containers()?;
        recs.into_iter()
            .filter_map(|r| self.refresh(r))
            .map(Container::from_record)
            .collect()
    }

    /// Removes `rec`, a `--rm` container whose watcher died, when it is one; true if so.
    fn remove_if_auto(&self, rec: &ContainerRecord) -> bool {
        let Ok(c) = Container::from_record(rec.clone()) else {
            return false;
        };
        if !c.spec.host_config.auto_remove {
            return false;
        }
        if let Err(e) = self.remove_orphan(&c) {
            log::warn!(
                "removing the --rm container {} whose watcher died: {e}",
                c.id()
            );
        }
        true
    }

    /// Notices a dead monitor (crash, SIGKILL): a container whose watcher is gone is marked
    /// exited and its leftovers cleaned, so `ps` never shows a stale PID as running; a
    /// `--rm` one is removed (`None`), as its watcher would have done.
    fn refresh(&self, rec: ContainerRecord) -> Option<ContainerRecord> {
        let st = ContainerStatus::parse(&rec.status).unwrap_or(ContainerStatus::Dead);
        if st == ContainerStatus::Created
            && rec.monitor_pid != 0
            && !procfs::is_alive(rec.monitor_pid, rec.monitor_start)
        {
            // A foreground `run` that died before its start was recorded: what the start
            // made (runtime state, cgroup, network) goes; a `--rm` container goes whole.
            if self.remove_if_auto(&rec) {
                return None;
            }
            let _ = launch::cleanup_after_exit(self, &rec.id, None);
            let update = berth_store::containers::ContainerUpdate {
                monitor: Some((0, 0)),
                only_if_status: vec!["created".into()],
                ..Default::default()
            };
            let _ = self.store.update_container(&rec.id, &update);
            return Some(self.store.container(&rec.id).unwrap_or(rec));
        }
        if !st.is_active() {
            return Some(rec);
        }
        let monitor_ok = procfs::is_alive(rec.monitor_pid, rec.monitor_start);
        if monitor_ok {
            return Some(rec);
        }
        // The watcher is gone: the process has nobody to reap it or record its end.
        if procfs::is_alive(rec.pid, rec.pid_start) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(rec.pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = launch::cleanup_after_exit(self, &rec.id, None);
        let update = berth_store::containers::ContainerUpdate {
            status: Some("exited".into()),
            pid: Some((0, 0)),
            monitor: Some((0, 0)),
            exit_code: Some(if rec.exit_code != 0 {
                rec.exit_code
            } else {
                137
            }),
            finished_at: Some(now_nanos()),
            only_if_status: ContainerStatus::sources_of(ContainerStatus::Exited),
            ..Default::default()
        };
        let _ = self.store.update_container(&rec.id, &update);
        if self.remove_if_auto(&rec) {
            return None;
        }
        Some(self.store.container(&rec.id).unwrap_or(rec))
    }
}

/// A container: its stored row and its decoded configuration.
#[derive(Debug, Clone)]
pub struct Container {
    /// The row.
    pub record: ContainerRecord,
    /// The configuration.
    pub spec: ContainerSpec,
    /// The status, decoded.
    pub status: ContainerStatus,
}

impl Container {
    fn from_record(record: ContainerRecord) -> Result<Container> {
        let spec: ContainerSpec =
            serde_json::from_str(&record.config).map_err(|e| ContainerError::ImageConfig {
                image: record.id.clone(),
                detail: format!("stored container configuration: {e}"),
            })?;
        let status = ContainerStatus::parse(&record.status).unwrap_or(ContainerStatus::Dead);
        Ok(Container {
            record,
            spec,
            status,
        })
    }

    /// The full ID.
    pub fn id(&self) -> &str {
        &self.record.id
    }

    /// The name, without `/`.
    pub fn name(&self) -> &str {
        &self.record.name
    }
}

/// Now, in unix nanoseconds.
pub fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// RFC 3339 with nanoseconds, as Docker prints times; `0001-01-01T00:00:00Z` for zero.
pub fn rfc3339(nanos: i64) -> String {
    if nanos <= 0 {
        return "0001-01-01T00:00:00Z".into();
    }
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(nanos as i128)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let base = t
        .format(&time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second]"
        ))
        .unwrap_or_default();
    format!("{base}.{:09}Z", t.nanosecond())
}
