//! `info`: what this host and store look like to berth, with Docker's fields and warnings.
//!
//! Cheap by design (`info` is typed in loops): row counts from the store without making
//! each container's status current, a few files of /proc and /sys, no process started.

use std::path::Path;

use berth_runtime::cgroups::CgroupLayout;
use serde::Serialize;

use crate::{Engine, Error};

/// Docker's `/info` fields that berth fills (names as the Engine API spells them).
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Info {
    /// A stable ID of this store.
    #[serde(rename = "ID")]
    pub id: String,
    /// Containers in all.
    pub containers: u64,
    /// Running ones.
    pub containers_running: u64,
    /// Paused ones.
    pub containers_paused: u64,
    /// The others.
    pub containers_stopped: u64,
    /// Images.
    pub images: u64,
    /// `overlay2`.
    pub driver: String,
    /// The storage driver's details, `[key, value]` pairs.
    pub driver_status: Vec<[String; 2]>,
    /// Whether memory limits work.
    pub memory_limit: bool,
    /// Whether swap limits work.
    pub swap_limit: bool,
    /// CFS period support.
    pub cpu_cfs_period: bool,
    /// CFS quota support.
    pub cpu_cfs_quota: bool,
    /// CPU shares support.
    #[serde(rename = "CPUShares")]
    pub cpu_shares: bool,
    /// cpuset support.
    #[serde(rename = "CPUSet")]
    pub cpu_set: bool,
    /// pids limit support.
    pub pids_limit: bool,
    /// OOM-kill disable support.
    pub oom_kill_disable: bool,
    /// `json-file`.
    pub logging_driver: String,
    /// `cgroupfs`.
    pub cgroup_driver: String,
    /// `1` or `2`.
    pub cgroup_version: String,
    /// `uname -r`.
    pub kernel_version: String,
    /// PRETTY_NAME of /etc/os-release.
    pub operating_system: String,
    /// VERSION_ID of /etc/os-release.
    #[serde(rename = "OSVersion")]
    pub os_version: String,
    /// `linux`.
    #[serde(rename = "OSType")]
    pub os_type: String,
    /// `x86_64`, `aarch64`.
    pub architecture: String,
    /// Online CPUs.
    #[serde(rename = "NCPU")]
    pub ncpu: u64,
    /// Bytes of memory.
    pub mem_total: u64,
    /// `--root`.
    pub docker_root_dir: String,
    /// The host name.
    pub name: String,
    /// berth's version.
    pub server_version: String,
    /// Runtimes a container may ask for (`--runtime`), name -> path.
    pub runtimes: std::collections::BTreeMap<String, serde_json::Value>,
    /// `berth`.
    pub default_runtime: String,
    /// `name=seccomp,profile=builtin`, `name=cgroupns`.
    pub security_options: Vec<String>,
    /// Network names in the store.
    pub networks: Vec<String>,
    /// Docker's warnings, each a line `WARNING: ...`.
    pub warnings: Vec<String>,
}

