//! The isolation and resource flags of `run`/`create` beyond memory and CPU time: ulimits,
//! `/dev/shm`'s size, devices and device rules, sysctls, the namespace modes (`--pid`,
//! `--ipc`, `--uts`, `--userns`, `--cgroupns`), extra groups, OOM settings, swappiness,
//! memory nodes and the block-I/O weight.
//!
//! [`IsolationFlags`] is what a face hands in (text, as typed); [`IsolationFlags::validate`]
//! turns it into [`Isolation`], stored in the container's `HostConfig` with Docker's field
//! names; [`apply`] writes it into the OCI spec when the container starts, and
//! [`Isolation::warnings`] says what this host cannot honour, in Docker's words.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::options::{self, OptionError};

/// The flags as typed.
#[derive(Debug, Clone, Default)]
pub struct IsolationFlags {
    /// `--ulimit NAME=SOFT[:HARD]`.
    pub ulimits: Vec<String>,
    /// `--shm-size`.
    pub shm_size: Option<String>,
    /// `--device HOST[:CONTAINER][:PERMS]`.
    pub devices: Vec<String>,
    /// `--device-cgroup-rule 'c 1:3 rwm'`.
    pub device_cgroup_rules: Vec<String>,
    /// `--sysctl KEY=VALUE`.
    pub sysctls: Vec<String>,
    /// `--pid`.
    pub pid: Option<String>,
    /// `--ipc`.
    pub ipc: Option<String>,
    /// `--uts`.
    pub uts: Option<String>,
    /// `--userns`.
    pub userns: Option<String>,
    /// `--cgroupns`.
    pub cgroupns: Option<String>,
    /// `--group-add`.
    pub group_add: Vec<String>,
    /// `--oom-score-adj`.
    pub oom_score_adj: Option<String>,
    /// `--oom-kill-disable`.
    pub oom_kill_disable: bool,
    /// `--memory-swappiness`.
    pub memory_swappiness: Option<String>,
    /// `--cpuset-mems`.
    pub cpuset_mems: Option<String>,
    /// `--blkio-weight`.
    pub blkio_weight: Option<String>,
}

/// One `--ulimit`, as Docker's `HostConfig.Ulimits` holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Ulimit {
    /// `nofile`, `nproc`, ...
    pub name: String,
    /// Soft limit.
    pub soft: i64,
    /// Hard limit.
    pub hard: i64,
}

/// One `--device`, as Docker's `HostConfig.Devices` holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeviceMapping {
    /// The device node on the host.
    pub path_on_host: String,
    /// Where it appears in the container.
    pub path_in_container: String,
    /// `rwm` or a subset.
    pub cgroup_permissions: String,
}

/// The validated flags, part of the stored `HostConfig` (Docker's names and defaults).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Isolation {
    /// `--ulimit`.
    pub ulimits: Vec<Ulimit>,
    /// `--shm-size` in bytes (0 = Docker's 64 MiB).
    pub shm_size: i64,
    /// `--device`.
    pub devices: Vec<DeviceMapping>,
    /// `--device-cgroup-rule`.
    pub device_cgroup_rules: Vec<String>,
    /// `--sysctl`.
    pub sysctls: BTreeMap<String, String>,
    /// `--pid`: empty, `host` or `container:NAME`.
    pub pid_mode: String,
    /// `--ipc`: empty, `none`, `private`, `shareable`, `host` or `container:NAME`.
    pub ipc_mode: String,
    /// `--uts`: empty or `host`.
    #[serde(rename = "UTSMode")]
    pub uts_mode: String,
    /// `--userns`: empty or `host`.
    pub userns_mode: String,
    /// `--cgroupns`: empty, `host` or `private`.
    pub cgroupns_mode: String,
    /// `--group-add`.
    pub group_add: Vec<String>,
    /// `--oom-score-adj`.
    pub oom_score_adj: i64,
    /// `--oom-kill-disable`.
    pub oom_kill_disable: Option<bool>,
    /// `--memory-swappiness` (None or -1 = the kernel's).
    pub memory_swappiness: Option<i64>,
    /// `--cpuset-mems`.
    pub cpuset_mems: String,
    /// `--blkio-weight` (0 = unset).
    pub blkio_weight: u16,
}

