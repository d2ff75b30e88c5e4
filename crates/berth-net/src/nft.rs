//! berth's nftables rules, on by default (`nftables = false` in berth.toml turns them off),
//! all in berth's own table `inet berth` (nothing else of the host's firewall is touched),
//! so they cover IPv4 and IPv6 alike:
//! - masquerade of outbound traffic from berth's subnets (sets `subnets` and `subnets6`)
//!   leaving through anything but a berth bridge (set `bridges`); IPv6 traffic leaves only
//!   when the host forwards IPv6 itself (berth turns on IPv4 forwarding, never IPv6's: that
//!   would change how the host takes router advertisements);
//! - DNAT of published ports for traffic from outside (maps `dnat_tcp`, `dnat_udp`:
//!   host port -> container IPv4 address . port); local clients keep using the port
//!   forwarder;
//! - isolation: nothing is routed from one berth bridge to another (a bridge to itself is
//!   allowed, set `same`, for a container reaching a port its own network publishes), and
//!   nothing leaves or enters an `--internal` network's bridge (set `internal`). Every rule
//!   names one bridge at a time, so bridges of different `--root`s are kept apart too.
//!
//! The rules are fixed; networks and containers only add and delete set and map elements,
//! so nothing needs rule handles and removal is exact. The table is made on first use
//! ([`ensure_table`]) and deleted with the last bridge ([`prune_table`], which also drops
//! the elements of bridges that no longer exist, e.g. left by a berth root deleted by
//! hand). Callers serialize table changes with [`lock`] (host-wide: every berth root shares
//! the table). Scripts go through [`Firewall`]: [`NftFirewall`] feeds them to `nft -f -`
//! and asks the kernel over netlink whether the table exists, [`RecordingFirewall`] records
//! them for tests.
//!
//! Earlier berth kept its rules in a table `ip berth` (IPv4 only) and then in an `inet`
//! table with a `pairs` set per two bridges. [`ensure_table`] replaces either with the
//! current table in a single atomic script that also carries the elements of the networks
//! and containers berth knows, so an upgraded host never has two tables, none, or a table
//! without its elements.

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
    /// Whether nftables can be used here at all (the `nft` tool is installed).
    fn available(&self) -> bool;
    /// Applies one script atomically.
    fn apply(&self, script: &str) -> Result<()>;
    /// Whether berth's table exists in `family` (`inet`, or the legacy `ip`).
    fn table_exists(&self, family: &str) -> Result<bool>;
    /// Whether berth's `inet` table has set `set` (which tells its layout's age).
    fn set_exists(&self, set: &str) -> Result<bool>;
    /// berth's `inet` table as `nft -j` lists it; `None` when there is none.
    fn list_json(&self) -> Result<Option<String>>;
    /// Whether another table's forward chain drops what it does not accept (an
    /// `ip filter FORWARD` chain with policy drop, as Docker and many iptables setups make
    /// it), so that containers' forwarded traffic is dropped whatever berth's table says.
    fn forward_drops(&self) -> bool;
}

/// `nft -f -` for changes; netlink for the existence checks made on every container start.
#[derive(Debug, Default)]
pub struct NftFirewall;

fn nft_command() -> Command {
    let mut c = Command::new("nft");
    // `nft` lives in /usr/sbin, which a non-login root shell may lack in PATH.
    let path = std::env::var("PATH").unwrap_or_default();
    c.env("PATH", format!("{path}:/usr/sbin:/sbin"));
    c
}

impl Firewall for NftFirewall {
    fn available(&self) -> bool {
        static FOUND: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *FOUND.get_or_init(|| {
            let path = std::env::var("PATH").unwrap_or_default();
            let found = path
                .split(':')
                .chain(["/usr/sbin", "/sbin"])
                .any(|d| std::path::Path::new(d).join("nft").is_file());
            found
        })
    }