/// What a cgroup setup supports, and the warnings Docker prints when it does not.
fn cgroup_support(layout: &CgroupLayout, info: &mut Info) {
    let mut warn = |w: &str| info.warnings.push(format!("WARNING: {w}"));
    match layout {
        CgroupLayout::V2 { root } => {
            let controllers =
                std::fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
            let has = |c: &str| controllers.split_whitespace().any(|x| x == c);
            info.memory_limit = has("memory");
            info.swap_limit = has("memory");
            info.cpu_cfs_period = has("cpu");
            info.cpu_cfs_quota = has("cpu");
            info.cpu_shares = has("cpu");
            info.cpu_set = has("cpuset");
            info.pids_limit = has("pids");
            if !info.memory_limit {
                warn("No memory limit support");
                warn("No swap limit support");
            }
            if !has("cpu") {
                warn("No cpu cfs quota support");
                warn("No cpu cfs period support");
                warn("No cpu shares support");
            }
            if !has("cpuset") {
                warn("No cpuset support");
            }
            if !has("pids") {
                warn("No pids limit support");
            }
            if !has("io") {
                warn("No io.weight support");
                warn("No io.weight (per device) support");
                warn("No io.max (rbps) support");
                warn("No io.max (wbps) support");
                warn("No io.max (riops) support");
                warn("No io.max (wiops) support");
            }
        }
        CgroupLayout::V1 { hierarchies, .. } => {
            let dir = |c: &str| {
                hierarchies
                    .iter()
                    .find(|h| h.controllers.iter().any(|x| x == c))
                    .map(|h| h.mount_point.clone())
            };
            let file = |c: &str, f: &str| dir(c).is_some_and(|d| d.join(f).exists());
            info.memory_limit = dir("memory").is_some();
            info.swap_limit = file("memory", "memory.memsw.limit_in_bytes");
            info.oom_kill_disable = file("memory", "memory.oom_control");
            info.cpu_cfs_period = file("cpu", "cpu.cfs_period_us");
            info.cpu_cfs_quota = file("cpu", "cpu.cfs_quota_us");
            info.cpu_shares = file("cpu", "cpu.shares");
            info.cpu_set = dir("cpuset").is_some();
            info.pids_limit = dir("pids").is_some();
            if !info.memory_limit {
                warn("No memory limit support");
            }
            if !info.swap_limit {
                warn("No swap limit support");
            }
            if info.memory_limit && !info.oom_kill_disable {
                warn("No oom kill disable support");
            }
            if !info.cpu_cfs_quota {
                warn("No cpu cfs quota support");
            }
            if !info.cpu_cfs_period {
                warn("No cpu cfs period support");
            }
            if !info.cpu_shares {
                warn("No cpu shares support");
            }
            if !info.cpu_set {
                warn("No cpuset support");
            }
            for (f, w) in [
                ("blkio.weight", "No blkio weight support"),
                ("blkio.weight_device", "No blkio weight_device support"),
                (
                    "blkio.throttle.read_bps_device",
                    "No blkio throttle.read_bps_device support",
                ),
                (
                    "blkio.throttle.write_bps_device",
                    "No blkio throttle.write_bps_device support",
                ),
                (
                    "blkio.throttle.read_iops_device",
                    "No blkio throttle.read_iops_device support",
                ),
                (
                    "blkio.throttle.write_iops_device",
                    "No blkio throttle.write_iops_device support",
                ),
            ] {
                if !file("blkio", f) {
                    warn(w);
                }
            }
        }
    }
}

/// `ID=value` of /etc/os-release, unquoted.
fn os_release(key: &str) -> Option<String> {
    let text = std::fs::read_to_string("/etc/os-release")
        .or_else(|_| std::fs::read_to_string("/usr/lib/os-release"))
        .ok()?;
    text.lines().find_map(|l| {
        let v = l.strip_prefix(key)?.strip_prefix('=')?;
        Some(v.trim_matches('"').to_string())
    })
}

/// The file system under `path`, in Docker's words (`extfs`, `xfs`, ...).
fn backing_fs(path: &Path) -> String {
    let Ok(st) = nix::sys::statfs::statfs(path) else {
        return "<unknown>".into();
    };
    match st.filesystem_type().0 as u64 {
        0xEF53 => "extfs",
        0x5846_5342 => "xfs",
        0x9123_683E => "btrfs",
        0x0102_1994 => "tmpfs",
        0x794c_7630 => "overlayfs",
        0x2FC1_2FC1 => "zfs",
        _ => "<unknown>",
    }
    .into()
}

/// A stable ID for this store, made at the first `info` (Docker's engine ID is a key).
fn store_id(root: &Path) -> String {
    let p = root.join("engine-id");
    if let Ok(id) = std::fs::read_to_string(&p) {
        return id.trim().to_string();
    }
    let id = uuid_like();
    let tmp = root.join(format!("engine-id.{}", std::process::id()));
    if std::fs::write(&tmp, &id).is_ok() && std::fs::hard_link(&tmp, &p).is_ok() {
        let _ = std::fs::remove_file(&tmp);
        return id;
    }
    let _ = std::fs::remove_file(&tmp);
    // Another process made it first.
    std::fs::read_to_string(&p)
        .map(|s| s.trim().to_string())
        .unwrap_or(id)
}

