//! `top` and `stats`: what the container's processes and cgroup show.

use std::fs;

use serde::Serialize;

use super::launch::cgroups_path;
use super::{procfs, Container, ContainerError, ContainerStatus, Lifecycle, Result};

/// `top`'s table: titles and rows, as `ps -ef` prints them.
#[derive(Debug, Clone, Serialize)]
pub struct TopTable {
    /// Column titles.
    pub titles: Vec<String>,
    /// One row per process.
    pub processes: Vec<Vec<String>>,
}

/// One row of `stats`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct StatsRow {
    /// Full ID.
    #[serde(rename = "ID")]
    pub id: String,
    /// Name.
    pub name: String,
    /// CPU use in percent of one CPU: since the start in a lone sample, over the interval
    /// once [`StatsRow::with_cpu_since`] compared it with an earlier one (Docker's figure).
    #[serde(rename = "CPUPerc")]
    pub cpu_percent: f64,
    /// The cgroup's CPU time so far, nanoseconds.
    #[serde(skip)]
    pub cpu_total_ns: u64,
    /// The host's CPU time so far (all CPUs, /proc/stat), nanoseconds.
    #[serde(skip)]
    pub system_ns: u64,
    /// Online CPUs of the host.
    #[serde(skip)]
    pub online_cpus: u32,
    /// Memory in use, bytes.
    pub mem_usage: u64,
    /// Memory limit, bytes (host memory when unlimited).
    pub mem_limit: u64,
    /// Number of processes.
    pub pids: u64,
    /// Bytes received by the container's interfaces (loopback aside).
    pub net_rx: u64,
    /// Bytes sent by the container's interfaces (loopback aside).
    pub net_tx: u64,
    /// Bytes its cgroup read from block devices.
    pub block_read: u64,
    /// Bytes its cgroup wrote to block devices.
    pub block_write: u64,
}

impl StatsRow {
    /// Sets `cpu_percent` as Docker computes it between two samples: the container's CPU
    /// time over the host's in the interval, times the online CPUs (100% = one CPU busy).
    pub fn with_cpu_since(mut self, prev: &StatsRow) -> StatsRow {
        let cpu = self.cpu_total_ns.saturating_sub(prev.cpu_total_ns) as f64;
        let system = self.system_ns.saturating_sub(prev.system_ns) as f64;
        self.cpu_percent = if cpu > 0.0 && system > 0.0 {
            cpu / system * f64::from(self.online_cpus.max(1)) * 100.0
        } else {
            0.0
        };
        self
    }
}