/// Docker's default `/dev/shm` size.
pub const DEFAULT_SHM_SIZE: i64 = 64 << 20;

/// `--ulimit` names and the OCI rlimit types they stand for.
const ULIMITS: &[(&str, &str)] = &[
    ("core", "RLIMIT_CORE"),
    ("cpu", "RLIMIT_CPU"),
    ("data", "RLIMIT_DATA"),
    ("fsize", "RLIMIT_FSIZE"),
    ("locks", "RLIMIT_LOCKS"),
    ("memlock", "RLIMIT_MEMLOCK"),
    ("msgqueue", "RLIMIT_MSGQUEUE"),
    ("nice", "RLIMIT_NICE"),
    ("nofile", "RLIMIT_NOFILE"),
    ("nproc", "RLIMIT_NPROC"),
    ("rss", "RLIMIT_RSS"),
    ("rtprio", "RLIMIT_RTPRIO"),
    ("rttime", "RLIMIT_RTTIME"),
    ("sigpending", "RLIMIT_SIGPENDING"),
    ("stack", "RLIMIT_STACK"),
];

/// Sysctls that live in a container's own namespaces (Docker's list): IPC ones, and
/// `net.*` in a network namespace of its own.
fn namespaced_sysctl(key: &str) -> bool {
    matches!(
        key,
        "kernel.msgmax"
            | "kernel.msgmnb"
            | "kernel.msgmni"
            | "kernel.sem"
            | "kernel.shmall"
            | "kernel.shmmax"
            | "kernel.shmmni"
            | "kernel.shm_rmid_forced"
    ) || key.starts_with("fs.mqueue.")
        || key.starts_with("net.")
}

fn bad(flag: &'static str, value: &str, reason: impl Into<String>) -> OptionError {
    OptionError::BadValue {
        flag,
        value: value.to_owned(),
        reason: reason.into(),
    }
}

/// Go's `strconv.ParseInt` message, which Docker passes on.
fn parse_i64(flag: &'static str, whole: &str, v: &str) -> Result<i64, OptionError> {
    v.parse().map_err(|_| {
        bad(
            flag,
            whole,
            format!("strconv.ParseInt: parsing {v:?}: invalid syntax"),
        )
    })
}

fn parse_ulimit(s: &str) -> Result<Ulimit, OptionError> {
    const FLAG: &str = "--ulimit";
    let (name, limits) = s
        .split_once('=')
        .ok_or_else(|| bad(FLAG, s, format!("invalid ulimit argument: {s}")))?;
    if !ULIMITS.iter().any(|(n, _)| *n == name) {
        return Err(bad(FLAG, s, format!("invalid ulimit type: {name}")));
    }
    let (soft, hard) = match limits.split_once(':') {
        Some((soft, hard)) => (parse_i64(FLAG, s, soft)?, parse_i64(FLAG, s, hard)?),
        None => {
            let v = parse_i64(FLAG, s, limits)?;
            (v, v)
        }
    };
    if soft > hard {
        return Err(bad(
            FLAG,
            s,
            format!("ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"),
        ));
    }
    Ok(Ulimit {
        name: name.to_owned(),
        soft,
        hard,
    })
}