    fn apply(&self, script: &str) -> Result<()> {
        let mut child = nft_command()
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| Error::Os {
                op: "run nft (berth's network rules need the nft tool of nftables, or nftables = false in berth.toml)",
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
        crate::sys::query::nft_table_exists(family, TABLE)
    }

    fn set_exists(&self, set: &str) -> Result<bool> {
        crate::sys::query::nft_set_exists(FAMILY, TABLE, set)
    }

    fn list_json(&self) -> Result<Option<String>> {
        let out = nft_command()
            .args(["-j", "list", "table", FAMILY, TABLE])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .map_err(|source| Error::Os {
                op: "run nft",
                source,
            })?;
        Ok(out
            .status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned()))
    }

    fn forward_drops(&self) -> bool {
        let Ok(out) = nft_command()
            .args(["-j", "list", "chain", "ip", "filter", "FORWARD"])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
        else {
            return false;
        };
        out.status.success() && chain_policy_drops(&String::from_utf8_lossy(&out.stdout))
    }
}

/// Whether `nft -j list chain` output shows a base chain with policy drop.
fn chain_policy_drops(json: &str) -> bool {
    let v: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
    v["nftables"].as_array().is_some_and(|items| {
        items
            .iter()
            .any(|i| i["chain"]["policy"].as_str() == Some("drop"))
    })
}

/// Records scripts instead of applying them, and which tables they leave (from their
/// `table FAMILY berth` and `delete table FAMILY berth` lines).
#[derive(Debug, Default)]
pub struct RecordingFirewall {
    scripts: Mutex<Vec<String>>,
    tables: Mutex<Vec<String>>,
    old_layout: Mutex<bool>,
}

impl RecordingFirewall {
    /// A firewall on which berth's table of `family` already exists (e.g. the legacy
    /// `ip` one of an earlier berth), in the current layout.
    pub fn with_table(family: &str) -> Self {
        RecordingFirewall {
            scripts: Mutex::default(),
            tables: Mutex::new(vec![family.to_string()]),
            old_layout: Mutex::new(false),
        }
    }