/// The host's CPU time and online CPUs from /proc/stat (`cpu` line: user, nice, system,
/// idle, iowait, irq, softirq in clock ticks of 1/100 s).
fn system_cpu() -> (u64, u32) {
    let Ok(text) = fs::read_to_string("/proc/stat") else {
        return (0, 1);
    };
    let ticks: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("cpu "))
        .map(|rest| {
            rest.split_whitespace()
                .take(7)
                .filter_map(|v| v.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    let online = text
        .lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .count() as u32;
    (ticks * 10_000_000, online.max(1))
}

fn read_u64(paths: &[String]) -> Option<u64> {
    paths
        .iter()
        .find_map(|p| fs::read_to_string(p).ok())
        .and_then(|t| t.split_whitespace().next().and_then(|v| v.parse().ok()))
}

fn host_memory() -> u64 {
    fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

impl Lifecycle {
    /// The processes of a running container.
    pub fn top(&self, c: &Container) -> Result<TopTable> {
        if c.status != ContainerStatus::Running {
            return Err(ContainerError::BadStatus(format!(
                "container {} is not running",
                c.id()
            )));
        }
        let mut pids = procfs::cgroup_pids(&cgroups_path(c.id()));
        if pids.is_empty() {
            pids = procfs::process_tree(c.record.pid);
        }
        let tck = 100;
        let boot = boot_time();
        let now = time::OffsetDateTime::now_utc();
        let mut rows = Vec::new();
        for pid in pids {
            let Some(st) = fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| procfs::parse_stat(&s))
            else {
                continue;
            };
            let uid = fs::read_to_string(format!("/proc/{pid}/status"))
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find(|l| l.starts_with("Uid:"))
                        .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
                })
                .unwrap_or_default();
            let cmd = fs::read(format!("/proc/{pid}/cmdline"))
                .map(|b| {
                    b.split(|c| *c == 0)
                        .filter(|s| !s.is_empty())
                        .map(|s| String::from_utf8_lossy(s).to_string())
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default();
            let secs = st.cpu_ticks / tck;
            let user = if uid == "0" { "root".to_string() } else { uid };
            rows.push(vec![
                user,
                pid.to_string(),
                st.ppid.to_string(),
                "0".into(),
                stime(st.start_time, boot, now),
                "?".into(),
                format!(
                    "{:02}:{:02}:{:02}",
                    secs / 3600,
                    (secs / 60) % 60,
                    secs % 60
                ),
                cmd,
            ]);
        }
        Ok(TopTable {
            titles: ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            processes: rows,
        })
    }

    /// A snapshot of the container's resource use (compare two with
    /// [`StatsRow::with_cpu_since`] for the CPU use of the interval).
    pub fn stats(&self, c: &Container) -> StatsRow {
        let rel = cgroups_path(c.id());
        let rel = rel.trim_start_matches('/');
        // Docker shows the usage less the inactive page cache (v1 `total_inactive_file`,
        // v2 `inactive_file` of memory.stat).
        let inactive_file = [
            (
                format!("/sys/fs/cgroup/memory/{rel}/memory.stat"),
                "total_inactive_file ",
            ),
            (
                format!("/sys/fs/cgroup/{rel}/memory.stat"),
                "inactive_file ",
            ),
        ]
        .iter()
        .find_map(|(path, key)| {
            fs::read_to_string(path)
                .ok()?
                .lines()
                .find_map(|l| l.strip_prefix(key)?.trim().parse::<u64>().ok())
        })
        .unwrap_or(0);
        let mem_usage = read_u64(&[
            format!("/sys/fs/cgroup/memory/{rel}/memory.usage_in_bytes"),
            format!("/sys/fs/cgroup/{rel}/memory.current"),
        ])
        .map_or(0, |u| {
            if inactive_file < u {
                u - inactive_file
            } else {
                u
            }
        });
        let host = host_memory();
        let mem_limit = read_u64(&[
            format!("/sys/fs/cgroup/memory/{rel}/memory.limit_in_bytes"),
            format!("/sys/fs/cgroup/{rel}/memory.max"),
        ])
        .filter(|l| *l < host && *l > 0)
        .unwrap_or(host);
        let pids = read_u64(&[
            format!("/sys/fs/cgroup/pids/{rel}/pids.current"),
            format!("/sys/fs/cgroup/{rel}/pids.current"),
        ])
        .unwrap_or(0);
        // v1 cpuacct in nanoseconds; v2 (pure or the hybrid's unified part) `usage_usec`.
        let cpu_ns = read_u64(&[format!("/sys/fs/cgroup/cpuacct/{rel}/cpuacct.usage")])
            .or_else(|| {
                ["", "unified/"].iter().find_map(|base| {
                    fs::read_to_string(format!("/sys/fs/cgroup/{base}{rel}/cpu.stat"))
                        .ok()?
                        .lines()
                        .find_map(|l| l.strip_prefix("usage_usec "))
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(|us| us * 1000)
                })
            })
            .unwrap_or(0);
        let running_ns = (super::now_nanos() - c.record.started_at).max(1) as f64;
        let cpu_percent = if c.status == ContainerStatus::Running {
            cpu_ns as f64 / running_ns * 100.0
        } else {
            0.0
        };
        let (system_ns, online_cpus) = system_cpu();
        let running = c.status == ContainerStatus::Running;
        // A `--network host` container has no interfaces of its own: Docker shows 0B.
        let own_netns = c.spec.host_config.network_mode != "host";
        let (net_rx, net_tx) = if running && own_netns {
            procfs::net_io(c.record.pid).unwrap_or((0, 0))
        } else {
            (0, 0)
        };
        let (block_read, block_write) = if running {
            procfs::block_io(&cgroups_path(c.id()))
        } else {
            (0, 0)
        };
        StatsRow {
            id: c.id().to_string(),
            name: c.name().to_string(),
            cpu_percent,
            cpu_total_ns: cpu_ns,
            system_ns,
            online_cpus,
            mem_usage: if c.status == ContainerStatus::Running {
                mem_usage
            } else {
                0
            },
            // A stopped container shows 0B / 0B, as Docker's.
            mem_limit: if running { mem_limit } else { 0 },
            pids: if c.status == ContainerStatus::Running {
                pids
            } else {
                0
            },
            net_rx,
            net_tx,
            block_read,
            block_write,
        }
    }
}

/// The host's boot time (`btime` of /proc/stat), seconds since the epoch.
fn boot_time() -> Option<i64> {
    fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// `ps -ef`'s STIME: `HH:MM` for a process started today, `MonDD` before (UTC).
fn stime(start_ticks: i64, boot: Option<i64>, now: time::OffsetDateTime) -> String {
    let Some(started) = boot
        .map(|b| b + start_ticks / 100)
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
    else {
        return "-".into();
    };
    if started.date() == now.date() {
        format!("{:02}:{:02}", started.hour(), started.minute())
    } else {
        let month = format!("{:?}", started.month());
        format!("{}{:02}", &month[..3.min(month.len())], started.day())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(cpu_total_ns: u64, system_ns: u64, online_cpus: u32) -> StatsRow {
        StatsRow {
            id: "c".into(),
            name: "n".into(),
            cpu_percent: 99.0,
            cpu_total_ns,
            system_ns,
            online_cpus,
            mem_usage: 0,
            mem_limit: 0,
            pids: 0,
            net_rx: 0,
            net_tx: 0,
            block_read: 0,
            block_write: 0,
        }
    }

    #[test]
    fn cpu_percent_is_dockers_delta_between_two_samples() {
        // One of two CPUs busy for the interval: 2 s of host time, 1 s of container time.
        let prev = sample(5_000_000_000, 100_000_000_000, 2);
        let now = sample(6_000_000_000, 102_000_000_000, 2).with_cpu_since(&prev);
        assert!(
            (now.cpu_percent - 100.0).abs() < 1e-9,
            "{}",
            now.cpu_percent
        );
        // Idle in the interval: 0 whatever the history.
        let idle = sample(6_000_000_000, 104_000_000_000, 2).with_cpu_since(&now);
        assert_eq!(idle.cpu_percent, 0.0);
        // No host time passed (same tick): 0, not a division by zero.
        let same = sample(7_000_000_000, 104_000_000_000, 2).with_cpu_since(&idle);
        assert_eq!(same.cpu_percent, 0.0);
    }
}
