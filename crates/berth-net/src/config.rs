//! Network settings from `ROOT/berth.toml`:
//!
//! ```toml
//! [network]
//! subnet = "10.88.0.0/16"   # the default bridge's subnet; its first address is the gateway
//! bridge = "berth0"         # the default bridge's interface name
//! nftables = false          # DNAT for published ports and masquerade for outbound traffic
//! ```
//!
//! Networks are isolated from each other either way: without nftables the bridges do not
//! forward (IPv4 `forwarding = 0` per bridge, an IPv6 policy rule `iif BRIDGE prohibit` per
//! bridge, as IPv6 forwarding is host-wide); with it they forward and the `inet berth`
//! table drops traffic between berth's bridges, IPv4 and IPv6 (see [`crate::nft`]).

use std::net::Ipv4Addr;
use std::path::Path;

use ipnet::Ipv4Net;

use crate::error::{Error, Result};

/// The default bridge's subnet when berth.toml says nothing.
pub const DEFAULT_SUBNET: &str = "10.88.0.0/16";
/// The default bridge's interface name.
pub const DEFAULT_BRIDGE: &str = "berth0";

/// Network settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetConfig {
    /// The default bridge network's subnet.
    pub subnet: Ipv4Net,
    /// The default bridge's interface name.
    pub bridge: String,
    /// Whether berth may install rules in its own nftables table.
    pub nftables: bool,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            subnet: DEFAULT_SUBNET.parse().expect("valid default subnet"),
            bridge: DEFAULT_BRIDGE.to_string(),
            nftables: false,
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
            cfg.subnet = parse_subnet(s)?;
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

    /// The default bridge's gateway: the subnet's first host address.
    pub fn gateway(&self) -> Ipv4Addr {
        first_host(&self.subnet)
    }
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
        assert_eq!(c.subnet.to_string(), "10.88.0.0/16");
        assert_eq!(c.gateway().to_string(), "10.88.0.1");
        let c =
            NetConfig::parse("[network]\nsubnet = \"172.30.5.9/24\"\nnftables = true\n").unwrap();
        assert_eq!(c.subnet.to_string(), "172.30.5.0/24");
        assert!(c.nftables);
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
