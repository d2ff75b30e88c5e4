//! cgroups v1 and v2, detected at run time: create a container's cgroup, apply the spec's
//! resources, join it, read OOM kills and usage, remove it.
//!
//! v1 (and hybrid hosts): one directory per mounted hierarchy, `<mount>/berth/<id>`, plus the
//! `unified` v2 mount when present. v2: `/sys/fs/cgroup/berth/<id>` with the controllers
//! enabled in `cgroup.subtree_control` on the way down.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};

use crate::mounts::CgroupMountLayout;
use crate::ErrorKind;

pub mod devices;
pub mod extra_limits;

/// Errors of cgroup handling.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// Reading or writing a cgroup file failed.
    #[error("cgroup: {op} {path}: {source}")]
    Io {
        /// What was done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A resource value the kernel cannot take.
    #[error("cgroup: invalid {what}: {value}")]
    InvalidValue {
        /// The resource.
        what: &'static str,
        /// The value given.
        value: String,
    },
    /// No cgroup file system is mounted under /sys/fs/cgroup.
    #[error("cgroup: no cgroup file system mounted at /sys/fs/cgroup")]
    NotMounted,
    /// The spec asks for a limit this host's cgroups cannot enforce (refused, not ignored).
    #[error("cgroup: unsupported: {what}")]
    Unsupported {
        /// The field and why.
        what: String,
    },
    /// The cgroup still holds processes after they were killed.
    #[error("cgroup: {path} still has processes")]
    Busy {
        /// The cgroup directory.
        path: PathBuf,
    },
}

impl CgroupError {
    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            CgroupError::InvalidValue { .. } | CgroupError::Unsupported { .. } => {
                ErrorKind::InvalidArgument
            }
            CgroupError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound => {
                ErrorKind::NotFound
            }
            _ => ErrorKind::System,
        }
    }
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> CgroupError + 'a {
    move |source| CgroupError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// One mounted cgroup v1 hierarchy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct V1Hierarchy {
    /// Where it is mounted, e.g. `/sys/fs/cgroup/memory`.
    pub mount_point: PathBuf,
    /// Its controllers (`cpu`, `cpuacct`) or name (`name=systemd`).
    pub controllers: Vec<String>,
}

/// How cgroups are mounted on this host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CgroupLayout {
    /// Pure v2: one hierarchy at the given mount point.
    V2 {
        /// Usually `/sys/fs/cgroup`.
        root: PathBuf,
    },
    /// v1 (legacy or hybrid).
    V1 {
        /// The v1 hierarchies.
        hierarchies: Vec<V1Hierarchy>,
        /// The v2 mount beside them on a hybrid host (usually without controllers).
        unified: Option<PathBuf>,
    },
}

const V1_CONTROLLERS: &[&str] = &[
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "devices",
    "freezer",
    "blkio",
    "pids",
    "net_cls",
    "net_prio",
    "perf_event",
    "hugetlb",
    "rdma",
    "misc",
];

impl CgroupLayout {
    /// Detects the layout from `/proc/self/mountinfo`.
    pub fn detect() -> Result<CgroupLayout, CgroupError> {
        let path = Path::new("/proc/self/mountinfo");
        let text = fs::read_to_string(path).map_err(io_err("read", path))?;
        Self::from_mountinfo(&text)
    }

    /// Parses the layout from the text of a mountinfo file.
    pub fn from_mountinfo(text: &str) -> Result<CgroupLayout, CgroupError> {
        let mut hierarchies = Vec::new();
        let mut unified = None;
        for line in text.lines() {
            let Some((left, right)) = line.split_once(" - ") else {
                continue;
            };
            let fields: Vec<&str> = left.split(' ').collect();
            let rfields: Vec<&str> = right.split(' ').collect();
            if fields.len() < 5 || rfields.len() < 3 {
                continue;
            }
            let mount_point = PathBuf::from(fields[4]);
            if !mount_point.starts_with("/sys/fs/cgroup") {
                continue;
            }
            match rfields[0] {
                "cgroup2" => {
                    if mount_point == Path::new("/sys/fs/cgroup") {
                        return Ok(CgroupLayout::V2 { root: mount_point });
                    }
                    unified = Some(mount_point);
                }
                "cgroup" => {
                    let controllers: Vec<String> = rfields[2]
                        .split(',')
                        .filter(|o| V1_CONTROLLERS.contains(o) || o.starts_with("name="))
                        .map(String::from)
                        .collect();
                    if !controllers.is_empty() {
                        hierarchies.push(V1Hierarchy {
                            mount_point,
                            controllers,
                        });
                    }
                }
                _ => {}
            }
        }
        if hierarchies.is_empty() {
            return match unified {
                Some(root) => Ok(CgroupLayout::V2 { root }),
                None => Err(CgroupError::NotMounted),
            };
        }
        Ok(CgroupLayout::V1 {
            hierarchies,
            unified,
        })
    }

