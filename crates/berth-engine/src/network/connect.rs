//! `network connect` and `network disconnect`: a container's endpoint on one more network,
//! or one less.

use std::net::Ipv4Addr;

use berth_net::endpoint;
use berth_net::ops::{EndpointSpec, NetOps};

use super::inspect::endpoint_mac;
use super::net::{parse_v4, Net};
use super::{NetworkError, NetworkRequest, Networks, Result};

impl Networks<'_> {
    /// `network connect [--ip IP]`: records an endpoint for the container (at `ip`, checked
    /// as `run --ip`) and, when it is running, adds the interface to its namespace now. A
    /// stopped container gets an address when it starts (the `ip` one, which is not held
    /// until then: as with Docker, that start fails if another container took it).
    pub fn network_connect(
        &self,
        network: &str,
        container: &str,
        aliases: &[String],
        ip: Option<Ipv4Addr>,
    ) -> Result<()> {
        self.ensure_predefined()?;
        let n = self.store.resolve_network(network)?;
        let c = self.store.resolve_container(container)?;
        if n.driver != "bridge" {
            return Err(NetworkError::HostOrNone);
        }
        let current = self.store.container_endpoints(&c.id)?;
        if current.iter().any(|e| e.network_id == n.id) {
            return Err(NetworkError::AlreadyConnected {
                container: c.name,
                network: n.name,
            });
        }
        let ns = self.netns_path(&c.id);
        let running = ns.exists();
        if !running && current.is_empty() && c.status != "created" && c.status != "exited" {
            return Err(NetworkError::HostOrNone);
        }
        let net = Net::from_record(n)?;
        let _lock = self.network_lock()?;
        let req = NetworkRequest {
            container_id: c.id.clone(),
            container_name: c.name.clone(),
            aliases: aliases.to_vec(),
            ..Default::default()
        };
        let ep = self.allocate(&req, &net, current.len(), ip, !running)?;
        if running {
            let address = parse_v4("address", &ep.address)?;
            let spec = EndpointSpec {
                host_ifname: ep.host_ifname.clone(),
                container_ifname: ep.container_ifname.clone(),
                address,
                prefix_len: net.subnet.prefix_len(),
                default_gateway: None,
                mac: Some(endpoint_mac(address)),
                ipv6: net.endpoint_v6(address, false),
            };
            let nft = self.firewall_on(true)?;
            // The network's isolation pairs before its bridge forwards (a network first used
            // through `connect` has had none yet).
            let attached = if nft {
                self.firewall_prepare(std::slice::from_ref(&net))
            } else {
                Ok(())
            };
            if let Err(e) = attached.and_then(|()| {
                endpoint::connect(self.net_ops(), &ns, &net.bridge_spec(nft), &spec)
                    .map_err(Into::into)
            }) {
                let _ = self.store.release_endpoints(&c.id, Some(&net.rec.id));
                return Err(e);
            }
        }
        self.sync_hosts(&net.rec.id, None)?;
        Ok(())
    }

    /// `network disconnect`: removes the container's endpoint on the network and frees its
    /// address.
    pub fn network_disconnect(&self, network: &str, container: &str) -> Result<()> {
        let n = self.store.resolve_network(network)?;
        let c = self.store.resolve_container(container)?;
        let eps = self.store.container_endpoints(&c.id)?;
        let Some(ep) = eps.iter().find(|e| e.network_id == n.id) else {
            return Err(NetworkError::NotConnected {
                container: c.name,
                network: n.name,
            });
        };
        let _lock = self.network_lock()?;
        self.net_ops().remove_endpoint(&ep.host_ifname)?;
        self.store.release_endpoints(&c.id, Some(&n.id))?;
        self.sync_hosts(&n.id, None)?;
        Ok(())
    }
}
