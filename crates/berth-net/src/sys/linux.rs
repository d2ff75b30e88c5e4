//! [`NetOps`] on Linux: rtnetlink requests, batched, and pinned network namespaces.

use std::os::fd::AsFd;
use std::path::Path;
use std::sync::Mutex;

use super::netlink::{self, Rtnl};
use crate::error::{Error, Result};
use crate::ops::{BridgeSpec, EndpointSpec, NetOps};

/// The real kernel operations. Holds one rtnetlink socket in the host namespace, opened on
/// first use.
#[derive(Default)]
pub struct LinuxNetOps {
    host: Mutex<Option<Rtnl>>,
}

impl std::fmt::Debug for LinuxNetOps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinuxNetOps")
    }
}

impl LinuxNetOps {
    /// Operations on the calling process's network namespace (the host's).
    pub fn new() -> Self {
        Self::default()
    }

    fn with_host<T>(&self, f: impl FnOnce(&mut Rtnl) -> Result<T>) -> Result<T> {
        let mut g = self.host.lock().unwrap_or_else(|p| p.into_inner());
        if g.is_none() {
            *g = Some(Rtnl::open()?);
        }
        f(g.as_mut().expect("opened above"))
    }

    fn index_of(&self, rtnl: &mut Rtnl, name: &str) -> Result<u32> {
        rtnl.link_index(name)?.ok_or_else(|| Error::LinkNotFound {
            name: name.to_string(),
        })
    }
}

impl NetOps for LinuxNetOps {
    fn create_netns(&self, path: &Path) -> Result<()> {
        super::create_netns(path)
    }

    fn remove_netns(&self, path: &Path) -> Result<()> {
        super::remove_netns(path)
    }

    fn ensure_bridge(&self, b: &BridgeSpec) -> Result<()> {
        let idx = self.with_host(|r| {
            let idx = match r.link_index(&b.name)? {
                Some(i) => i,
                None => {
                    r.batch(vec![netlink::new_bridge(&b.name)])?;
                    self.index_of(r, &b.name)?
                }
            };
            let mut reqs = vec![netlink::new_addr4(
                idx,
                &b.name,
                b.gateway,
                b.subnet.prefix_len(),
            )];
            if let Some(v6) = &b.ipv6 {
                reqs.push(netlink::new_addr6(idx, &b.name, v6.address, v6.prefix_len));
            }
            reqs.push(netlink::link_up(idx, &b.name));
            // Without forwarding the bridge's IPv6 traffic must not be routed either (the
            // host may forward IPv6 on its own); with it, nftables' pairs isolate.
            reqs.push(netlink::bridge_rule6(&b.name, !b.forwarding));
            r.batch(reqs)?;
            Ok(idx)
        })?;
        let _ = idx;
        let fwd = format!("/proc/sys/net/ipv4/conf/{}/forwarding", b.name);
        super::write_sysctl(&fwd, if b.forwarding { "1" } else { "0" })
    }

    fn remove_bridge(&self, name: &str) -> Result<()> {
        self.with_host(|r| {
            r.batch(vec![
                netlink::del_link(name),
                netlink::bridge_rule6(name, false),
            ])
        })
    }

    fn add_endpoint(&self, netns: &Path, bridge: &BridgeSpec, ep: &EndpointSpec) -> Result<()> {
        let nsfd = super::open_netns(netns)?;
        self.with_host(|r| {
            let master = self.index_of(r, &bridge.name)?;
            r.batch(vec![netlink::new_veth(
                &ep.host_ifname,
                master,
                &ep.container_ifname,
                ep.mac,
                nsfd.as_fd(),
            )])
        })?;
        let inside = super::in_netns(netns, || {
            let mut r = Rtnl::open()?;
            let idx = r
                .link_index(&ep.container_ifname)?
                .ok_or_else(|| Error::LinkNotFound {
                    name: ep.container_ifname.clone(),
                })?;
            let mut reqs = vec![
                netlink::link_up(idx, &ep.container_ifname),
                netlink::new_addr4(idx, &ep.container_ifname, ep.address, ep.prefix_len),
            ];
            if let Some(gw) = ep.default_gateway {
                reqs.push(netlink::default_route(idx, gw.into()));
            }
            if let Some(v6) = &ep.ipv6 {
                let name = &ep.container_ifname;
                reqs.push(netlink::new_addr6(idx, name, v6.address, v6.prefix_len));
                if let Some(gw) = v6.default_gateway {
                    reqs.push(netlink::default_route(idx, gw.into()));
                }
            }
            r.batch(reqs)
        });
        if let Err(e) = inside {
            let _ = self.remove_endpoint(&ep.host_ifname);
            return Err(e);
        }
        Ok(())
    }

    fn remove_endpoint(&self, host_ifname: &str) -> Result<()> {
        self.with_host(|r| r.batch(vec![netlink::del_link(host_ifname)]))
    }

    fn link_exists(&self, name: &str) -> Result<bool> {
        self.with_host(|r| Ok(r.link_index(name)?.is_some()))
    }

    fn host_ipv4_subnets(&self, except: Option<&str>) -> Result<Vec<ipnet::Ipv4Net>> {
        super::query::host_ipv4_subnets(except)
    }

    fn link_ipv4_subnets(&self, name: &str) -> Result<Vec<ipnet::Ipv4Net>> {
        let Some((index, _, _)) = super::query::links()?.into_iter().find(|l| l.1 == name) else {
            return Ok(Vec::new());
        };
        Ok(super::query::ipv4_addresses()?
            .into_iter()
            .filter(|(i, _)| *i == index)
            .map(|(_, n)| n)
            .collect())
    }

    fn bridge_ports(&self, name: &str) -> Result<usize> {
        let links = super::query::links()?;
        let Some((index, _, _)) = links.iter().find(|l| l.1 == name) else {
            return Ok(0);
        };
        Ok(links.iter().filter(|l| l.2 == Some(*index)).count())
    }
}
