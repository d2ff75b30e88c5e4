//! berth's nftables rules for its networks (see [`berth_net::nft`]): the table, each
//! network's elements, DNAT of published ports, IPv4 forwarding.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use berth_net::nft::{self, Firewall, NftFirewall};
use berth_net::port::{BoundPort, PublishedPort};
use berth_store::networks::EndpointRecord;

use super::net::Net;
use super::{Networks, Result};

impl Networks<'_> {
    pub(super) fn firewall(&self) -> &'static NftFirewall {
        static FW: NftFirewall = NftFirewall;
        &FW
    }

    /// Every bridge interface berth knows (for the isolation pairs).
    pub(super) fn all_bridges(&self) -> Vec<String> {
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
    pub(super) fn nft_attach(
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
    pub(super) fn nft_elements(&self) -> String {
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
