//! Facts about host processes from /proc: start times (so a reused PID is never mistaken for
//! a container's), liveness, the processes of a container for `top`, and the network and
//! block I/O counters that `stats` shows.

use std::fs;

/// Start time of `pid` in clock ticks since boot (field 22 of /proc/<pid>/stat).
pub fn start_time(pid: i64) -> Option<i64> {
    if pid <= 0 {
        return None;
    }
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&stat).map(|s| s.start_time)
}

/// The fields of /proc/<pid>/stat that berth uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcStat {
    /// Process state letter (`R`, `S`, `Z`, ...).
    pub state: char,
    /// Parent PID.
    pub ppid: i64,
    /// User + system CPU time in clock ticks.
    pub cpu_ticks: i64,
    /// Start time in clock ticks since boot.
    pub start_time: i64,
    /// Resident set size in pages.
    pub rss_pages: i64,
}

/// Parses the text of /proc/<pid>/stat (the command may contain spaces and parentheses).
pub fn parse_stat(stat: &str) -> Option<ProcStat> {
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is field 3 (state).
    Some(ProcStat {
        state: f.first()?.chars().next()?,
        ppid: f.get(1)?.parse().ok()?,
        cpu_ticks: f.get(11)?.parse::<i64>().ok()? + f.get(12)?.parse::<i64>().ok()?,
        start_time: f.get(19)?.parse().ok()?,
        rss_pages: f.get(21)?.parse().ok()?,
    })
}

/// True when `pid` runs and is the process that started at `start` (not a zombie).
pub fn is_alive(pid: i64, start: i64) -> bool {
    if pid <= 0 {
        return false;
    }
    match fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| parse_stat(&s))
    {
        Some(s) => s.state != 'Z' && s.state != 'X' && (start == 0 || s.start_time == start),
        None => false,
    }
}

/// PIDs in the cgroup v1 or v2 of the container (`cgroups_path` relative, e.g. `/berth/ID`).
pub fn cgroup_pids(cgroups_path: &str) -> Vec<i64> {
    let rel = cgroups_path.trim_start_matches('/');
    let candidates = [
        format!("/sys/fs/cgroup/pids/{rel}/cgroup.procs"),
        format!("/sys/fs/cgroup/memory/{rel}/cgroup.procs"),
        format!("/sys/fs/cgroup/{rel}/cgroup.procs"),
        format!("/sys/fs/cgroup/unified/{rel}/cgroup.procs"),
    ];
    for c in candidates {
        if let Ok(t) = fs::read_to_string(&c) {
            let mut v: Vec<i64> = t.lines().filter_map(|l| l.trim().parse().ok()).collect();
            v.sort_unstable();
            return v;
        }
    }
    Vec::new()
}

/// Every descendant of `pid` (and `pid` itself), found by walking /proc.
pub fn process_tree(pid: i64) -> Vec<i64> {
    let mut parents: Vec<(i64, i64)> = Vec::new();
    if let Ok(rd) = fs::read_dir("/proc") {
        for e in rd.flatten() {
            if let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<i64>().ok()) {
                if let Some(s) = fs::read_to_string(format!("/proc/{p}/stat"))
                    .ok()
                    .and_then(|s| parse_stat(&s))
                {
                    parents.push((p, s.ppid));
                }
            }
        }
    }
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let cur = out[i];
        for (p, pp) in &parents {
            if *pp == cur && !out.contains(p) {
                out.push(*p);
            }
        }
        i += 1;
    }
    out.sort_unstable();
    out
}

/// Bytes received and sent by the interfaces of `pid`'s network namespace (the text of
/// /proc/<pid>/net/dev), loopback left out as Docker leaves it out; `None` when unreadable.
pub fn net_io(pid: i64) -> Option<(u64, u64)> {
    if pid <= 0 {
        return None;
    }
    let text = fs::read_to_string(format!("/proc/{pid}/net/dev")).ok()?;
    Some(parse_net_dev(&text))
}

/// Sums the receive and transmit byte columns of a /proc/net/dev text, except `lo`'s.
pub fn parse_net_dev(text: &str) -> (u64, u64) {
    let (mut rx, mut tx) = (0u64, 0u64);
    for line in text.lines() {
        let Some((name, counters)) = line.split_once(':') else {
            continue;
        };
        if name.trim() == "lo" {
            continue;
        }
        // Receive: bytes packets errs drop fifo frame compressed multicast; then transmit.
        let f: Vec<u64> = counters
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect();
        if f.len() >= 16 {
            rx = rx.saturating_add(f[0]);
            tx = tx.saturating_add(f[8]);
        }
    }
    (rx, tx)
}

