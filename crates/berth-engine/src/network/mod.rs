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
//!
//! Where things are, one file per seam:
//! - `verbs.rs`: `network create|ls|rm|prune`; `connect.rs`: `network connect|disconnect`;
//!   `inspect.rs`: `network inspect` and a container's `NetworkSettings`;
//! - `setup.rs`: a container's network before it starts (ports bound, namespace, interfaces,
//!   addresses, /etc files); `teardown.rs`: its undoing at stop and rm;
//! - `hosts.rs`: peers' hosts files on name-resolving networks;
//! - `firewall.rs`: berth's nftables table (isolation, masquerade, DNAT of published ports);
//! - `ports.rs`: published-port rows and `run`'s check of `-p` values;
//! - `model.rs`: requests and results; `net.rs`: a stored network with parsed addresses;
//!   `error.rs`: [`NetworkError`].

/// berth's network crate, for callers (tests, tools) that need its helpers directly.
pub use berth_net;

mod connect;
mod error;
mod firewall;
mod hosts;
mod inspect;
mod model;
mod net;
mod ports;
mod setup;
mod teardown;
mod verbs;

pub use error::NetworkError;
pub use inspect::endpoint_mac;
pub use model::{ContainerNetwork, EtcFiles, NetworkCreate, NetworkRequest, NetworkSummary};
pub use ports::check_publish;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use berth_net::config::NetConfig;
use berth_net::endpoint;
use berth_net::etc::FileLock;
use berth_net::ops::{LinuxNetOps, NetOps};
use berth_store::networks::NetworkRecord;

use crate::Engine;
use error::Result;

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
        let existing = self.store.list_networks()?;
        let have: HashSet<&str> = existing.iter().map(|n| n.name.as_str()).collect();
        if !have.contains("bridge") {
            // The configured subnet, else the first free one of the pool: on no host
            // interface or route, and no other berth network's. Stored, so it stays.
            let subnet = match cfg.subnet {
                Some(s) => s,
                None => {
                    let _lock = self.network_lock()?;
                    // The bridge may exist already, the default bridge of another berth
                    // root of this host sharing its name: its subnet then, unless something
                    // else has it too (one interface, one subnet).
                    let taken = self.taken_subnets(&existing, Some(&cfg.bridge));
                    let own = self
                        .net_ops()
                        .link_ipv4_subnets(&cfg.bridge)
                        .unwrap_or_default();
                    match own
                        .into_iter()
                        .find(|s| !taken.iter().any(|t| berth_net::ipam::overlaps(t, s)))
                    {
                        Some(s) => s,
                        None => cfg.default_subnet(&taken)?,
                    }
                }
            };
            let mut b = base("bridge", "bridge");
            b.bridge = cfg.bridge.clone();
            b.subnet = subnet.to_string();
            b.gateway = berth_net::config::first_host(&subnet).to_string();
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

    /// The IPv4 subnets a new network must not overlap: those of berth's networks
    /// (`existing`) and those in use on the host (its addresses and routes), but link
    /// `except`'s.
    fn taken_subnets(
        &self,
        existing: &[NetworkRecord],
        except: Option<&str>,
    ) -> Vec<ipnet::Ipv4Net> {
        let mut taken: Vec<ipnet::Ipv4Net> = existing
            .iter()
            .filter_map(|n| n.subnet.parse().ok())
            .collect();
        match self.net_ops().host_ipv4_subnets(except) {
            Ok(h) => taken.extend(h),
            Err(e) => log::warn!("reading the host's subnets: {e}"),
        }
        taken
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
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
