//! Published ports: the rows of a container (`berth port`) and the check `run` makes
//! before it creates a container.

use berth_net::port::{self, Proto, PublishedPort};

use super::{Networks, Result};

impl Networks<'_> {
    /// The published ports of a container (`berth port`), optionally only those of one
    /// container port (`80`, `80/udp`).
    pub fn container_ports(
        &self,
        container: &str,
        filter: Option<&str>,
    ) -> Result<Vec<PublishedPort>> {
        let c = self.store.resolve_container(container)?;
        let want = match filter {
            Some(f) => Some(port::parse_exposed(f)?),
            None => None,
        };
        let mut out = self.container_ports_by_id(&c.id)?;
        if let Some((p, proto)) = want {
            out.retain(|pp| pp.container_port == p && pp.proto == proto);
        }
        Ok(out)
    }

    /// The published ports recorded for a container ID (no name resolution).
    pub fn container_ports_by_id(&self, container_id: &str) -> Result<Vec<PublishedPort>> {
        let mut out = Vec::new();
        for r in self.store.ports(Some(container_id))? {
            let proto = if r.proto == "udp" {
                Proto::Udp
            } else {
                Proto::Tcp
            };
            if let Ok(host_ip) = r.host_ip.parse() {
                out.push(PublishedPort {
                    host_ip,
                    host_port: r.host_port,
                    container_port: r.container_port,
                    proto,
                });
            }
        }
        Ok(out)
    }
}

/// Checks that every `-p` value parses and its host port is free right now, binding and
/// releasing the sockets: `run` calls it before creating the container, so a port in use
/// leaves no container behind. (The monitor binds for real when it starts the container.)
pub fn check_publish(publish: &[String]) -> Result<()> {
    let mut reqs = Vec::new();
    for p in publish {
        reqs.extend(port::parse_publish(p)?);
    }
    drop(port::bind_ports(&reqs)?);
    Ok(())
}
