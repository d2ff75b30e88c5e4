//! What the process can learn about its container from /proc and /sys, without libc calls.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// The host name as the UTS namespace sees it.
pub fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_string())
}

/// The addresses of this network namespace's interfaces, loopback last.
pub fn addresses() -> Vec<String> {
    let mut v4 = fs::read_to_string("/proc/net/fib_trie")
        .map(|t| local_ipv4(&t))
        .unwrap_or_default();
    let v6 = fs::read_to_string("/proc/net/if_inet6")
        .map(|t| local_ipv6(&t))
        .unwrap_or_default();
    v4.extend(v6);
    let (lo, mut other): (Vec<String>, Vec<String>) = v4
        .into_iter()
        .partition(|a| a.starts_with("127.") || a == "::1");
    other.extend(lo);
    other
}

/// The local IPv4 addresses in the text of /proc/net/fib_trie (the `/32 host LOCAL` entries).
pub fn local_ipv4(fib_trie: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut last_ip: Option<&str> = None;
    for line in fib_trie.lines() {
        let t = line.trim_start_matches([' ', '|', '+', '-', '`']).trim();
        if t.starts_with("/32 host LOCAL") {
            if let Some(ip) = last_ip {
                if !out.iter().any(|o| o == ip) {
                    out.push(ip.to_string());
                }
            }
        } else if t.parse::<std::net::Ipv4Addr>().is_ok() {
            last_ip = Some(t);
        }
    }
    out
}

/// The addresses in the text of /proc/net/if_inet6.
pub fn local_ipv6(if_inet6: &str) -> Vec<String> {
    if_inet6
        .lines()
        .filter_map(|l| {
            let hex = l.split_whitespace().next()?;
            if hex.len() != 32 {
                return None;
            }
            let n = u128::from_str_radix(hex, 16).ok()?;
            Some(std::net::Ipv6Addr::from(n).to_string())
        })
        .collect()
}

/// Resident set size of this process in bytes.
pub fn rss_bytes() -> u64 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| status_kib(&s, "VmRSS:"))
        .map(|k| k * 1024)
        .unwrap_or(0)
}

/// Peak resident set size of this process in bytes.
pub fn peak_rss_bytes() -> u64 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| status_kib(&s, "VmHWM:"))
        .map(|k| k * 1024)
        .unwrap_or(0)
}

fn status_kib(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The machine's memory in bytes (MemTotal).
pub fn mem_total_bytes() -> Option<u64> {
    let text = fs::read_to_string("/proc/meminfo").ok()?;
    status_kib(&text, "MemTotal:").map(|k| k * 1024)
}

/// The memory limit and usage of this process's cgroup.
#[derive(Debug, Clone, Default, serde::Serialize, PartialEq, Eq)]
pub struct CgroupMemory {
    /// `v1` or `v2`, or empty when no cgroup memory controller was found.
    pub version: &'static str,
    /// The limit in bytes; `None` when unlimited or unknown.
    pub limit: Option<u64>,
    /// Current usage in bytes.
    pub usage: Option<u64>,
    /// The directory the values were read from.
    pub path: Option<PathBuf>,
}

/// Reads the cgroup memory limit, trying the namespaced view first (inside a container
/// /sys/fs/cgroup is the container's own cgroup) and then the path in /proc/self/cgroup.
pub fn cgroup_memory() -> CgroupMemory {
    let own = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    cgroup_memory_in(Path::new("/sys/fs/cgroup"), &own)
}

/// [`cgroup_memory`] against a given cgroup mount and /proc/self/cgroup text (for tests).
pub fn cgroup_memory_in(mount: &Path, proc_self_cgroup: &str) -> CgroupMemory {
    let mut v1_rel = None;
    let mut v2_rel = None;
    for line in proc_self_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, ctrls, path) = match (parts.next(), parts.next(), parts.next()) {
            (Some(a), Some(b), Some(c)) => (a, b, c),
            _ => continue,
        };
        if ctrls.split(',').any(|c| c == "memory") {
            v1_rel = Some(path.trim_start_matches('/').to_string());
        } else if ctrls.is_empty() {
            v2_rel = Some(path.trim_start_matches('/').to_string());
        }
    }
    // cgroup v1: memory controller mounted on its own.
    for base in [mount.join("memory")] {
        let mut dirs = Vec::new();
        if let Some(rel) = &v1_rel {
            dirs.push(base.join(rel));
        }
        dirs.push(base.clone());
        for dir in dirs {
            if let Some(limit) = read_u64(&dir.join("memory.limit_in_bytes")) {
                // v1 reports "unlimited" as a huge page-aligned number.
                let limit = (limit < (1u64 << 62)).then_some(limit);
                return CgroupMemory {
                    version: "v1",
                    limit,
                    usage: read_u64(&dir.join("memory.usage_in_bytes")),
                    path: Some(dir),
                };
            }
        }
    }
    // cgroup v2: unified hierarchy at the mount itself (or under unified/ on hybrid hosts).
    for base in [mount.to_path_buf(), mount.join("unified")] {
        let mut dirs = Vec::new();
        if let Some(rel) = &v2_rel {
            dirs.push(base.join(rel));
        }
        dirs.push(base.clone());
        for dir in dirs {
            if let Ok(text) = fs::read_to_string(dir.join("memory.max")) {
                return CgroupMemory {
                    version: "v2",
                    limit: text.trim().parse().ok(),
                    usage: read_u64(&dir.join("memory.current")),
                    path: Some(dir),
                };
            }
        }
    }
    CgroupMemory::default()
}

