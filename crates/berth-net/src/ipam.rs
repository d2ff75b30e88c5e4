//! IP address management, the pure part: which address of a subnet is free. The store keeps
//! the allocations and runs this inside one SQLite transaction, so parallel `run`s never
//! receive the same address.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::error::{Error, Result};

/// The lowest address of `subnet` that is not the network, broadcast or gateway address and
/// not in `used`.
pub fn next_free(
    subnet: &Ipv4Net,
    gateway: Ipv4Addr,
    used: &HashSet<Ipv4Addr>,
) -> Result<Ipv4Addr> {
    let net = u32::from(subnet.network());
    let bcast = u32::from(subnet.broadcast());
    let gw = u32::from(gateway);
    for a in net.saturating_add(1)..bcast {
        if a == gw {
            continue;
        }
        let ip = Ipv4Addr::from(a);
        if !used.contains(&ip) {
            return Ok(ip);
        }
    }
    Err(Error::SubnetExhausted {
        subnet: subnet.to_string(),
    })
}

/// Picks a /24 for a new user-defined network from 10.89.0.0/16 that overlaps none of `taken`.
pub fn next_free_subnet(taken: &[Ipv4Net]) -> Result<Ipv4Net> {
    for i in 0..=255u8 {
        let cand = Ipv4Net::new(Ipv4Addr::new(10, 89, i, 0), 24).expect("valid /24");
        if !taken.iter().any(|t| overlaps(t, &cand)) {
            return Ok(cand);
        }
    }
    Err(Error::SubnetExhausted {
        subnet: "10.89.0.0/16".into(),
    })
}

/// The first subnet of `pools` (in order) that overlaps none of `taken`.
pub fn first_free_in_pools(
    pools: &[crate::config::AddressPool],
    taken: &[Ipv4Net],
) -> Result<Ipv4Net> {
    pools
        .iter()
        .flat_map(|p| p.subnets())
        .find(|cand| !taken.iter().any(|t| overlaps(t, cand)))
        .ok_or_else(|| Error::SubnetExhausted {
            subnet: pools
                .iter()
                .map(|p| p.base.to_string())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// Whether two subnets share an address.
pub fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn skips_gateway_and_used() {
        let net: Ipv4Net = "10.88.0.0/16".parse().unwrap();
        let gw = Ipv4Addr::new(10, 88, 0, 1);
        let mut used = HashSet::new();
        assert_eq!(
            next_free(&net, gw, &used).unwrap(),
            Ipv4Addr::new(10, 88, 0, 2)
        );
        used.insert(Ipv4Addr::new(10, 88, 0, 2));
        assert_eq!(
            next_free(&net, gw, &used).unwrap(),
            Ipv4Addr::new(10, 88, 0, 3)
        );
    }

    #[test]
    fn exhausts() {
        let net: Ipv4Net = "10.0.0.0/30".parse().unwrap();
        let gw = Ipv4Addr::new(10, 0, 0, 1);
        let used = [Ipv4Addr::new(10, 0, 0, 2)].into_iter().collect();
        assert!(next_free(&net, gw, &used).is_err());
    }

    #[test]
    fn subnets_do_not_overlap() {
        let taken: Vec<Ipv4Net> = vec![
            "10.89.0.0/24".parse().unwrap(),
            "10.0.0.0/8".parse().unwrap(),
        ];
        assert!(next_free_subnet(&taken).is_err());
        let taken: Vec<Ipv4Net> = vec!["10.89.0.0/24".parse().unwrap()];
        assert_eq!(
            next_free_subnet(&taken).unwrap().to_string(),
            "10.89.1.0/24"
        );
    }
}
