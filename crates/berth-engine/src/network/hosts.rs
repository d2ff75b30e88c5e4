//! The hosts files of containers on name-resolving networks: each lists its running peers.

use std::net::{IpAddr, Ipv4Addr};

use berth_net::etc::{self, HostEntry};

use super::net::Net;
use super::{Networks, Result};

impl Networks<'_> {
    /// Host entries for the running peers of `id` on its name-resolving networks (a stopped
    /// container's name resolves nowhere, as with Docker's DNS).
    pub(super) fn peers_of(&self, id: &str, nets: &[Net]) -> Result<Vec<HostEntry>> {
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
    pub(super) fn sync_hosts(&self, network_id: &str, skip: Option<&str>) -> Result<()> {
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
}
