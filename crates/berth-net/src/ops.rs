//! The operations berth-net asks of the kernel, behind a trait: [`LinuxNetOps`] does them
//! through netlink and namespaces, [`RecordingNetOps`] records them so the logic above
//! (attach, detach, rollback, cleanup) is tested without root.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ipnet::Ipv4Net;

use crate::error::{Error, Result};

/// A Linux bridge that a network's containers hang on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeSpec {
    /// Interface name (`berth0`, `br-<12 hex>`).
    pub name: String,
    /// The network's subnet.
    pub subnet: Ipv4Net,
    /// The bridge's own address, the containers' gateway.
    pub gateway: Ipv4Addr,
    /// Whether the host routes packets arriving on this bridge elsewhere (needed only for
    /// outbound traffic with nftables masquerade; off keeps networks isolated: IPv4
    /// forwarding off on the bridge, and an IPv6 policy rule `iif BRIDGE prohibit`, since
    /// IPv6 forwarding has only a host-wide switch).
    pub forwarding: bool,
    /// The bridge's IPv6 address on a network with IPv6 (`network create --ipv6`).
    pub ipv6: Option<Ipv6Interface>,
}

/// An IPv6 address with its prefix length, on a bridge or in a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Interface {
    /// The address.
    pub address: Ipv6Addr,
    /// Prefix length of the subnet.
    pub prefix_len: u8,
    /// In a container on its first network: the default route through this gateway.
    pub default_gateway: Option<Ipv6Addr>,
}

/// One container's interface on one network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointSpec {
    /// Host end of the veth pair (on the bridge).
    pub host_ifname: String,
    /// Name inside the container (`eth0`, `eth1`, ...).
    pub container_ifname: String,
    /// The container's address.
    pub address: Ipv4Addr,
    /// Prefix length of the subnet.
    pub prefix_len: u8,
    /// Default route through this gateway, when this is the container's first network.
    pub default_gateway: Option<Ipv4Addr>,
    /// The container end's MAC address (`--mac-address`); `None`: the kernel's random one.
    pub mac: Option<[u8; 6]>,
    /// The container's IPv6 address, on a network with IPv6.
    pub ipv6: Option<Ipv6Interface>,
}

/// The kernel operations of berth-net. Implementations are idempotent where the names say
/// `ensure`/`remove` (a missing thing to remove is not an error).
pub trait NetOps: Send + Sync {
    /// Creates a network namespace pinned at `path`, with `lo` up.
    fn create_netns(&self, path: &Path) -> Result<()>;
    /// Unpins and removes the namespace at `path`.
    fn remove_netns(&self, path: &Path) -> Result<()>;
    /// Creates the bridge if missing, with its address, up.
    fn ensure_bridge(&self, bridge: &BridgeSpec) -> Result<()>;
    /// Deletes a bridge.
    fn remove_bridge(&self, name: &str) -> Result<()>;
    /// Creates the veth pair of an endpoint, the peer inside the namespace at `netns`,
    /// with its address and route. On failure nothing of it is left.
    fn add_endpoint(&self, netns: &Path, bridge: &BridgeSpec, ep: &EndpointSpec) -> Result<()>;
    /// Deletes the host end of an endpoint (the peer goes with it).
    fn remove_endpoint(&self, host_ifname: &str) -> Result<()>;
    /// Whether a link of that name exists on the host.
    fn link_exists(&self, name: &str) -> Result<bool>;
    /// The IPv4 subnets in use on the host: its interfaces' addresses with their prefixes
    /// and its routes' destinations (not the default route), but none of link `except`.
    fn host_ipv4_subnets(&self, except: Option<&str>) -> Result<Vec<Ipv4Net>>;
    /// The IPv4 subnets of the addresses on link `name` (none when it does not exist).
    fn link_ipv4_subnets(&self, name: &str) -> Result<Vec<Ipv4Net>>;
    /// How many interfaces are attached to bridge `name` (0 when it does not exist).
    fn bridge_ports(&self, name: &str) -> Result<usize>;
}

pub use crate::sys::linux::LinuxNetOps;

/// Runs `f` on a new thread that has entered the network namespace at `path` (a pinned
/// namespace file or `/proc/PID/ns/net`) and returns its result. Sockets `f` creates stay
/// in that namespace. Only that thread moves; the caller stays where it is.
pub fn in_netns<T: Send>(path: &Path, f: impl FnOnce() -> T + Send) -> Result<T> {
    crate::sys::in_netns(path, || Ok(f()))
}

