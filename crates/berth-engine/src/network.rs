//! Networks: the `network` verbs and a container's networking for `run`/`start`/`stop`/`rm`.
//!
//! For the container lifecycle the calls are, in order:
//! 1. before the container starts: [`Networks::network_setup`] with a [`NetworkRequest`]; it
//!    returns a [`ContainerNetwork`]: the namespace path for the OCI spec (`None` means the
//!    host's namespace), the hosts/hostname/resolv.conf files to bind-mount, and the bound
//!    host sockets of published ports (a port in use fails here, before anything starts,
//!    and nothing is left behind);
//! 2. the monitor runs `berth_net::forward::PortForwarder::start(ports, &netns)` and keeps it
//!    until the container ends;
//! 3. on stop, or when a dead monitor is noticed: [`Networks::network_teardown`]`(id, false)`
//!    (interfaces, namespace and port rows go; the address stays the container's, but its
//!    name leaves its peers' hosts files until it starts again);
//!    on rm: [`Networks::network_teardown`]`(id, true)` (its addresses are freed too).

/// berth's network crate, for callers (tests, tools) that need its helpers directly.
pub use berth_net;

use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use berth_net::config::{self as netconfig, NetConfig};
use berth_net::endpoint;
use berth_net::etc::{self, FileLock, HostEntry};
use berth_net::nft::{self, Firewall, NftFirewall};
use berth_net::ops::{BridgeSpec, EndpointSpec, Ipv6Interface, LinuxNetOps, NetOps};
use berth_net::port::{self, BoundPort, PortRequest, Proto, PublishedPort};
use berth_store::networks::{EndpointRecord, NetworkRecord, NetworkStoreError, PortRecord};
use ipnet::{Ipv4Net, Ipv6Net};
use serde::Serialize;

use crate::{Engine, ErrorKind};

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

fn map_store_kind(k: berth_store::ErrorKind) -> ErrorKind {
    use berth_store::ErrorKind as S;
    match k {
        S::NotFound => ErrorKind::NotFound,
        S::AlreadyExists => ErrorKind::AlreadyExists,
        S::InvalidArgument | S::DataLoss => ErrorKind::InvalidArgument,
        S::Conflict => ErrorKind::Conflict,
        S::Internal => ErrorKind::Internal,
    }
}

type Result<T, E = NetworkError> = std::result::Result<T, E>;

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

const PREDEFINED: [&str; 3] = ["bridge", "host", "none"];

fn random_id() -> String {
    let mut b = [0u8; 32];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut b);
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// The address at `v4`'s host offset in `subnet4`, within `subnet6`.
fn v6_at(subnet4: &Ipv4Net, subnet6: &Ipv6Net, v4: Ipv4Addr) -> Ipv6Addr {
    let offset = u32::from(v4).wrapping_sub(u32::from(subnet4.network()));
    Ipv6Addr::from(u128::from(subnet6.network()) | u128::from(offset))
}

fn parse_v4(what: &str, s: &str) -> Result<Ipv4Addr> {
    s.parse()
        .map_err(|_| NetworkError::InvalidConfig(format!("{what} {s:?} is not an IPv4 address")))
}

struct Net {
    rec: NetworkRecord,
    subnet: Ipv4Net,
    gateway: Ipv4Addr,
    /// The IPv6 subnet and gateway of a network made with `--ipv6`.
    v6: Option<(Ipv6Net, Ipv6Addr)>,
}

impl Net {
    fn from_record(rec: NetworkRecord) -> Result<Self> {
        let subnet: Ipv4Net = rec
            .subnet
            .parse()
            .map_err(|_| NetworkError::Damaged(rec.name.clone(), "subnet".into()))?;
        let gateway = parse_v4("gateway", &rec.gateway)?;
        let v6 = if rec.subnet6.is_empty() {
            None
        } else {
            let s: Ipv6Net = rec
                .subnet6
                .parse()
                .map_err(|_| NetworkError::Damaged(rec.name.clone(), "subnet6".into()))?;
            let g: Ipv6Addr = rec
                .gateway6
                .parse()
                .map_err(|_| NetworkError::Damaged(rec.name.clone(), "gateway6".into()))?;
            Some((s, g))
        };
        Ok(Net {
            rec,
            subnet,
            gateway,
            v6,
        })
    }

    /// The IPv6 address that goes with IPv4 address `v4` on this network: the same host
    /// offset in the IPv6 subnet, so IPv4 allocation makes IPv6 addresses unique too.
    fn v6_of(&self, v4: Ipv4Addr) -> Option<Ipv6Addr> {
        let (s, _) = self.v6?;
        Some(v6_at(&self.subnet, &s, v4))
    }

    /// A container's IPv6 interface for IPv4 address `v4` (the default route on its
    /// first network, unless the network is internal).
    fn endpoint_v6(&self, v4: Ipv4Addr, first: bool) -> Option<Ipv6Interface> {
        let (s, gw) = self.v6?;
        Some(Ipv6Interface {
            address: v6_at(&self.subnet, &s, v4),
            prefix_len: s.prefix_len(),
            default_gateway: (first && !self.rec.internal).then_some(gw),
        })
    }

    /// The bridge; `forwarding` (routing beyond it) only with nftables, whose rules then
    /// keep berth's networks apart.
    fn bridge_spec(&self, forwarding: bool) -> BridgeSpec {
        BridgeSpec {
            name: self.rec.bridge.clone(),
            subnet: self.subnet,
            gateway: self.gateway,
            forwarding,
            ipv6: self.v6.map(|(s, gw)| Ipv6Interface {
                address: gw,
                prefix_len: s.prefix_len(),
                default_gateway: None,
            }),
        }
    }

    /// The network as berth's nftables rules see it.
    fn bridge_net(&self) -> nft::BridgeNet<'_> {
        nft::BridgeNet {
            bridge: &self.rec.bridge,
            subnet: &self.subnet,
            subnet6: self.v6.as_ref().map(|(s, _)| s),
            internal: self.rec.internal,
        }
    }

    /// The default bridge resolves no names (as Docker's); user-defined networks do.
    fn resolves_names(&self) -> bool {
        self.rec.name != "bridge"
    }
}

/// The network use cases over one store: what [`Engine::networks`] returns, and what the
/// container lifecycle builds from its own store and roots with [`Networks::new`].
#[derive(Debug, Clone, Copy)]
pub struct Networks<'a> {
    store: &'a berth_store::Store,
    root: &'a Path,
    runroot: &'a Path,
}

impl Engine {
    /// The network use cases on this engine's store.
    pub fn networks(&self) -> Networks<'_> {
        Networks::new(&self.store, &self.config.root, &self.config.runroot)
    }
}

impl<'a> Networks<'a> {
    /// Network use cases on `store`, with berth's `root` (berth.toml, containers/) and
    /// `runroot` (pinned namespaces).
    pub fn new(store: &'a berth_store::Store, root: &'a Path, runroot: &'a Path) -> Self {
        Networks {
            store,
            root,
            runroot,
        }
    }

