//! The one error type of berth-net.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

/// What kind of failure an [`Error`] is, so callers can map it (exit codes, HTTP codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Input the user gave is not valid.
    InvalidArgument,
    /// Something named does not exist.
    NotFound,
    /// Something with that name or address exists already.
    AlreadyExists,
    /// A resource is taken (a host port, every address of a subnet).
    Conflict,
    /// The kernel refused or failed an operation.
    System,
}

/// Errors of berth-net; each names the thing concerned.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A `-p/--publish` value that does not parse.
    #[error("invalid publish spec {spec:?}: {reason}")]
    InvalidPublish {
        /// The value as given.
        spec: String,
        /// What was expected.
        reason: &'static str,
    },
    /// A value in berth.toml or a network option that does not parse.
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidValue {
        /// Which setting.
        what: &'static str,
        /// The value as given.
        value: String,
        /// What was expected.
        reason: String,
    },
    /// A host port that another process (or container) holds already.
    #[error("failed to bind host port {addr}/{proto}: address already in use")]
    PortInUse {
        /// The address and port asked for.
        addr: SocketAddr,
        /// `tcp` or `udp`.
        proto: &'static str,
    },
    /// Binding a listener failed for another reason.
    #[error("failed to bind host port {addr}/{proto}: {source}")]
    Bind {
        /// The address and port asked for.
        addr: SocketAddr,
        /// `tcp` or `udp`.
        proto: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// Every address of a subnet is in use.
    #[error("no free address left in subnet {subnet}")]
    SubnetExhausted {
        /// The subnet.
        subnet: String,
    },
    /// A netlink request failed.
    #[error("netlink {op} {target}: {source}")]
    Netlink {
        /// What was asked (e.g. `create veth`).
        op: &'static str,
        /// The interface or address concerned.
        target: String,
        /// The kernel's answer.
        source: io::Error,
    },
    /// A link that should exist does not.
    #[error("network interface {name} not found")]
    LinkNotFound {
        /// The interface name.
        name: String,
    },
    /// A network namespace operation failed.
    #[error("network namespace {path}: {op}: {source}")]
    Netns {
        /// The namespace file.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// A file (hosts, resolv.conf, sysctl, berth.toml) could not be read or written.
    #[error("{op} {path}: {source}")]
    File {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Another OS call failed.
    #[error("{op}: {source}")]
    Os {
        /// What was being done.
        op: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// `nft` refused a script (or the kernel has no nf_tables).
    #[error("nftables: {detail} (berth's outbound NAT and network isolation; `nftables = false` under [network] in berth.toml turns them off, see docs/config.md)")]
    Nft {
        /// nft's first error line.
        detail: String,
    },
    /// Several failures during a teardown that kept going.
    #[error("{} errors during network teardown; first: {}", .0.len(), .0[0])]
    Teardown(Vec<Error>),
}

impl Error {
    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidPublish { .. } | Error::InvalidValue { .. } => ErrorKind::InvalidArgument,
            Error::PortInUse { .. } | Error::SubnetExhausted { .. } => ErrorKind::Conflict,
            Error::LinkNotFound { .. } => ErrorKind::NotFound,
            Error::Netlink { source, .. } if source.raw_os_error() == Some(libc::EEXIST) => {
                ErrorKind::AlreadyExists
            }
            Error::Teardown(errs) => errs[0].kind(),
            Error::Bind { .. }
            | Error::Netlink { .. }
            | Error::Netns { .. }
            | Error::File { .. }
            | Error::Os { .. }
            | Error::Nft { .. } => ErrorKind::System,
        }
    }

    pub(crate) fn os(op: &'static str, errno: nix::errno::Errno) -> Self {
        Error::Os {
            op,
            source: io::Error::from_raw_os_error(errno as i32),
        }
    }

    pub(crate) fn file(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::File {
            op,
            path: path.into(),
            source,
        }
    }
}

/// berth-net's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Collects errors during teardown, keeping going after each.
#[derive(Debug, Default)]
pub struct TeardownErrors(Vec<Error>);

impl TeardownErrors {
    /// Records the error of one teardown step, if any.
    pub fn note<T>(&mut self, r: Result<T>) {
        if let Err(e) = r {
            log::warn!("network teardown: {e}");
            self.0.push(e);
        }
    }

    /// Ok when every step went well.
    pub fn finish(self) -> Result<()> {
        if self.0.is_empty() {
            Ok(())
        } else if self.0.len() == 1 {
            Err(self.0.into_iter().next().expect("one error"))
        } else {
            Err(Error::Teardown(self.0))
        }
    }
}
