//! `update`: new resource limits and restart policy for a container, written into the
//! cgroup of a running (or paused) one and kept for its next start.

use berth_runtime::oci::LinuxResources;
use serde_json::{json, Value};

use super::options::{self, OptionError, RestartPolicy};
use super::{Container, ContainerError, Lifecycle, Result};

/// Docker's `update` flags as typed, validated values (`None`: leave as is). The CLI and the
/// Engine API build this; [`UpdateRequest::parse`] turns the CLI's strings into it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceUpdate {
    /// `--memory`, bytes (0: unlimited).
    pub memory: Option<i64>,
    /// `--memory-swap`, bytes of memory+swap (-1: unlimited swap).
    pub memory_swap: Option<i64>,
    /// `--memory-reservation`, bytes.
    pub memory_reservation: Option<i64>,
    /// `--cpu-shares`.
    pub cpu_shares: Option<i64>,
    /// `--cpus`, in billionths of a CPU.
    pub nano_cpus: Option<i64>,
    /// `--cpu-period`, microseconds.
    pub cpu_period: Option<i64>,
    /// `--cpu-quota`, microseconds.
    pub cpu_quota: Option<i64>,
    /// `--cpuset-cpus`.
    pub cpuset_cpus: Option<String>,
    /// `--pids-limit` (0 or -1: unlimited).
    pub pids_limit: Option<i64>,
    /// `--restart`.
    pub restart_policy: Option<RestartPolicy>,
}

/// The CLI's `update` flags, as typed.
#[derive(Debug, Clone, Default)]
pub struct UpdateRequest {
    /// `-m, --memory`.
    pub memory: Option<String>,
    /// `--memory-swap`.
    pub memory_swap: Option<String>,
    /// `--memory-reservation`.
    pub memory_reservation: Option<String>,
    /// `-c, --cpu-shares`.
    pub cpu_shares: Option<String>,
    /// `--cpus`.
    pub cpus: Option<String>,
    /// `--cpu-period`.
    pub cpu_period: Option<String>,
    /// `--cpu-quota`.
    pub cpu_quota: Option<String>,
    /// `--cpuset-cpus`.
    pub cpuset_cpus: Option<String>,
    /// `--pids-limit`.
    pub pids_limit: Option<String>,
    /// `--restart`.
    pub restart: Option<String>,
}

impl UpdateRequest {
    /// Parses each given flag; the first bad one is the error.
    pub fn parse(&self) -> Result<ResourceUpdate, OptionError> {
        let size = |flag, v: &Option<String>| {
            v.as_deref()
                .map(|v| options::parse_size(flag, v))
                .transpose()
        };
        let int = |flag, v: &Option<String>| {
            v.as_deref()
                .map(|v| options::parse_int(flag, v))
                .transpose()
        };
        let u = ResourceUpdate {
            memory: size("-m, --memory", &self.memory)?,
            memory_swap: self
                .memory_swap
                .as_deref()
                .map(options::parse_swap)
                .transpose()?,
            memory_reservation: size("--memory-reservation", &self.memory_reservation)?,
            cpu_shares: int("-c, --cpu-shares", &self.cpu_shares)?,
            nano_cpus: self.cpus.as_deref().map(options::parse_cpus).transpose()?,
            cpu_period: int("--cpu-period", &self.cpu_period)?,
            cpu_quota: int("--cpu-quota", &self.cpu_quota)?,
            cpuset_cpus: self
                .cpuset_cpus
                .as_deref()
                .map(options::parse_cpuset)
                .transpose()?,
            pids_limit: int("--pids-limit", &self.pids_limit)?,
            restart_policy: self
                .restart
                .as_deref()
                .map(RestartPolicy::parse)
                .transpose()?,
        };
        if u == ResourceUpdate::default() {
            return Err(OptionError::Conflict(
                "you must provide one or more flags when using this command".into(),
            ));
        }
        Ok(u)
    }
}

fn conflict(msg: impl Into<String>) -> ContainerError {
    ContainerError::Option(OptionError::Conflict(msg.into()))
}

