//! Optional nftables rules, only when `nftables = true` in berth.toml, all in berth's own
//! table `inet berth` (nothing else of the host's firewall is touched), so they cover IPv4
//! and IPv6 alike:
//! - masquerade of outbound traffic from berth's subnets (sets `subnets` and `subnets6`,
//!   bridges `bridges`); IPv6 traffic leaves only when the host forwards IPv6 itself (berth
//!   turns on IPv4 forwarding, never IPv6's: that would change how the host takes router
//!   advertisements);
//! - DNAT of published ports for traffic from outside (maps `dnat_tcp`, `dnat_udp`:
//!   host port -> container IPv4 address . port); local clients keep using the port
//!   forwarder;
//! - isolation between berth's bridges (set `pairs` of bridge names): the kernel routes
//!   between them once forwarding is on, IPv4's (berth's doing) or IPv6's (the host's).
//!
//! The rules are fixed; containers and networks only add and delete set and map elements,
//! so nothing needs rule handles and removal is exact. Scripts go through [`Firewall`]:
//! [`NftFirewall`] feeds them to `nft -f -`, [`RecordingFirewall`] records them for tests.
//!
//! Earlier berth kept the same rules in a table `ip berth` (IPv4 only). [`ensure_table`]
//! replaces such a table with the `inet` one in a single atomic script that also carries
//! the elements of the networks and containers berth knows, so an upgraded host never has
//! both tables, neither, or a table without its elements.

use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::sync::Mutex;

use ipnet::{Ipv4Net, Ipv6Net};

use crate::error::{Error, Result};
use crate::port::Proto;

/// The table's name.
pub const TABLE: &str = "berth";

/// The table's family: IPv4 and IPv6.
pub const FAMILY: &str = "inet";

/// The family of the table that earlier berth made (IPv4 only); see [`ensure_table`].
pub const LEGACY_FAMILY: &str = "ip";

/// Applies nftables scripts.
pub trait Firewall: Send + Sync {
    /// Applies one script atomically.
    fn apply(&self, script: &str) -> Result<()>;
    /// Whether berth's table exists in `family` (`inet`, or the legacy `ip`).
    fn table_exists(&self, family: &str) -> Result<bool>;
}

/// `nft -f -`.
#[derive(Debug, Default)]
pub struct NftFirewall;

impl Firewall for NftFirewall {
    fn apply(&self, script: &str) -> Result<()> {
        let mut child = Command::new("nft")
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| Error::Os {
                op: "run nft (nftables = true in berth.toml needs the nft tool)",
                source,
            })?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(script.as_bytes())
                .map_err(|source| Error::Os {
                    op: "write nft script",
                    source,
                })?;
        }
        let out = child.wait_with_output().map_err(|source| Error::Os {
            op: "wait for nft",
            source,
        })?;
        if out.status.success() {
            Ok(())
        } else {
            Err(Error::Nft {
                detail: String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .next()
                    .unwrap_or("failed")
                    .to_string(),
            })
        }
    }

    fn table_exists(&self, family: &str) -> Result<bool> {
        let st = Command::new("nft")
            .args(["list", "table", family, TABLE])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|source| Error::Os {
                op: "run nft",
                source,
            })?;
        Ok(st.success())
    }
}

/// Records scripts instead of applying them, and which tables they leave (from their
/// `table FAMILY berth` and `delete table FAMILY berth` lines).
#[derive(Debug, Default)]
pub struct RecordingFirewall {
    scripts: Mutex<Vec<String>>,
    tables: Mutex<Vec<String>>,
}

impl RecordingFirewall {
    /// A firewall on which berth's table of `family` already exists (e.g. the legacy
    /// `ip` one of an earlier berth).
    pub fn with_table(family: &str) -> Self {
        RecordingFirewall {
            scripts: Mutex::default(),
            tables: Mutex::new(vec![family.to_string()]),
        }
    }