fn read_u64(p: &Path) -> Option<u64> {
    fs::read_to_string(p).ok()?.trim().parse().ok()
}

/// Seconds since the epoch.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// RFC 3339 UTC time of `secs` since the epoch, millisecond precision.
pub fn rfc3339(secs: f64) -> String {
    let whole = secs.floor() as i64;
    let millis = ((secs - whole as f64) * 1000.0) as u32;
    let days = whole.div_euclid(86_400);
    let sod = whole.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    )
}

// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn fib_trie_local_addresses() {
        let text = "Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 0.0.0.0\n        /0 universe UNICAST\n     +-- 10.88.0.0/16 2 0 2\n        |-- 10.88.0.0\n           /16 link UNICAST\n        |-- 10.88.0.5\n           /32 host LOCAL\n  +-- 127.0.0.0/8 2 0 2\n     +-- 127.0.0.0/8 2 0 2\n        |-- 127.0.0.0\n           /8 host LOCAL\n     |-- 127.0.0.1\n        /32 host LOCAL\nLocal:\n     |-- 10.88.0.5\n        /32 host LOCAL\n";
        assert_eq!(local_ipv4(text), vec!["10.88.0.5", "127.0.0.1"]);
    }

    #[test]
    fn if_inet6_addresses() {
        let text = "00000000000000000000000000000001 01 80 10 80       lo\nfe800000000000000000000000000001 02 40 20 80     eth0\n";
        assert_eq!(local_ipv6(text), vec!["::1", "fe80::1"]);
    }

    #[test]
    fn cgroup_v1_and_v2_limits() {
        let dir = tempfile::tempdir().unwrap();
        let v1 = dir.path().join("v1");
        fs::create_dir_all(v1.join("memory/ctr")).unwrap();
        fs::write(v1.join("memory/ctr/memory.limit_in_bytes"), "209715200\n").unwrap();
        fs::write(v1.join("memory/ctr/memory.usage_in_bytes"), "1000\n").unwrap();
        let m = cgroup_memory_in(&v1, "4:memory:/ctr\n0::/ctr\n");
        assert_eq!(
            (m.version, m.limit, m.usage),
            ("v1", Some(209715200), Some(1000))
        );

        let v2 = dir.path().join("v2");
        fs::create_dir_all(&v2).unwrap();
        fs::write(v2.join("memory.max"), "max\n").unwrap();
        let m = cgroup_memory_in(&v2, "0::/\n");
        assert_eq!((m.version, m.limit), ("v2", None));
        fs::write(v2.join("memory.max"), "67108864\n").unwrap();
        assert_eq!(cgroup_memory_in(&v2, "0::/\n").limit, Some(67108864));

        let none = dir.path().join("none");
        assert_eq!(cgroup_memory_in(&none, "").version, "");
    }

    #[test]
    fn time_format() {
        assert_eq!(rfc3339(0.0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_700_000_000.5), "2023-11-14T22:13:20.500Z");
        assert_eq!(rfc3339(951_782_400.0), "2000-02-29T00:00:00.000Z");
    }
}
