//! What `network inspect` and a container's `inspect` show of networks, in Docker's shape.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use berth_net::config as netconfig;
use berth_store::networks::{EndpointRecord, NetworkRecord};
use ipnet::Ipv4Net;

use super::net::Net;
use super::{Networks, Result};

impl Networks<'_> {
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
    pub(super) fn configured_mac(
        &self,
        container_id: &str,
        net: &NetworkRecord,
    ) -> Option<[u8; 6]> {
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
    pub(super) fn endpoint_mac_shown(
        &self,
        ep: &EndpointRecord,
        net: &NetworkRecord,
    ) -> Option<[u8; 6]> {
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

pub(super) fn rfc3339(nanos: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(nanos))
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}