fn parse_device(s: &str) -> Result<DeviceMapping, OptionError> {
    const FLAG: &str = "--device";
    let parts: Vec<&str> = s.split(':').collect();
    let perms_ok = |p: &str| !p.is_empty() && p.chars().all(|c| "rwm".contains(c));
    let (host, inside, perms) = match parts.as_slice() {
        [h] => (*h, *h, "rwm"),
        [h, p] if perms_ok(p) => (*h, *h, *p),
        [h, c] => (*h, *c, "rwm"),
        [h, c, p] if perms_ok(p) => (*h, *c, *p),
        _ => return Err(bad(FLAG, s, format!("bad format for path: {s}"))),
    };
    if !host.starts_with('/') || !inside.starts_with('/') {
        return Err(bad(FLAG, s, format!("bad format for path: {s}")));
    }
    // The node must exist and be a device now: a container that cannot get it must not be
    // made at all (Docker fails the same way, at start).
    use std::os::unix::fs::FileTypeExt;
    let meta = std::fs::metadata(host).map_err(|e| {
        OptionError::Conflict(format!(
            "error gathering device information while adding custom device {host:?}: {}",
            io_reason(&e)
        ))
    })?;
    if !(meta.file_type().is_char_device() || meta.file_type().is_block_device()) {
        return Err(OptionError::Conflict(format!(
            "error gathering device information while adding custom device {host:?}: not a device node"
        )));
    }
    Ok(DeviceMapping {
        path_on_host: host.to_owned(),
        path_in_container: inside.to_owned(),
        cgroup_permissions: perms.to_owned(),
    })
}

/// Go's lower-case text of an OS error ("no such file or directory").
fn io_reason(e: &std::io::Error) -> String {
    let s = e.to_string();
    let s = s.split(" (os error").next().unwrap_or(&s).to_owned();
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => s,
    }
}

/// One device rule `TYPE MAJOR:MINOR ACCESS` as an OCI device-cgroup entry.
fn device_rule(s: &str) -> Option<Value> {
    let mut it = s.split_whitespace();
    let (kind, nums, access) = (it.next()?, it.next()?, it.next()?);
    if it.next().is_some() || !matches!(kind, "a" | "b" | "c") {
        return None;
    }
    if access.is_empty() || access.len() > 3 || !access.chars().all(|c| "rwm".contains(c)) {
        return None;
    }
    let (major, minor) = nums.split_once(':')?;
    let num = |n: &str| -> Option<Value> {
        if n == "*" {
            Some(Value::Null)
        } else {
            n.parse::<i64>().ok().map(Value::from)
        }
    };
    let (major, minor) = (num(major)?, num(minor)?);
    let mut rule = json!({"allow": true, "type": kind, "access": access});
    if !major.is_null() {
        rule["major"] = major;
    }
    if !minor.is_null() {
        rule["minor"] = minor;
    }
    Some(rule)
}

fn check_mode(
    flag: &'static str,
    what: &str,
    v: &Option<String>,
    ok: &[&str],
    container: bool,
) -> Result<String, OptionError> {
    let v = v.clone().unwrap_or_default();
    let valid = ok.contains(&v.as_str())
        || (container && v.strip_prefix("container:").is_some_and(|n| !n.is_empty()));
    if valid {
        Ok(v)
    } else {
        Err(OptionError::Conflict(format!(
            "{flag}: invalid {what} mode"
        )))
    }
}