    fn net_ops(&self) -> &'static LinuxNetOps {
        static OPS: std::sync::OnceLock<LinuxNetOps> = std::sync::OnceLock::new();
        OPS.get_or_init(LinuxNetOps::new)
    }

    fn net_config(&self) -> Result<NetConfig> {
        Ok(NetConfig::load(self.root)?)
    }

    /// Makes sure `bridge`, `host` and `none` exist in the store.
    fn ensure_predefined(&self) -> Result<()> {
        let cfg = self.net_config()?;
        let base = |name: &str, driver: &str| NetworkRecord {
            id: random_id(),
            name: name.into(),
            driver: driver.into(),
            bridge: String::new(),
            subnet: String::new(),
            gateway: String::new(),
            internal: false,
            labels: "{}".into(),
            created: now_nanos(),
            subnet6: String::new(),
            gateway6: String::new(),
        };
        let have: HashSet<String> = self
            .store
            .list_networks()?
            .into_iter()
            .map(|n| n.name)
            .collect();
        if !have.contains("bridge") {
            let mut b = base("bridge", "bridge");
            b.bridge = cfg.bridge.clone();
            b.subnet = cfg.subnet.to_string();
            b.gateway = cfg.gateway().to_string();
            self.store.insert_network(&b, true)?;
        }
        if !have.contains("host") {
            self.store.insert_network(&base("host", "host"), true)?;
        }
        if !have.contains("none") {
            self.store.insert_network(&base("none", "null"), true)?;
        }
        Ok(())
    }

    fn netns_path(&self, container_id: &str) -> PathBuf {
        endpoint::netns_path(self.runroot, container_id)
    }

    fn net_container_dir(&self, container_id: &str) -> PathBuf {
        self.root.join("containers").join(container_id)
    }

    /// Makes the container's directory, where its /etc files go.
    fn create_net_container_dir(&self, container_id: &str) -> Result<()> {
        let dir = self.net_container_dir(container_id);
        std::fs::create_dir_all(&dir).map_err(|e| berth_net::Error::File {
            op: "create",
            path: dir.clone(),
            source: e,
        })?;
        Ok(())
    }

    fn etc_files(&self, container_id: &str) -> EtcFiles {
        let d = self.net_container_dir(container_id);
        EtcFiles {
            hosts: d.join("hosts"),
            hostname: d.join("hostname"),
            resolv_conf: d.join("resolv.conf"),
        }
    }

    fn network_lock(&self) -> Result<FileLock> {
        Ok(FileLock::acquire(
            &self.root.join("locks").join("network.lock"),
        )?)
    }

    /// Creates a user-defined bridge network; returns its ID. The bridge interface appears
    /// when the first container joins.
    pub fn network_create(&self, req: &NetworkCreate) -> Result<String> {
        self.ensure_predefined()?;
        if PREDEFINED.contains(&req.name.as_str()) {
            return Err(NetworkError::Predefined {
                name: req.name.clone(),
                action: "created",
            });
        }
        validate_network_name(&req.name)?;
        let driver = req.driver.clone().unwrap_or_else(|| "bridge".into());
        if driver != "bridge" {
            return Err(NetworkError::UnknownDriver(driver));
        }
        let _lock = self.network_lock()?;
        let existing = self.store.list_networks()?;
        if existing.iter().any(|n| n.name == req.name) {
            return Err(NetworkStoreError::NameInUse(req.name.clone()).into());
        }
        let taken: Vec<Ipv4Net> = existing
            .iter()
            .filter_map(|n| n.subnet.parse().ok())
            .collect();
        let subnet = match &req.subnet {
            Some(s) => {
                let net = netconfig::parse_subnet(s)?;
                if taken.iter().any(|t| berth_net::ipam::overlaps(t, &net)) {
                    return Err(NetworkError::Overlap);
                }
                net
            }
            None => berth_net::ipam::next_free_subnet(&taken)?,
        };
        let gateway = match &req.gateway {
            Some(g) => {
                let g = parse_v4("gateway", g)?;
                if !subnet.contains(&g) || g == subnet.network() || g == subnet.broadcast() {
                    return Err(NetworkError::InvalidConfig(format!(
                        "gateway {g} is not a host address of subnet {subnet}"
                    )));
                }
                g
            }
            None => netconfig::first_host(&subnet),
        };
        let v6 = self.ipv6_subnet(req, &subnet, gateway, &existing)?;
        let id = random_id();
        let rec = NetworkRecord {
            id: id.clone(),
            name: req.name.clone(),
            driver,
            bridge: endpoint::bridge_name(&id),
            subnet: subnet.to_string(),
            gateway: gateway.to_string(),
            internal: req.internal,
            labels: serde_json::to_string(&req.labels).unwrap_or_else(|_| "{}".into()),
            created: now_nanos(),
            subnet6: v6.map(|(s, _)| s.to_string()).unwrap_or_default(),
            gateway6: v6.map(|(_, g)| g.to_string()).unwrap_or_default(),
        };
        self.store.insert_network(&rec, false)?;
        Ok(id)
    }

    /// The IPv6 subnet and gateway of a network being created: none without `--ipv6`; the
    /// `--subnet` given (it must hold every IPv4 host offset, since a container's IPv6
    /// address is its IPv4 one's offset in it, and overlap no other network's), else a
    /// random unique local /64. The gateway has the IPv4 gateway's offset.
    fn ipv6_subnet(
        &self,
        req: &NetworkCreate,
        subnet4: &Ipv4Net,
        gateway4: Ipv4Addr,
        existing: &[NetworkRecord],
    ) -> Result<Option<(Ipv6Net, Ipv6Addr)>> {
        if !req.ipv6 {
            return match &req.subnet6 {
                Some(s) => Err(NetworkError::InvalidConfig(format!(
                    "IPv6 subnet {s} given without --ipv6"
                ))),
                None => Ok(None),
            };
        }
        let subnet6 = match &req.subnet6 {
            Some(s) => {
                let net: Ipv6Net = s.parse().map_err(|_| {
                    NetworkError::InvalidConfig(format!(
                        "invalid subnet {s}: expected an IPv6 CIDR"
                    ))
                })?;
                let net = net.trunc();
                let host_bits4 = 32 - subnet4.prefix_len();
                if 128 - net.prefix_len() < host_bits4 {
                    return Err(NetworkError::InvalidConfig(format!(
                        "IPv6 subnet {net} is smaller than IPv4 subnet {subnet4} (at most /{})",
                        128 - host_bits4
                    )));
                }
                let taken = existing
                    .iter()
                    .filter_map(|n| n.subnet6.parse::<Ipv6Net>().ok());
                for t in taken {
                    if t.contains(&net.network()) || net.contains(&t.network()) {
                        return Err(NetworkError::Overlap);
                    }
                }
                net
            }
            None => {
                let r = random_id();
                let hex = |i: usize| u16::from_str_radix(&r[i..i + 4], 16).unwrap_or(0);
                let a = Ipv6Addr::new(
                    0xfd00 | (hex(0) & 0xff),
                    hex(4),
                    hex(8),
                    hex(12),
                    0,
                    0,
                    0,
                    0,
                );
                Ipv6Net::new(a, 64)
                    .map_err(|_| NetworkError::InvalidConfig("cannot make an IPv6 subnet".into()))?
            }
        };
        Ok(Some((subnet6, v6_at(subnet4, &subnet6, gateway4))))
    }

    /// Every network (`network ls`), by name.
    pub fn network_list(&self) -> Result<Vec<NetworkSummary>> {
        self.ensure_predefined()?;
        Ok(self
            .store
            .list_networks()?
            .into_iter()
            .map(|n| NetworkSummary {
                labels: serde_json::from_str(&n.labels).unwrap_or_default(),
                ipv6: !n.subnet6.is_empty(),
                internal: n.internal,
                id: n.id,
                name: n.name,
                driver: n.driver,
                scope: "local".into(),
                created: n.created,
            })
            .collect())
    }

    /// Docker's `network inspect` object for one network.
    pub fn network_inspect(&self, input: &str) -> Result<serde_json::Value> {
        self.ensure_predefined()?;
        let n = self.store.resolve_network(input)?;
        let net = (!n.subnet.is_empty())
            .then(|| Net::from_record(n.clone()).ok())
            .flatten();
        let mut containers = serde_json::Map::new();
        // As Docker: only running containers have an endpoint to show.
        for ep in self.store.network_endpoints(&n.id)? {
            if !self.netns_path(&ep.container_id).exists() {
                continue;
            }
            let mac = self
                .endpoint_mac_shown(&ep, &n)
                .map(|m| netconfig::format_mac(&m))
                .unwrap_or_default();
            let v6 = net
                .as_ref()
                .zip(ep.address.parse().ok())
                .and_then(|(net, a)| Some(format!("{}/{}", net.v6_of(a)?, net.v6?.0.prefix_len())))
                .unwrap_or_default();
            let name = self
                .store
                .container(&ep.container_id)
                .map(|c| c.name)
                .unwrap_or_default();
            let prefix = n
                .subnet
                .parse::<Ipv4Net>()
                .map(|s| s.prefix_len())
                .unwrap_or(32);
            containers.insert(
                ep.container_id.clone(),
                serde_json::json!({
                    "Name": name,
                    "EndpointID": ep.host_ifname,
                    "MacAddress": mac,
                    "IPv4Address": format!("{}/{}", ep.address, prefix),
                    "IPv6Address": v6,
                }),
            );
        }
        let labels: serde_json::Value =
            serde_json::from_str(&n.labels).unwrap_or_else(|_| serde_json::json!({}));
        let mut config = Vec::new();
        if !n.subnet.is_empty() {
            config.push(serde_json::json!({ "Subnet": n.subnet, "Gateway": n.gateway }));
        }
        if !n.subnet6.is_empty() {
            config.push(serde_json::json!({ "Subnet": n.subnet6, "Gateway": n.gateway6 }));
        }
        let mut options = serde_json::Map::new();
        if !n.bridge.is_empty() {
            options.insert(
                "com.docker.network.bridge.name".into(),
                serde_json::Value::String(n.bridge.clone()),
            );
        }
        Ok(serde_json::json!({
            "Name": n.name,
            "Id": n.id,
            "Created": rfc3339(n.created),
            "Scope": "local",
            "Driver": n.driver,
            "EnableIPv6": !n.subnet6.is_empty(),
            "IPAM": { "Driver": "default", "Options": {}, "Config": config },
            "Internal": n.internal,
            "Attachable": false,
            "Ingress": false,
            "ConfigFrom": { "Network": "" },
            "ConfigOnly": false,
            "Containers": containers,
            "Options": options,
            "Labels": labels,
        }))
    }

    /// Removes a user-defined network without containers; returns its name.
    pub fn network_remove(&self, input: &str) -> Result<String> {
        self.ensure_predefined()?;
        let n = self.store.resolve_network(input)?;
        if PREDEFINED.contains(&n.name.as_str()) {
            return Err(NetworkError::Predefined {
                name: n.name,
                action: "removed",
            });
        }
        let _lock = self.network_lock()?;
        // As Docker: running containers keep a network; stopped ones hold no endpoint.
        for ep in self.store.network_endpoints(&n.id)? {
            if self.netns_path(&ep.container_id).exists() {
                return Err(NetworkStoreError::InUse {
                    name: n.name,
                    id: n.id,
                }
                .into());
            }
            self.store
                .release_endpoints(&ep.container_id, Some(&n.id))?;
        }
        self.store.delete_network(&n.id)?;
        if !n.bridge.is_empty() {
            if self.net_config()?.nftables {
                if let Ok(net) = Net::from_record(n.clone()) {
                    let others = self.all_bridges();
                    // A legacy table goes first, so nothing of this network stays in it.
                    if let Err(e) = nft::ensure_table(self.firewall(), || self.nft_elements()) {
                        log::warn!("nftables: {e}");
                    }
                    nft::apply_each(
                        self.firewall(),
                        &nft::remove_bridge(&net.bridge_net(), &others),
                    );
                }
            }
            self.net_ops().remove_bridge(&n.bridge)?;
        }
        Ok(n.name)
    }

    /// Removes every user-defined network that no container uses; returns their names.
    pub fn network_prune(&self) -> Result<Vec<String>> {
        self.ensure_predefined()?;
        let used: HashSet<String> = self
            .store
            .all_endpoints()?
            .into_iter()
            .map(|e| e.network_id)
            .collect();
        let mut removed = Vec::new();
        for n in self.store.list_networks()? {
            if PREDEFINED.contains(&n.name.as_str()) || used.contains(&n.id) {
                continue;
            }
            if self.network_remove(&n.id).is_ok() {
                removed.push(n.name);
            }
        }
        Ok(removed)
    }

    /// Sets up a container's networking before it starts (see the module docs). On failure
    /// nothing is left: no namespace, interface, address or listener.
    pub fn network_setup(&self, req: &NetworkRequest) -> Result<ContainerNetwork> {
        let t0 = std::time::Instant::now();
        let r = self.network_setup_timed(req);
        log::debug!("network setup of {}: {:?}", req.container_id, t0.elapsed());
        r
    }

    fn network_setup_timed(&self, req: &NetworkRequest) -> Result<ContainerNetwork> {
        let mode = if req.mode.is_empty() || req.mode == "default" {
            "bridge"
        } else {
            req.mode.as_str()
        };
        if mode == "none"
            && req.publish.is_empty()
            && !req.publish_all
            && self
                .store
                .container_endpoints(&req.container_id)?
                .is_empty()
        {
            return self.none_setup(req);
        }
        self.ensure_predefined()?;
        let net = if mode == "none" || mode == "host" {
            None
        } else {
            Some(self.store.resolve_network(mode)?)
        };
        let net = match net {
            Some(n) if n.driver == "host" => None,
            Some(n) if n.driver == "null" => None,
            other => other,
        };
        let host_mode = mode == "host" || (net.is_none() && mode != "none");
        let etc = self.etc_files(&req.container_id);
        self.create_net_container_dir(&req.container_id)?;

        // Published ports first: a port in use fails before anything else is made.
        let ports = if host_mode {
            if !req.publish.is_empty() || req.publish_all {
                log::warn!("Published ports are discarded when using host network mode");
            }
            Vec::new()
        } else {
            port::bind_ports(&port_requests(req)?)?
        };

        let primary_name = net.as_ref().map(|n| n.name.clone());
        let r = self.network_setup_inner(req, net, host_mode, &etc, &ports);
        match r {
            Ok(addresses) => Ok(ContainerNetwork {
                netns: (!host_mode).then(|| self.netns_path(&req.container_id)),
                etc,
                ports,
                primary: primary_name.and_then(|n| addresses.get(&n).copied()),
                addresses,
            }),
            Err(e) => {
                drop(ports);
                // Nothing made stays; the networks it is connected to do.
                let _ = self.network_teardown(&req.container_id, false);
                Err(e)
            }
        }
    }

    /// `--network none` with nothing to publish and no endpoint added by `network
    /// connect`: only the /etc files. The runtime makes the fresh namespace (loopback up)
    /// itself, so there is no namespace to pin, no lock to take and no netlink to speak;
    /// nothing can join a `none` container's namespace later (`network connect` refuses
    /// a running one, as Docker does).
    fn none_setup(&self, req: &NetworkRequest) -> Result<ContainerNetwork> {
        etc::validate_hostname(&req.hostname)?;
        let dns = parse_dns(&req.dns)?;
        let mut extra = Vec::new();
        for h in &req.add_hosts {
            extra.push(etc::parse_add_host(h, None)?);
        }
        let etc = self.etc_files(&req.container_id);
        self.create_net_container_dir(&req.container_id)?;
        let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        etc::write_in_place(
            &etc.resolv_conf,
            &etc::render_resolv(&dns, &req.dns_search, &host_resolv),
        )?;
        etc::write_in_place(&etc.hostname, &format!("{}\n", req.hostname))?;
        etc::write_in_place(
            &etc.hosts,
            &etc::render_hosts(&req.hostname, &[], &extra, &[]),
        )?;
        Ok(ContainerNetwork {
            netns: None,
            etc,
            ports: Vec::new(),
            primary: None,
            addresses: BTreeMap::new(),
        })
    }

    fn network_setup_inner(
        &self,
        req: &NetworkRequest,
        net: Option<NetworkRecord>,
        host_mode: bool,
        etc: &EtcFiles,
        ports: &[BoundPort],
    ) -> Result<BTreeMap<String, Ipv4Addr>> {
        let id = &req.container_id;
        let dns = parse_dns(&req.dns)?;
        let hostname = if host_mode {
            nix_hostname()
        } else {
            req.hostname.clone()
        };
        if !host_mode {
            etc::validate_hostname(&hostname)?;
        }
        let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let resolv = if host_mode && dns.is_empty() && req.dns_search.is_empty() {
            host_resolv
        } else {
            etc::render_resolv(&dns, &req.dns_search, &host_resolv)
        };
        etc::write_in_place(&etc.resolv_conf, &resolv)?;
        etc::write_in_place(&etc.hostname, &format!("{hostname}\n"))?;

        let mut addresses = BTreeMap::new();
        if host_mode {
            let mut hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
            for h in &req.add_hosts {
                let e = etc::parse_add_host(h, None)?;
                hosts.push_str(&format!("{}\t{}\n", e.ip, e.names.join(" ")));
            }
            etc::write_in_place(&etc.hosts, &hosts)?;
            return Ok(addresses);
        }

        // Endpoints: the mode's network plus any recorded by `network connect`.
        let _lock = self.network_lock()?;
        let mut nets: Vec<Net> = Vec::new();
        // `--ip` and `--mac-address` apply to the `--network` network, which comes first.
        let has_mode_net = net.is_some();
        if let Some(n) = net {
            nets.push(Net::from_record(n)?);
        }
        for ep in self.store.container_endpoints(id)? {
            if !nets.iter().any(|n| n.rec.id == ep.network_id) {
                if let Ok(n) = self.store.resolve_network(&ep.network_id) {
                    nets.push(Net::from_record(n)?);
                }
            }
        }
        let nft = self.net_config()?.nftables;
        let mut links = Vec::new();
        for (i, n) in nets.iter().enumerate() {
            let mode_net = i == 0 && has_mode_net;
            let ep = self.allocate(req, n, i, req.ip.filter(|_| mode_net), false)?;
            let address = parse_v4("address", &ep.address)?;
            addresses.insert(n.rec.name.clone(), address);
            links.push((
                n.bridge_spec(nft),
                EndpointSpec {
                    host_ifname: ep.host_ifname.clone(),
                    container_ifname: ep.container_ifname.clone(),
                    address,
                    prefix_len: n.subnet.prefix_len(),
                    default_gateway: (i == 0 && !n.rec.internal).then_some(n.gateway),
                    mac: Some(
                        req.mac
                            .filter(|_| mode_net)
                            .unwrap_or_else(|| endpoint_mac(address)),
                    ),
                    ipv6: n.endpoint_v6(address, i == 0),
                },
            ));
        }
        let ns = self.netns_path(id);
        // A namespace left by a crash of an earlier run of this container goes first.
        let stale: Vec<String> = links.iter().map(|(_, e)| e.host_ifname.clone()).collect();
        let _ = endpoint::teardown(self.net_ops(), Some(&ns), &stale);
        endpoint::setup(self.net_ops(), &ns, &links)?;

        let gateway = nets.first().map(|n| IpAddr::V4(n.gateway));
        let mut extra = Vec::new();
        for h in &req.add_hosts {
            extra.push(etc::parse_add_host(h, gateway)?);
        }
        std::fs::write(
            self.net_container_dir(id).join("extra-hosts.json"),
            serde_json::to_string(
                &extra
                    .iter()
                    .map(|e| (e.ip.to_string(), e.names.clone()))
                    .collect::<Vec<_>>(),
            )
            .unwrap_or_default(),
        )
        .map_err(|e| berth_net::Error::File {
            op: "write",
            path: self.net_container_dir(id).join("extra-hosts.json"),
            source: e,
        })?;
        let mut own: Vec<IpAddr> = addresses.values().map(|a| IpAddr::V4(*a)).collect();
        for n in &nets {
            if let Some(v6) = addresses.get(&n.rec.name).and_then(|a| n.v6_of(*a)) {
                own.push(IpAddr::V6(v6));
            }
        }
        let hosts = etc::render_hosts(&hostname, &own, &extra, &self.peers_of(id, &nets)?);
        etc::write_in_place(&etc.hosts, &hosts)?;
        for n in nets.iter().filter(|n| n.resolves_names()) {
            self.sync_hosts(&n.rec.id, Some(id))?;
        }

        let rows: Vec<PortRecord> = ports
            .iter()
            .map(|p| PortRecord {
                container_id: id.clone(),
                proto: p.port.proto.as_str().into(),
                host_ip: p.port.host_ip.to_string(),
                host_port: p.port.host_port,
                container_port: p.port.container_port,
            })
            .collect();
        self.store.set_ports(id, &rows)?;
        if nft {
            self.nft_attach(&nets, &addresses, ports)?;
        }
        Ok(addresses)
    }

    fn firewall(&self) -> &'static NftFirewall {
        static FW: NftFirewall = NftFirewall;
        &FW
    }

    /// Every bridge interface berth knows (for the isolation pairs).
    fn all_bridges(&self) -> Vec<String> {
        self.store
            .list_networks()
            .unwrap_or_default()
            .into_iter()
            .filter(|n| !n.bridge.is_empty())
            .map(|n| n.bridge)
            .collect()
    }

    /// With nftables on: the table, the networks' elements, forwarding, and DNAT for the
    /// ports published on every address (IPv4) to the first network's address.
    fn nft_attach(
        &self,
        nets: &[Net],
        addresses: &BTreeMap<String, Ipv4Addr>,
        ports: &[BoundPort],
    ) -> Result<()> {
        let fw = self.firewall();
        nft::ensure_table(fw, || self.nft_elements())?;
        let others = self.all_bridges();
        let mut script = String::new();
        for n in nets {
            script.push_str(&nft::add_bridge(&n.bridge_net(), &others));
        }
        if let Some(addr) = nets.first().and_then(|n| addresses.get(&n.rec.name)) {
            script.push_str(&nft::add_dnat(&dnat_entries(
                ports.iter().map(|p| p.port),
                *addr,
            )));
        }
        fw.apply(&script)?;
        nft::enable_ip_forward()?;
        Ok(())
    }

    /// The elements of every bridge network and of every running container's published
    /// ports, for a table made anew ([`nft::ensure_table`]). Caller holds the network lock.
    fn nft_elements(&self) -> String {
        let others = self.all_bridges();
        let mut script = String::new();
        for rec in self.store.list_networks().unwrap_or_default() {
            if rec.bridge.is_empty() {
                continue;
            }
            if let Ok(n) = Net::from_record(rec) {
                script.push_str(&nft::add_bridge(&n.bridge_net(), &others));
            }
        }
        let mut first: BTreeMap<String, EndpointRecord> = BTreeMap::new();
        for ep in self.store.all_endpoints().unwrap_or_default() {
            if !self.netns_path(&ep.container_id).exists() {
                continue;
            }
            let better = first
                .get(&ep.container_id)
                .is_none_or(|f| ep.container_ifname < f.container_ifname);
            if better {
                first.insert(ep.container_id.clone(), ep);
            }
        }
        for (id, ep) in first {
            if let Ok(addr) = ep.address.parse::<Ipv4Addr>() {
                let ports = self.container_ports_by_id(&id).unwrap_or_default();
                script.push_str(&nft::add_dnat(&dnat_entries(ports.into_iter(), addr)));
            }
        }
        script
    }

    /// The container's endpoint on `n`: the stored one with its address, else the stored
    /// one released at stop or a new one, with the `wanted` address (checked: a host
    /// address of the subnet, not the gateway's, not in use), else the address it last had
    /// if still free (as Docker tries), else the next free address; for a `stopped`
    /// container none yet (`network connect`: the `wanted` one is recorded and checked).
    fn allocate(
        &self,
        req: &NetworkRequest,
        n: &Net,
        index: usize,
        wanted: Option<Ipv4Addr>,
        stopped: bool,
    ) -> Result<EndpointRecord> {
        // An address asked for earlier (`network connect --ip`) holds at every start.
        let wanted = match wanted {
            Some(a) => Some(a),
            None => self
                .store
                .container_endpoints(&req.container_id)?
                .into_iter()
                .find(|e| e.network_id == n.rec.id)
                .and_then(|e| e.static_address.parse().ok()),
        };
        if let Some(a) = wanted {
            if !n.subnet.contains(&a) || a == n.subnet.network() || a == n.subnet.broadcast() {
                return Err(NetworkError::AddressOutside {
                    address: a,
                    network: n.rec.name.clone(),
                    subnet: n.subnet.to_string(),
                });
            }
        }
        let taken = std::cell::Cell::new(false);
        let mut names = vec![req.container_name.clone()];
        names.extend(req.aliases.iter().cloned());
        names.push(req.container_id.chars().take(12).collect());
        names.retain(|s| !s.is_empty());
        let want = EndpointRecord {
            network_id: n.rec.id.clone(),
            container_id: req.container_id.clone(),
            address: String::new(),
            host_ifname: endpoint::veth_name(&req.container_id, &n.rec.id),
            container_ifname: format!("eth{index}"),
            aliases: serde_json::to_string(&names).unwrap_or_else(|_| "[]".into()),
            static_address: wanted.map(|a| a.to_string()).unwrap_or_default(),
        };
        let (subnet, gw) = (n.subnet, n.gateway);
        let got = self.store.allocate_endpoint(&want, |used, last| {
            let used: HashSet<Ipv4Addr> = used.iter().filter_map(|a| a.parse().ok()).collect();
            // The address a restarted container had, when nobody took it meanwhile.
            let last = last.and_then(|l| l.parse::<Ipv4Addr>().ok()).filter(|a| {
                subnet.contains(a)
                    && *a != subnet.network()
                    && *a != subnet.broadcast()
                    && *a != gw
                    && !used.contains(a)
            });
            match wanted {
                Some(a) if used.contains(&a) || a == gw => {
                    taken.set(true);
                    None
                }
                // Connected while stopped: the address comes at start.
                _ if stopped => Some(String::new()),
                Some(a) => Some(a.to_string()),
                None => last
                    .or_else(|| berth_net::ipam::next_free(&subnet, gw, &used).ok())
                    .map(|a| a.to_string()),
            }
        });
        let mut ep = match (got, wanted) {
            (Err(_), Some(address)) if taken.get() => {
                return Err(NetworkError::AddressInUse {
                    address,
                    network: n.rec.name.clone(),
                })
            }
            (Err(NetworkStoreError::NoFreeAddress(_)), None) => {
                return Err(NetworkError::NoFreeAddress {
                    network: n.rec.name.clone(),
                    id: n.rec.id.clone(),
                })
            }
            (r, _) => r?,
        };
        // A stored endpoint keeps its address; its interface index follows this run's order.
        ep.container_ifname = format!("eth{index}");
        Ok(ep)
    }

    /// Host entries for the running peers of `id` on its name-resolving networks (a stopped
    /// container's name resolves nowhere, as with Docker's DNS).
    fn peers_of(&self, id: &str, nets: &[Net]) -> Result<Vec<HostEntry>> {
        let mut out = Vec::new();
        for n in nets.iter().filter(|n| n.resolves_names()) {
            for ep in self.store.network_endpoints(&n.rec.id)? {
                if ep.container_id == id || !self.netns_path(&ep.container_id).exists() {
                    continue;
                }
                let names: Vec<String> = serde_json::from_str(&ep.aliases).unwrap_or_default();
                if let Ok(v4) = ep.address.parse::<Ipv4Addr>() {
                    out.push(HostEntry {
                        ip: IpAddr::V4(v4),
                        names: names.clone(),
                    });
                    if let Some(v6) = n.v6_of(v4) {
                        out.push(HostEntry {
                            ip: IpAddr::V6(v6),
                            names,
                        });
                    }
                }
            }
        }
        Ok(out)
    }

    /// Rewrites the hosts files of every container on network `network_id` (except `skip`)
    /// so they list their current peers. Caller holds the network lock.
    fn sync_hosts(&self, network_id: &str, skip: Option<&str>) -> Result<()> {
        for ep in self.store.network_endpoints(network_id)? {
            if Some(ep.container_id.as_str()) == skip {
                continue;
            }
            let files = self.etc_files(&ep.container_id);
            if !files.hosts.exists() {
                continue;
            }
            let mut nets = Vec::new();
            let mut own = Vec::new();
            let mut own6 = Vec::new();
            for e in self.store.container_endpoints(&ep.container_id)? {
                let v4 = e.address.parse::<Ipv4Addr>().ok();
                if let Ok(n) = self.store.resolve_network(&e.network_id) {
                    if let Ok(n) = Net::from_record(n) {
                        own6.extend(v4.and_then(|a| n.v6_of(a)).map(IpAddr::V6));
                        nets.push(n);
                    }
                }
                own.extend(v4.map(IpAddr::V4));
            }
            own.extend(own6);
            let hostname = std::fs::read_to_string(&files.hostname)
                .map(|s| s.trim().to_string())
                .unwrap_or_default();
            let extra: Vec<HostEntry> = std::fs::read_to_string(
                self.net_container_dir(&ep.container_id)
                    .join("extra-hosts.json"),
            )
            .ok()
            .and_then(|s| serde_json::from_str::<Vec<(String, Vec<String>)>>(&s).ok())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(ip, names)| ip.parse().ok().map(|ip| HostEntry { ip, names }))
            .collect();
            let peers = self.peers_of(&ep.container_id, &nets)?;
            let text = etc::render_hosts(&hostname, &own, &extra, &peers);
            if let Err(e) = etc::write_in_place(&files.hosts, &text) {
                log::warn!("updating hosts of {}: {e}", ep.container_id);
            }
        }
        Ok(())
    }

    /// Undoes [`Networks::network_setup`]: interfaces, namespace and published-port rows go,
    /// its addresses return to the pool and its name leaves its peers' hosts files. Without
    /// `release` (stop, a failed start) its endpoints stay, so it is still connected to its
    /// networks, and `start` gives it an address again, the same one when it is still free;
    /// with `release` (container removal) the endpoints go too. Keeps going past failures;
    /// safe to call again or on a container that never had a network.
    pub fn network_teardown(&self, container_id: &str, release: bool) -> Result<()> {
        let t0 = std::time::Instant::now();
        let r = self.network_teardown_timed(container_id, release);
        log::debug!("network teardown of {container_id}: {:?}", t0.elapsed());
        r
    }

    fn network_teardown_timed(&self, container_id: &str, release: bool) -> Result<()> {
        let eps = self.store.container_endpoints(container_id)?;
        let ns = self.netns_path(container_id);
        // Unpinning the namespace is enough: when its last user is gone the kernel destroys
        // it with its veth peers, and a veth pair goes as a whole. Deleting the host ends
        // here instead would cost ~25 ms each (the kernel waits for an RCU grace period).
        let net_result = endpoint::teardown(self.net_ops(), Some(&ns), &[]);
        if self.net_config().map(|c| c.nftables).unwrap_or(false) {
            let first = eps
                .iter()
                .find(|e| e.container_ifname == "eth0")
                .or(eps.first());
            if let Some(addr) = first.and_then(|e| e.address.parse::<Ipv4Addr>().ok()) {
                let ports = self.container_ports_by_id(container_id).unwrap_or_default();
                let entries = dnat_entries(ports.into_iter(), addr);
                if !entries.is_empty() {
                    // A legacy table goes first (its DNAT of this container must not stay
                    // to reach whoever gets the address next).
                    let _lock = self.network_lock().ok();
                    if let Err(e) = nft::ensure_table(self.firewall(), || self.nft_elements()) {
                        log::warn!("nftables: {e}");
                    }
                    nft::apply_each(self.firewall(), &nft::remove_dnat(&entries));
                }
            }
        }
        let ports_result = self.store.set_ports(container_id, &[]);
        if release {
            let _lock = self.network_lock()?;
            self.store.release_endpoints(container_id, None)?;
            for ep in &eps {
                let _ = self.sync_hosts(&ep.network_id, None);
            }
        } else if !eps.is_empty() {
            // Stopped: it stays connected to its networks but its addresses go back to the
            // pool (as Docker's), and its name leaves the hosts files of its peers on user
            // networks (the default bridge resolves no names) until it starts again.
            let _lock = self.network_lock()?;
            self.store.release_addresses(container_id)?;
            for ep in &eps {
                let resolving = self
                    .store
                    .resolve_network(&ep.network_id)
                    .is_ok_and(|n| n.name != "bridge");
                if resolving {
                    let _ = self.sync_hosts(&ep.network_id, None);
                }
            }
        }
        net_result?;
        ports_result?;
        Ok(())
    }

    /// `network connect [--ip IP]`: records an endpoint for the container (at `ip`, checked
    /// as `run --ip`) and, when it is running, adds the interface to its namespace now. A
    /// stopped container gets an address when it starts (the `ip` one, which is not held
    /// until then: as with Docker, that start fails if another container took it).
    pub fn network_connect(
        &self,
        network: &str,
        container: &str,
        aliases: &[String],
        ip: Option<Ipv4Addr>,
    ) -> Result<()> {
        self.ensure_predefined()?;
        let n = self.store.resolve_network(network)?;
        let c = self.store.resolve_container(container)?;
        if n.driver != "bridge" {
            return Err(NetworkError::HostOrNone);
        }
        let current = self.store.container_endpoints(&c.id)?;
        if current.iter().any(|e| e.network_id == n.id) {
            return Err(NetworkError::AlreadyConnected {
                container: c.name,
                network: n.name,
            });
        }
        let ns = self.netns_path(&c.id);
        let running = ns.exists();
        if !running && current.is_empty() && c.status != "created" && c.status != "exited" {
            return Err(NetworkError::HostOrNone);
        }
        let net = Net::from_record(n)?;
        let _lock = self.network_lock()?;
        let req = NetworkRequest {
            container_id: c.id.clone(),
            container_name: c.name.clone(),
            aliases: aliases.to_vec(),
            ..Default::default()
        };
        let ep = self.allocate(&req, &net, current.len(), ip, !running)?;
        if running {
            let address = parse_v4("address", &ep.address)?;
            let spec = EndpointSpec {
                host_ifname: ep.host_ifname.clone(),
                container_ifname: ep.container_ifname.clone(),
                address,
                prefix_len: net.subnet.prefix_len(),
                default_gateway: None,
                mac: Some(endpoint_mac(address)),
                ipv6: net.endpoint_v6(address, false),
            };
            let nft = self.net_config()?.nftables;
            // The network's isolation pairs before its bridge forwards (a network first used
            // through `connect` has had none yet).
            let attached = if nft {
                self.nft_attach(std::slice::from_ref(&net), &BTreeMap::new(), &[])
            } else {
                Ok(())
            };
            if let Err(e) = attached.and_then(|()| {
                endpoint::connect(self.net_ops(), &ns, &net.bridge_spec(nft), &spec)
                    .map_err(Into::into)
            }) {
                let _ = self.store.release_endpoints(&c.id, Some(&net.rec.id));
                return Err(e);
            }
        }
        self.sync_hosts(&net.rec.id, None)?;
        Ok(())
    }

    /// `network disconnect`: removes the container's endpoint on the network and frees its
    /// address.
    pub fn network_disconnect(&self, network: &str, container: &str) -> Result<()> {
        let n = self.store.resolve_network(network)?;
        let c = self.store.resolve_container(container)?;
        let eps = self.store.container_endpoints(&c.id)?;
        let Some(ep) = eps.iter().find(|e| e.network_id == n.id) else {
            return Err(NetworkError::NotConnected {
                container: c.name,
                network: n.name,
            });
        };
        let _lock = self.network_lock()?;
        self.net_ops().remove_endpoint(&ep.host_ifname)?;
        self.store.release_endpoints(&c.id, Some(&n.id))?;
        self.sync_hosts(&n.id, None)?;
        Ok(())
    }

    /// The published ports of a container (`berth port`), optionally only those of one
    /// container port (`80`, `80/udp`).
    pub fn container_ports(
        &self,
        container: &str,
        filter: Option<&str>,
    ) -> Result<Vec<PublishedPort>> {
        let c = self.store.resolve_container(container)?;
        let want = match filter {
            Some(f) => Some(port::parse_exposed(f)?),
            None => None,
        };
        let mut out = self.container_ports_by_id(&c.id)?;
        if let Some((p, proto)) = want {
            out.retain(|pp| pp.container_port == p && pp.proto == proto);
        }
        Ok(out)
    }

    /// The published ports recorded for a container ID (no name resolution).
    pub fn container_ports_by_id(&self, container_id: &str) -> Result<Vec<PublishedPort>> {
        let mut out = Vec::new();
        for r in self.store.ports(Some(container_id))? {
            let proto = if r.proto == "udp" {
                Proto::Udp
            } else {
                Proto::Tcp
            };
            if let Ok(host_ip) = r.host_ip.parse() {
                out.push(PublishedPort {
                    host_ip,
                    host_port: r.host_port,
                    container_port: r.container_port,
                    proto,
                });
            }
        }
        Ok(out)
    }

    /// Docker's `NetworkSettings` of a container for `inspect`: its published ports (while
    /// running), and per network its address, prefix length, gateway and aliases.
    pub fn network_settings(
        &self,
        container_id: &str,
        mode: &str,
        running: bool,
    ) -> serde_json::Value {
        let mut ports = serde_json::Map::new();
        if running {
            for p in self.container_ports_by_id(container_id).unwrap_or_default() {
                let key = format!("{}/{}", p.container_port, p.proto);
                let entry = ports
                    .entry(key)
                    .or_insert_with(|| serde_json::Value::Array(Vec::new()));
                if let serde_json::Value::Array(a) = entry {
                    a.push(serde_json::json!({
                        "HostIp": p.host_ip.to_string(),
                        "HostPort": p.host_port.to_string(),
                    }));
                }
            }
        }
        let mut networks = serde_json::Map::new();
        let mut primary: Option<(String, u8, String, String)> = None;
        for ep in self
            .store
            .container_endpoints(container_id)
            .unwrap_or_default()
        {
            let Ok(n) = self.store.resolve_network(&ep.network_id) else {
                continue;
            };
            let Ok(net) = Net::from_record(n) else {
                continue;
            };
            let prefix = net.subnet.prefix_len();
            let aliases: Vec<String> = serde_json::from_str(&ep.aliases).unwrap_or_default();
            // Running: the interface's MAC; stopped: only a configured one (as Docker).
            let mac = if running {
                self.endpoint_mac_shown(&ep, &net.rec)
            } else {
                self.configured_mac(container_id, &net.rec)
            }
            .map(|m| netconfig::format_mac(&m))
            .unwrap_or_default();
            if primary.is_none() || net.rec.name == mode {
                primary = Some((
                    ep.address.clone(),
                    prefix,
                    net.gateway.to_string(),
                    mac.clone(),
                ));
            }
            networks.insert(
                net.rec.name.clone(),
                serde_json::json!({
                    "IPAMConfig": if ep.static_address.is_empty() { serde_json::Value::Null } else { serde_json::json!({"IPv4Address": ep.static_address}) },
                    "Links": null,
                    "Aliases": if net.resolves_names() { serde_json::json!(aliases) } else { serde_json::Value::Null },
                    "NetworkID": net.rec.id,
                    "EndpointID": if running { ep.host_ifname.clone() } else { String::new() },
                    "Gateway": if running { net.gateway.to_string() } else { String::new() },
                    "IPAddress": if running { ep.address.clone() } else { String::new() },
                    "IPPrefixLen": if running { prefix } else { 0 },
                    "IPv6Gateway": match (running, net.v6) { (true, Some((_, gw))) => gw.to_string(), _ => String::new() },
                    "GlobalIPv6Address": match (running, ep.address.parse().ok().and_then(|a| net.v6_of(a))) { (true, Some(a)) => a.to_string(), _ => String::new() },
                    "GlobalIPv6PrefixLen": match (running, net.v6) { (true, Some((s, _))) => s.prefix_len(), _ => 0 },
                    "MacAddress": mac,
                }),
            );
        }
        if networks.is_empty() && !mode.is_empty() {
            let id = self
                .store
                .resolve_network(mode)
                .map(|n| n.id)
                .unwrap_or_default();
            networks.insert(
                mode.to_string(),
                serde_json::json!({"IPAMConfig": null, "Links": null, "Aliases": null,
                    "NetworkID": id, "EndpointID": "", "Gateway": "", "IPAddress": "",
                    "IPPrefixLen": 0, "MacAddress": ""}),
            );
        }
        let (ip, prefix, gw, mac) = match (running, primary) {
            (true, Some(p)) => p,
            _ => (String::new(), 0, String::new(), String::new()),
        };
        let ns = self.netns_path(container_id);
        serde_json::json!({
            "Bridge": "",
            "SandboxID": "",
            "SandboxKey": if running && ns.exists() { ns.display().to_string() } else { String::new() },
            "Ports": ports,
            "Gateway": gw,
            "IPAddress": ip,
            "IPPrefixLen": prefix,
            "MacAddress": mac,
            "Networks": networks,
        })
    }

    /// The `--mac-address` of a container if it applies to network `net` (its `--network`).
    fn configured_mac(&self, container_id: &str, net: &NetworkRecord) -> Option<[u8; 6]> {
        let rec = self.store.container(container_id).ok()?;
        let spec: crate::container::ContainerSpec = serde_json::from_str(&rec.config).ok()?;
        let mac = netconfig::parse_mac(&spec.host_config.mac_address).ok()?;
        let mode = match spec.host_config.network_mode.as_str() {
            "" | "default" => "bridge",
            m => m,
        };
        let mode_net = self.store.resolve_network(mode).ok()?;
        (mode_net.id == net.id).then_some(mac)
    }

    /// The MAC address set on a container's interface on `net` (see [`endpoint_mac`]).
    fn endpoint_mac_shown(&self, ep: &EndpointRecord, net: &NetworkRecord) -> Option<[u8; 6]> {
        self.configured_mac(&ep.container_id, net)
            .or_else(|| ep.address.parse().ok().map(endpoint_mac))
    }

    /// The container's addresses per network (for `inspect`): `name -> (address, prefix,
    /// gateway)`.
    pub fn container_addresses(
        &self,
        container_id: &str,
    ) -> Result<BTreeMap<String, (String, u8, String)>> {
        let mut out = BTreeMap::new();
        for ep in self.store.container_endpoints(container_id)? {
            if let Ok(n) = self.store.resolve_network(&ep.network_id) {
                if let Ok(net) = Net::from_record(n) {
                    out.insert(
                        net.rec.name.clone(),
                        (ep.address, net.subnet.prefix_len(), net.gateway.to_string()),
                    );
                }
            }
        }
        Ok(out)
    }
}

