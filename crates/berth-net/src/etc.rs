//! The files a container's name resolution reads: `/etc/hosts`, `/etc/hostname` and
//! `/etc/resolv.conf`, written under the container's directory and bind-mounted by its spec.
//!
//! On a user-defined network every container's hosts file lists its peers by name and alias;
//! the files are rewritten in place (same inode) when peers come and go, so the bind mounts
//! of running containers see the change.

use std::io::Write;
use std::net::IpAddr;
use std::path::Path;

use crate::error::{Error, Result};

/// One line of a hosts file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostEntry {
    /// The address.
    pub ip: IpAddr,
    /// The names for it.
    pub names: Vec<String>,
}

/// Renders a hosts file as Docker does: the loopback lines, `--add-host` entries, the
/// container's own address with its hostname, then the peers on its networks.
pub fn render_hosts(
    hostname: &str,
    own: &[IpAddr],
    extra: &[HostEntry],
    peers: &[HostEntry],
) -> String {
    let mut s = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n\
         ff02::2\tip6-allrouters\n",
    );
    for e in extra {
        s.push_str(&format!("{}\t{}\n", e.ip, e.names.join(" ")));
    }
    for ip in own {
        s.push_str(&format!("{ip}\t{hostname}\n"));
    }
    for e in peers {
        if !e.names.is_empty() {
            s.push_str(&format!("{}\t{}\n", e.ip, e.names.join(" ")));
        }
    }
    s
}

/// Renders resolv.conf: the `--dns` servers when given, else the host's file without its
/// loopback name servers (unreachable from the container), else Google's public servers as
/// Docker does.
pub fn render_resolv(dns: &[IpAddr], dns_search: &[String], host_resolv: &str) -> String {
    let mut out = String::new();
    let mut servers = 0;
    if dns.is_empty() {
        for line in host_resolv.lines() {
            let t = line.trim();
            if let Some(ns) = t.strip_prefix("nameserver") {
                let ns = ns.trim();
                match ns.parse::<IpAddr>() {
                    Ok(ip) if ip.is_loopback() => continue,
                    Ok(_) => servers += 1,
                    Err(_) => continue,
                }
            }
            if t.starts_with("search") && !dns_search.is_empty() {
                continue;
            }
            out.push_str(line);
            out.push('\n');
        }
        if servers == 0 {
            out.push_str("nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
        }
    } else {
        for ip in dns {
            out.push_str(&format!("nameserver {ip}\n"));
        }
    }
    if !dns_search.is_empty() {
        out.push_str(&format!("search {}\n", dns_search.join(" ")));
    }
    out
}

/// Parses an `--add-host name:ip` (or `name=ip`) value. `host-gateway` stands for `gateway`.
pub fn parse_add_host(value: &str, gateway: Option<IpAddr>) -> Result<HostEntry> {
    let bad = |reason: &str| Error::InvalidValue {
        what: "--add-host",
        value: value.to_string(),
        reason: reason.to_string(),
    };
    let (name, ip) = value
        .split_once('=')
        .or_else(|| value.split_once(':'))
        .ok_or_else(|| bad("expected name:ip"))?;
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_')
    {
        return Err(bad("the host name has letters, digits, '-', '.' only"));
    }
    let ip = ip.trim_start_matches('[').trim_end_matches(']');
    let ip = if ip == "host-gateway" {
        gateway.ok_or_else(|| bad("host-gateway needs a bridge network"))?
    } else {
        ip.parse().map_err(|_| bad("not an IP address"))?
    };
    Ok(HostEntry {
        ip,
        names: vec![name.to_string()],
    })
}

/// Checks a `--hostname`: RFC 1123 labels, at most 253 characters.
pub fn validate_hostname(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidValue {
            what: "hostname",
            value: name.to_string(),
            reason: "expected letters, digits and '-' in dot-separated labels".into(),
        })
    }
}

/// Writes `content` to `path` keeping its inode (truncate and write), so a bind mount of the
/// file sees the new content; creates it when missing.
pub fn write_in_place(path: &Path, content: &str) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(|e| Error::file("write", path, e))?;
    f.write_all(content.as_bytes())
        .map_err(|e| Error::file("write", path, e))
}

/// An exclusive lock on a file (created if missing), released when dropped: serializes the
/// read-endpoints-then-rewrite-hosts-files step of processes working on one network.
#[derive(Debug)]
pub struct FileLock(#[allow(dead_code)] nix::fcntl::Flock<std::fs::File>);

impl FileLock {
    /// Waits for and takes the lock.
    pub fn acquire(path: &Path) -> Result<Self> {
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d).map_err(|e| Error::file("create", d, e))?;
        }
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|e| Error::file("open lock", path, e))?;
        nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
            .map(FileLock)
            .map_err(|(_, e)| Error::file("lock", path, e.into()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn hosts_has_own_extra_and_peers() {
        let own: Vec<IpAddr> = vec!["10.88.0.2".parse().unwrap()];
        let extra = vec![parse_add_host("db:10.0.0.9", None).unwrap()];
        let peers = vec![HostEntry {
            ip: "10.88.0.3".parse().unwrap(),
            names: vec!["web".into(), "www".into()],
        }];
        let h = render_hosts("abc123", &own, &extra, &peers);
        assert!(h.starts_with("127.0.0.1\tlocalhost\n"));
        assert!(h.contains("10.0.0.9\tdb\n"));
        assert!(h.contains("10.88.0.2\tabc123\n"));
        assert!(h.contains("10.88.0.3\tweb www\n"));
    }

    #[test]
    fn resolv_drops_loopback_servers() {
        let r = render_resolv(&[], &[], "nameserver 127.0.0.53\noptions edns0\n");
        assert!(r.contains("options edns0"));
        assert!(r.contains("nameserver 8.8.8.8"));
        assert!(!r.contains("127.0.0.53"));
        let r = render_resolv(&["1.1.1.1".parse().unwrap()], &["x.org".into()], "");
        assert_eq!(r, "nameserver 1.1.1.1\nsearch x.org\n");
    }

    #[test]
    fn add_host_forms() {
        assert_eq!(
            parse_add_host("h:::1", None).unwrap().ip,
            "::1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            parse_add_host("h=[fe80::1]", None).unwrap().ip,
            "fe80::1".parse::<IpAddr>().unwrap()
        );
        let gw: IpAddr = "10.88.0.1".parse().unwrap();
        assert_eq!(parse_add_host("h:host-gateway", Some(gw)).unwrap().ip, gw);
        assert!(parse_add_host("nohost", None).is_err());
        assert!(parse_add_host("a b:1.2.3.4", None).is_err());
        assert!(parse_add_host("h:1.2.3", None).is_err());
    }

    #[test]
    fn hostnames() {
        assert!(validate_hostname("web-1.example").is_ok());
        for bad in ["", "-a", "a..b", "a_b", &"x".repeat(64)] {
            assert!(validate_hostname(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rewrite_keeps_inode() {
        use std::os::unix::fs::MetadataExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("hosts");
        write_in_place(&p, "a long first content\n").unwrap();
        let ino = std::fs::metadata(&p).unwrap().ino();
        write_in_place(&p, "b\n").unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().ino(), ino);
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "b\n");
    }
}