fn uuid_like() -> String {
    use rand::Rng;
    let b: [u8; 16] = rand::thread_rng().gen();
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The executables named `name` on PATH.
fn on_path(name: &str) -> Option<String> {
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
        .map(|p| p.display().to_string())
}

impl Engine {
    /// `info`: the host, the store and the warnings Docker would print.
    pub fn info(&self) -> Result<Info, Error> {
        let mut info = Info {
            driver: "overlay2".into(),
            logging_driver: "json-file".into(),
            cgroup_driver: "cgroupfs".into(),
            os_type: "linux".into(),
            default_runtime: "berth".into(),
            server_version: env!("CARGO_PKG_VERSION").into(),
            docker_root_dir: self.config.root.display().to_string(),
            ..Default::default()
        };
        for c in self
            .store
            .list_containers()
            .map_err(crate::container::ContainerError::from)?
        {
            info.containers += 1;
            match c.status.as_str() {
                "running" | "restarting" => info.containers_running += 1,
                "paused" => info.containers_paused += 1,
                _ => info.containers_stopped += 1,
            }
        }
        info.images = self.store.list_images()?.len() as u64;
        info.networks = self
            .store
            .list_networks()
            .unwrap_or_default()
            .into_iter()
            .map(|n| n.name)
            .collect();
        info.driver_status = vec![
            ["Backing Filesystem".into(), backing_fs(&self.config.root)],
            ["Supports d_type".into(), "true".into()],
            ["Using metacopy".into(), "false".into()],
            ["Native Overlay Diff".into(), "true".into()],
            ["userxattr".into(), "false".into()],
        ];
        match CgroupLayout::detect() {
            Ok(layout) => {
                info.cgroup_version = if layout.is_v2() { "2" } else { "1" }.into();
                cgroup_support(&layout, &mut info);
            }
            Err(_) => {
                info.cgroup_version = "".into();
                info.warnings
                    .push("WARNING: No cgroup file system mounted at /sys/fs/cgroup".into());
            }
        }
        info.security_options
            .push("name=seccomp,profile=builtin".into());
        if info.cgroup_version == "2" {
            info.security_options.push("name=cgroupns".into());
        }
        let uts = nix::sys::utsname::uname().ok();
        if let Some(u) = &uts {
            info.kernel_version = u.release().to_string_lossy().into_owned();
            info.architecture = u.machine().to_string_lossy().into_owned();
            info.name = u.nodename().to_string_lossy().into_owned();
        }
        info.operating_system = os_release("PRETTY_NAME").unwrap_or_else(|| "Linux".into());
        info.os_version = os_release("VERSION_ID").unwrap_or_default();
        info.ncpu = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
        info.mem_total = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("MemTotal:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            })
            .unwrap_or(0)
            * 1024;
        info.runtimes.insert(
            "berth".into(),
            serde_json::json!({"path": std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_default()}),
        );
        for rt in ["runc", "crun"] {
            if let Some(p) = on_path(rt) {
                info.runtimes
                    .insert(rt.into(), serde_json::json!({"path": p}));
            }
        }
        for (f, w) in [
            (
                "/proc/sys/net/bridge/bridge-nf-call-iptables",
                "WARNING: bridge-nf-call-iptables is disabled",
            ),
            (
                "/proc/sys/net/bridge/bridge-nf-call-ip6tables",
                "WARNING: bridge-nf-call-ip6tables is disabled",
            ),
        ] {
            if std::fs::read_to_string(f).is_ok_and(|v| v.trim() == "0") {
                info.warnings.push(w.into());
            }
        }
        info.id = store_id(&self.config.root);
        Ok(info)
    }
}