/// One recorded call of [`RecordingNetOps`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetCall {
    /// `create_netns(path)`.
    CreateNetns(PathBuf),
    /// `remove_netns(path)`.
    RemoveNetns(PathBuf),
    /// `ensure_bridge(name)`.
    EnsureBridge(String),
    /// `remove_bridge(name)`.
    RemoveBridge(String),
    /// `add_endpoint(netns, bridge, host_ifname, address)`.
    AddEndpoint(PathBuf, String, String, Ipv4Addr),
    /// `remove_endpoint(host_ifname)`.
    RemoveEndpoint(String),
}

/// A fake that records every call and can be told to fail one kind of call.
#[derive(Debug, Default)]
pub struct RecordingNetOps {
    calls: Mutex<Vec<NetCall>>,
    links: Mutex<Vec<String>>,
    fail_add_endpoint: Mutex<bool>,
    host_subnets: Mutex<Vec<Ipv4Net>>,
}

impl RecordingNetOps {
    /// A fake with nothing recorded.
    pub fn new() -> Self {
        Self::default()
    }

    /// The calls so far, in order.
    pub fn calls(&self) -> Vec<NetCall> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// Links that exist in the fake's world (bridges and host veth ends).
    pub fn links(&self) -> Vec<String> {
        self.links.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// The subnets `host_ipv4_subnets` reports from now on.
    pub fn set_host_subnets(&self, subnets: Vec<Ipv4Net>) {
        if let Ok(mut h) = self.host_subnets.lock() {
            *h = subnets;
        }
    }

    /// Makes the next `add_endpoint` calls fail with EEXIST.
    pub fn fail_add_endpoint(&self, fail: bool) {
        if let Ok(mut f) = self.fail_add_endpoint.lock() {
            *f = fail;
        }
    }

    fn record(&self, c: NetCall) {
        if let Ok(mut calls) = self.calls.lock() {
            calls.push(c);
        }
    }

    fn add_link(&self, name: &str) {
        if let Ok(mut l) = self.links.lock() {
            if !l.iter().any(|x| x == name) {
                l.push(name.to_string());
            }
        }
    }

    fn del_link(&self, name: &str) {
        if let Ok(mut l) = self.links.lock() {
            l.retain(|x| x != name);
        }
    }
}

impl NetOps for RecordingNetOps {
    fn create_netns(&self, path: &Path) -> Result<()> {
        self.record(NetCall::CreateNetns(path.to_path_buf()));
        Ok(())
    }
    fn remove_netns(&self, path: &Path) -> Result<()> {
        self.record(NetCall::RemoveNetns(path.to_path_buf()));
        Ok(())
    }
    fn ensure_bridge(&self, bridge: &BridgeSpec) -> Result<()> {
        self.record(NetCall::EnsureBridge(bridge.name.clone()));
        self.add_link(&bridge.name);
        Ok(())
    }
    fn remove_bridge(&self, name: &str) -> Result<()> {
        self.record(NetCall::RemoveBridge(name.to_string()));
        self.del_link(name);
        Ok(())
    }
    fn add_endpoint(&self, netns: &Path, bridge: &BridgeSpec, ep: &EndpointSpec) -> Result<()> {
        self.record(NetCall::AddEndpoint(
            netns.to_path_buf(),
            bridge.name.clone(),
            ep.host_ifname.clone(),
            ep.address,
        ));
        if self.fail_add_endpoint.lock().map(|f| *f).unwrap_or(false) {
            return Err(Error::Netlink {
                op: "create veth",
                target: ep.host_ifname.clone(),
                source: std::io::Error::from_raw_os_error(libc::EEXIST),
            });
        }
        self.add_link(&ep.host_ifname);
        Ok(())
    }
    fn remove_endpoint(&self, host_ifname: &str) -> Result<()> {
        self.record(NetCall::RemoveEndpoint(host_ifname.to_string()));
        self.del_link(host_ifname);
        Ok(())
    }
    fn link_exists(&self, name: &str) -> Result<bool> {
        Ok(self.links().iter().any(|l| l == name))
    }
    fn host_ipv4_subnets(&self, _except: Option<&str>) -> Result<Vec<Ipv4Net>> {
        Ok(self
            .host_subnets
            .lock()
            .map(|h| h.clone())
            .unwrap_or_default())
    }
    fn link_ipv4_subnets(&self, _name: &str) -> Result<Vec<Ipv4Net>> {
        Ok(Vec::new())
    }
    fn bridge_ports(&self, _name: &str) -> Result<usize> {
        Ok(0)
    }
}