    /// The scripts applied so far.
    pub fn scripts(&self) -> Vec<String> {
        self.scripts.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// The families in which berth's table exists now.
    pub fn tables(&self) -> Vec<String> {
        self.tables.lock().map(|t| t.clone()).unwrap_or_default()
    }
}

impl Firewall for RecordingFirewall {
    fn apply(&self, script: &str) -> Result<()> {
        if let Ok(mut t) = self.tables.lock() {
            for line in script.lines() {
                let words: Vec<&str> = line.split_whitespace().collect();
                match words.as_slice() {
                    ["table", family, name, ..]
                        if *name == TABLE && !t.iter().any(|f| f == family) =>
                    {
                        t.push(family.to_string())
                    }
                    ["delete", "table", family, name] if *name == TABLE => {
                        t.retain(|f| f != family)
                    }
                    _ => {}
                }
            }
        }
        if let Ok(mut s) = self.scripts.lock() {
            s.push(script.to_string());
        }
        Ok(())
    }
    fn table_exists(&self, family: &str) -> Result<bool> {
        Ok(self.tables().iter().any(|f| f == family))
    }
}

/// The table with its fixed sets, maps and rules.
pub fn base_table() -> String {
    format!(
        "table {FAMILY} {TABLE} {{
  set bridges {{ type ifname; }}
  set subnets {{ type ipv4_addr; flags interval; }}
  set subnets6 {{ type ipv6_addr; flags interval; }}
  set pairs {{ type ifname . ifname; }}
  map dnat_tcp {{ type inet_service : ipv4_addr . inet_service; }}
  map dnat_udp {{ type inet_service : ipv4_addr . inet_service; }}
  chain prerouting {{
    type nat hook prerouting priority dstnat; policy accept;
    fib daddr type local dnat ip to tcp dport map @dnat_tcp
    fib daddr type local dnat ip to udp dport map @dnat_udp
  }}
  chain postrouting {{
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr @subnets oifname != @bridges masquerade
    ip6 saddr @subnets6 oifname != @bridges masquerade
  }}
  chain forward {{
    type filter hook forward priority filter; policy accept;
    iifname . oifname @pairs drop
  }}
}}
"
    )
}

/// Creates the table when missing, with the elements `elements` returns (every network and
/// running container berth knows: a table made anew, after a reboot or a flush, or in place
/// of the legacy `ip berth` table, must not lose what that one held). The legacy table is
/// deleted in the same script, so the change is atomic. Returns whether it made the table.
/// Callers serialize (berth's network lock).
pub fn ensure_table(fw: &dyn Firewall, elements: impl FnOnce() -> String) -> Result<bool> {
    if fw.table_exists(FAMILY)? {
        return Ok(false);
    }
    let mut script = String::new();
    if fw.table_exists(LEGACY_FAMILY)? {
        script.push_str(&format!("delete table {LEGACY_FAMILY} {TABLE}\n"));
    }
    script.push_str(&base_table());
    script.push_str(&elements());
    fw.apply(&script)?;
    Ok(true)
}

/// Deletes berth's tables (both families, whichever exist): the end of
/// `nftables = true` on a host.
pub fn remove_tables(fw: &dyn Firewall) -> Result<()> {
    for family in [FAMILY, LEGACY_FAMILY] {
        if fw.table_exists(family)? {
            fw.apply(&format!("delete table {family} {TABLE}\n"))?;
        }
    }
    Ok(())
}

