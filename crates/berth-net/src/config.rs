//! Network settings from `ROOT/berth.toml` (every key is documented in `docs/config.md`):
//!
//! ```toml
//! [network]
//! # subnet = "10.88.0.0/16"  # the default bridge's subnet; by default the first free one of
//! #                          # `pool` is picked at first use and kept in the store
//! pool = [ { base = "172.17.0.0/16", size = 16 } ]  # default: DEFAULT_POOL
//! bridge = "berth0"          # the default bridge's interface name
//! nftables = true            # outbound NAT, DNAT for published ports, isolation
//! ```
//!
//! Networks are isolated from each other either way: without nftables the bridges do not
//! forward (IPv4 `forwarding = 0` per bridge, an IPv6 policy rule `iif BRIDGE prohibit` per
//! bridge, as IPv6 forwarding is host-wide), so containers reach nothing beyond the host;
//! with it (the default) they forward, outbound traffic is masqueraded, and the
//! `inet berth` table drops traffic between berth's bridges, IPv4 and IPv6 (see
//! [`crate::nft`]).

use std::net::Ipv4Addr;
use std::path::Path;

use ipnet::Ipv4Net;

use crate::error::{Error, Result};

/// The subnet berth used for its default bridge before it picked one from a pool (the one
/// podman's default network uses too; a default bridge stored with it keeps it).
pub const LEGACY_SUBNET: &str = "10.88.0.0/16";

/// Where the default bridge's subnet comes from when berth.toml names none, as Docker's
/// default address pools: 172.17.0.0/16 to 172.31.0.0/16 as /16s, then 192.168.0.0/16 as
/// /20s. The first one that is on no host interface or route and that no other berth
/// network has is taken at first use.
pub const DEFAULT_POOL: &[(&str, u8)] = &[
    ("172.17.0.0/16", 16),
    ("172.18.0.0/15", 16),
    ("172.20.0.0/14", 16),
    ("172.24.0.0/13", 16),
    ("192.168.0.0/16", 20),
];
/// The default bridge's interface name.
pub const DEFAULT_BRIDGE: &str = "berth0";

/// One address pool: `base` split into subnets of prefix length `size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressPool {
    /// The pool's range.
    pub base: Ipv4Net,
    /// The prefix length of the subnets taken from it (at least `base`'s).
    pub size: u8,
}

impl AddressPool {
    /// The pool's subnets, in order.
    pub fn subnets(&self) -> impl Iterator<Item = Ipv4Net> + '_ {
        self.base.subnets(self.size).into_iter().flatten()
    }
}

/// Network settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetConfig {
    /// The default bridge network's subnet, when berth.toml names one; `None`: the first
    /// free subnet of `pool`, picked when the default bridge is first stored.
    pub subnet: Option<Ipv4Net>,
    /// Where the default bridge's subnet comes from (see [`DEFAULT_POOL`]).
    pub pool: Vec<AddressPool>,
    /// The default bridge's interface name.
    pub bridge: String,
    /// Whether berth installs its rules in its own nftables table (outbound NAT, DNAT of
    /// published ports, isolation); on unless berth.toml says `nftables = false`.
    pub nftables: bool,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            subnet: None,
            pool: DEFAULT_POOL
                .iter()
                .map(|(b, size)| AddressPool {
                    base: b.parse().expect("valid default pool"),
                    size: *size,
                })
                .collect(),
            bridge: DEFAULT_BRIDGE.to_string(),
            nftables: true,
        }
    }
}