impl IsolationFlags {
    /// Checks every flag; the first bad one is the error (Docker's message).
    pub fn validate(&self, host_network: bool) -> Result<Isolation, OptionError> {
        let ulimits = self
            .ulimits
            .iter()
            .map(|u| parse_ulimit(u))
            .collect::<Result<Vec<_>, _>>()?;
        let shm_size = match &self.shm_size {
            Some(v) => {
                let n = options::parse_size("--shm-size", v)?;
                if n <= 0 {
                    return Err(bad("--shm-size", v, "SHM size must be greater than 0"));
                }
                n
            }
            None => 0,
        };
        let devices = self
            .devices
            .iter()
            .map(|d| parse_device(d))
            .collect::<Result<Vec<_>, _>>()?;
        for r in &self.device_cgroup_rules {
            if device_rule(r).is_none() {
                return Err(bad(
                    "--device-cgroup-rule",
                    r,
                    format!("invalid device cgroup format '{r}'"),
                ));
            }
        }
        let mut sysctls = BTreeMap::new();
        for s in &self.sysctls {
            let Some((k, v)) = s.split_once('=') else {
                return Err(bad("--sysctl", s, format!("sysctl '{s}' is not allowed")));
            };
            if !namespaced_sysctl(k) {
                return Err(bad("--sysctl", s, format!("sysctl '{s}' is not allowed")));
            }
            if host_network && k.starts_with("net.") {
                return Err(OptionError::Conflict(format!(
                    "sysctl {k:?} not allowed in host network namespace"
                )));
            }
            sysctls.insert(k.to_owned(), v.to_owned());
        }
        let pid_mode = check_mode("--pid", "PID", &self.pid, &["", "host"], true)?;
        let ipc_mode = check_mode(
            "--ipc",
            "IPC",
            &self.ipc,
            &["", "none", "private", "shareable", "host"],
            true,
        )?;
        if ipc_mode == "host" && sysctls.keys().any(|k| !k.starts_with("net.")) {
            return Err(OptionError::Conflict(
                "sysctls of the IPC namespace are not allowed with --ipc host".into(),
            ));
        }
        let uts_mode = check_mode("--uts", "UTS", &self.uts, &["", "host"], false)?;
        let userns_mode = check_mode("--userns", "USER", &self.userns, &["", "host"], false)?;
        let cgroupns_mode = check_mode(
            "--cgroupns",
            "CGROUP",
            &self.cgroupns,
            &["", "host", "private"],
            false,
        )?;
        for g in &self.group_add {
            if g.is_empty() {
                return Err(bad("--group-add", g, "empty group"));
            }
        }
        let oom_score_adj = match &self.oom_score_adj {
            Some(v) => {
                let n = parse_i64("--oom-score-adj", v, v)?;
                if !(-1000..=1000).contains(&n) {
                    return Err(OptionError::Conflict(format!(
                        "Invalid value {n}, range for oom score adj is [-1000, 1000]"
                    )));
                }
                n
            }
            None => 0,
        };
        let memory_swappiness = match &self.memory_swappiness {
            Some(v) => {
                let n = parse_i64("--memory-swappiness", v, v)?;
                if n != -1 && !(0..=100).contains(&n) {
                    return Err(OptionError::Conflict(format!(
                        "Invalid value: {n}, valid memory swappiness range is 0-100"
                    )));
                }
                Some(n).filter(|n| *n != -1)
            }
            None => None,
        };
        let cpuset_mems = match &self.cpuset_mems {
            Some(v) => {
                let mems = options::parse_cpuset(v)?;
                let online = std::fs::read_to_string("/sys/devices/system/node/online")
                    .map(|s| s.trim().to_owned())
                    .unwrap_or_else(|_| "0".into());
                if !cpuset_within(&mems, &online) {
                    return Err(OptionError::Conflict(format!(
                        "Requested memory nodes are not available - requested {mems}, available: {online}"
                    )));
                }
                mems
            }
            None => String::new(),
        };
        let blkio_weight = match &self.blkio_weight {
            Some(v) => {
                let n = parse_i64("--blkio-weight", v, v)?;
                if n != 0 && !(10..=1000).contains(&n) {
                    return Err(OptionError::Conflict(
                        "Range of blkio weight is from 10 to 1000".into(),
                    ));
                }
                n as u16
            }
            None => 0,
        };
        Ok(Isolation {
            ulimits,
            shm_size,
            devices,
            device_cgroup_rules: self.device_cgroup_rules.clone(),
            sysctls,
            pid_mode,
            ipc_mode,
            uts_mode,
            userns_mode,
            cgroupns_mode,
            group_add: self.group_add.clone(),
            oom_score_adj,
            oom_kill_disable: self.oom_kill_disable.then_some(true),
            memory_swappiness,
            cpuset_mems,
            blkio_weight,
        })
    }
}

/// Whether every node of `want` (`0-1,3`) is in `online` (the same form).
fn cpuset_within(want: &str, online: &str) -> bool {
    let set = |s: &str| -> Option<Vec<(u32, u32)>> {
        s.split(',')
            .filter(|p| !p.is_empty())
            .map(|p| match p.split_once('-') {
                Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                None => p.parse().ok().map(|n| (n, n)),
            })
            .collect()
    };
    let (Some(want), Some(online)) = (set(want), set(online)) else {
        return false;
    };
    want.iter()
        .all(|(a, b)| (*a..=*b).all(|n| online.iter().any(|(lo, hi)| (*lo..=*hi).contains(&n))))
}