    /// True on a pure v2 host.
    pub fn is_v2(&self) -> bool {
        matches!(self, CgroupLayout::V2 { .. })
    }

    /// How a container's `/sys/fs/cgroup` mount should look on this host.
    pub fn mount_layout(&self) -> CgroupMountLayout {
        match self {
            CgroupLayout::V2 { .. } => CgroupMountLayout::Unified,
            CgroupLayout::V1 {
                hierarchies,
                unified,
            } => CgroupMountLayout::V1 {
                hierarchies: hierarchies
                    .iter()
                    .map(|h| {
                        let name = h
                            .mount_point
                            .file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_else(|| h.controllers.join(","));
                        (name, h.controllers.join(","))
                    })
                    .collect(),
                // Like runc, a hybrid host's empty v2 hierarchy is not shown to containers.
                hybrid_unified: {
                    let _ = unified;
                    false
                },
            },
        }
    }
}

/// A container's cgroup: one directory per hierarchy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cgroup {
    /// True when this is a v2 cgroup.
    pub v2: bool,
    /// Every directory of the cgroup, one per hierarchy (v2: one).
    pub dirs: Vec<PathBuf>,
    /// v1: controller name -> directory.
    pub controllers: Vec<(String, PathBuf)>,
}

/// How a process moves itself into a [`Cgroup`] ([`Cgroup::self_join`]).
///
/// Writing a pid into a `cgroup.procs` file takes a global lock whose first writer waits
/// for an RCU grace period (milliseconds, on the path of every container start). A
/// single-threaded process that writes `0` into each v1 hierarchy's `tasks` file moves its
/// only thread without that lock; the v2 directory is entered at birth with
/// `clone3(CLONE_INTO_CGROUP)` ([`crate::sys::fork_into_cgroup`]), or else by `cgroup.procs`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SelfJoin {
    /// The v1 hierarchies' `tasks` files.
    pub v1_tasks: Vec<PathBuf>,
    /// The v2 directory: the cgroup itself on a v2 host, the unified hierarchy's on a hybrid
    /// one.
    pub v2_dir: Option<PathBuf>,
}

impl SelfJoin {
    /// Moves the calling process, which must be single-threaded, into the cgroup; the v2
    /// directory only when `v2_done` is false (clone3 did not place it there already).
    pub fn join(&self, v2_done: bool) -> Result<(), CgroupError> {
        for t in &self.v1_tasks {
            write(t, "0")?;
        }
        if let Some(d) = self.v2_dir.as_ref().filter(|_| !v2_done) {
            write(&d.join("cgroup.procs"), "0")?;
        }
        Ok(())
    }
}

/// Usage figures of a cgroup, for `stats` and `top`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupStats {
    /// Memory in use, bytes.
    pub memory_usage: u64,
    /// The memory limit, bytes (`None`: unlimited).
    pub memory_limit: Option<u64>,
    /// CPU time used, nanoseconds.
    pub cpu_usage_ns: u64,
    /// Number of tasks.
    pub pids: u64,
    /// The pids limit (`None`: unlimited).
    pub pids_limit: Option<u64>,
}

/// Relative cgroup path of a container: the spec's `cgroupsPath` or `berth/<id>`.
pub fn cgroup_relative_path(cgroups_path: Option<&Path>, id: &str) -> PathBuf {
    match cgroups_path {
        Some(p) if !p.as_os_str().is_empty() => p
            .components()
            .filter(|c| matches!(c, std::path::Component::Normal(_)))
            .collect(),
        _ => Path::new("berth").join(id),
    }
}

fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    use std::io::Write;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io_err("open", path))?;
    f.write_all(value.as_bytes()).map_err(io_err("write", path))
}

fn read_trim(path: &Path) -> Result<String, CgroupError> {
    fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(io_err("read", path))
}

fn read_u64(path: &Path) -> Result<u64, CgroupError> {
    let s = read_trim(path)?;
    s.parse().map_err(|_| CgroupError::InvalidValue {
        what: "counter",
        value: s,
    })
}

/// Value of `key` in a flat keyed file (`memory.events`, `cpu.stat`, `memory.oom_control`).
fn keyed(path: &Path, key: &str) -> Result<Option<u64>, CgroupError> {
    let text = read_trim(path)?;
    Ok(text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    }))
}

