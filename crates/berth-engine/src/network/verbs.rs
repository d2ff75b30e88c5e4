//! The `network` verbs that manage networks themselves: create, ls, rm, prune (inspect is
//! in [`super::inspect`], connect and disconnect in [`super::connect`]).

use std::collections::HashSet;

use std::net::{Ipv4Addr, Ipv6Addr};

use berth_net::config as netconfig;
use berth_net::endpoint;
use berth_net::ops::NetOps;
use berth_store::networks::{NetworkRecord, NetworkStoreError};
use ipnet::{Ipv4Net, Ipv6Net};

use super::net::{parse_v4, v6_at, Net};
use super::{
    now_nanos, random_id, NetworkCreate, NetworkError, NetworkSummary, Networks, Result, PREDEFINED,
};

impl Networks<'_> {
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
            // Nor one on the host (a route of its own, another engine's bridge).
            None => berth_net::ipam::next_free_subnet(&self.taken_subnets(&existing, None))?,
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
    pub(super) fn ipv6_subnet(
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
        self.take_down_bridge(&n)?;
        Ok(n.name)
    }

    /// Deletes a network's bridge interface (when it has one), then its elements in berth's
    /// table, which goes with the last bridge. Caller holds the network lock.
    fn take_down_bridge(&self, n: &NetworkRecord) -> Result<()> {
        if n.bridge.is_empty() {
            return Ok(());
        }
        let removed = self.net_ops().remove_bridge(&n.bridge);
        if self.firewall_on(false)? {
            if let Ok(net) = Net::from_record(n.clone()) {
                self.firewall_forget(&net);
            }
        }
        Ok(removed?)
    }

    /// Removes every user-defined network that no container uses; returns their names.
    /// The default bridge's interface goes too when no running container is on it (it
    /// comes back at the next start), and with the last bridge berth's nftables table.
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
        if let Ok(bridge) = self.store.resolve_network("bridge") {
            let _lock = self.network_lock()?;
            let running = self
                .store
                .network_endpoints(&bridge.id)?
                .iter()
                .any(|ep| self.netns_path(&ep.container_id).exists());
            // Not while anything hangs on it: another berth root of this host may share
            // the default bridge's name, and its containers with it.
            // The kernel removes a stopped container's veth with its namespace, a moment
            // later: give it up to a second.
            let ports = || self.net_ops().bridge_ports(&bridge.bridge).unwrap_or(1);
            let mut attached = ports();
            for _ in 0..20 {
                if running || attached == 0 {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
                attached = ports();
            }
            if !running
                && attached == 0
                && self.net_ops().link_exists(&bridge.bridge).unwrap_or(false)
            {
                self.take_down_bridge(&bridge)?;
            }
        }
        Ok(removed)
    }
}

pub(super) fn validate_network_name(name: &str) -> Result<()> {
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