/// What the host's cgroups offer to the flags that depend on them.
#[derive(Debug, Clone, Copy)]
pub struct HostSupport {
    /// `memory.swappiness` (cgroup v1 only).
    pub swappiness: bool,
    /// `memory.oom_control` (cgroup v1 only).
    pub oom_kill_disable: bool,
    /// A block-I/O weight file (`blkio.weight`, `blkio.bfq.weight`, `io.weight`, `io.bfq.weight`).
    pub blkio_weight: bool,
}

impl HostSupport {
    /// Looks at `/sys/fs/cgroup` (v1 hierarchies or a v2 mount).
    pub fn probe() -> HostSupport {
        Self::probe_at(Path::new("/sys/fs/cgroup"))
    }

    fn probe_at(root: &Path) -> HostSupport {
        let v2 = root.join("cgroup.controllers").exists();
        if v2 {
            let controllers =
                std::fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
            let io = controllers.split_whitespace().any(|c| c == "io");
            // The weight file shows in child cgroups only; the io controller with BFQ or the
            // io cost model is what grants it.
            HostSupport {
                swappiness: false,
                oom_kill_disable: false,
                blkio_weight: io
                    && (root.join("io.bfq.weight").exists()
                        || root.join("io.weight").exists()
                        || root.join("io.cost.model").exists()),
            }
        } else {
            HostSupport {
                swappiness: root.join("memory/memory.swappiness").exists(),
                oom_kill_disable: root.join("memory/memory.oom_control").exists(),
                blkio_weight: root.join("blkio/blkio.weight").exists()
                    || root.join("blkio/blkio.bfq.weight").exists(),
            }
        }
    }
}

impl Isolation {
    /// Warnings Docker prints at create for what the host cannot honour (the value is then
    /// left out of the container's spec, as Docker discards it).
    pub fn warnings(&self, memory_limit: i64, host: HostSupport) -> Vec<String> {
        let mut out = Vec::new();
        if self.memory_swappiness.is_some() && !host.swappiness {
            out.push("Your kernel does not support memory swappiness capabilities or the cgroup is not mounted. Memory swappiness discarded.".into());
        }
        if self.oom_kill_disable == Some(true) {
            if !host.oom_kill_disable {
                out.push(
                    "Your kernel does not support OomKillDisable. OomKillDisable discarded.".into(),
                );
            } else if memory_limit == 0 {
                out.push("OOM killer is disabled for the container, but no memory limit is set, this can result in the system running out of resources.".into());
            }
        }
        if self.blkio_weight > 0 && !host.blkio_weight {
            out.push("Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded.".into());
        }
        out
    }
}

/// Where `container:NAME` modes lead: the running process of that container.
pub trait NamespaceSource {
    /// The host PID of `name`'s init, or an error naming why it cannot be joined.
    fn pid_of(&self, name: &str) -> Result<i32, String>;
}