    /// A firewall with the `inet` table of the berth before set `same` (with `pairs`).
    pub fn with_old_inet_table() -> Self {
        let fw = Self::with_table(FAMILY);
        if let Ok(mut o) = fw.old_layout.lock() {
            *o = true;
        }
        fw
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
    fn available(&self) -> bool {
        true
    }
    fn apply(&self, script: &str) -> Result<()> {
        if let Ok(mut t) = self.tables.lock() {
            for line in script.lines() {
                let words: Vec<&str> = line.split_whitespace().collect();
                match words.as_slice() {
                    ["table", family, name, ..] if *name == TABLE => {
                        if !t.iter().any(|f| f == family) {
                            t.push(family.to_string());
                        }
                        if *family == FAMILY {
                            if let Ok(mut o) = self.old_layout.lock() {
                                *o = false;
                            }
                        }
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
    fn set_exists(&self, _set: &str) -> Result<bool> {
        let old = self.old_layout.lock().map(|o| *o).unwrap_or(false);
        Ok(self.table_exists(FAMILY)? && !old)
    }
    fn list_json(&self) -> Result<Option<String>> {
        Ok(None)
    }
    fn forward_drops(&self) -> bool {
        false
    }
}

/// The set whose presence marks the current layout of the table.
const LAYOUT_MARK: &str = "same";

/// The table with its fixed sets, maps and rules.
pub fn base_table() -> String {
    format!(
        "table {FAMILY} {TABLE} {{
  set bridges {{ type ifname; }}
  set same {{ type ifname . ifname; }}
  set internal {{ type ifname; }}
  set subnets {{ type ipv4_addr; flags interval; }}
  set subnets6 {{ type ipv6_addr; flags interval; }}
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
    iifname . oifname @same accept
    iifname @bridges oifname @bridges drop
    iifname @internal drop
    oifname @internal drop
  }}
}}
"
    )
}

/// Creates the table when missing (or when an earlier berth's table stands in its place),
/// with the elements `elements` returns (every network and running container berth knows:
/// a table made anew, after a reboot or a flush, or in place of an older table, must not
/// lose what that one held). An older table is deleted in the same script, so the change
/// is atomic. Returns whether it made the table. Callers hold [`lock`].
pub fn ensure_table(fw: &dyn Firewall, elements: impl FnOnce() -> String) -> Result<bool> {
    let current = fw.table_exists(FAMILY)?;
    if current && fw.set_exists(LAYOUT_MARK)? {
        return Ok(false);
    }
    let mut script = String::new();
    if current {
        script.push_str(&format!("delete table {FAMILY} {TABLE}\n"));
    }
    if fw.table_exists(LEGACY_FAMILY)? {
        script.push_str(&format!("delete table {LEGACY_FAMILY} {TABLE}\n"));
    }
    script.push_str(&base_table());
    script.push_str(&elements());
    fw.apply(&script)?;
    Ok(true)
}

/// Replaces an earlier berth's table (the legacy `ip` one, or an `inet` one of an older
/// layout) as [`ensure_table`] does, and does nothing when there is none or the current
/// one: for removals, which must not leave an old table behind but need no table made.
/// Callers hold [`lock`].
pub fn replace_older_table(fw: &dyn Firewall, elements: impl FnOnce() -> String) -> Result<bool> {
    let old_inet = fw.table_exists(FAMILY)? && !fw.set_exists(LAYOUT_MARK)?;
    if old_inet || fw.table_exists(LEGACY_FAMILY)? {
        return ensure_table(fw, elements);
    }
    Ok(false)
}

/// Deletes berth's tables (both families, whichever exist).
pub fn remove_tables(fw: &dyn Firewall) -> Result<()> {
    for family in [FAMILY, LEGACY_FAMILY] {
        if fw.table_exists(family)? {
            fw.apply(&format!("delete table {family} {TABLE}\n"))?;
        }
    }
    Ok(())
}

/// The host-wide lock of berth's table (every berth root on the host shares it): held
/// while the table is made, filled, pruned or deleted.
pub fn lock() -> Result<crate::etc::FileLock> {
    let dir = if std::path::Path::new("/run/lock").is_dir() {
        "/run/lock"
    } else {
        "/run"
    };
    crate::etc::FileLock::acquire(&std::path::Path::new(dir).join("berth-nftables.lock"))
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
    /// `--internal`: no masquerade, and nothing in or out of its bridge is routed.
    pub internal: bool,
}

/// Elements for a bridge network: its name, its subnets (masqueraded unless `internal`),
/// for both IP families.
pub fn add_bridge(net: &BridgeNet<'_>) -> String {
    let bridge = net.bridge;
    let mut s = format!(
        "add element {FAMILY} {TABLE} bridges {{ \"{bridge}\" }}\n\
         add element {FAMILY} {TABLE} same {{ \"{bridge}\" . \"{bridge}\" }}\n"
    );
    if net.internal {
        s.push_str(&format!(
            "add element {FAMILY} {TABLE} internal {{ \"{bridge}\" }}\n"
        ));
    } else {
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
    s
}

/// The reverse of [`add_bridge`] (each element in its own script line; see [`apply_each`]).
pub fn remove_bridge(net: &BridgeNet<'_>) -> Vec<String> {
    let bridge = net.bridge;
    let mut v = vec![
        format!("delete element {FAMILY} {TABLE} bridges {{ \"{bridge}\" }}\n"),
        format!("delete element {FAMILY} {TABLE} same {{ \"{bridge}\" . \"{bridge}\" }}\n"),
    ];
    if net.internal {
        v.push(format!(
            "delete element {FAMILY} {TABLE} internal {{ \"{bridge}\" }}\n"
        ));
    } else {
        v.push(format!(
            "delete element {FAMILY} {TABLE} subnets {{ {} }}\n",
            net.subnet
        ));
        if let Some(s6) = net.subnet6 {
            v.push(format!(
                "delete element {FAMILY} {TABLE} subnets6 {{ {s6} }}\n"
            ));
        }
    }
    v
}

/// What berth's table holds, from `nft -j list table`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TableContents {
    /// Set `bridges`.
    pub bridges: Vec<String>,
    /// Set `internal`.
    pub internal: Vec<String>,
    /// Set `subnets`.
    pub subnets: Vec<Ipv4Net>,
}

impl TableContents {
    /// Parses `nft -j list table inet berth`.
    pub fn parse(json: &str) -> Self {
        let v: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
        let mut out = TableContents::default();
        for item in v["nftables"].as_array().into_iter().flatten() {
            let set = &item["set"];
            let elems = set["elem"].as_array().into_iter().flatten();
            match set["name"].as_str() {
                Some("bridges") => out
                    .bridges
                    .extend(elems.filter_map(|e| e.as_str().map(String::from))),
                Some("internal") => out
                    .internal
                    .extend(elems.filter_map(|e| e.as_str().map(String::from))),
                Some("subnets") => out.subnets.extend(elems.filter_map(|e| {
                    match (e.as_str(), e["prefix"]["addr"].as_str()) {
                        (Some(a), _) => format!("{a}/32").parse::<Ipv4Net>().ok(),
                        (None, Some(a)) => format!("{a}/{}", e["prefix"]["len"])
                            .parse::<Ipv4Net>()
                            .ok(),
                        _ => None,
                    }
                })),
                _ => {}
            }
        }
        out
    }
}

/// Drops the elements of bridges that no longer exist (`link_exists` says no) and of
/// subnets that no host address lies in (`host_subnets`), then deletes the table when no
/// bridge is left in it. Returns whether the table is gone. Callers hold [`lock`].
pub fn prune_table(
    fw: &dyn Firewall,
    link_exists: impl Fn(&str) -> bool,
    host_subnets: &[Ipv4Net],
) -> Result<bool> {
    let Some(json) = fw.list_json()? else {
        return Ok(!fw.table_exists(FAMILY)?);
    };
    let t = TableContents::parse(&json);
    let live: Vec<&String> = t.bridges.iter().filter(|b| link_exists(b)).collect();
    if live.is_empty() {
        fw.apply(&format!("delete table {FAMILY} {TABLE}\n"))?;
        return Ok(true);
    }
    let mut scripts = Vec::new();
    for b in t.bridges.iter().filter(|b| !link_exists(b)) {
        scripts.push(format!(
            "delete element {FAMILY} {TABLE} bridges {{ \"{b}\" }}\n"
        ));
        scripts.push(format!(
            "delete element {FAMILY} {TABLE} same {{ \"{b}\" . \"{b}\" }}\n"
        ));
    }
    for b in t.internal.iter().filter(|b| !link_exists(b)) {
        scripts.push(format!(
            "delete element {FAMILY} {TABLE} internal {{ \"{b}\" }}\n"
        ));
    }
    for s in &t.subnets {
        if !host_subnets.iter().any(|h| s.contains(&h.network())) {
            scripts.push(format!(
                "delete element {FAMILY} {TABLE} subnets {{ {s} }}\n"
            ));
        }
    }
    apply_each(fw, &scripts);
    Ok(false)
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
    log::warn!("enabled IPv4 forwarding (net.ipv4.ip_forward=1) for containers' outbound traffic");
    eprintln!("berth: enabled IPv4 forwarding (net.ipv4.ip_forward=1) for containers' outbound traffic (nftables = false in berth.toml turns berth's NAT off)");
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
        let s = add_bridge(&net);
        assert!(s.contains("subnets { 10.88.0.0/16 }"), "{s}");
        assert!(s.contains("subnets6 { fd00:88::/64 }"), "{s}");
        assert!(s.contains("same { \"berth0\" . \"berth0\" }"), "{s}");
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
            .chain(remove_bridge(&net).iter())
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
        // The rules name no family, so in an inet table they drop IPv6 as well; a bridge
        // to itself passes before any bridge to any other is dropped.
        let same = t.find("iifname . oifname @same accept").unwrap();
        let drop = t.find("iifname @bridges oifname @bridges drop").unwrap();
        assert!(same < drop, "{t}");
        assert!(t.contains("ip6 saddr @subnets6 oifname != @bridges masquerade"));
        assert!(t.contains("set subnets6 { type ipv6_addr; flags interval; }"));
    }

    #[test]
    fn internal_networks_are_isolated_but_not_masqueraded() {
        let (v4, v6) = nets();
        let s = add_bridge(&BridgeNet {
            bridge: "br-int",
            subnet: &v4,
            subnet6: Some(&v6),
            internal: true,
        });
        assert!(!s.contains("subnets"), "{s}");
        assert!(s.contains("internal { \"br-int\" }"), "{s}");
        assert!(base_table().contains("iifname @internal drop\n    oifname @internal drop"));
    }

    #[test]
    fn removal_deletes_exactly_what_was_added() {
        let (v4, v6) = nets();
        for (subnet6, internal) in [(None, false), (Some(&v6), false), (Some(&v6), true)] {
            let net = BridgeNet {
                bridge: "br-a",
                subnet: &v4,
                subnet6,
                internal,
            };
            let mut added: Vec<String> = add_bridge(&net)
                .lines()
                .map(|l| l.replacen("add element", "delete element", 1))
                .collect();
            let mut removed: Vec<String> = remove_bridge(&net)
                .iter()
                .map(|l| l.trim_end().to_string())
                .collect();
            added.sort();
            removed.sort();
            assert_eq!(added, removed);
        }
    }

    #[test]
    fn older_tables_are_replaced_in_one_script_with_their_elements() {
        let (v4, v6) = nets();
        let net = BridgeNet {
            bridge: "br-up",
            subnet: &v4,
            subnet6: Some(&v6),
            internal: false,
        };
        let elements = add_bridge(&net);
        for (fw, first) in [
            (
                RecordingFirewall::with_table("ip"),
                "delete table ip berth\n",
            ),
            (
                RecordingFirewall::with_old_inet_table(),
                "delete table inet berth\n",
            ),
        ] {
            assert!(ensure_table(&fw, || elements.clone()).unwrap());
            let scripts = fw.scripts();
            assert_eq!(scripts.len(), 1, "one atomic script: {scripts:?}");
            let s = &scripts[0];
            assert!(s.starts_with(first), "{s}");
            let made = s.find("table inet berth {").unwrap();
            assert!(s[made..].contains("add element inet berth subnets { 10.88.0.0/16 }"));
            assert!(s[made..].contains("add element inet berth bridges { \"br-up\" }"));
            assert_eq!(fw.tables(), vec!["inet"], "the older table is gone");
            // Once migrated nothing more happens; removal takes whichever tables exist.
            assert!(!ensure_table(&fw, || unreachable!()).unwrap());
            remove_tables(&fw).unwrap();
            assert!(fw.tables().is_empty());
            assert_eq!(fw.scripts().last().unwrap(), "delete table inet berth\n");
        }
    }

    #[test]
    fn table_contents_and_chain_policies_parse_from_nft_json() {
        let json = r#"{"nftables": [{"metainfo": {"version": "1.0.6"}},
            {"table": {"family": "inet", "name": "berth", "handle": 9}},
            {"set": {"family": "inet", "name": "bridges", "table": "berth", "type": "ifname", "elem": ["br-a", "br-b"]}},
            {"set": {"family": "inet", "name": "internal", "table": "berth", "type": "ifname"}},
            {"set": {"family": "inet", "name": "subnets", "table": "berth", "type": "ipv4_addr",
              "elem": [{"prefix": {"addr": "10.1.0.0", "len": 16}}, "10.9.9.9"]}}]}"#;
        let t = TableContents::parse(json);
        assert_eq!(t.bridges, vec!["br-a", "br-b"]);
        assert!(t.internal.is_empty());
        assert_eq!(
            t.subnets,
            vec![
                "10.1.0.0/16".parse::<Ipv4Net>().unwrap(),
                "10.9.9.9/32".parse().unwrap()
            ]
        );
        assert!(chain_policy_drops(
            r#"{"nftables": [{"chain": {"family": "ip", "table": "filter", "name": "FORWARD", "type": "filter", "hook": "forward", "prio": 0, "policy": "drop"}}]}"#
        ));
        assert!(!chain_policy_drops(
            r#"{"nftables": [{"chain": {"name": "FORWARD", "policy": "accept"}}]}"#
        ));
    }
}