/// runc's conversion of cgroup v1 cpu shares (2..262144) to a v2 cpu.weight (1..10000).
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    1 + ((shares.clamp(2, 262_144) - 2) * 9999) / 262_142
}

/// Devices every container may use on v1, like runc: the default nodes, ptys, tun.
const V1_DEFAULT_DEVICE_RULES: &[&str] = &[
    "c *:* m",
    "b *:* m",
    "c 1:3 rwm",
    "c 1:5 rwm",
    "c 1:7 rwm",
    "c 1:8 rwm",
    "c 1:9 rwm",
    "c 5:0 rwm",
    "c 5:1 rwm",
    "c 5:2 rwm",
    "c 136:* rwm",
    "c 10:200 rwm",
];

impl Cgroup {
    /// The cgroup at `rel` (e.g. `berth/<id>`) in every hierarchy of `layout`, as
    /// [`Cgroup::create`] makes it, without touching the file system: a handle to find or
    /// [`destroy`](Cgroup::destroy) a cgroup whose container left no state.
    pub fn at(layout: &CgroupLayout, rel: &Path) -> Cgroup {
        match layout {
            CgroupLayout::V2 { root } => Cgroup {
                v2: true,
                dirs: vec![root.join(rel)],
                controllers: Vec::new(),
            },
            CgroupLayout::V1 {
                hierarchies,
                unified,
            } => {
                let mut cg = Cgroup {
                    v2: false,
                    dirs: Vec::new(),
                    controllers: Vec::new(),
                };
                for h in hierarchies {
                    let dir = h.mount_point.join(rel);
                    for c in &h.controllers {
                        cg.controllers.push((c.clone(), dir.clone()));
                    }
                    cg.dirs.push(dir);
                }
                cg.dirs.extend(unified.iter().map(|u| u.join(rel)));
                cg
            }
        }
    }

