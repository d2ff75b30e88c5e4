//! Network settings from `ROOT/berth.toml`:
//!
//! ```toml
//! [network]
//! subnet = "10.88.0.0/16"   # the default bridge's subnet; its first address is the gateway
//! bridge = "berth0"         # the default bridge's interface name
//! nftables = false          # DNAT for published ports and masquerade for outbound traffic
//! ```

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
}