/// The MAC address of a container's interface without `--mac-address`: Docker's
/// `02:42` followed by the four bytes of its IPv4 address (`02:42:0a:d6:05:02` for
/// 10.214.5.2), so one address always has one MAC, and ARP caches of peers stay right when
/// an address passes to another container.
pub fn endpoint_mac(address: Ipv4Addr) -> [u8; 6] {
    let [a, b, c, d] = address.octets();
    [0x02, 0x42, a, b, c, d]
}

/// Checks that every `-p` value parses and its host port is free right now, binding and
/// releasing the sockets: `run` calls it before creating the container, so a port in use
/// leaves no container behind. (The monitor binds for real when it starts the container.)
pub fn check_publish(publish: &[String]) -> Result<()> {
    let mut reqs = Vec::new();
    for p in publish {
        reqs.extend(port::parse_publish(p)?);
    }
    drop(port::bind_ports(&reqs)?);
    Ok(())
}

/// DNAT elements for ports published on every IPv4 address.
fn dnat_entries(
    ports: impl Iterator<Item = PublishedPort>,
    address: Ipv4Addr,
) -> Vec<nft::DnatEntry> {
    ports
        .filter(|p| p.host_ip == IpAddr::V4(Ipv4Addr::UNSPECIFIED))
        .map(|p| nft::DnatEntry {
            proto: p.proto,
            host_port: p.host_port,
            address,
            container_port: p.container_port,
        })
        .collect()
}

