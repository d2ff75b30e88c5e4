//! Optional nftables rules, only when `nftables = true` in berth.toml, all in berth's own
//! table `ip berth` (nothing else of the host's firewall is touched):
//! - masquerade of outbound traffic from berth's subnets (set `subnets`, bridges `bridges`);
//! - DNAT of published ports for traffic from outside (maps `dnat_tcp`, `dnat_udp`:
//!   host port -> container address . port); local clients keep using the port forwarder;
//! - isolation between berth's bridges once forwarding is on (set `pairs` of bridge names).
//!
//! The rules are fixed; containers and networks only add and delete set and map elements,
//! so nothing needs rule handles and removal is exact. Scripts go through [`Firewall`]:
//! [`NftFirewall`] feeds them to `nft -f -`, [`RecordingFirewall`] records them for tests.

use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::sync::Mutex;

use ipnet::Ipv4Net;

use crate::error::{Error, Result};
use crate::port::Proto;

/// The table's name (family `ip`).
pub const TABLE: &str = "berth";

/// Applies nftables scripts.
pub trait Firewall: Send + Sync {
    /// Applies one script atomically.
    fn apply(&self, script: &str) -> Result<()>;
    /// Whether berth's table exists.
    fn table_exists(&self) -> Result<bool>;
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

    fn table_exists(&self) -> Result<bool> {
        let st = Command::new("nft")
            .args(["list", "table", "ip", TABLE])
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

/// Records scripts instead of applying them.
#[derive(Debug, Default)]
pub struct RecordingFirewall {
    scripts: Mutex<Vec<String>>,
}

impl RecordingFirewall {
    /// The scripts applied so far.
    pub fn scripts(&self) -> Vec<String> {
        self.scripts.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Firewall for RecordingFirewall {
    fn apply(&self, script: &str) -> Result<()> {
        if let Ok(mut s) = self.scripts.lock() {
            s.push(script.to_string());
        }
        Ok(())
    }
    fn table_exists(&self) -> Result<bool> {
        Ok(!self.scripts().is_empty())
    }
}

/// The table with its fixed sets, maps and rules.
pub fn base_table() -> String {
    format!(
        "table ip {TABLE} {{
  set bridges {{ type ifname; }}
  set subnets {{ type ipv4_addr; flags interval; }}
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
  }}
  chain forward {{
    type filter hook forward priority filter; policy accept;
    iifname . oifname @pairs drop
  }}
}}
"
    )
}

/// Creates the table when missing. Callers serialize (berth's network lock).
pub fn ensure_table(fw: &dyn Firewall) -> Result<()> {
    if fw.table_exists()? {
        return Ok(());
    }
    fw.apply(&base_table())
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

/// Elements for a bridge network: its name, its subnet (masqueraded unless `internal`), and
/// the pairs isolating it from `others` (berth's other bridges).
pub fn add_bridge(bridge: &str, subnet: &Ipv4Net, internal: bool, others: &[String]) -> String {
    let mut s = format!("add element ip {TABLE} bridges {{ \"{bridge}\" }}\n");
    if !internal {
        s.push_str(&format!("add element ip {TABLE} subnets {{ {subnet} }}\n"));
    }
    let p = pairs(bridge, others);
    if !p.is_empty() {
        s.push_str(&format!("add element ip {TABLE} pairs {{ {p} }}\n"));
    }
    s
}

/// The reverse of [`add_bridge`] (each element in its own script line; see [`apply_each`]).
pub fn remove_bridge(bridge: &str, subnet: &Ipv4Net, others: &[String]) -> Vec<String> {
    let mut v = vec![
        format!("delete element ip {TABLE} bridges {{ \"{bridge}\" }}\n"),
        format!("delete element ip {TABLE} subnets {{ {subnet} }}\n"),
    ];
    for o in others.iter().filter(|o| o.as_str() != bridge) {
        v.push(format!(
            "delete element ip {TABLE} pairs {{ \"{bridge}\" . \"{o}\", \"{o}\" . \"{bridge}\" }}\n"
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
                "add element ip {TABLE} {} {{ {} : {} . {} }}\n",
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
                "delete element ip {TABLE} {} {{ {} }}\n",
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

    #[test]
    fn scripts_name_only_berths_table() {
        let fw = RecordingFirewall::default();
        ensure_table(&fw).unwrap();
        ensure_table(&fw).unwrap();
        assert_eq!(fw.scripts().len(), 1, "the table is made once");
        let net: Ipv4Net = "10.88.0.0/16".parse().unwrap();
        let s = add_bridge("berth0", &net, false, &["br-1".into(), "berth0".into()]);
        assert!(s.contains("subnets { 10.88.0.0/16 }"));
        assert!(s.contains("\"berth0\" . \"br-1\", \"br-1\" . \"berth0\""));
        let e = DnatEntry {
            proto: Proto::Udp,
            host_port: 15353,
            address: Ipv4Addr::new(10, 88, 0, 2),
            container_port: 53,
        };
        assert_eq!(
            add_dnat(&[e]),
            "add element ip berth dnat_udp { 15353 : 10.88.0.2 . 53 }\n"
        );
        assert_eq!(
            remove_dnat(&[e]),
            vec!["delete element ip berth dnat_udp { 15353 }\n"]
        );
        for s in fw
            .scripts()
            .iter()
            .chain(remove_bridge("b", &net, &[]).iter())
        {
            for line in s
                .lines()
                .filter(|l| l.starts_with("add ") || l.starts_with("delete "))
            {
                assert!(line.contains(" ip berth "), "{line}");
            }
        }
    }
}
