//! [`Net`]: a stored bridge network with its addresses parsed, as setup, teardown, the
//! hosts files and the firewall use it.

use std::net::{Ipv4Addr, Ipv6Addr};

use berth_net::nft;
use berth_net::ops::{BridgeSpec, Ipv6Interface};
use berth_store::networks::NetworkRecord;
use ipnet::{Ipv4Net, Ipv6Net};

use super::{NetworkError, Result};

/// The address at `v4`'s host offset in `subnet4`, within `subnet6`.
pub(super) fn v6_at(subnet4: &Ipv4Net, subnet6: &Ipv6Net, v4: Ipv4Addr) -> Ipv6Addr {
    let offset = u32::from(v4).wrapping_sub(u32::from(subnet4.network()));
    Ipv6Addr::from(u128::from(subnet6.network()) | u128::from(offset))
}

pub(super) fn parse_v4(what: &str, s: &str) -> Result<Ipv4Addr> {
    s.parse()
        .map_err(|_| NetworkError::InvalidConfig(format!("{what} {s:?} is not an IPv4 address")))
}

/// A stored bridge network with its addresses parsed.
pub(super) struct Net {
    /// The stored row.
    pub(super) rec: NetworkRecord,
    /// Its IPv4 subnet.
    pub(super) subnet: Ipv4Net,
    /// Its IPv4 gateway (the bridge's address).
    pub(super) gateway: Ipv4Addr,
    /// The IPv6 subnet and gateway of a network made with `--ipv6`.
    pub(super) v6: Option<(Ipv6Net, Ipv6Addr)>,
}

impl Net {
    pub(super) fn from_record(rec: NetworkRecord) -> Result<Self> {
        let subnet: Ipv4Net = rec
            .subnet
            .parse()
            .map_err(|_| NetworkError::Damaged(rec.name.clone(), "subnet".into()))?;
        let gateway = parse_v4("gateway", &rec.gateway)?;
        let v6 = if rec.subnet6.is_empty() {
            None
        } else {
            let s: Ipv6Net = rec
                .subnet6
                .parse()
                .map_err(|_| NetworkError::Damaged(rec.name.clone(), "subnet6".into()))?;
            let g: Ipv6Addr = rec
                .gateway6
                .parse()
                .map_err(|_| NetworkError::Damaged(rec.name.clone(), "gateway6".into()))?;
            Some((s, g))
        };
        Ok(Net {
            rec,
            subnet,
            gateway,
            v6,
        })
    }

    /// The IPv6 address that goes with IPv4 address `v4` on this network: the same host
    /// offset in the IPv6 subnet, so IPv4 allocation makes IPv6 addresses unique too.
    pub(super) fn v6_of(&self, v4: Ipv4Addr) -> Option<Ipv6Addr> {
        let (s, _) = self.v6?;
        Some(v6_at(&self.subnet, &s, v4))
    }

    /// A container's IPv6 interface for IPv4 address `v4` (the default route on its
    /// first network, unless the network is internal).
    pub(super) fn endpoint_v6(&self, v4: Ipv4Addr, first: bool) -> Option<Ipv6Interface> {
        let (s, gw) = self.v6?;
        Some(Ipv6Interface {
            address: v6_at(&self.subnet, &s, v4),
            prefix_len: s.prefix_len(),
            default_gateway: (first && !self.rec.internal).then_some(gw),
        })
    }

    /// The bridge; `forwarding` (routing beyond it) only with nftables, whose rules then
    /// keep berth's networks apart.
    pub(super) fn bridge_spec(&self, forwarding: bool) -> BridgeSpec {
        BridgeSpec {
            name: self.rec.bridge.clone(),
            subnet: self.subnet,
            gateway: self.gateway,
            forwarding,
            ipv6: self.v6.map(|(s, gw)| Ipv6Interface {
                address: gw,
                prefix_len: s.prefix_len(),
                default_gateway: None,
            }),
        }
    }

    /// The network as berth's nftables rules see it.
    pub(super) fn bridge_net(&self) -> nft::BridgeNet<'_> {
        nft::BridgeNet {
            bridge: &self.rec.bridge,
            subnet: &self.subnet,
            subnet6: self.v6.as_ref().map(|(s, _)| s),
            internal: self.rec.internal,
        }
    }

    /// The default bridge resolves no names (as Docker's); user-defined networks do.
    pub(super) fn resolves_names(&self) -> bool {
        self.rec.name != "bridge"
    }
}