/// Writes `iso` into `spec` (an OCI runtime spec as JSON). `host` decides what is discarded
/// (see [`Isolation::warnings`]); `others` resolves `container:NAME` modes.
pub fn apply(
    spec: &mut Value,
    iso: &Isolation,
    host: HostSupport,
    others: &dyn NamespaceSource,
) -> Result<(), String> {
    // Process: rlimits (replacing the base's of the same type) and the OOM score. Extra
    // groups were resolved against the image at create (`ContainerSpec::additional_gids`).
    {
        let p = &mut spec["process"];
        let mut rlimits: Vec<Value> = p
            .get("rlimits")
            .and_then(|r| r.as_array().cloned())
            .unwrap_or_default();
        for u in &iso.ulimits {
            let ty = ULIMITS
                .iter()
                .find(|(n, _)| *n == u.name)
                .map(|(_, t)| *t)
                .ok_or_else(|| format!("invalid ulimit type: {}", u.name))?;
            rlimits.retain(|r| r.get("type").and_then(Value::as_str) != Some(ty));
            rlimits.push(json!({"type": ty, "soft": u.soft.max(0), "hard": u.hard.max(0)}));
        }
        if !rlimits.is_empty() {
            p["rlimits"] = Value::Array(rlimits);
        }
        if iso.oom_score_adj != 0 {
            p["oomScoreAdj"] = json!(iso.oom_score_adj);
        }
    }

    // /dev/shm: Docker's 64 MiB unless asked; the host's with --ipc host.
    let shm = if iso.shm_size > 0 {
        iso.shm_size
    } else {
        DEFAULT_SHM_SIZE
    };
    if let Some(mounts) = spec["mounts"].as_array_mut() {
        for m in mounts.iter_mut() {
            if m.get("destination").and_then(Value::as_str) != Some("/dev/shm") {
                continue;
            }
            if iso.ipc_mode == "host" {
                *m = json!({"destination": "/dev/shm", "type": "bind", "source": "/dev/shm",
                            "options": ["rbind", "nosuid", "noexec", "nodev"]});
            } else if m.get("type").and_then(Value::as_str) == Some("tmpfs") {
                let mut opts: Vec<Value> = m
                    .get("options")
                    .and_then(|o| o.as_array().cloned())
                    .unwrap_or_default();
                opts.retain(|o| !o.as_str().is_some_and(|s| s.starts_with("size=")));
                opts.push(json!(format!("size={}k", shm / 1024)));
                m["options"] = Value::Array(opts);
            }
        }
    }

    let linux = &mut spec["linux"];
    // Namespaces.
    let mut ns: Vec<Value> = linux
        .get("namespaces")
        .and_then(|n| n.as_array().cloned())
        .unwrap_or_default();
    let mut set_ns = |ty: &str, mode: &str| -> Result<(), String> {
        let path = match mode {
            "host" => {
                ns.retain(|n| n.get("type").and_then(Value::as_str) != Some(ty));
                return Ok(());
            }
            m => match m.strip_prefix("container:") {
                Some(name) => {
                    let pid = others.pid_of(name)?;
                    let file = match ty {
                        "network" => "net",
                        t => t,
                    };
                    Some(format!("/proc/{pid}/ns/{file}"))
                }
                None => None,
            },
        };
        ns.retain(|n| n.get("type").and_then(Value::as_str) != Some(ty));
        ns.push(match path {
            Some(p) => json!({"type": ty, "path": p}),
            None => json!({"type": ty}),
        });
        Ok(())
    };
    if !iso.pid_mode.is_empty() {
        set_ns("pid", &iso.pid_mode)?;
    }
    if !iso.ipc_mode.is_empty()
        && !matches!(iso.ipc_mode.as_str(), "private" | "shareable" | "none")
    {
        set_ns("ipc", &iso.ipc_mode)?;
    }
    if iso.uts_mode == "host" {
        set_ns("uts", "host")?;
    }
    match iso.cgroupns_mode.as_str() {
        "host" => set_ns("cgroup", "host")?,
        "private" => set_ns("cgroup", "")?,
        _ => {}
    }
    linux["namespaces"] = Value::Array(ns);
    // The host's UTS namespace keeps the host's name: the runtime must not set one.
    if iso.uts_mode == "host" {
        if let Some(o) = spec.as_object_mut() {
            o.remove("hostname");
        }
    }
    let linux = &mut spec["linux"];

    // Sysctls.
    if !iso.sysctls.is_empty() {
        let mut map = linux
            .get("sysctl")
            .and_then(|s| s.as_object().cloned())
            .unwrap_or_default();
        for (k, v) in &iso.sysctls {
            map.insert(k.clone(), json!(v));
        }
        linux["sysctl"] = Value::Object(map);
    }

    // Devices: the node in the container and its cgroup rule.
    let mut nodes: Vec<Value> = linux
        .get("devices")
        .and_then(|d| d.as_array().cloned())
        .unwrap_or_default();
    let mut rules: Vec<Value> = linux["resources"]
        .get("devices")
        .and_then(|d| d.as_array().cloned())
        .unwrap_or_default();
    for d in &iso.devices {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let meta = std::fs::metadata(&d.path_on_host).map_err(|e| {
            format!(
                "error gathering device information while adding custom device {:?}: {}",
                d.path_on_host,
                io_reason(&e)
            )
        })?;
        let ty = if meta.file_type().is_block_device() {
            "b"
        } else {
            "c"
        };
        let rdev = meta.rdev();
        let (major, minor) = (libc_major(rdev), libc_minor(rdev));
        nodes.retain(|n| n.get("path").and_then(Value::as_str) != Some(&d.path_in_container));
        nodes.push(
            json!({"path": d.path_in_container, "type": ty, "major": major,
                          "minor": minor, "fileMode": meta.mode() & 0o7777,
                          "uid": meta.uid(), "gid": meta.gid()}),
        );
        rules.push(
            json!({"allow": true, "type": ty, "major": major, "minor": minor,
                          "access": d.cgroup_permissions}),
        );
    }
    for r in &iso.device_cgroup_rules {
        rules.push(device_rule(r).ok_or_else(|| format!("invalid device cgroup format '{r}'"))?);
    }
    if !nodes.is_empty() {
        linux["devices"] = Value::Array(nodes);
    }
    if !rules.is_empty() {
        linux["resources"]["devices"] = Value::Array(rules);
    }

    // Cgroup settings this host honours (the rest was warned about at create).
    let res = &mut linux["resources"];
    if let Some(s) = iso.memory_swappiness.filter(|_| host.swappiness) {
        res["memory"]["swappiness"] = json!(s);
    }
    if iso.oom_kill_disable == Some(true) && host.oom_kill_disable {
        res["memory"]["disableOOMKiller"] = json!(true);
    }
    if !iso.cpuset_mems.is_empty() {
        res["cpu"]["mems"] = json!(iso.cpuset_mems);
    }
    if iso.blkio_weight > 0 && host.blkio_weight {
        res["blockIO"]["weight"] = json!(iso.blkio_weight);
    }
    Ok(())
}

