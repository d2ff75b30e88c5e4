//! The errors of the network use cases and their kinds.

use std::net::Ipv4Addr;

use berth_store::networks::NetworkStoreError;

use crate::ErrorKind;

/// Errors of network use cases.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// berth-net failed (netlink, namespaces, ports, files) or refused input.
    #[error(transparent)]
    Net(#[from] berth_net::Error),
    /// The network tables failed or refused.
    #[error(transparent)]
    Store(#[from] NetworkStoreError),
    /// The container tables failed or refused.
    #[error(transparent)]
    Container(#[from] berth_store::containers::ContainerStoreError),
    /// `bridge`, `host` and `none` cannot be removed or re-created.
    #[error("{name} is a pre-defined network and cannot be {action}")]
    Predefined {
        /// The network.
        name: String,
        /// `removed`, `created`.
        action: &'static str,
    },
    /// Only the bridge driver can be created.
    #[error("plugin \"{0}\" not found")]
    UnknownDriver(String),
    /// A subnet or gateway that does not fit.
    #[error("invalid network config: {0}")]
    InvalidConfig(String),
    /// Two networks may not share addresses.
    #[error("invalid pool request: Pool overlaps with other one on this address space")]
    Overlap,
    /// `--network host|none` containers cannot join other networks.
    #[error("container cannot be disconnected from host network or connected to host network")]
    HostOrNone,
    /// The container is on that network already.
    #[error("endpoint with name {container} already exists in network {network}")]
    AlreadyConnected {
        /// Container name.
        container: String,
        /// Network name.
        network: String,
    },
    /// The container is not on that network.
    #[error("container {container} is not connected to network {network}")]
    NotConnected {
        /// Container name.
        container: String,
        /// Network name.
        network: String,
    },
    /// `--ip` outside the network's subnet (or its network or broadcast address).
    #[error("Invalid address {address}: It does not belong to any of this network's subnets ({network}: {subnet})")]
    AddressOutside {
        /// The address asked for.
        address: Ipv4Addr,
        /// Network name.
        network: String,
        /// Its subnet.
        subnet: String,
    },
    /// `--ip` that another container (or the gateway) holds.
    #[error("Address already in use: {address} on network {network}")]
    AddressInUse {
        /// The address asked for.
        address: Ipv4Addr,
        /// Network name.
        network: String,
    },
    /// Every address of the network's subnet is taken (Docker's words).
    #[error("no available IPv4 addresses on this network's address pools: {network} ({id})")]
    NoFreeAddress {
        /// Network name.
        network: String,
        /// Network ID.
        id: String,
    },
    /// A malformed stored row (should not happen).
    #[error("stored network {0} is damaged: {1}")]
    Damaged(String, String),
}

impl NetworkError {
    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        use berth_net::ErrorKind as N;
        match self {
            NetworkError::Net(e) => match e.kind() {
                N::InvalidArgument => ErrorKind::InvalidArgument,
                N::NotFound => ErrorKind::NotFound,
                N::AlreadyExists => ErrorKind::AlreadyExists,
                N::Conflict => ErrorKind::Conflict,
                N::System => ErrorKind::Internal,
            },
            NetworkError::Store(e) => map_store_kind(e.kind()),
            NetworkError::Container(e) => map_store_kind(e.kind()),
            NetworkError::Predefined { .. } | NetworkError::HostOrNone => ErrorKind::Conflict,
            NetworkError::UnknownDriver(_) => ErrorKind::NotFound,
            NetworkError::InvalidConfig(_) => ErrorKind::InvalidArgument,
            NetworkError::Overlap => ErrorKind::Conflict,
            NetworkError::AlreadyConnected { .. } => ErrorKind::AlreadyExists,
            NetworkError::NotConnected { .. } => ErrorKind::NotFound,
            NetworkError::AddressOutside { .. } => ErrorKind::InvalidArgument,
            NetworkError::AddressInUse { .. } | NetworkError::NoFreeAddress { .. } => {
                ErrorKind::Conflict
            }
            NetworkError::Damaged(..) => ErrorKind::Internal,
        }
    }
}

pub(super) fn map_store_kind(k: berth_store::ErrorKind) -> ErrorKind {
    use berth_store::ErrorKind as S;
    match k {
        S::NotFound => ErrorKind::NotFound,
        S::AlreadyExists => ErrorKind::AlreadyExists,
        S::InvalidArgument | S::DataLoss => ErrorKind::InvalidArgument,
        S::Conflict => ErrorKind::Conflict,
        S::Internal => ErrorKind::Internal,
    }
}

pub(super) type Result<T, E = NetworkError> = std::result::Result<T, E>;
