//! The container lifecycle's side of networking: what `start_process` calls before the
//! runtime launches a container ([`attach`]), what the exit path calls ([`detach`]), and the
//! `-p` values turned into Docker's `HostConfig.PortBindings` at `create` ([`port_bindings`]).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use berth_net::forward::PortForwarder;
use berth_net::port;

use crate::container::model::PortBinding;
use crate::container::options::NetworkMode;
use crate::container::{Container, Lifecycle};
use crate::network::{NetworkError, NetworkRequest, Networks};

/// A container's network while it runs. Dropping it stops the port forwarder (the
/// namespace and interfaces stay until [`detach`]).
#[derive(Debug)]
pub struct AttachedNetwork {
    /// The namespace for the spec (`None`: the host's).
    pub netns: Option<PathBuf>,
    /// `(host file, container path)` bind mounts: /etc/hosts, /etc/hostname, /etc/resolv.conf.
    pub etc_mounts: Vec<(PathBuf, String)>,
    /// The forwarder of the published ports, if any.
    pub forwarder: Option<PortForwarder>,
    /// Published ports bound but not forwarded yet ([`AttachedNetwork::start_forwarding`]).
    pending: Option<(Vec<port::BoundPort>, PathBuf, std::net::Ipv4Addr)>,
}

impl AttachedNetwork {
    /// Starts forwarding the published ports (bound by [`attach`]). The runtime launches
    /// the container first: the forwarder's threads would make its fork the slow,
    /// multi-threaded kind.
    pub fn start_forwarding(&mut self) -> Result<(), NetworkError> {
        if let Some((ports, ns, target)) = self.pending.take() {
            self.forwarder = Some(PortForwarder::start_to(ports, &ns, target)?);
        }
        Ok(())
    }
}

fn networks(lc: &Lifecycle) -> Networks<'_> {
    Networks::new(lc.store(), lc.root(), lc.runroot())
}

/// The `-p` values a container's `PortBindings` stand for.
fn publish_specs(bindings: &BTreeMap<String, Vec<PortBinding>>) -> Vec<String> {
    let mut out = Vec::new();
    for (cport, hosts) in bindings {
        for h in hosts {
            let ip = match h.host_ip.parse::<IpAddr>() {
                Ok(IpAddr::V6(v6)) => format!("[{v6}]:"),
                Ok(v4) => format!("{v4}:"),
                Err(_) => String::new(),
            };
            let (p, proto) = cport.split_once('/').unwrap_or((cport.as_str(), "tcp"));
            if ip.is_empty() && h.host_port.is_empty() {
                out.push(format!("{p}/{proto}"));
            } else {
                out.push(format!("{ip}{}:{p}/{proto}", h.host_port));
            }
        }
    }
    out
}

/// Sets up `c`'s network (namespace, interfaces, address, /etc files, bound host ports); the
/// caller starts forwarding the published ports once the container runs
/// ([`AttachedNetwork::start_forwarding`]). A port in use fails here, before the container
/// runs, and leaves nothing behind.
pub fn attach(lc: &Lifecycle, c: &Container) -> Result<AttachedNetwork, NetworkError> {
    let hc = &c.spec.host_config;
    let mode = match &c.spec.network {
        None | Some(NetworkMode::None) => "none".to_string(),
        Some(NetworkMode::Host) => "host".to_string(),
        Some(NetworkMode::Bridge(n)) => n.clone(),
    };
    let hostname = if c.spec.config.hostname.is_empty() {
        c.id().chars().take(12).collect()
    } else {
        c.spec.config.hostname.clone()
    };
    let req = NetworkRequest {
        container_id: c.id().to_string(),
        container_name: c.name().to_string(),
        mode,
        hostname,
        aliases: hc.network_aliases.clone(),
        // Checked at create; a stored value that no longer parses is ignored.
        ip: hc.ipv4_address.parse().ok(),
        mac: berth_net::config::parse_mac(&hc.mac_address).ok(),
        add_hosts: hc.extra_hosts.clone(),
        dns: hc.dns.clone(),
        dns_search: hc.dns_search.clone(),
        publish: publish_specs(&hc.port_bindings),
        publish_all: hc.publish_all_ports,
        exposed: c.spec.config.exposed_ports.keys().cloned().collect(),
    };
    let net = networks(lc).network_setup(&req)?;
    // Docker's proxy connects to the container's address; with no network (`none`) only
    // its loopback exists.
    let target = net.primary.unwrap_or(std::net::Ipv4Addr::LOCALHOST);
    let pending = match (&net.netns, net.ports.is_empty()) {
        (Some(ns), false) => Some((net.ports, ns.clone(), target)),
        _ => None,
    };
    Ok(AttachedNetwork {
        netns: net.netns,
        etc_mounts: net.etc.mounts(),
        forwarder: None,
        pending,
    })
}

/// Removes what [`attach`] made, after the container's process ended (`release` false:
/// it stays connected to its networks but its addresses return to the pool until the next
/// start) or when it is removed (`release` true). Safe to repeat, and to
/// call after a crashed monitor.
pub fn detach(lc: &Lifecycle, id: &str, release: bool) -> Result<(), NetworkError> {
    networks(lc).network_teardown(id, release)
}

/// Docker's `PortBindings` for `-p` values: `"80/tcp" -> [{HostIp, HostPort}]`.
pub fn port_bindings(
    publish: &[String],
) -> Result<BTreeMap<String, Vec<PortBinding>>, berth_net::Error> {
    let mut out: BTreeMap<String, Vec<PortBinding>> = BTreeMap::new();
    for spec in publish {
        for r in port::parse_publish(spec)? {
            let host_port = match (r.host_port, r.host_port_end) {
                (0, _) => String::new(),
                (a, b) if a == b => a.to_string(),
                (a, b) => format!("{a}-{b}"),
            };
            out.entry(format!("{}/{}", r.container_port, r.proto))
                .or_default()
                .push(PortBinding {
                    host_ip: r.host_ip.map(|i| i.to_string()).unwrap_or_default(),
                    host_port,
                });
        }
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn bindings_round_trip_to_publish_specs() {
        let b = port_bindings(&[
            "8080:80".into(),
            "127.0.0.1::53/udp".into(),
            "[::1]:9000-9010:90".into(),
            "81".into(),
        ])
        .unwrap();
        assert_eq!(b["80/tcp"][0].host_port, "8080");
        assert_eq!(b["90/tcp"][0].host_port, "9000-9010");
        let specs = publish_specs(&b);
        let mut again = Vec::new();
        for s in &specs {
            again.extend(port::parse_publish(s).unwrap());
        }
        let mut orig = Vec::new();
        for s in ["8080:80", "127.0.0.1::53/udp", "[::1]:9000-9010:90", "81"] {
            orig.extend(port::parse_publish(s).unwrap());
        }
        orig.sort_by_key(|r| (r.container_port, r.proto));
        again.sort_by_key(|r| (r.container_port, r.proto));
        assert_eq!(orig, again);
        assert!(port_bindings(&["nope".into()]).is_err());
    }
}