/// The `-p` and `-P` values of a request as port requests.
fn port_requests(req: &NetworkRequest) -> Result<Vec<PortRequest>> {
    let mut out = Vec::new();
    for p in &req.publish {
        out.extend(port::parse_publish(p)?);
    }
    if req.publish_all {
        for e in &req.exposed {
            let (p, proto) = port::parse_exposed(e)?;
            if out
                .iter()
                .any(|r| r.container_port == p && r.proto == proto)
            {
                continue;
            }
            out.push(PortRequest {
                host_ip: None,
                host_port: 0,
                host_port_end: 0,
                container_port: p,
                proto,
            });
        }
    }
    Ok(out)
}

fn validate_network_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(NetworkError::InvalidConfig(format!(
            "invalid network name {name:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )))
    }
}

/// `--dns` values as addresses; the first that is not one is refused.
fn parse_dns(values: &[String]) -> Result<Vec<IpAddr>> {
    let mut dns = Vec::new();
    for d in values {
        dns.push(d.parse().map_err(|_| berth_net::Error::InvalidValue {
            what: "--dns",
            value: d.clone(),
            reason: "expected an IP address".into(),
        })?);
    }
    Ok(dns)
}

fn nix_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

fn rfc3339(nanos: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(nanos))
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    //! Against the real kernel (root only): setup, published ports, name resolution files,
    //! conflicts and teardown, with per-test subnets and bridge names.

    use super::*;
    use berth_net::forward::PortForwarder;
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpListener, TcpStream};
    use std::time::Duration;

    #[test]
    fn ipv6_addresses_keep_the_ipv4_host_offset() {
        let s4: Ipv4Net = "10.1.2.0/24".parse().unwrap();
        let s6: Ipv6Net = "fd00:1:2::/64".parse().unwrap();
        let at = |a: &str| v6_at(&s4, &s6, a.parse().unwrap()).to_string();
        assert_eq!(at("10.1.2.1"), "fd00:1:2::1");
        assert_eq!(at("10.1.2.254"), "fd00:1:2::fe");
    }

    #[test]
    fn publish_all_adds_exposed_ports_not_already_published() {
        let req = NetworkRequest {
            publish: vec!["8080:80".into()],
            publish_all: true,
            exposed: vec!["80/tcp".into(), "53/udp".into(), "9000".into()],
            ..Default::default()
        };
        let reqs = port_requests(&req).unwrap();
        let got: Vec<(u16, u16, Proto)> = reqs
            .iter()
            .map(|r| (r.host_port, r.container_port, r.proto))
            .collect();
        assert_eq!(
            got,
            vec![
                (8080, 80, Proto::Tcp),
                (0, 53, Proto::Udp),
                (0, 9000, Proto::Tcp)
            ]
        );
        let bad = NetworkRequest {
            publish_all: true,
            exposed: vec!["80/sctp".into()],
            ..Default::default()
        };
        assert_eq!(
            port_requests(&bad).unwrap_err().kind(),
            ErrorKind::InvalidArgument
        );
        assert!(check_publish(&["nope".into()]).is_err());
    }

    fn root_or_skip(test: &str) -> bool {
        if nix_is_root() {
            return true;
        }
        if std::env::var_os("CI").is_some() {
            panic!("{test} needs root (network namespaces, bridges) and CI is set");
        }
        eprintln!("skipping {test}: needs root");
        false
    }

    fn nix_is_root() -> bool {
        std::fs::read_to_string("/proc/self/status")
            .map(|s| {
                s.lines()
                    .find(|l| l.starts_with("Uid:"))
                    .is_some_and(|l| l.split_whitespace().nth(2) == Some("0"))
            })
            .unwrap_or(false)
    }

    struct Env {
        _dir: tempfile::TempDir,
        engine: Engine,
        bridge: String,
        third: u8,
        _reservation: berth_net::test_support::Reservation,
    }

    impl Drop for Env {
        fn drop(&mut self) {
            let _ = self.engine.networks().net_ops().remove_bridge(&self.bridge);
        }
    }

    fn env(n: u8) -> Env {
        env_with(n, "")
    }

    fn env_with(n: u8, extra: &str) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let reservation = berth_net::test_support::reserve("engine");
        let third = reservation.n;
        let bridge = format!("be{third}x{n}");
        std::fs::create_dir_all(dir.path().join("root")).unwrap();
        std::fs::write(
            dir.path().join("root/berth.toml"),
            format!("[network]\nsubnet = \"10.212.{third}.0/24\"\nbridge = \"{bridge}\"\n{extra}"),
        )
        .unwrap();
        let engine = Engine::open(crate::EngineConfig {
            root: dir.path().join("root"),
            runroot: dir.path().join("run"),
        })
        .unwrap();
        Env {
            _dir: dir,
            engine,
            bridge,
            third,
            _reservation: reservation,
        }
    }

    fn id(n: u32) -> String {
        format!("{:08x}{}", n, "c".repeat(56))
    }

    /// The kernel destroys an unpinned namespace (and its veth pairs) asynchronously.
    fn link_gone(e: &Networks<'_>, name: &str) -> bool {
        for _ in 0..200 {
            if !e.net_ops().link_exists(name).unwrap() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    /// Serves `n` connections, then closes the listener (it would pin the namespace).
    fn serve(l: TcpListener, body: &'static str, n: usize) {
        std::thread::spawn(move || {
            for c in l.incoming().take(n) {
                let Ok(mut c) = c else { return };
                let mut buf = [0u8; 512];
                let _ = c.read(&mut buf);
                let _ = write!(c, "HTTP/1.0 200 OK\r\n\r\n{body}");
            }
        });
    }

    fn get(addr: SocketAddr) -> String {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        s.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn bridge_setup_publishes_resolves_and_tears_down() {
        if !root_or_skip("bridge_setup") {
            return;
        }
        let env = env(1);
        let e = &env.engine.networks();
        let a = id(1);
        let t = std::time::Instant::now();
        let net = e
            .network_setup(&NetworkRequest {
                container_id: a.clone(),
                container_name: "web".into(),
                hostname: "webhost".into(),
                publish: vec!["127.0.0.1::80".into()],
                add_hosts: vec!["db:10.1.2.3".into()],
                dns: vec!["10.0.0.53".into()],
                ..Default::default()
            })
            .unwrap();
        eprintln!("setup with bridge + 1 port: {:?}", t.elapsed());
        let ns = net.netns.clone().unwrap();
        let addr = net.addresses["bridge"];
        assert_eq!(addr.to_string(), format!("10.212.{}.2", env.third));
        let hosts = std::fs::read_to_string(&net.etc.hosts).unwrap();
        assert!(hosts.contains(&format!("{addr}\twebhost")), "{hosts}");
        assert!(hosts.contains("10.1.2.3\tdb"));
        assert_eq!(
            std::fs::read_to_string(&net.etc.resolv_conf).unwrap(),
            "nameserver 10.0.0.53\n"
        );
        let l = berth_net::ops::in_netns(&ns, || TcpListener::bind("0.0.0.0:80"))
            .unwrap()
            .unwrap();
        serve(l, "ok-a", 2);
        // Straight to the container's address over the bridge, and through the forwarder.
        assert!(get(SocketAddr::from((addr, 80))).ends_with("ok-a"));
        let host_port = net.ports[0].port.host_port;
        let ports = e.container_ports_by_id(&a).unwrap();
        assert_eq!(ports.len(), 1);
        let fwd = PortForwarder::start(net.ports, &ns).unwrap();
        assert!(get(SocketAddr::from(([127, 0, 0, 1], host_port))).ends_with("ok-a"));
        fwd.stop();
        let veth = endpoint::veth_name(&a, &e.store.resolve_network("bridge").unwrap().id);
        assert!(e.net_ops().link_exists(&veth).unwrap());
        let t = std::time::Instant::now();
        e.network_teardown(&a, true).unwrap();
        eprintln!("teardown: {:?}", t.elapsed());
        assert!(link_gone(e, &veth), "{veth} still there");
        assert!(!ns.exists());
        assert!(e.store.container_endpoints(&a).unwrap().is_empty());
        assert!(e.container_ports_by_id(&a).unwrap().is_empty());
    }

    #[test]
    fn user_network_peers_resolve_by_name_and_alias() {
        if !root_or_skip("user_network") {
            return;
        }
        let env = env(2);
        let e = &env.engine.networks();
        let nid = e
            .network_create(&NetworkCreate {
                name: "front".into(),
                subnet: Some(format!("10.213.{}.0/24", env.third)),
                ..Default::default()
            })
            .unwrap();
        let (a, b) = (id(2), id(3));
        let req = |id: &str, name: &str, aliases: Vec<String>| NetworkRequest {
            container_id: id.into(),
            container_name: name.into(),
            mode: "front".into(),
            hostname: name.into(),
            aliases,
            ..Default::default()
        };
        let na = e.network_setup(&req(&a, "alpha", vec![])).unwrap();
        let nb = e
            .network_setup(&req(&b, "beta", vec!["api".into()]))
            .unwrap();
        let ha = std::fs::read_to_string(&na.etc.hosts).unwrap();
        let ip_b = nb.addresses["front"];
        assert!(ha.contains(&format!("{ip_b}\tbeta api")), "{ha}");
        let hb = std::fs::read_to_string(&nb.etc.hosts).unwrap();
        assert!(
            hb.contains(&format!("{}\talpha", na.addresses["front"])),
            "{hb}"
        );
        // A reaches B by address from inside A's namespace.
        let nsb = nb.netns.clone().unwrap();
        let l = berth_net::ops::in_netns(&nsb, || TcpListener::bind("0.0.0.0:8080"))
            .unwrap()
            .unwrap();
        serve(l, "from-beta", 1);
        let nsa = na.netns.clone().unwrap();
        let got =
            berth_net::ops::in_netns(&nsa, move || get(SocketAddr::from((ip_b, 8080)))).unwrap();
        assert!(got.ends_with("from-beta"));
        // rm of B takes it out of A's hosts file.
        e.network_teardown(&b, true).unwrap();
        let ha = std::fs::read_to_string(&na.etc.hosts).unwrap();
        assert!(!ha.contains("beta"), "{ha}");
        e.network_teardown(&a, true).unwrap();
        assert_eq!(e.network_remove(&nid).unwrap(), "front");
        assert!(!e
            .net_ops()
            .link_exists(&endpoint::bridge_name(&nid))
            .unwrap());
    }

    #[test]
    fn port_in_use_fails_before_anything_is_made() {
        if !root_or_skip("port_in_use") {
            return;
        }
        let env = env(3);
        let e = &env.engine.networks();
        let taken = TcpListener::bind("0.0.0.0:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let c = id(4);
        let err = e
            .network_setup(&NetworkRequest {
                container_id: c.clone(),
                publish: vec![format!("{port}:80")],
                hostname: "x".into(),
                ..Default::default()
            })
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Conflict);
        assert!(err.to_string().contains("already in use"), "{err}");
        assert!(!e.netns_path(&c).exists());
        assert!(e.store.container_endpoints(&c).unwrap().is_empty());
    }

    #[test]
    fn twenty_parallel_setups_get_distinct_addresses_and_leave_nothing() {
        if !root_or_skip("parallel") {
            return;
        }
        let env = env(4);
        let cfg = env.engine.config().clone();
        let t = std::time::Instant::now();
        let hs: Vec<_> = (0..20u32)
            .map(|i| {
                let cfg = cfg.clone();
                std::thread::spawn(move || {
                    let e = Engine::open(cfg).unwrap();
                    let n = e
                        .networks()
                        .network_setup(&NetworkRequest {
                            container_id: id(100 + i),
                            hostname: format!("c{i}"),
                            publish: vec!["127.0.0.1::80".into()],
                            ..Default::default()
                        })
                        .unwrap();
                    n.addresses["bridge"]
                })
            })
            .collect();
        let mut addrs: Vec<Ipv4Addr> = hs.into_iter().map(|h| h.join().unwrap()).collect();
        eprintln!("20 parallel setups: {:?}", t.elapsed());
        addrs.sort();
        addrs.dedup();
        assert_eq!(addrs.len(), 20);
        let e = &env.engine.networks();
        let bridge = e.store.resolve_network("bridge").unwrap().id;
        for i in 0..20 {
            e.network_teardown(&id(100 + i), true).unwrap();
        }
        for i in 0..20 {
            let veth = endpoint::veth_name(&id(100 + i), &bridge);
            assert!(link_gone(e, &veth), "{veth} still there");
        }
        assert!(e.store.all_endpoints().unwrap().is_empty());
        assert!(e.store.ports(None).unwrap().is_empty());
        assert_eq!(
            std::fs::read_dir(cfg.runroot.join("netns"))
                .unwrap()
                .count(),
            0
        );
    }

    fn nft_list(what: &str) -> String {
        let out = std::process::Command::new("nft")
            .args([
                "list",
                what,
                "inet",
                "berth",
                match what {
                    "map" => "dnat_tcp",
                    _ => "subnets",
                },
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    #[test]
    fn nftables_rules_are_installed_and_removed() {
        if !root_or_skip("nftables") {
            return;
        }
        if std::process::Command::new("nft")
            .arg("--version")
            .output()
            .is_err()
        {
            assert!(
                std::env::var_os("CI").is_none(),
                "nft missing (scripts/install-test-deps.sh)"
            );
            eprintln!("skipping nftables: nft missing");
            return;
        }
        /// Puts the host back even when an assertion fails: ip_forward and the table.
        struct Restore {
            forward: String,
            table_before: bool,
        }
        impl Drop for Restore {
            fn drop(&mut self) {
                if !self.table_before {
                    let _ = NftFirewall.apply("delete table inet berth\n");
                }
                let _ = std::fs::write("/proc/sys/net/ipv4/ip_forward", self.forward.trim());
            }
        }
        let _restore = Restore {
            forward: std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
            table_before: NftFirewall.table_exists(nft::FAMILY).unwrap(),
        };
        let env = env_with(5, "nftables = true\n");
        let e = &env.engine.networks();
        let free = TcpListener::bind("0.0.0.0:0").unwrap();
        let port = free.local_addr().unwrap().port();
        drop(free);
        let c = id(200);
        let net = e
            .network_setup(&NetworkRequest {
                container_id: c.clone(),
                hostname: "n".into(),
                publish: vec![format!("{port}:80")],
                ..Default::default()
            })
            .unwrap();
        let addr = net.addresses["bridge"];
        let map = nft_list("map");
        assert!(map.contains(&format!("{port} : {addr} . 80")), "{map}");
        let subnet = format!("10.212.{}.0/24", env.third);
        assert!(nft_list("set").contains(&subnet));
        drop(net);
        e.network_teardown(&c, true).unwrap();
        assert!(
            !nft_list("map").contains(&format!("{port} :")),
            "DNAT element left"
        );
        // The test bridge's elements go; `_restore` puts back the table and ip_forward.
        let subnet: Ipv4Net = subnet.parse().unwrap();
        nft::apply_each(
            &NftFirewall,
            &nft::remove_bridge(
                &nft::BridgeNet {
                    bridge: &env.bridge,
                    subnet: &subnet,
                    subnet6: None,
                    internal: false,
                },
                &[],
            ),
        );
    }
}
