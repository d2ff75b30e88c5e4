//! The runc face's verbs that look at or adjust a live container: `ps`, `events`, `update`;
//! and the ones about the runtime itself: `features`, `--version`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use berth_runtime::oci::{LinuxCpu, LinuxPids, LinuxResources};
use berth_runtime::Status;
use clap::Args;

/// The OCI runtime spec version berth implements (runc 1.1 says the same).
const SPEC_VERSION: &str = "1.0.2-dev";

/// `--version`: runc's lines (`runc version`, `commit:`, `spec:`), which go-runc parses.
pub(crate) fn print_version() {
    let v = env!("CARGO_PKG_VERSION");
    println!("runc version {v} (berth-runc)");
    println!("commit: berth-{v}");
    println!("spec: {SPEC_VERSION}");
}

/// `features`: runc's JSON document, filled with what berth's runtime does.
pub(crate) fn features() -> anyhow::Result<()> {
    let caps = [
        "CHOWN",
        "DAC_OVERRIDE",
        "DAC_READ_SEARCH",
        "FOWNER",
        "FSETID",
        "KILL",
        "SETGID",
        "SETUID",
        "SETPCAP",
        "LINUX_IMMUTABLE",
        "NET_BIND_SERVICE",
        "NET_BROADCAST",
        "NET_ADMIN",
        "NET_RAW",
        "IPC_LOCK",
        "IPC_OWNER",
        "SYS_MODULE",
        "SYS_RAWIO",
        "SYS_CHROOT",
        "SYS_PTRACE",
        "SYS_PACCT",
        "SYS_ADMIN",
        "SYS_BOOT",
        "SYS_NICE",
        "SYS_RESOURCE",
        "SYS_TIME",
        "SYS_TTY_CONFIG",
        "MKNOD",
        "LEASE",
        "AUDIT_WRITE",
        "AUDIT_CONTROL",
        "SETFCAP",
        "MAC_OVERRIDE",
        "MAC_ADMIN",
        "SYSLOG",
        "WAKE_ALARM",
        "BLOCK_SUSPEND",
        "AUDIT_READ",
        "PERFMON",
        "BPF",
        "CHECKPOINT_RESTORE",
    ];
    let mount_options = [
        "async",
        "atime",
        "bind",
        "defaults",
        "dev",
        "diratime",
        "dirsync",
        "exec",
        "mand",
        "noatime",
        "nodev",
        "nodiratime",
        "noexec",
        "nomand",
        "norelatime",
        "nostrictatime",
        "nosuid",
        "private",
        "rbind",
        "relatime",
        "remount",
        "ro",
        "rprivate",
        "rshared",
        "rslave",
        "runbindable",
        "rw",
        "shared",
        "slave",
        "strictatime",
        "suid",
        "sync",
        "tmpcopyup",
        "unbindable",
    ];
    let doc = serde_json::json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": SPEC_VERSION,
        "hooks": [
            "prestart", "createRuntime", "createContainer", "startContainer", "poststart",
            "poststop"
        ],
        "mountOptions": mount_options.to_vec(),
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "user", "uts"],
            "capabilities": caps.iter().map(|c| format!("CAP_{c}")).collect::<Vec<_>>(),
            "cgroup": { "v1": true, "v2": true, "systemd": false, "systemdUser": false },
            "seccomp": {
                "enabled": true,
                "actions": [
                    "SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
                    "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP"
                ],
                "operators": [
                    "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT",
                    "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"
                ],
                "archs": ["SCMP_ARCH_X32", "SCMP_ARCH_X86", "SCMP_ARCH_X86_64"]
            },
            "apparmor": { "enabled": false },
            "selinux": { "enabled": false }
        },
        "annotations": {
            "org.opencontainers.runc.checkpoint.enabled": "false",
            "org.opencontainers.runc.version": env!("CARGO_PKG_VERSION"),
            "io.github.berth.runtime": "berth-runc"
        }
    });
    // runc prints this document with four-space indentation.
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    serde::Serialize::serialize(&doc, &mut ser)?;
    println!("{}", String::from_utf8_lossy(&out));
    Ok(())
}