/// The major number of a `dev_t` (glibc's encoding).
fn libc_major(dev: u64) -> u64 {
    ((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0x0000_0fff)
}

/// The minor number of a `dev_t` (glibc's encoding).
fn libc_minor(dev: u64) -> u64 {
    ((dev >> 12) & 0xffff_ff00) | (dev & 0x0000_00ff)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn err(f: IsolationFlags) -> String {
        f.validate(false).unwrap_err().to_string()
    }

    struct NoOthers;
    impl NamespaceSource for NoOthers {
        fn pid_of(&self, name: &str) -> Result<i32, String> {
            if name == "web" {
                Ok(4242)
            } else {
                Err(format!("No such container: {name}"))
            }
        }
    }

    #[test]
    fn bad_values_get_dockers_messages() {
        assert_eq!(
            err(IsolationFlags {
                ulimits: vec!["nofile=abc".into()],
                ..Default::default()
            }),
            "invalid argument \"nofile=abc\" for \"--ulimit\" flag: strconv.ParseInt: parsing \"abc\": invalid syntax"
        );
        assert!(err(IsolationFlags {
            ulimits: vec!["bogus=1".into()],
            ..Default::default()
        })
        .ends_with("invalid ulimit type: bogus"));
        assert!(err(IsolationFlags {
            ulimits: vec!["nofile=10:5".into()],
            ..Default::default()
        })
        .ends_with("ulimit soft limit must be less than or equal to hard limit: 10 > 5"));
        assert_eq!(
            err(IsolationFlags {
                devices: vec!["/dev/nonexistent".into()],
                ..Default::default()
            }),
            "error gathering device information while adding custom device \"/dev/nonexistent\": no such file or directory"
        );
        assert!(err(IsolationFlags {
            sysctls: vec!["vm.swappiness=1".into()],
            ..Default::default()
        })
        .ends_with("sysctl 'vm.swappiness=1' is not allowed"));
        assert_eq!(
            err(IsolationFlags {
                pid: Some("bogus".into()),
                ..Default::default()
            }),
            "--pid: invalid PID mode"
        );
        assert!(err(IsolationFlags {
            oom_score_adj: Some("1001".into()),
            ..Default::default()
        })
        .contains("range for oom score adj is [-1000, 1000]"));
        assert!(err(IsolationFlags {
            blkio_weight: Some("5".into()),
            ..Default::default()
        })
        .contains("Range of blkio weight is from 10 to 1000"));
        assert!(err(IsolationFlags {
            device_cgroup_rules: vec!["x 1:3 rwm".into()],
            ..Default::default()
        })
        .contains("invalid device cgroup format 'x 1:3 rwm'"));
        assert!(IsolationFlags {
            sysctls: vec!["net.ipv4.ip_forward=1".into()],
            ..Default::default()
        }
        .validate(true)
        .is_err());
    }

    #[test]
    fn the_spec_gets_each_setting() {
        let iso = IsolationFlags {
            ulimits: vec!["nofile=1024:2048".into()],
            shm_size: Some("128m".into()),
            devices: vec!["/dev/null:/dev/xnull:r".into()],
            device_cgroup_rules: vec!["c 1:3 rwm".into()],
            sysctls: vec!["net.ipv4.ip_unprivileged_port_start=0".into()],
            pid: Some("container:web".into()),
            uts: Some("host".into()),
            oom_score_adj: Some("500".into()),
            ..Default::default()
        }
        .validate(false)
        .unwrap();
        let mut spec = json!({
            "hostname": "abc",
            "process": {"user": {"uid": 0, "gid": 0},
                        "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 1, "hard": 1}]},
            "mounts": [{"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
                        "options": ["nosuid", "size=65536k"]}],
            "linux": {"namespaces": [{"type": "pid"}, {"type": "uts"}, {"type": "mount"}],
                      "resources": {}}
        });
        let host = HostSupport {
            swappiness: true,
            oom_kill_disable: true,
            blkio_weight: true,
        };
        apply(&mut spec, &iso, host, &NoOthers).unwrap();
        assert_eq!(
            spec["process"]["rlimits"],
            json!([{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 2048}])
        );
        assert_eq!(spec["process"]["oomScoreAdj"], json!(500));
        assert_eq!(
            spec["mounts"][0]["options"],
            json!(["nosuid", "size=131072k"])
        );
        assert_eq!(
            spec["linux"]["namespaces"],
            json!([{"type": "mount"}, {"type": "pid", "path": "/proc/4242/ns/pid"}])
        );
        assert!(spec.get("hostname").is_none());
        assert_eq!(
            spec["linux"]["sysctl"],
            json!({"net.ipv4.ip_unprivileged_port_start": "0"})
        );
        assert_eq!(
            spec["linux"]["devices"],
            json!([{"path": "/dev/xnull", "type": "c", "major": 1, "minor": 3,
                    "fileMode": 0o666, "uid": 0, "gid": 0}])
        );
        assert_eq!(
            spec["linux"]["resources"]["devices"],
            json!([{"allow": true, "type": "c", "major": 1, "minor": 3, "access": "r"},
                   {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}])
        );
        let gone = IsolationFlags {
            ipc: Some("container:nope".into()),
            ..Default::default()
        }
        .validate(false)
        .unwrap();
        assert_eq!(
            apply(&mut spec, &gone, host, &NoOthers).unwrap_err(),
            "No such container: nope"
        );
    }

    #[test]
    fn host_support_decides_the_warnings() {
        let iso = Isolation {
            memory_swappiness: Some(10),
            oom_kill_disable: Some(true),
            blkio_weight: 300,
            ..Default::default()
        };
        let none = HostSupport {
            swappiness: false,
            oom_kill_disable: false,
            blkio_weight: false,
        };
        let w = iso.warnings(0, none);
        assert_eq!(w.len(), 3, "{w:?}");
        assert!(w[2].starts_with("Your kernel does not support Block I/O weight"));
        let mut spec = json!({"process": {}, "linux": {"resources": {}}});
        apply(&mut spec, &iso, none, &NoOthers).unwrap();
        assert_eq!(spec["linux"]["resources"], json!({}));
    }
}