fn pairs(bridge: &str, others: &[String]) -> String {
    others
        .iter()
        .filter(|o| o.as_str() != bridge)
        .flat_map(|o| {
            [
                format!("\"{bridge}\" . \"{o}\""),
                format!("\"{o}\" . \"{bridge}\""),
            ]
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A bridge network as the rules see it.
#[derive(Debug, Clone, Copy)]
pub struct BridgeNet<'a> {
    /// The bridge interface.
    pub bridge: &'a str,
    /// Its IPv4 subnet.
    pub subnet: &'a Ipv4Net,
    /// Its IPv6 subnet, for a network made with `--ipv6`.
    pub subnet6: Option<&'a Ipv6Net>,
    /// `--internal`: no masquerade (nothing leaves).
    pub internal: bool,
}

/// Elements for a bridge network: its name, its subnets (masqueraded unless `internal`),
/// and the pairs isolating it from `others` (berth's other bridges), for both IP families.
pub fn add_bridge(net: &BridgeNet<'_>, others: &[String]) -> String {
    let bridge = net.bridge;
    let mut s = format!("add element {FAMILY} {TABLE} bridges {{ \"{bridge}\" }}\n");
    if !net.internal {
        s.push_str(&format!(
            "add element {FAMILY} {TABLE} subnets {{ {} }}\n",
            net.subnet
        ));
        if let Some(s6) = net.subnet6 {
            s.push_str(&format!(
                "add element {FAMILY} {TABLE} subnets6 {{ {s6} }}\n"
            ));
        }
    }
    let p = pairs(bridge, others);
    if !p.is_empty() {
        s.push_str(&format!("add element {FAMILY} {TABLE} pairs {{ {p} }}\n"));
    }
    s
}

/// The reverse of [`add_bridge`] (each element in its own script line; see [`apply_each`]).
pub fn remove_bridge(net: &BridgeNet<'_>, others: &[String]) -> Vec<String> {
    let bridge = net.bridge;
    let mut v = vec![
        format!("delete element {FAMILY} {TABLE} bridges {{ \"{bridge}\" }}\n"),
        format!(
            "delete element {FAMILY} {TABLE} subnets {{ {} }}\n",
            net.subnet
        ),
    ];
    if let Some(s6) = net.subnet6 {
        v.push(format!(
            "delete element {FAMILY} {TABLE} subnets6 {{ {s6} }}\n"
        ));
    }
    for o in others.iter().filter(|o| o.as_str() != bridge) {
        v.push(format!(
            "delete element {FAMILY} {TABLE} pairs {{ \"{bridge}\" . \"{o}\", \"{o}\" . \"{bridge}\" }}\n"
        ));
    }
    v
}

/// One published port's DNAT element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DnatEntry {
    /// TCP or UDP.
    pub proto: Proto,
    /// Host port.
    pub host_port: u16,
    /// The container's address.
    pub address: Ipv4Addr,
    /// The container's port.
    pub container_port: u16,
}

fn map_of(p: Proto) -> &'static str {
    match p {
        Proto::Tcp => "dnat_tcp",
        Proto::Udp => "dnat_udp",
    }
}

/// Adds DNAT elements.
pub fn add_dnat(entries: &[DnatEntry]) -> String {
    entries
        .iter()
        .map(|e| {
            format!(
                "add element {FAMILY} {TABLE} {} {{ {} : {} . {} }}\n",
                map_of(e.proto),
                e.host_port,
                e.address,
                e.container_port
            )
        })
        .collect()
}

/// Deletes DNAT elements, one script each (see [`apply_each`]).
pub fn remove_dnat(entries: &[DnatEntry]) -> Vec<String> {
    entries
        .iter()
        .map(|e| {
            format!(
                "delete element {FAMILY} {TABLE} {} {{ {} }}\n",
                map_of(e.proto),
                e.host_port
            )
        })
        .collect()
}

/// Applies each script on its own, ignoring failures (an element already gone), so one
/// missing element does not keep the others.
pub fn apply_each(fw: &dyn Firewall, scripts: &[String]) {
    for s in scripts {
        if let Err(e) = fw.apply(s) {
            log::debug!("nft: {e}");
        }
    }
}

