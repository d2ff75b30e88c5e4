//! Facts about host processes from /proc: start times (so a reused PID is never mistaken for
//! a container's), liveness, and the processes of a container for `top`.

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process() {
        let me = std::process::id() as i64;
        let st = start_time(me).unwrap();
        assert!(is_alive(me, st));
        assert!(!is_alive(me, st + 1));
        assert!(!is_alive(0, 0));
        let s = parse_stat(
            "12 (a (b) c) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 77 21 22 23",
        )
        .unwrap();
        assert_eq!((s.state, s.ppid, s.start_time), ('S', 1, 19));
    }
}
