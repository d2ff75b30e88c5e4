//! berth's nftables rules for its networks (see [`berth_net::nft`]): the table, each
//! network's elements, DNAT of published ports, IPv4 forwarding.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use berth_net::nft::{self, Firewall, NftFirewall};
use berth_net::ops::NetOps;
use berth_net::port::{BoundPort, PublishedPort};
use berth_store::networks::EndpointRecord;

use super::net::Net;
use super::{Networks, Result};

impl Networks<'_> {
    pub(super) fn firewall(&self) -> &'static NftFirewall {
        static FW: NftFirewall = NftFirewall;
        &FW
    }

    /// Whether berth's rules apply: `nftables` in berth.toml (on unless set to false) and
    /// the `nft` tool installed. Without the tool berth falls back to bridges that do not
    /// forward (isolated, no outbound NAT) and says so once per process (`warn`).
    pub(super) fn firewall_on(&self, warn: bool) -> Result<bool> {
        if !self.net_config()?.nftables {
            return Ok(false);
        }
        if self.firewall().available() {
            return Ok(true);
        }
        static SAID: std::sync::Once = std::sync::Once::new();
        if warn {
            SAID.call_once(|| {
                eprintln!(
                    "berth: nft (nftables) is not installed: containers on bridge networks get no \
                     outbound NAT and their bridges do not forward; install nftables, or set \
                     nftables = false under [network] in berth.toml (docs/config.md)"
                )
            });
        }
        Ok(false)
    }

    /// Before a container's interfaces are made on `nets` (caller holds the network lock):
    /// berth's table (made when missing, with every element this root knows), the elements
    /// of each network whose bridge does not exist yet (so a bridge never forwards before
    /// its isolation is in place), IPv4 forwarding. On the common path, the table and the
    /// bridges in place, this is one netlink query and no `nft` run.
    pub(super) fn firewall_prepare(&self, nets: &[Net]) -> Result<()> {
        let fw = self.firewall();
        let _host = nft::lock()?;
        let made = nft::ensure_table(fw, || self.nft_elements())?;
        let mut script = String::new();
        if !made {
            for n in nets {
                if !self.net_ops().link_exists(&n.rec.bridge)? {
                    script.push_str(&nft::add_bridge(&n.bridge_net()));
                }
            }
        }
        if !script.is_empty() {
            fw.apply(&script)?;
        }
        if (made || !script.is_empty()) && fw.forward_drops() {
            static SAID: std::sync::Once = std::sync::Once::new();
            SAID.call_once(|| {
                eprintln!(
                    "berth: warning: the host's firewall drops forwarded traffic (table ip filter, \
                     chain FORWARD, policy drop; Docker and iptables setups make it so): containers' \
                     outbound traffic will not pass until it accepts berth's bridges (see \
                     docs/config.md, [network])"
                )
            });
        }
        nft::enable_ip_forward()?;
        Ok(())
    }

    /// After a container's interfaces are made: DNAT of the ports it publishes on every
    /// address (IPv4) to its first network's address.
    pub(super) fn firewall_publish(
        &self,
        nets: &[Net],
        addresses: &BTreeMap<String, Ipv4Addr>,
        ports: &[BoundPort],
    ) -> Result<()> {
        let Some(addr) = nets.first().and_then(|n| addresses.get(&n.rec.name)) else {
            return Ok(());
        };
        let entries = dnat_entries(ports.iter().map(|p| p.port), *addr);
        if entries.is_empty() {
            return Ok(());
        }
        self.firewall().apply(&nft::add_dnat(&entries))?;
        Ok(())
    }

    /// After network `net`'s bridge is gone: its elements leave berth's table, with those of
    /// bridges that no longer exist; the table goes with the last bridge. Keeps going past
    /// failures (logged).
    pub(super) fn firewall_forget(&self, net: &Net) {
        let fw = self.firewall();
        let _host = nft::lock();
        // An older table goes first, so nothing of this network stays in it.
        if let Err(e) = nft::replace_older_table(fw, || self.nft_elements()) {
            log::warn!("nftables: {e}");
        }
        nft::apply_each(fw, &nft::remove_bridge(&net.bridge_net()));
        let host = self.net_ops().host_ipv4_subnets(None).unwrap_or_default();
        let ops = self.net_ops();
        if let Err(e) = nft::prune_table(fw, |b| ops.link_exists(b).unwrap_or(true), &host) {
            log::warn!("nftables: {e}");
        }
    }

    /// The elements of every bridge network and of every running container's published
    /// ports, for a table made anew ([`nft::ensure_table`]). Caller holds the network lock.
    pub(super) fn nft_elements(&self) -> String {
        let mut script = String::new();
        for rec in self.store.list_networks().unwrap_or_default() {
            if rec.bridge.is_empty() {
                continue;
            }
            if let Ok(n) = Net::from_record(rec) {
                script.push_str(&nft::add_bridge(&n.bridge_net()));
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
}

/// DNAT elements for ports published on every IPv4 address.
pub(super) fn dnat_entries(
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