/// `ps`: the container's pids as a JSON array, or ps(1)'s table cut to them.
pub(crate) fn ps(root: &Path, id: &str, format: &str, ps_args: &[String]) -> anyhow::Result<()> {
    let mut c = super::lifecycle::load(root, id)?;
    let pids = c.processes();
    match format {
        "json" => {
            println!("{}", serde_json::to_string(&pids)?);
            Ok(())
        }
        "table" => {
            let args: Vec<String> = if ps_args.is_empty() {
                vec!["-ef".into()]
            } else {
                ps_args.to_vec()
            };
            let out = std::process::Command::new("ps")
                .args(&args)
                .output()
                .context("run ps")?;
            let text = String::from_utf8_lossy(&out.stdout);
            let mut lines = text.lines();
            let header = lines.next().unwrap_or_default();
            let col = header
                .split_whitespace()
                .position(|h| h == "PID")
                .context("ps output has no PID column")?;
            println!("{header}");
            for l in lines {
                let pid = l.split_whitespace().nth(col).and_then(|p| p.parse().ok());
                if pid.is_some_and(|p: i32| pids.contains(&p)) {
                    println!("{l}");
                }
            }
            Ok(())
        }
        other => anyhow::bail!("invalid format option {other:?}: use table or json"),
    }
}

/// One `stats` event in runc's shape (`type`, `id`, `data.cpu/memory/pids/...`).
fn stats_event(id: &str, c: &berth_runtime::Container) -> anyhow::Result<serde_json::Value> {
    let s = c
        .stats()
        .with_context(|| format!("stats of container {id}"))?;
    // runc reports "no limit" as the largest page-aligned i64.
    const UNLIMITED: u64 = 9_223_372_036_854_771_712;
    let mut pids = serde_json::json!({ "current": s.pids });
    if let Some(l) = s.pids_limit {
        pids["limit"] = l.into();
    }
    Ok(serde_json::json!({
        "type": "stats",
        "id": id,
        "data": {
            "cpu": {
                "usage": { "total": s.cpu_usage_ns, "kernel": 0, "user": 0 },
                "throttling": {}
            },
            "memory": {
                "usage": {
                    "limit": s.memory_limit.unwrap_or(UNLIMITED),
                    "usage": s.memory_usage,
                    "max": 0,
                    "failcnt": 0
                },
                "raw": {}
            },
            "pids": pids,
            "blkio": {},
            "hugetlb": {},
            "intel_rdt": {},
            "network_interfaces": null
        }
    }))
}

/// `events`: with `--stats` one stats event; otherwise a stats event every `interval` (and
/// an `oom` event when the OOM killer strikes) until the container stops.
pub(crate) fn events(root: &Path, id: &str, once: bool, interval: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut c = super::lifecycle::load(root, id)?;
    if c.status() == Status::Stopped {
        anyhow::bail!("container with id {id} is not running");
    }
    if once {
        println!("{}", stats_event(id, &c)?);
        return Ok(());
    }
    let every = parse_interval(interval)?;
    if every.is_zero() {
        anyhow::bail!("duration interval must be greater than 0");
    }
    let mut oom_seen = c.oom_killed();
    let stdout = std::io::stdout();
    loop {
        if c.status() == Status::Stopped {
            return Ok(());
        }
        let mut out = stdout.lock();
        if !oom_seen && c.oom_killed() {
            oom_seen = true;
            writeln!(out, "{}", serde_json::json!({ "type": "oom", "id": id }))?;
        }
        if let Ok(ev) = stats_event(id, &c) {
            writeln!(out, "{ev}")?;
        }
        out.flush()?;
        drop(out);
        std::thread::sleep(every);
    }
}

/// Go's duration syntax as runc takes it for `--interval`: `5s`, `500ms`, `1m`, `1h`.
fn parse_interval(s: &str) -> anyhow::Result<Duration> {
    let bad = || anyhow::anyhow!("invalid interval {s:?}: use e.g. 5s, 500ms, 1m");
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .ok_or_else(bad)?;
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().map_err(|_| bad())?;
    let secs = match unit {
        "ns" => n / 1e9,
        "us" | "µs" => n / 1e6,
        "ms" => n / 1e3,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(bad()),
    };
    Duration::try_from_secs_f64(secs).map_err(|_| bad())
}