impl NetConfig {
    /// Reads `[network]` of `ROOT/berth.toml`; a missing file or section means defaults.
    pub fn load(root: &Path) -> Result<Self> {
        let path = root.join("berth.toml");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(Error::file("read", path, e)),
        };
        Self::parse(&text)
    }

    /// Parses the text of a berth.toml.
    pub fn parse(text: &str) -> Result<Self> {
        let bad = |what: &'static str, value: String, reason: String| Error::InvalidValue {
            what,
            value,
            reason,
        };
        let doc: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            bad("berth.toml", String::new(), e.message().to_string())
        })?;
        let mut cfg = Self::default();
        let Some(net) = doc.get("network").and_then(|v| v.as_table()) else {
            return Ok(cfg);
        };
        if let Some(v) = net.get("subnet") {
            let s = v.as_str().unwrap_or_default();
            cfg.subnet = Some(parse_subnet(s)?);
        }
        if let Some(v) = net.get("pool") {
            cfg.pool = parse_pool(v)?;
        }
        if let Some(v) = net.get("bridge") {
            let s = v.as_str().unwrap_or_default();
            validate_ifname(s)?;
            cfg.bridge = s.to_string();
        }
        if let Some(v) = net.get("nftables") {
            cfg.nftables = v.as_bool().ok_or_else(|| {
                bad(
                    "network.nftables",
                    v.to_string(),
                    "expected true or false".into(),
                )
            })?;
        }
        Ok(cfg)
    }

    /// The default bridge's subnet: the configured one, else the first subnet of the pool
    /// that overlaps none of `taken` (the host's subnets and berth's other networks).
    pub fn default_subnet(&self, taken: &[Ipv4Net]) -> Result<Ipv4Net> {
        if let Some(s) = self.subnet {
            return Ok(s);
        }
        crate::ipam::first_free_in_pools(&self.pool, taken)
    }
}

/// `pool = [{ base = "CIDR", size = N }, ...]` (`size` defaults to the base's length).
fn parse_pool(v: &toml::Value) -> Result<Vec<AddressPool>> {
    let bad = |value: String, reason: &str| Error::InvalidValue {
        what: "network.pool",
        value,
        reason: reason.to_string(),
    };
    let expected = "expected a list of { base = \"172.17.0.0/16\", size = 16 }";
    let list = v.as_array().ok_or_else(|| bad(v.to_string(), expected))?;
    let mut out = Vec::new();
    for item in list {
        let t = item
            .as_table()
            .ok_or_else(|| bad(item.to_string(), expected))?;
        let base = t
            .get("base")
            .and_then(|b| b.as_str())
            .ok_or_else(|| bad(item.to_string(), expected))?;
        let base = parse_subnet(base)?;
        let size = match t.get("size") {
            None => base.prefix_len(),
            Some(s) => s
                .as_integer()
                .and_then(|n| u8::try_from(n).ok())
                .filter(|n| (base.prefix_len()..=30).contains(n))
                .ok_or_else(|| {
                    bad(
                        item.to_string(),
                        "size is a prefix length from the base's to 30",
                    )
                })?,
        };
        out.push(AddressPool { base, size });
    }
    if out.is_empty() {
        return Err(bad(v.to_string(), "the pool needs at least one range"));
    }
    Ok(out)
}

/// Parses an IPv4 subnet in CIDR form, normalized to its network address; /8 to /30.
pub fn parse_subnet(s: &str) -> Result<Ipv4Net> {
    let net: Ipv4Net = s.parse().map_err(|_| Error::InvalidValue {
        what: "subnet",
        value: s.to_string(),
        reason: "expected an IPv4 CIDR like 10.88.0.0/16".into(),
    })?;
    if !(8..=30).contains(&net.prefix_len()) {
        return Err(Error::InvalidValue {
            what: "subnet",
            value: s.to_string(),
            reason: "the prefix length is between 8 and 30".into(),
        });
    }
    Ok(net.trunc())
}

/// The first host address of a subnet (the conventional gateway).
pub fn first_host(net: &Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(net.network()) + 1)
}

/// Checks an interface name: 1 to 15 characters, no '/', ':' or white space.
pub fn validate_ifname(s: &str) -> Result<()> {
    if s.is_empty() || s.len() > 15 || s.chars().any(|c| c == '/' || c == ':' || c.is_whitespace())
    {
        return Err(Error::InvalidValue {
            what: "interface name",
            value: s.to_string(),
            reason: "1 to 15 characters without '/', ':' or spaces".into(),
        });
    }
    Ok(())
}