impl Lifecycle {
    /// Applies `u` to `c`: checked as Docker checks it, written into the cgroup when the
    /// container runs, then stored for its next start. Returns warnings to show.
    pub fn update_container(&self, c: &Container, u: &ResourceUpdate) -> Result<Vec<String>> {
        let old = &c.spec.host_config;
        let mut hc = old.clone();
        if let Some(v) = u.memory {
            hc.memory = v;
        }
        if let Some(v) = u.memory_swap {
            hc.memory_swap = v;
        }
        if let Some(v) = u.memory_reservation {
            hc.memory_reservation = v;
        }
        if let Some(v) = u.cpu_shares {
            hc.cpu_shares = v;
        }
        if let Some(v) = u.nano_cpus {
            hc.nano_cpus = v;
        }
        if let Some(v) = u.cpu_period {
            hc.cpu_period = v;
        }
        if let Some(v) = u.cpu_quota {
            hc.cpu_quota = v;
        }
        if let Some(v) = &u.cpuset_cpus {
            hc.cpuset_cpus = v.clone();
        }
        if let Some(v) = u.pids_limit {
            hc.pids_limit = Some(v);
        }
        if let Some(p) = &u.restart_policy {
            if old.auto_remove && !p.is_none() {
                return Err(conflict(
                    "Restart policy cannot be updated because AutoRemove is enabled for the container",
                ));
            }
            hc.restart_policy = p.clone();
        }
        // Docker's checks, on the merged values.
        if hc.memory > 0 && hc.memory < 6 << 20 {
            return Err(conflict("Minimum memory limit allowed is 6MB"));
        }
        if u.memory.is_some()
            && u.memory_swap.is_none()
            && old.memory_swap > 0
            && hc.memory > old.memory_swap
        {
            return Err(conflict("Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time"));
        }
        if hc.memory_swap > 0 && hc.memory == 0 {
            return Err(conflict(
                "You should always set the Memory limit when using Memoryswap limit, see usage",
            ));
        }
        if hc.memory_swap > 0 && hc.memory_swap < hc.memory {
            return Err(conflict(
                "Minimum memoryswap limit should be larger than memory limit, see usage",
            ));
        }
        if hc.memory > 0 && hc.memory_reservation > hc.memory {
            return Err(conflict(
                "Minimum memory limit can not be less than memory reservation limit, see usage",
            ));
        }
        if hc.cpu_shares < 0 {
            return Err(conflict(format!(
                "invalid CPU shares ({}): value must be a positive integer",
                hc.cpu_shares
            )));
        }
        if hc.nano_cpus > 0 && (u.cpu_period.is_some_and(|p| p > 0) || hc.cpu_period > 0) {
            return Err(conflict(
                "Conflicting options: Nano CPUs and CPU Period cannot both be set",
            ));
        }
        if hc.nano_cpus > 0 && hc.cpu_quota > 0 {
            return Err(conflict(
                "Conflicting options: Nano CPUs and CPU Quota cannot both be set",
            ));
        }
        let online = std::thread::available_parallelism().map_or(1, |n| n.get()) as i64;
        if hc.nano_cpus > 0 && (hc.nano_cpus < 10_000_000 || hc.nano_cpus > online * 1_000_000_000)
        {
            return Err(conflict(format!(
                "Range of CPUs is from 0.01 to {online}.00, as there are only {online} CPUs available"
            )));
        }
        if hc.cpu_period != 0 && !(1000..=1_000_000).contains(&hc.cpu_period) {
            return Err(conflict("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"));
        }
        if hc.cpu_quota != 0 && hc.cpu_quota < 1000 && hc.cpu_quota != -1 {
            return Err(conflict(
                "CPU cfs quota can not be less than 1ms (i.e. 1000)",
            ));
        }
        let mut warnings = Vec::new();
        if c.status.is_active() && super::procfs::is_alive(c.record.pid, c.record.pid_start) {
            warnings = self.apply_live(c, u, &hc)?;
        }
        let mut spec = c.spec.clone();
        spec.host_config = hc;
        let text = serde_json::to_string(&spec).map_err(|e| ContainerError::ImageConfig {
            image: c.id().to_string(),
            detail: format!("encoding the container configuration: {e}"),
        })?;
        self.store().set_container_config(c.id(), &text)?;
        let mut ev = crate::events::container_event(c, "update");
        for (k, v) in [
            ("memory", u.memory.map(|v| v.to_string())),
            ("cpuShares", u.cpu_shares.map(|v| v.to_string())),
            ("pidsLimit", u.pids_limit.map(|v| v.to_string())),
        ] {
            if let Some(v) = v {
                ev = ev.attr(k, v);
            }
        }
        crate::events::emit(self.root(), ev);
        Ok(warnings)
    }