/// `update`'s options: a whole `LinuxResources` (`--resources FILE`, `-` for stdin, what
/// the shim sends) or runc's single-value flags.
#[derive(Debug, Args)]
pub struct UpdateOpts {
    /// JSON LinuxResources to apply; `-` reads stdin.
    #[arg(short = 'r', long)]
    resources: Option<PathBuf>,
    /// Memory limit in bytes (k, m, g suffixes).
    #[arg(long)]
    memory: Option<String>,
    /// Memory plus swap limit (-1: unlimited).
    #[arg(long = "memory-swap")]
    memory_swap: Option<String>,
    /// CPU shares.
    #[arg(long = "cpu-shares")]
    cpu_shares: Option<u64>,
    /// CFS quota in microseconds.
    #[arg(long = "cpu-quota")]
    cpu_quota: Option<i64>,
    /// CFS period in microseconds.
    #[arg(long = "cpu-period")]
    cpu_period: Option<u64>,
    /// CPUs to run on.
    #[arg(long = "cpuset-cpus")]
    cpuset_cpus: Option<String>,
    /// Maximum number of tasks.
    #[arg(long = "pids-limit")]
    pids_limit: Option<i64>,
    /// Container ID.
    id: String,
}

fn parse_bytes(s: &str) -> anyhow::Result<i64> {
    let t = s.trim().to_ascii_lowercase();
    if t == "-1" {
        return Ok(-1);
    }
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    let n: i64 = num.parse().with_context(|| format!("invalid size {s:?}"))?;
    n.checked_mul(mult)
        .with_context(|| format!("size {s:?} is too large"))
}

pub(crate) fn update(root: &Path, opts: &UpdateOpts) -> anyhow::Result<()> {
    let mut res: LinuxResources = match &opts.resources {
        Some(p) if p.as_os_str() == "-" => {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .context("read resources from stdin")?;
            serde_json::from_slice(&buf).context("parse resources from stdin")?
        }
        Some(p) => {
            let buf = std::fs::read(p).with_context(|| format!("read {}", p.display()))?;
            serde_json::from_slice(&buf).with_context(|| format!("parse {}", p.display()))?
        }
        None => LinuxResources::default(),
    };
    if opts.memory.is_some() || opts.memory_swap.is_some() {
        let mut m = (*res.memory()).unwrap_or_default();
        if let Some(v) = &opts.memory {
            m.set_limit(Some(parse_bytes(v)?));
        }
        if let Some(v) = &opts.memory_swap {
            m.set_swap(Some(parse_bytes(v)?));
        }
        res.set_memory(Some(m));
    }
    let cpu_flags = opts.cpu_shares.is_some()
        || opts.cpu_quota.is_some()
        || opts.cpu_period.is_some()
        || opts.cpuset_cpus.is_some();
    if cpu_flags {
        let mut cpu: LinuxCpu = res.cpu().clone().unwrap_or_default();
        if opts.cpu_shares.is_some() {
            cpu.set_shares(opts.cpu_shares);
        }
        if opts.cpu_quota.is_some() {
            cpu.set_quota(opts.cpu_quota);
        }
        if opts.cpu_period.is_some() {
            cpu.set_period(opts.cpu_period);
        }
        if opts.cpuset_cpus.is_some() {
            cpu.set_cpus(opts.cpuset_cpus.clone());
        }
        res.set_cpu(Some(cpu));
    }
    if let Some(l) = opts.pids_limit {
        let mut p = LinuxPids::default();
        p.set_limit(l);
        res.set_pids(Some(p));
    }
    let mut c = super::lifecycle::load(root, &opts.id)?;
    if c.status() == Status::Stopped {
        anyhow::bail!("container not running");
    }
    let warnings = c
        .update(&res)
        .with_context(|| format!("update container {}", opts.id))?;
    for w in warnings {
        eprintln!("warning: {w}");
    }
    Ok(())
}