/// Turns on IPv4 forwarding if it is off (outbound traffic through masquerade needs it),
/// telling the user. Returns whether it changed anything.
pub fn enable_ip_forward() -> Result<bool> {
    let path = "/proc/sys/net/ipv4/ip_forward";
    let cur = std::fs::read_to_string(path).map_err(|e| Error::file("read", path, e))?;
    if cur.trim() == "1" {
        return Ok(false);
    }
    crate::sys::write_sysctl(path, "1")?;
    log::warn!(
        "enabled IPv4 forwarding (net.ipv4.ip_forward=1) for containers' outbound traffic, \
         because nftables = true in berth.toml"
    );
    eprintln!("berth: enabled IPv4 forwarding (net.ipv4.ip_forward=1) for containers' outbound traffic (nftables = true in berth.toml)");
    Ok(true)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn nets() -> (Ipv4Net, Ipv6Net) {
        (
            "10.88.0.0/16".parse().unwrap(),
            "fd00:88::/64".parse().unwrap(),
        )
    }

    #[test]
    fn scripts_name_only_berths_inet_table() {
        let fw = RecordingFirewall::default();
        assert!(ensure_table(&fw, String::new).unwrap());
        assert!(!ensure_table(&fw, String::new).unwrap());
        assert_eq!(fw.scripts().len(), 1, "the table is made once");
        assert_eq!(fw.tables(), vec!["inet"]);
        let (v4, v6) = nets();
        let net = BridgeNet {
            bridge: "berth0",
            subnet: &v4,
            subnet6: Some(&v6),
            internal: false,
        };
        let s = add_bridge(&net, &["br-1".into(), "berth0".into()]);
        assert!(s.contains("subnets { 10.88.0.0/16 }"), "{s}");
        assert!(s.contains("subnets6 { fd00:88::/64 }"), "{s}");
        assert!(s.contains("\"berth0\" . \"br-1\", \"br-1\" . \"berth0\""));
        let e = DnatEntry {
            proto: Proto::Udp,
            host_port: 15353,
            address: Ipv4Addr::new(10, 88, 0, 2),
            container_port: 53,
        };
        assert_eq!(
            add_dnat(&[e]),
            "add element inet berth dnat_udp { 15353 : 10.88.0.2 . 53 }\n"
        );
        assert_eq!(
            remove_dnat(&[e]),
            vec!["delete element inet berth dnat_udp { 15353 }\n"]
        );
        for s in fw
            .scripts()
            .iter()
            .chain([s].iter())
            .chain(remove_bridge(&net, &[]).iter())
        {
            for line in s
                .lines()
                .filter(|l| l.starts_with("add ") || l.starts_with("delete "))
            {
                assert!(line.contains(" inet berth "), "{line}");
            }
        }
    }

    #[test]
    fn isolation_and_masquerade_cover_ipv6() {
        let t = base_table();
        assert!(t.starts_with("table inet berth {"), "{t}");
        // The pairs rule names no family, so in an inet table it drops IPv6 as well.
        assert!(t.contains("\n    iifname . oifname @pairs drop\n"), "{t}");
        assert!(t.contains("ip6 saddr @subnets6 oifname != @bridges masquerade"));
        assert!(t.contains("set subnets6 { type ipv6_addr; flags interval; }"));
    }

    #[test]
    fn internal_networks_are_isolated_but_not_masqueraded() {
        let (v4, v6) = nets();
        let s = add_bridge(
            &BridgeNet {
                bridge: "br-int",
                subnet: &v4,
                subnet6: Some(&v6),
                internal: true,
            },
            &["br-x".into()],
        );
        assert!(!s.contains("subnets"), "{s}");
        assert!(s.contains("pairs { \"br-int\" . \"br-x\", \"br-x\" . \"br-int\" }"));
    }

    #[test]
    fn removal_deletes_exactly_what_was_added() {
        let (v4, v6) = nets();
        for subnet6 in [None, Some(&v6)] {
            let net = BridgeNet {
                bridge: "br-a",
                subnet: &v4,
                subnet6,
                internal: false,
            };
            let others = ["br-b".to_string(), "br-a".to_string()];
            let mut added: Vec<String> = add_bridge(&net, &others)
                .lines()
                .map(|l| l.replacen("add element", "delete element", 1))
                .collect();
            let mut removed: Vec<String> = remove_bridge(&net, &others)
                .iter()
                .map(|l| l.trim_end().to_string())
                .collect();
            added.sort();
            removed.sort();
            assert_eq!(added, removed);
        }
    }

    #[test]
    fn legacy_ip_table_is_replaced_in_one_script_with_its_elements() {
        let fw = RecordingFirewall::with_table("ip");
        let (v4, v6) = nets();
        let net = BridgeNet {
            bridge: "br-up",
            subnet: &v4,
            subnet6: Some(&v6),
            internal: false,
        };
        let elements = add_bridge(&net, &[]);
        assert!(ensure_table(&fw, || elements.clone()).unwrap());
        let scripts = fw.scripts();
        assert_eq!(scripts.len(), 1, "one atomic script: {scripts:?}");
        let s = &scripts[0];
        assert!(s.starts_with("delete table ip berth\n"), "{s}");
        let made = s.find("table inet berth {").unwrap();
        assert!(s[made..].contains("add element inet berth subnets { 10.88.0.0/16 }"));
        assert!(s[made..].contains("add element inet berth bridges { \"br-up\" }"));
        assert_eq!(fw.tables(), vec!["inet"], "the legacy table is gone");
        // Once migrated nothing more happens; removal takes whichever tables exist.
        assert!(!ensure_table(&fw, || unreachable!()).unwrap());
        remove_tables(&fw).unwrap();
        assert!(fw.tables().is_empty());
        assert_eq!(fw.scripts().last().unwrap(), "delete table inet berth\n");
    }
}
