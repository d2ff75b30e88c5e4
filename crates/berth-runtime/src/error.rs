//! The crate's error type: every failure names the container, path or step concerned.

use std::io;
use std::path::PathBuf;

use crate::cgroups::CgroupError;
use crate::seccomp::SeccompError;

/// What kind of failure an [`Error`] is, for callers that map errors to exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The container, file or namespace does not exist.
    NotFound,
    /// A container with this ID exists already.
    AlreadyExists,
    /// The spec or an argument is invalid.
    InvalidArgument,
    /// The operation is not legal in the container's current status.
    Conflict,
    /// The container's command was not found (Docker: exit 127).
    CommandNotFound,
    /// The container's command exists but cannot be executed (Docker: exit 126).
    CommandNotExecutable,
    /// The kernel refused or failed an operation.
    System,
}

/// Errors of the runtime.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The spec is missing a field or holds a bad value.
    #[error("invalid runtime spec: {what}")]
    InvalidSpec {
        /// What is wrong.
        what: String,
    },
    /// A container ID that is empty or not made of `[A-Za-z0-9_.-]`.
    #[error("invalid container id {id:?}: use letters, digits, '_', '.' and '-'")]
    InvalidId {
        /// The ID given.
        id: String,
    },
    /// No container with this ID.
    #[error("container {id} does not exist")]
    NotFound {
        /// The container ID.
        id: String,
    },
    /// A container with this ID exists already.
    #[error("container {id} already exists")]
    AlreadyExists {
        /// The container ID.
        id: String,
    },
    /// The container's status does not allow the operation.
    #[error("container {id} is {status}: cannot {op}")]
    BadStatus {
        /// The container ID.
        id: String,
        /// Its current status.
        status: String,
        /// The operation refused.
        op: &'static str,
    },
    /// Setting up the container process failed at `step`.
    #[error("container init: {step}: {source}")]
    Init {
        /// The step that failed, e.g. `mount proc on /proc`.
        step: String,
        /// The OS error.
        source: io::Error,
    },
    /// The container's command does not exist in the container.
    #[error("exec: {path:?}: executable file not found in $PATH")]
    CommandNotFound {
        /// The command as given.
        path: String,
    },
    /// The container's command cannot be executed.
    #[error("exec: {path:?}: permission denied")]
    CommandNotExecutable {
        /// The command as given.
        path: String,
    },
    /// A file operation on the host failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was done.
        op: &'static str,
        /// To which path.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A syscall on the host failed.
    #[error("{op}: {source}")]
    Sys {
        /// What was done.
        op: String,
        /// The OS error.
        source: io::Error,
    },
    /// A state file could not be parsed.
    #[error("bad state file {path}: {source}")]
    State {
        /// The state file.
        path: PathBuf,
        /// The parse error.
        source: serde_json::Error,
    },
    /// A cgroup operation failed.
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    /// Compiling or loading the seccomp filter failed.
    #[error(transparent)]
    Seccomp(#[from] SeccompError),
    /// An OCI hook failed (`prestart`, `createRuntime`, ...).
    #[error("{kind} hook #{index} ({path}): {failure}")]
    Hook {
        /// The hook's kind, as the spec names it (`createRuntime`, ...).
        kind: &'static str,
        /// Its position in the list of that kind.
        index: usize,
        /// The hook's executable.
        path: PathBuf,
        /// What went wrong.
        failure: HookFailure,
    },
    /// The spec asks for a feature this host (or berth) cannot provide; refused, never
    /// ignored.
    #[error("unsupported: {what}")]
    Unsupported {
        /// The feature and why.
        what: String,
    },
}

/// How an OCI hook failed.
#[derive(Debug, thiserror::Error)]
pub enum HookFailure {
    /// It could not be started (or its namespaces not joined).
    #[error("{0}")]
    Spawn(#[source] io::Error),
    /// It exited with a non-zero status.
    #[error("exited with status {code}{}", output_suffix(.output))]
    Exited {
        /// The exit status.
        code: i32,
        /// The end of what it wrote to stdout and stderr.
        output: String,
    },
    /// A signal killed it.
    #[error("killed by signal {signal}{}", output_suffix(.output))]
    Signaled {
        /// The signal number.
        signal: i32,
        /// The end of what it wrote to stdout and stderr.
        output: String,
    },
    /// It ran longer than its `timeout` and was killed.
    #[error("timed out after {seconds} s")]
    TimedOut {
        /// The hook's timeout.
        seconds: i64,
    },
}

fn output_suffix(output: &str) -> String {
    let trimmed = output.trim();
    if trimmed.is_empty() {
        String::new()
    } else {
        format!(": {trimmed}")
    }
}

impl Error {
    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidSpec { .. } | Error::InvalidId { .. } => ErrorKind::InvalidArgument,
            Error::NotFound { .. } => ErrorKind::NotFound,
            Error::AlreadyExists { .. } => ErrorKind::AlreadyExists,
            Error::BadStatus { .. } => ErrorKind::Conflict,
            Error::CommandNotFound { .. } => ErrorKind::CommandNotFound,
            Error::CommandNotExecutable { .. } => ErrorKind::CommandNotExecutable,
            Error::Io { source, .. } if source.kind() == io::ErrorKind::NotFound => {
                ErrorKind::NotFound
            }
            Error::State { .. } => ErrorKind::InvalidArgument,
            Error::Cgroup(e) => e.kind(),
            Error::Seccomp(e) => e.kind(),
            Error::Unsupported { .. } => ErrorKind::InvalidArgument,
            Error::Init { .. } | Error::Io { .. } | Error::Sys { .. } | Error::Hook { .. } => {
                ErrorKind::System
            }
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Error {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn sys(op: impl Into<String>, source: impl Into<io::Error>) -> Error {
        Error::Sys {
            op: op.into(),
            source: source.into(),
        }
    }

    pub(crate) fn spec(what: impl Into<String>) -> Error {
        Error::InvalidSpec { what: what.into() }
    }

    pub(crate) fn unsupported(what: impl Into<String>) -> Error {
        Error::Unsupported { what: what.into() }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
