//! A container's networking before it starts: its published ports bound, its namespace and
//! interfaces made, an address on each of its networks, its /etc files written.

use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};

use berth_net::endpoint;
use berth_net::etc;
use berth_net::ops::EndpointSpec;
use berth_net::port::{self, BoundPort, PortRequest};
use berth_store::networks::{EndpointRecord, NetworkRecord, NetworkStoreError, PortRecord};

use super::inspect::endpoint_mac;
use super::net::{parse_v4, Net};
use super::{ContainerNetwork, EtcFiles, NetworkError, NetworkRequest, Networks, Result};

impl Networks<'_> {
    /// Sets up a container's networking before it starts (see the module docs). On failure
    /// nothing is left: no namespace, interface, address or listener.
    pub fn network_setup(&self, req: &NetworkRequest) -> Result<ContainerNetwork> {
        let t0 = std::time::Instant::now();
        let r = self.network_setup_timed(req);
        log::debug!("network setup of {}: {:?}", req.container_id, t0.elapsed());
        r
    }

    pub(super) fn network_setup_timed(&self, req: &NetworkRequest) -> Result<ContainerNetwork> {
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
    pub(super) fn none_setup(&self, req: &NetworkRequest) -> Result<ContainerNetwork> {
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

    pub(super) fn network_setup_inner(
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
        let nft = self.firewall_on(true)?;
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
        if nft {
            self.firewall_prepare(&nets)?;
        }
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
            self.firewall_publish(&nets, &addresses, ports)?;
        }
        Ok(addresses)
    }

    /// The container's endpoint on `n`: the stored one with its address, else the stored
    /// one released at stop or a new one, with the `wanted` address (checked: a host
    /// address of the subnet, not the gateway's, not in use), else the address it last had
    /// if still free (as Docker tries), else the next free address; for a `stopped`
    /// container none yet (`network connect`: the `wanted` one is recorded and checked).
    pub(super) fn allocate(
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
}

/// The `-p` and `-P` values of a request as port requests.
pub(super) fn port_requests(req: &NetworkRequest) -> Result<Vec<PortRequest>> {
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

/// `--dns` values as addresses; the first that is not one is refused.
pub(super) fn parse_dns(values: &[String]) -> Result<Vec<IpAddr>> {
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

pub(super) fn nix_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}