    /// Creates the cgroup at `rel` (e.g. `berth/<id>`) in every hierarchy.
    pub fn create(layout: &CgroupLayout, rel: &Path) -> Result<Cgroup, CgroupError> {
        match layout {
            CgroupLayout::V2 { root } => {
                let dir = root.join(rel);
                // Enable the controllers on the way down, so the leaf gets them.
                let wanted = ["cpu", "cpuset", "memory", "pids", "io", "hugetlb"];
                let mut cur = root.clone();
                for comp in rel.components() {
                    let available = read_trim(&cur.join("cgroup.controllers")).unwrap_or_default();
                    // One controller at a time: one that cannot be enabled (busy, or not
                    // delegated) must not keep the others off. A limit that needs a missing
                    // controller fails loudly when it is written.
                    let enabled =
                        read_trim(&cur.join("cgroup.subtree_control")).unwrap_or_default();
                    let enabled: Vec<&str> = enabled.split_whitespace().collect();
                    for c in available
                        .split_whitespace()
                        .filter(|c| wanted.contains(c) && !enabled.contains(c))
                    {
                        let _ = write(&cur.join("cgroup.subtree_control"), &format!("+{c}"));
                    }
                    cur.push(comp);
                    match fs::create_dir(&cur) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                        Err(e) => return Err(io_err("mkdir", &cur)(e)),
                    }
                }
                Ok(Cgroup {
                    v2: true,
                    dirs: vec![dir.clone()],
                    controllers: Vec::new(),
                })
            }
            CgroupLayout::V1 {
                hierarchies,
                unified,
            } => {
                let mut cg = Cgroup {
                    v2: false,
                    dirs: Vec::new(),
                    controllers: Vec::new(),
                };
                for h in hierarchies {
                    let dir = h.mount_point.join(rel);
                    let made = fs::create_dir_all(&dir).map_err(io_err("mkdir", &dir));
                    if let Err(e) = made {
                        let _ = cg.destroy();
                        return Err(e);
                    }
                    cg.dirs.push(dir.clone());
                    for c in &h.controllers {
                        cg.controllers.push((c.clone(), dir.clone()));
                    }
                    if h.controllers.iter().any(|c| c == "cpuset") {
                        if let Err(e) = init_cpuset(&h.mount_point, rel) {
                            let _ = cg.destroy();
                            return Err(e);
                        }
                    }
                }
                if let Some(u) = unified {
                    let dir = u.join(rel);
                    if fs::create_dir_all(&dir).is_ok() {
                        cg.dirs.push(dir);
                    }
                }
                Ok(cg)
            }
        }
    }

    /// The directory of `controller` (`memory`, `cpu`, ...); on v2 the one directory.
    pub fn controller_dir(&self, controller: &str) -> Option<&Path> {
        if self.v2 {
            return self.dirs.first().map(PathBuf::as_path);
        }
        self.controllers
            .iter()
            .find(|(c, _)| c == controller)
            .map(|(_, d)| d.as_path())
    }

    /// Writes the spec's resources into the cgroup files (on v2 the device rules as a BPF
    /// program). Returns warnings for limits this host cannot enforce (e.g. swap without
    /// swap accounting).
    pub fn apply(&self, res: &LinuxResources) -> Result<Vec<String>, CgroupError> {
        let (warnings, devices) = self.apply_deferring_devices(res)?;
        if let Some(d) = devices {
            d.attach()?;
        }
        Ok(warnings)
    }

    /// [`Cgroup::apply`], but a v2 device program (or a hybrid host's with
    /// [`devices::HYBRID_BPF_ENV`]) is returned built and checked, for the caller to
    /// attach (~0.5 ms) while the init sets up, before the container's process execs.
    pub fn apply_deferring_devices(
        &self,
        res: &LinuxResources,
    ) -> Result<(Vec<String>, Option<devices::PendingDevices>), CgroupError> {
        let mut warnings = Vec::new();
        let bpf_dir = if self.v2 {
            self.dirs.first().cloned()
        } else {
            devices::hybrid_opt_in(self)
        };
        let pending = match &bpf_dir {
            Some(d) => devices::pending_for_spec(d, res.devices().as_deref())?,
            None => None,
        };
        if self.v2 {
            self.apply_v2(res, &mut warnings)?;
        } else {
            self.apply_v1(res, bpf_dir.is_none(), &mut warnings)?;
        }
        Ok((warnings, pending))
    }

    fn apply_v1(
        &self,
        res: &LinuxResources,
        devices_controller: bool,
        warnings: &mut Vec<String>,
    ) -> Result<(), CgroupError> {
        if let (Some(mem), Some(dir)) = (res.memory(), self.controller_dir("memory")) {
            if let Some(limit) = mem.limit() {
                write(&dir.join("memory.limit_in_bytes"), &limit.to_string())?;
            }
            if let Some(swap) = mem.swap() {
                let f = dir.join("memory.memsw.limit_in_bytes");
                if f.exists() {
                    write(&f, &swap.to_string())?;
                } else if swap != mem.limit().unwrap_or(-2) {
                    warnings.push("Your kernel does not support swap limit capabilities or the cgroup is not mounted. Memory limited without swap.".into());
                }
            }
            if let Some(r) = mem.reservation() {
                write(&dir.join("memory.soft_limit_in_bytes"), &r.to_string())?;
            }
            if let Some(s) = mem.swappiness() {
                if s > 100 {
                    return Err(CgroupError::InvalidValue {
                        what: "memory swappiness",
                        value: s.to_string(),
                    });
                }
                write(&dir.join("memory.swappiness"), &s.to_string())?;
            }
            if mem.disable_oom_killer() == Some(true) {
                write(&dir.join("memory.oom_control"), "1")?;
            }
        }
        if let Some(cpu) = res.cpu() {
            if let Some(dir) = self.controller_dir("cpu") {
                if let Some(shares) = cpu.shares() {
                    write(&dir.join("cpu.shares"), &shares.to_string())?;
                }
                if let Some(period) = cpu.period() {
                    write(&dir.join("cpu.cfs_period_us"), &period.to_string())?;
                }
                if let Some(quota) = cpu.quota() {
                    write(&dir.join("cpu.cfs_quota_us"), &quota.to_string())?;
                }
            }
            if let Some(dir) = self.controller_dir("cpuset") {
                if let Some(cpus) = cpu.cpus().as_deref().filter(|s| !s.is_empty()) {
                    write(&dir.join("cpuset.cpus"), cpus)?;
                }
                if let Some(mems) = cpu.mems().as_deref().filter(|s| !s.is_empty()) {
                    write(&dir.join("cpuset.mems"), mems)?;
                }
            }
        }
        if let (Some(pids), Some(dir)) = (res.pids(), self.controller_dir("pids")) {
            let v = if pids.limit() > 0 {
                pids.limit().to_string()
            } else {
                "max".into()
            };
            write(&dir.join("pids.max"), &v)?;
        }
        let v1_devices = self
            .controller_dir("devices")
            .filter(|_| devices_controller);
        if let (Some(devices), Some(dir)) = (res.devices(), v1_devices) {
            // Each write is one rule; each file is opened once (13 rules on every start).
            let mut files: [Option<fs::File>; 2] = [None, None];
            let mut add = |allow: bool, rule: &str| -> Result<(), CgroupError> {
                use std::io::Write;
                let (slot, name) = if allow {
                    (0, "devices.allow")
                } else {
                    (1, "devices.deny")
                };
                let path = dir.join(name);
                let f = match &mut files[slot] {
                    Some(f) => f,
                    none => none.insert(
                        fs::OpenOptions::new()
                            .write(true)
                            .open(&path)
                            .map_err(io_err("open", &path))?,
                    ),
                };
                f.write_all(rule.as_bytes()).map_err(io_err("write", &path))
            };
            for d in devices {
                // A bad rule is named as on v2, not as the kernel's EINVAL.
                devices::DeviceRule::from_oci(d)?;
                let typ = d
                    .typ()
                    .map(|t| t.as_str().to_string())
                    .unwrap_or_else(|| "a".into());
                let num = |n: Option<i64>| {
                    n.filter(|n| *n >= 0)
                        .map_or("*".to_string(), |n| n.to_string())
                };
                let rule = if typ == "a" {
                    "a".to_string()
                } else {
                    format!(
                        "{typ} {}:{} {}",
                        num(d.major()),
                        num(d.minor()),
                        d.access().as_deref().unwrap_or("rwm")
                    )
                };
                add(d.allow(), &rule)?;
            }
            if !devices.is_empty() {
                for rule in V1_DEFAULT_DEVICE_RULES {
                    add(true, rule)?;
                }
            }
        }
        self.apply_extra_v1(res)
    }

    fn apply_v2(
        &self,
        res: &LinuxResources,
        warnings: &mut Vec<String>,
    ) -> Result<(), CgroupError> {
        let Some(dir) = self.dirs.first() else {
            return Ok(());
        };
        let max = |v: i64| {
            if v < 0 {
                "max".to_string()
            } else {
                v.to_string()
            }
        };
        if let Some(mem) = res.memory() {
            if let Some(limit) = mem.limit() {
                write(&dir.join("memory.max"), &max(limit))?;
            }
            if let Some(swap) = mem.swap() {
                let f = dir.join("memory.swap.max");
                // OCI's swap is memory+swap; v2's swap.max is the swap alone.
                let v = match (swap, mem.limit()) {
                    (s, _) if s < 0 => "max".to_string(),
                    (s, Some(l)) if l >= 0 => {
                        if s < l {
                            return Err(CgroupError::InvalidValue {
                                what: "memory+swap (must not be below the memory limit)",
                                value: s.to_string(),
                            });
                        }
                        (s - l).to_string()
                    }
                    (s, _) => s.to_string(),
                };
                if f.exists() {
                    write(&f, &v)?;
                } else {
                    warnings.push("Your kernel does not support swap limit capabilities. Memory limited without swap.".into());
                }
            }
            if let Some(r) = mem.reservation() {
                write(&dir.join("memory.low"), &max(r))?;
            }
        }
        if let Some(cpu) = res.cpu() {
            if let Some(shares) = cpu.shares() {
                write(
                    &dir.join("cpu.weight"),
                    &shares_to_weight(shares).to_string(),
                )?;
            }
            if cpu.quota().is_some() || cpu.period().is_some() {
                let quota = cpu
                    .quota()
                    .filter(|q| *q > 0)
                    .map_or("max".to_string(), |q| q.to_string());
                let period = cpu.period().unwrap_or(100_000);
                write(&dir.join("cpu.max"), &format!("{quota} {period}"))?;
            }
            if let Some(cpus) = cpu.cpus().as_deref().filter(|s| !s.is_empty()) {
                write(&dir.join("cpuset.cpus"), cpus)?;
            }
            if let Some(mems) = cpu.mems().as_deref().filter(|s| !s.is_empty()) {
                write(&dir.join("cpuset.mems"), mems)?;
            }
        }
        if let Some(pids) = res.pids() {
            let v = if pids.limit() > 0 {
                pids.limit().to_string()
            } else {
                "max".into()
            };
            write(&dir.join("pids.max"), &v)?;
        }
        for (k, v) in res.unified().iter().flatten() {
            if k.contains('/') || k.starts_with('.') {
                return Err(CgroupError::InvalidValue {
                    what: "unified key",
                    value: k.clone(),
                });
            }
            write(&dir.join(k), v)?;
        }
        self.apply_extra_v2(dir, res)
    }

    /// Where the freezer of this cgroup lives: the v1 `freezer` hierarchy's directory, or
    /// the v2 directory (the cgroup itself, a hybrid host's unified one) whose
    /// `cgroup.freeze` needs no controller. `BERTH_CGROUP_FREEZER=v2` picks the v2 one on a
    /// hybrid host, the path a v2 host takes (tests run it on v1 hosts).
    fn freezer(&self) -> Option<(bool, &Path)> {
        let force_v2 = std::env::var("BERTH_CGROUP_FREEZER").is_ok_and(|v| v == "v2");
        if !self.v2 && !force_v2 {
            if let Some(d) = self.controller_dir("freezer") {
                return Some((false, d));
            }
        }
        if self.v2 {
            return self.dirs.first().map(|d| (true, d.as_path()));
        }
        self.dirs
            .iter()
            .find(|d| !self.controllers.iter().any(|(_, c)| c == *d))
            .map(|d| (true, d.as_path()))
    }

    /// Freezes (`true`) or thaws every process of the cgroup and waits until the kernel
    /// reports it done (v1 `freezer.state` reads `FROZEN`; v2 `cgroup.events` says
    /// `frozen 1`), as runc's pause and resume do.
    pub fn set_frozen(&self, frozen: bool) -> Result<(), CgroupError> {
        let Some((v2, dir)) = self.freezer() else {
            return Err(CgroupError::Io {
                op: "finding the freezer of",
                path: self.dirs.first().cloned().unwrap_or_default(),
                source: io::Error::from(io::ErrorKind::Unsupported),
            });
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        if v2 {
            write(&dir.join("cgroup.freeze"), if frozen { "1" } else { "0" })?;
            let want = if frozen { "frozen 1" } else { "frozen 0" };
            while !read_trim(&dir.join("cgroup.events"))?
                .lines()
                .any(|l| l.trim() == want)
            {
                if Instant::now() > deadline {
                    return Err(CgroupError::Busy {
                        path: dir.to_path_buf(),
                    });
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            return Ok(());
        }
        let (value, want) = if frozen {
            ("FROZEN", "FROZEN")
        } else {
            ("THAWED", "THAWED")
        };
        let state = dir.join("freezer.state");
        loop {
            // v1 may stop at FREEZING when a task is busy: write again until it is frozen.
            write(&state, value)?;
            if read_trim(&state)? == want {
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = write(&state, "THAWED");
                return Err(CgroupError::Busy {
                    path: dir.to_path_buf(),
                });
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Whether the cgroup is frozen now.
    pub fn is_frozen(&self) -> bool {
        match self.freezer() {
            Some((true, dir)) => read_trim(&dir.join("cgroup.freeze")).is_ok_and(|v| v == "1"),
            Some((false, dir)) => {
                read_trim(&dir.join("freezer.state")).is_ok_and(|v| v != "THAWED")
            }
            None => false,
        }
    }

    /// Moves process `pid` (0: the caller) into every directory of the cgroup.
    pub fn add_pid(&self, pid: i32) -> Result<(), CgroupError> {
        let pid = pid.to_string();
        for d in &self.dirs {
            write(&d.join("cgroup.procs"), &pid)?;
        }
        Ok(())
    }

    /// What a process needs to move itself into this cgroup ([`SelfJoin::join`]).
    pub fn self_join(&self) -> SelfJoin {
        if self.v2 {
            return SelfJoin {
                v1_tasks: Vec::new(),
                v2_dir: self.dirs.first().cloned(),
            };
        }
        // A v1 directory carries controllers; the one without is a hybrid host's unified
        // hierarchy.
        let (v1, v2): (Vec<&PathBuf>, Vec<&PathBuf>) = self
            .dirs
            .iter()
            .partition(|d| self.controllers.iter().any(|(_, c)| c == *d));
        SelfJoin {
            v1_tasks: v1.into_iter().map(|d| d.join("tasks")).collect(),
            v2_dir: v2.into_iter().next().cloned(),
        }
    }

    /// The processes in the cgroup.
    pub fn pids(&self) -> Vec<i32> {
        let Some(dir) = self
            .controller_dir("pids")
            .or(self.dirs.first().map(PathBuf::as_path))
        else {
            return Vec::new();
        };
        fs::read_to_string(dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// Whether the kernel's OOM killer killed a process of this cgroup.
    pub fn oom_killed(&self) -> Result<bool, CgroupError> {
        let Some(dir) = self.controller_dir("memory") else {
            return Ok(false);
        };
        if self.v2 {
            Ok(keyed(&dir.join("memory.events"), "oom_kill")?.unwrap_or(0) > 0)
        } else {
            let f = dir.join("memory.oom_control");
            Ok(keyed(&f, "oom_kill")?.unwrap_or(0) > 0 || keyed(&f, "under_oom")?.unwrap_or(0) > 0)
        }
    }

    /// Memory, CPU and pids usage.
    pub fn stats(&self) -> Result<CgroupStats, CgroupError> {
        let mut s = CgroupStats::default();
        let limit = |v: String| v.parse::<u64>().ok().filter(|v| *v < (1 << 62));
        if self.v2 {
            let Some(dir) = self.dirs.first() else {
                return Ok(s);
            };
            s.memory_usage = read_u64(&dir.join("memory.current")).unwrap_or(0);
            s.memory_limit = read_trim(&dir.join("memory.max")).ok().and_then(limit);
            s.cpu_usage_ns = keyed(&dir.join("cpu.stat"), "usage_usec")?.unwrap_or(0) * 1000;
            s.pids = read_u64(&dir.join("pids.current")).unwrap_or(0);
            s.pids_limit = read_trim(&dir.join("pids.max")).ok().and_then(limit);
        } else {
            if let Some(dir) = self.controller_dir("memory") {
                s.memory_usage = read_u64(&dir.join("memory.usage_in_bytes"))?;
                s.memory_limit = read_trim(&dir.join("memory.limit_in_bytes"))
                    .ok()
                    .and_then(limit);
            }
            if let Some(dir) = self.controller_dir("cpuacct") {
                s.cpu_usage_ns = read_u64(&dir.join("cpuacct.usage"))?;
            }
            if let Some(dir) = self.controller_dir("pids") {
                s.pids = read_u64(&dir.join("pids.current"))?;
                s.pids_limit = read_trim(&dir.join("pids.max")).ok().and_then(limit);
            }
        }
        Ok(s)
    }

    /// Kills every process left in the cgroup and removes its directories. Keeps going past
    /// failures and returns the first.
    pub fn destroy(&self) -> Result<(), CgroupError> {
        let mut first: Option<CgroupError> = None;
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let pids = self.pids();
            if pids.is_empty() || Instant::now() > deadline {
                break;
            }
            for p in pids {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(p),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        for d in self.dirs.iter().rev() {
            let mut tries = 0;
            loop {
                match fs::remove_dir(d) {
                    Ok(()) => break,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) && tries < 100 => {
                        tries += 1;
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    Err(e) => {
                        first.get_or_insert(io_err("rmdir", d)(e));
                        break;
                    }
                }
            }
        }
        match first {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// A new v1 cpuset cgroup has empty `cpus` and `mems` and refuses tasks: copy the parent's
/// down the path.
fn init_cpuset(mount: &Path, rel: &Path) -> Result<(), CgroupError> {
    let mut parent = mount.to_path_buf();
    for comp in rel.components() {
        let dir = parent.join(comp);
        for f in ["cpuset.cpus", "cpuset.mems"] {
            let mine = read_trim(&dir.join(f))?;
            if mine.is_empty() {
                let theirs = read_trim(&parent.join(f))?;
                write(&dir.join(f), &theirs)?;
            }
        }
        parent = dir;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
30 23 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
34 30 0:30 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,cpu,cpuacct
35 30 0:31 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,memory
32 30 0:28 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,xattr,name=systemd
";

    #[test]
    fn detects_hybrid_and_v2() {
        let l = CgroupLayout::from_mountinfo(HYBRID).unwrap();
        assert!(!l.is_v2());
        assert_eq!(
            l.mount_layout(),
            CgroupMountLayout::V1 {
                hierarchies: vec![
                    ("cpu,cpuacct".into(), "cpu,cpuacct".into()),
                    ("memory".into(), "memory".into()),
                    ("systemd".into(), "name=systemd".into())
                ],
                hybrid_unified: false
            }
        );
        let v2 = "25 1 0:22 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(
            CgroupLayout::from_mountinfo(v2).unwrap(),
            CgroupLayout::V2 {
                root: "/sys/fs/cgroup".into()
            }
        );
        assert!(CgroupLayout::from_mountinfo("").is_err());
    }

    #[test]
    fn shares_convert_like_runc() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
    }

    #[test]
    fn relative_path_defaults_under_berth() {
        assert_eq!(cgroup_relative_path(None, "abc"), Path::new("berth/abc"));
        assert_eq!(
            cgroup_relative_path(Some(Path::new("/x/../y")), "abc"),
            Path::new("x/y")
        );
    }

    fn touch_all(dir: &Path, files: &[&str]) {
        for f in files {
            std::fs::write(dir.join(f), "").unwrap();
        }
    }

    fn resources() -> LinuxResources {
        use oci_spec::runtime::{
            LinuxCpuBuilder, LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResourcesBuilder,
        };
        LinuxResourcesBuilder::default()
            .memory(
                LinuxMemoryBuilder::default()
                    .limit(64i64 << 20)
                    .swap(1i64 << 30)
                    .reservation(32i64 << 20)
                    .build()
                    .unwrap(),
            )
            .cpu(
                LinuxCpuBuilder::default()
                    .shares(1024u64)
                    .quota(150_000i64)
                    .period(100_000u64)
                    .cpus("0-1")
                    .build()
                    .unwrap(),
            )
            .pids(LinuxPidsBuilder::default().limit(20i64).build().unwrap())
            .build()
            .unwrap()
    }

    #[test]
    fn v2_values_follow_runc_conversions() {
        let root = tempfile::tempdir().unwrap();
        let layout = CgroupLayout::V2 {
            root: root.path().to_path_buf(),
        };
        let leaf = root.path().join("berth/c1");
        std::fs::create_dir_all(&leaf).unwrap();
        touch_all(
            &leaf,
            &[
                "memory.max",
                "memory.swap.max",
                "memory.low",
                "cpu.weight",
                "cpu.max",
                "cpuset.cpus",
                "pids.max",
            ],
        );
        let cg = Cgroup::create(&layout, Path::new("berth/c1")).unwrap();
        assert_eq!(cg.dirs, vec![leaf.clone()]);
        let warnings = cg.apply(&resources()).unwrap();
        assert!(warnings.is_empty());
        let read = |f: &str| std::fs::read_to_string(leaf.join(f)).unwrap();
        assert_eq!(read("memory.max"), "67108864");
        assert_eq!(
            read("memory.swap.max"),
            ((1u64 << 30) - (64 << 20)).to_string()
        );
        assert_eq!(read("memory.low"), "33554432");
        assert_eq!(read("cpu.weight"), "39");
        assert_eq!(read("cpu.max"), "150000 100000");
        assert_eq!(read("cpuset.cpus"), "0-1");
        assert_eq!(read("pids.max"), "20");
        // Without swap accounting: a warning, not a failure.
        std::fs::remove_file(leaf.join("memory.swap.max")).unwrap();
        assert_eq!(cg.apply(&resources()).unwrap().len(), 1);
    }

    #[test]
    fn v1_values_go_to_each_controller() {
        let root = tempfile::tempdir().unwrap();
        let mk = |name: &str, controllers: &[&str]| V1Hierarchy {
            mount_point: root.path().join(name),
            controllers: controllers.iter().map(|c| c.to_string()).collect(),
        };
        let layout = CgroupLayout::V1 {
            hierarchies: vec![
                mk("memory", &["memory"]),
                mk("cpu,cpuacct", &["cpu", "cpuacct"]),
                mk("pids", &["pids"]),
            ],
            unified: None,
        };
        for (h, files) in [
            (
                "memory",
                &[
                    "memory.limit_in_bytes",
                    "memory.memsw.limit_in_bytes",
                    "memory.soft_limit_in_bytes",
                ][..],
            ),
            (
                "cpu,cpuacct",
                &["cpu.shares", "cpu.cfs_quota_us", "cpu.cfs_period_us"][..],
            ),
            ("pids", &["pids.max"][..]),
        ] {
            let d = root.path().join(h).join("berth/c1");
            std::fs::create_dir_all(&d).unwrap();
            touch_all(&d, files);
        }
        let cg = Cgroup::create(&layout, Path::new("berth/c1")).unwrap();
        assert_eq!(
            cg.controller_dir("cpuacct"),
            Some(root.path().join("cpu,cpuacct/berth/c1").as_path())
        );
        assert!(cg.apply(&resources()).unwrap().is_empty());
        let read = |h: &str, f: &str| {
            std::fs::read_to_string(root.path().join(h).join("berth/c1").join(f)).unwrap()
        };
        assert_eq!(read("memory", "memory.limit_in_bytes"), "67108864");
        assert_eq!(read("memory", "memory.memsw.limit_in_bytes"), "1073741824");
        assert_eq!(read("memory", "memory.soft_limit_in_bytes"), "33554432");
        assert_eq!(read("cpu,cpuacct", "cpu.shares"), "1024");
        assert_eq!(read("cpu,cpuacct", "cpu.cfs_quota_us"), "150000");
        assert_eq!(read("pids", "pids.max"), "20");
    }
}