    /// Writes the changed limits into the cgroup of the running container.
    fn apply_live(
        &self,
        c: &Container,
        u: &ResourceUpdate,
        hc: &super::HostConfig,
    ) -> Result<Vec<String>> {
        let cg = super::pause::container_cgroup(c.id())?;
        let mut res = serde_json::Map::new();
        let mut memory = serde_json::Map::new();
        if u.memory.is_some() || u.memory_swap.is_some() {
            let limit = if hc.memory > 0 { hc.memory } else { -1 };
            memory.insert("limit".into(), json!(limit));
            let swap = match (hc.memory, hc.memory_swap) {
                (0, _) => -1,
                (m, 0) => m * 2,
                (_, s) => s,
            };
            memory.insert("swap".into(), json!(swap));
        }
        if let Some(r) = u.memory_reservation {
            memory.insert("reservation".into(), json!(if r > 0 { r } else { -1 }));
        }
        if !memory.is_empty() {
            res.insert("memory".into(), Value::Object(memory));
        }
        let mut cpu = serde_json::Map::new();
        if let Some(s) = u.cpu_shares {
            // 0 is Docker's "default": the kernel's 1024.
            cpu.insert("shares".into(), json!(if s > 0 { s } else { 1024 }));
        }
        if u.nano_cpus.is_some() || u.cpu_period.is_some() || u.cpu_quota.is_some() {
            let (period, quota) = if hc.nano_cpus > 0 {
                (100_000, hc.nano_cpus / 10_000)
            } else {
                (
                    if hc.cpu_period > 0 {
                        hc.cpu_period
                    } else {
                        100_000
                    },
                    if hc.cpu_quota != 0 { hc.cpu_quota } else { -1 },
                )
            };
            cpu.insert("period".into(), json!(period));
            cpu.insert("quota".into(), json!(quota));
        }
        if let Some(s) = u.cpuset_cpus.as_ref().filter(|s| !s.is_empty()) {
            cpu.insert("cpus".into(), json!(s));
        }
        if !cpu.is_empty() {
            res.insert("cpu".into(), Value::Object(cpu));
        }
        if let Some(p) = u.pids_limit {
            res.insert("pids".into(), json!({"limit": p}));
        }
        let res_value = Value::Object(res);
        let resources: LinuxResources =
            serde_json::from_value(res_value.clone()).map_err(|e| ContainerError::ImageConfig {
                image: c.id().to_string(),
                detail: format!("the resources of the update: {e}"),
            })?;
        let first = cg.apply(&resources);
        let result = match first {
            Ok(w) => Ok(w),
            Err(_) if !cg.v2 && res_value.get("memory").is_some() => {
                // v1 refuses a memory limit above the current memory+swap limit, and a
                // memory+swap limit below the memory limit: raise swap first, then retry.
                let mut swap_first = res_value.clone();
                if let Some(m) = swap_first.get_mut("memory").and_then(Value::as_object_mut) {
                    m.remove("limit");
                    m.remove("reservation");
                }
                let swap_only: LinuxResources =
                    serde_json::from_value(json!({"memory": swap_first["memory"]}))
                        .unwrap_or_default();
                let _ = cg.apply(&swap_only);
                cg.apply(&resources)
            }
            Err(e) => Err(e),
        };
        result.map_err(|e| {
            let busy = matches!(&e, berth_runtime::cgroups::CgroupError::Io { source, .. }
                if source.raw_os_error() == Some(nix::libc::EBUSY));
            if busy {
                let usage = cg.stats().map(|s| s.memory_usage).unwrap_or(0);
                conflict(format!(
                    "Cannot update container {}: unable to set memory limit to {} (current usage: {usage})",
                    c.id(),
                    hc.memory
                ))
            } else {
                conflict(format!("Cannot update container {}: {e}", c.id()))
            }
        })
    }
}
