//! What the network use cases take and give: a container's [`NetworkRequest`] and its
//! [`ContainerNetwork`], the files to bind-mount, `network create`'s options and `network ls`'s rows.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use berth_net::port::BoundPort;
use serde::Serialize;

/// What a container asks of the network, from its flags and image.
#[derive(Debug, Clone, Default)]
pub struct NetworkRequest {
    /// Full container ID.
    pub container_id: String,
    /// Container name (resolvable by peers on user-defined networks).
    pub container_name: String,
    /// `--network`: `bridge` (default when empty), `none`, `host`, or a network name or ID.
    pub mode: String,
    /// The container's hostname (`--hostname`, else Docker's 12-digit short ID).
    pub hostname: String,
    /// `--network-alias`.
    pub aliases: Vec<String>,
    /// `--ip`: the address on the `mode` network (a user-defined one); `None`: any free one.
    pub ip: Option<Ipv4Addr>,
    /// `--mac-address`: the MAC of the interface on the `mode` network.
    pub mac: Option<[u8; 6]>,
    /// `--add-host name:ip`.
    pub add_hosts: Vec<String>,
    /// `--dns`.
    pub dns: Vec<String>,
    /// `--dns-search`.
    pub dns_search: Vec<String>,
    /// `-p` values.
    pub publish: Vec<String>,
    /// `-P`: publish every exposed port on a free host port.
    pub publish_all: bool,
    /// The image's and `--expose`'s ports (`80/tcp`).
    pub exposed: Vec<String>,
}

/// Files to bind-mount into the container (read-write, as Docker).
#[derive(Debug, Clone)]
pub struct EtcFiles {
    /// Goes to `/etc/hosts`.
    pub hosts: PathBuf,
    /// Goes to `/etc/hostname`.
    pub hostname: PathBuf,
    /// Goes to `/etc/resolv.conf`.
    pub resolv_conf: PathBuf,
}

impl EtcFiles {
    /// `(host file, container path)` pairs for the spec's bind mounts.
    pub fn mounts(&self) -> Vec<(PathBuf, String)> {
        vec![
            (self.hosts.clone(), "/etc/hosts".into()),
            (self.hostname.clone(), "/etc/hostname".into()),
            (self.resolv_conf.clone(), "/etc/resolv.conf".into()),
        ]
    }
}

/// A container's network as set up, for the spec and the monitor.
#[derive(Debug)]
pub struct ContainerNetwork {
    /// The namespace to join (a path for the spec's `network` namespace); `None` for
    /// `--network host` (no network namespace entry in the spec).
    pub netns: Option<PathBuf>,
    /// The files to bind-mount.
    pub etc: EtcFiles,
    /// Bound host sockets for the published ports: hand them to the monitor's forwarder.
    pub ports: Vec<BoundPort>,
    /// The container's addresses, one per network (`network name -> address`).
    pub addresses: BTreeMap<String, Ipv4Addr>,
    /// The address on the `--network` network (the forwarder's target), if any.
    pub primary: Option<Ipv4Addr>,
}

/// One row of `network ls`.
#[derive(Debug, Clone, Serialize)]
pub struct NetworkSummary {
    /// Full ID.
    pub id: String,
    /// Name.
    pub name: String,
    /// Driver.
    pub driver: String,
    /// Always `local`.
    pub scope: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Made with `--ipv6`.
    pub ipv6: bool,
    /// Made with `--internal`.
    pub internal: bool,
    /// Creation time, unix nanoseconds.
    pub created: i64,
}

/// `network create` options.
#[derive(Debug, Clone, Default)]
pub struct NetworkCreate {
    /// Name.
    pub name: String,
    /// `-d/--driver` (only `bridge`).
    pub driver: Option<String>,
    /// `--subnet`.
    pub subnet: Option<String>,
    /// `--gateway`.
    pub gateway: Option<String>,
    /// `--ipv6`: give containers IPv6 addresses too.
    pub ipv6: bool,
    /// An IPv6 `--subnet` (with `--ipv6`; without one a random ULA /64 is taken).
    pub subnet6: Option<String>,
    /// `--internal`.
    pub internal: bool,
    /// `--label k=v`.
    pub labels: BTreeMap<String, String>,
}