/// Parses a `--mac-address` (`92:d0:c6:0a:29:33` or with `-`): six hex pairs, not a
/// multicast address (the kernel refuses those for an interface).
///
/// ```
/// let mac = berth_net::config::parse_mac("92:D0:c6:0a:29:33").unwrap();
/// assert_eq!(berth_net::config::format_mac(&mac), "92:d0:c6:0a:29:33");
/// ```
pub fn parse_mac(s: &str) -> Result<[u8; 6]> {
    let bad = |reason: &str| Error::InvalidValue {
        what: "MAC address",
        value: s.to_string(),
        reason: reason.to_string(),
    };
    let parts: Vec<&str> = s.split([':', '-']).collect();
    if parts.len() != 6 {
        return Err(bad("expected six hex pairs as 92:d0:c6:0a:29:33"));
    }
    let mut mac = [0u8; 6];
    for (b, p) in mac.iter_mut().zip(&parts) {
        if p.len() != 2 {
            return Err(bad("expected six hex pairs as 92:d0:c6:0a:29:33"));
        }
        *b = u8::from_str_radix(p, 16)
            .map_err(|_| bad("expected six hex pairs as 92:d0:c6:0a:29:33"))?;
    }
    if mac[0] & 1 == 1 {
        return Err(bad("a multicast address cannot name an interface"));
    }
    if mac == [0; 6] {
        return Err(bad("the all-zero address cannot name an interface"));
    }
    Ok(mac)
}

/// `92:d0:c6:0a:29:33`: lower case, colons.
pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let c = NetConfig::parse("").unwrap();
        assert_eq!(c.subnet, None);
        assert!(c.nftables, "NAT and isolation are on by default");
        assert_eq!(c.default_subnet(&[]).unwrap().to_string(), "172.17.0.0/16");
        // Docker's pools in order: the /16s of 172.17-31, then 192.168.0.0/16 as /20s.
        let all: Vec<String> = c
            .pool
            .iter()
            .flat_map(|p| p.subnets())
            .map(|s| s.to_string())
            .collect();
        assert_eq!(all.len(), 15 + 16);
        assert_eq!(all[14], "172.31.0.0/16");
        assert_eq!(all[15], "192.168.0.0/20");
        let c =
            NetConfig::parse("[network]\nsubnet = \"172.30.5.9/24\"\nnftables = false\n").unwrap();
        assert_eq!(c.subnet.unwrap().to_string(), "172.30.5.0/24");
        assert_eq!(c.default_subnet(&[]).unwrap().to_string(), "172.30.5.0/24");
        assert!(!c.nftables);
        let c = NetConfig::parse(
            "[network]\npool = [{ base = \"10.5.0.0/24\", size = 26 }, { base = \"10.6.0.0/16\" }]\n",
        )
        .unwrap();
        let taken: Vec<Ipv4Net> = vec!["10.5.0.1/32".parse().unwrap()];
        assert_eq!(
            c.default_subnet(&taken).unwrap().to_string(),
            "10.5.0.64/26"
        );
        let taken: Vec<Ipv4Net> = vec!["10.5.0.0/24".parse().unwrap()];
        assert_eq!(c.default_subnet(&taken).unwrap().to_string(), "10.6.0.0/16");
        let taken: Vec<Ipv4Net> = vec!["10.0.0.0/8".parse().unwrap()];
        assert!(c.default_subnet(&taken).is_err(), "every subnet taken");
        for bad in [
            "pool = []",
            "pool = \"10.0.0.0/8\"",
            "pool = [{ base = \"10.0.0.0/16\", size = 8 }]",
            "pool = [{ size = 24 }]",
        ] {
            assert!(
                NetConfig::parse(&format!("[network]\n{bad}\n")).is_err(),
                "{bad}"
            );
        }
        assert!(NetConfig::parse("[network]\nsubnet = \"nope\"").is_err());
        assert!(NetConfig::parse("[network]\nnftables = 3").is_err());
        assert!(NetConfig::parse("[network]\nbridge = \"a-name-far-too-long\"").is_err());
    }

    #[test]
    fn mac_addresses_parse_and_bad_ones_are_refused() {
        assert_eq!(
            parse_mac("02-42-AC-11-00-02").unwrap(),
            [0x02, 0x42, 0xac, 0x11, 0x00, 0x02]
        );
        for bad in [
            "",
            "zz",
            "02:42:ac:11:00",
            "02:42:ac:11:00:02:03",
            "0:42:ac:11:00:02",
            "01:00:5e:00:00:01",
            "00:00:00:00:00:00",
            "02:42:ac:11:00:0g",
        ] {
            assert!(parse_mac(bad).is_err(), "{bad} should be refused");
        }
    }
}