/// Bytes read and written by the container's cgroup on block devices: cgroup v1
/// `blkio.throttle.io_service_bytes_recursive` (or the CFQ/BFQ files when the throttle one
/// is empty), else v2 `io.stat` (`rbytes`/`wbytes`), summed over devices as Docker sums them.
/// `cgroups_path` is relative (`/berth/ID`).
pub fn block_io(cgroups_path: &str) -> (u64, u64) {
    let rel = cgroups_path.trim_start_matches('/');
    let v1 = [
        "blkio.throttle.io_service_bytes_recursive",
        "blkio.throttle.io_service_bytes",
        "blkio.io_service_bytes_recursive",
        "blkio.bfq.io_service_bytes_recursive",
    ];
    let mut found_v1 = false;
    for f in v1 {
        if let Ok(t) = fs::read_to_string(format!("/sys/fs/cgroup/blkio/{rel}/{f}")) {
            found_v1 = true;
            let rw = parse_blkio_service_bytes(&t);
            if rw != (0, 0) {
                return rw;
            }
        }
    }
    if found_v1 {
        return (0, 0);
    }
    ["", "unified/"]
        .iter()
        .find_map(|base| fs::read_to_string(format!("/sys/fs/cgroup/{base}{rel}/io.stat")).ok())
        .map_or((0, 0), |t| parse_io_stat(&t))
}

/// Sums the `Read` and `Write` rows of a v1 `blkio.*io_service_bytes*` text
/// (`8:0 Read 4096` ... `Total 8192`).
pub fn parse_blkio_service_bytes(text: &str) -> (u64, u64) {
    let (mut r, mut w) = (0u64, 0u64);
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() != 3 {
            continue;
        }
        let Ok(n) = f[2].parse::<u64>() else {
            continue;
        };
        if f[1].eq_ignore_ascii_case("read") {
            r = r.saturating_add(n);
        } else if f[1].eq_ignore_ascii_case("write") {
            w = w.saturating_add(n);
        }
    }
    (r, w)
}

/// Sums `rbytes` and `wbytes` of a v2 `io.stat` text (`8:0 rbytes=4096 wbytes=0 ...`).
pub fn parse_io_stat(text: &str) -> (u64, u64) {
    let (mut r, mut w) = (0u64, 0u64);
    for kv in text.split_whitespace() {
        if let Some(v) = kv
            .strip_prefix("rbytes=")
            .and_then(|v| v.parse::<u64>().ok())
        {
            r = r.saturating_add(v);
        } else if let Some(v) = kv
            .strip_prefix("wbytes=")
            .and_then(|v| v.parse::<u64>().ok())
        {
            w = w.saturating_add(v);
        }
    }
    (r, w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process() {
        let me = std::process::id() as i64;
        let st = start_time(me).expect("own start time");
        assert!(is_alive(me, st));
        assert!(!is_alive(me, st + 1));
        assert!(!is_alive(0, 0));
        let s = parse_stat(
            "12 (a (b) c) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 77 21 22 23",
        )
        .expect("parses");
        assert_eq!((s.state, s.ppid, s.start_time), ('S', 1, 19));
    }

    #[test]
    fn net_dev_sums_every_interface_but_loopback() {
        let text = "Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:    5000      50    0    0    0     0          0         0     5000      50    0    0    0     0       0          0
  eth0:    1234      10    0    0    0     0          0         0      648       8    0    0    0     0       0          0
  eth1:     100       1    0    0    0     0          0         0       52       1    0    0    0     0       0          0
";
        assert_eq!(parse_net_dev(text), (1334, 700));
        assert_eq!(parse_net_dev(""), (0, 0));
    }

    #[test]
    fn block_io_sums_reads_and_writes_of_every_device() {
        let v1 = "8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 0\n8:0 Async 12288\n8:0 Discard 0\n8:0 Total 12288\n254:0 Read 1\n254:0 Write 2\nTotal 12291\n";
        assert_eq!(parse_blkio_service_bytes(v1), (4097, 8194));
        let v2 = "254:0 rbytes=1000 wbytes=2000 rios=1 wios=2 dbytes=0 dios=0\n8:0 rbytes=5 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n";
        assert_eq!(parse_io_stat(v2), (1005, 2000));
    }
}
