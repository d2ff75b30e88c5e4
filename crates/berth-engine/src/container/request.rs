//! The second stage of `run`/`create` flag parsing: raw flag text in, a validated
//! [`HostConfig`] and process settings out, with Docker's messages for bad input.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::model::HostConfig;
use super::options::{self, NetworkMode, OptionError, RestartPolicy, SecurityOpts, VolumeSpec};

/// `run`/`create` as typed: every value still text, so the engine can name the flag in its
/// error. The CLI fills it; [`CreateRequest::validate`] checks it.
#[derive(Debug, Clone, Default)]
pub struct CreateRequest {
    /// The image as named.
    pub image: String,
    /// Arguments after the image (replace CMD).
    pub args: Vec<String>,
    /// `--name`.
    pub name: Option<String>,
    /// `--rm`.
    pub auto_remove: bool,
    /// `-e`.
    pub env: Vec<String>,
    /// `--env-file`.
    pub env_files: Vec<PathBuf>,
    /// `-w`.
    pub workdir: Option<String>,
    /// `--entrypoint`.
    pub entrypoint: Option<String>,
    /// `-i`.
    pub interactive: bool,
    /// `-t`.
    pub tty: bool,
    /// `--init`.
    pub init: bool,
    /// `--stop-signal`.
    pub stop_signal: Option<String>,
    /// `--stop-timeout`.
    pub stop_timeout: Option<i64>,
    /// `--restart`.
    pub restart: Option<String>,
    /// `-u`.
    pub user: Option<String>,
    /// `--hostname`.
    pub hostname: Option<String>,
    /// `--read-only`.
    pub read_only: bool,
    /// `--tmpfs`.
    pub tmpfs: Vec<String>,
    /// `-v`.
    pub volumes: Vec<String>,
    /// `--mount`.
    pub mounts: Vec<String>,
    /// `--volumes-from`.
    pub volumes_from: Vec<String>,
    /// `--cap-add`.
    pub cap_add: Vec<String>,
    /// `--cap-drop`.
    pub cap_drop: Vec<String>,
    /// `--security-opt`.
    pub security_opt: Vec<String>,
    /// `--privileged`.
    pub privileged: bool,
    /// `-m`.
    pub memory: Option<String>,
    /// `--memory-swap`.
    pub memory_swap: Option<String>,
    /// `--memory-reservation`.
    pub memory_reservation: Option<String>,
    /// `-c`.
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
    /// `--network`.
    pub network: Option<String>,
    /// `-p`.
    pub publish: Vec<String>,
    /// `-P`.
    pub publish_all: bool,
    /// `--dns`.
    pub dns: Vec<String>,
    /// `--dns-search`.
    pub dns_search: Vec<String>,
    /// `--add-host`.
    pub add_host: Vec<String>,
    /// `--network-alias`.
    pub network_alias: Vec<String>,
    /// `--ip`.
    pub ip: Option<String>,
    /// `--mac-address`.
    pub mac_address: Option<String>,
    /// `--runtime`.
    pub runtime: Option<String>,
    /// `-l`.
    pub labels: Vec<String>,
    /// Run detached (`-d`): only used to check flag combinations.
    pub detach: bool,
    /// `--health-*` and `--no-healthcheck`.
    pub health: super::health::HealthFlags,
    /// `--label-file`: lines of `KEY=VALUE` (blank lines and `#` comments skipped).
    pub label_files: Vec<PathBuf>,
    /// `--expose PORT[/PROTO]` or a range `8000-8002/udp`.
    pub expose: Vec<String>,
    /// `--platform OS/ARCH[/VARIANT]`: the image must be of it.
    pub platform: Option<String>,
    /// `--log-driver` (`json-file`, the only one).
    pub log_driver: Option<String>,
    /// `--log-opt KEY=VALUE` (`max-size`, `max-file`).
    pub log_opts: Vec<String>,
    /// `--ulimit`, `--shm-size`, `--device`, `--sysctl`, `--pid`, `--ipc`, ... as typed.
    pub isolation: super::isolation::IsolationFlags,
}

/// The flags after validation.
#[derive(Debug, Clone)]
pub struct ValidatedFlags {
    /// Resources and isolation.
    pub host_config: HostConfig,
    /// `-e` and `--env-file`, in order (files first, as Docker).
    pub env: Vec<String>,
    /// Parsed network mode.
    pub network: NetworkMode,
    /// Parsed volumes: `-v`, then `--mount`.
    pub volumes: Vec<VolumeSpec>,
    /// Parsed `--volumes-from`: container, and `ro`/`rw` when given.
    pub volumes_from: Vec<(String, Option<bool>)>,
    /// Parsed security options.
    pub security: SecurityOpts,
    /// Stop signal number, when given.
    pub stop_signal: Option<i32>,
    /// Name, validated.
    pub name: Option<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// `--expose`, as `ExposedPorts` keys (`80/tcp`).
    pub exposed: Vec<String>,
}

/// Minimum memory limit Docker accepts.
const MIN_MEMORY: i64 = 6 << 20;

impl CreateRequest {
    /// Checks every flag; the first bad one is the error.
    pub fn validate(
        &self,
        host_env: &dyn Fn(&str) -> Option<String>,
        online_cpus: usize,
    ) -> Result<ValidatedFlags, OptionError> {
        let c = |s: &str| OptionError::Conflict(s.to_string());
        let size = |flag, v: &Option<String>| -> Result<i64, OptionError> {
            v.as_deref().map_or(Ok(0), |v| options::parse_size(flag, v))
        };
        let int = |flag, v: &Option<String>| -> Result<Option<i64>, OptionError> {
            v.as_deref()
                .map(|v| options::parse_int(flag, v))
                .transpose()
        };
        let memory = size("-m, --memory", &self.memory)?;
        let memory_swap = match &self.memory_swap {
            Some(v) => options::parse_swap(v)?,
            None => 0,
        };
        let memory_reservation = size("--memory-reservation", &self.memory_reservation)?;
        let cpu_shares = int("-c, --cpu-shares", &self.cpu_shares)?.unwrap_or(0);
        let nano_cpus = self
            .cpus
            .as_deref()
            .map(options::parse_cpus)
            .transpose()?
            .unwrap_or(0);
        let cpu_period = int("--cpu-period", &self.cpu_period)?.unwrap_or(0);
        let cpu_quota = int("--cpu-quota", &self.cpu_quota)?.unwrap_or(0);
        let pids_limit = int("--pids-limit", &self.pids_limit)?;
        let cpuset_cpus = match &self.cpuset_cpus {
            Some(v) => options::parse_cpuset(v)?,
            None => String::new(),
        };
        if memory > 0 && memory < MIN_MEMORY {
            return Err(c("Minimum memory limit allowed is 6MB"));
        }
        if memory_swap > 0 && memory == 0 {
            return Err(c(
                "You should always set the Memory limit when using Memoryswap limit, see usage",
            ));
        }
        if memory_swap > 0 && memory_swap < memory {
            return Err(c(
                "Minimum memoryswap limit should be larger than memory limit, see usage",
            ));
        }
        if memory > 0 && memory_reservation > memory {
            return Err(c(
                "Minimum memory limit can not be less than memory reservation limit, see usage",
            ));
        }
        if cpu_shares < 0 {
            return Err(OptionError::Conflict(format!(
                "invalid CPU shares ({cpu_shares}): value must be a positive integer"
            )));
        }
        if nano_cpus > 0 && cpu_period > 0 {
            return Err(c(
                "Conflicting options: Nano CPUs and CPU Period cannot both be set",
            ));
        }
        if nano_cpus > 0 && cpu_quota > 0 {
            return Err(c(
                "Conflicting options: Nano CPUs and CPU Quota cannot both be set",
            ));
        }
        let max_nano = online_cpus as i64 * 1_000_000_000;
        if nano_cpus > 0 && (nano_cpus < 10_000_000 || nano_cpus > max_nano) {
            return Err(OptionError::Conflict(format!(
                "Range of CPUs is from 0.01 to {online_cpus}.00, as there are only {online_cpus} CPUs available"
            )));
        }
        if cpu_period != 0 && !(1000..=1_000_000).contains(&cpu_period) {
            return Err(c(
                "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)",
            ));
        }
        if cpu_quota != 0 && cpu_quota < 1000 && cpu_quota != -1 {
            return Err(c("CPU cfs quota can not be less than 1ms (i.e. 1000)"));
        }
        if cpuset_cpus.split(',').any(|p| {
            p.rsplit('-')
                .next()
                .and_then(|hi| hi.parse::<usize>().ok())
                .is_some_and(|hi| hi >= online_cpus)
        }) {
            return Err(OptionError::Conflict(format!(
                "Requested CPUs are not available - requested {cpuset_cpus}, available: 0-{}",
                online_cpus.saturating_sub(1)
            )));
        }
        let restart_policy = match &self.restart {
            Some(v) => RestartPolicy::parse(v)?,
            None => RestartPolicy::parse("no")?,
        };
        if self.auto_remove && !restart_policy.is_none() {
            return Err(c(
                "Conflicting options: cannot specify both --restart and --rm",
            ));
        }
        let stop_signal = self
            .stop_signal
            .as_deref()
            .map(|s| options::parse_signal("--stop-signal", s))
            .transpose()?;
        if let Some(t) = self.stop_timeout {
            if t < -1 {
                return Err(c("invalid --stop-timeout: must be -1 (no limit) or more"));
            }
        }
        let mut env = Vec::new();
        for f in &self.env_files {
            env.extend(options::parse_env_file(f, host_env)?);
        }
        env.extend(options::parse_env(&self.env, host_env)?);
        let network = NetworkMode::parse(self.network.as_deref().unwrap_or("default"))?;
        if network == NetworkMode::Host && self.hostname.is_some() {
            return Err(c("Conflicting options: hostname and the network mode"));
        }
        if !self.publish.is_empty() && matches!(network, NetworkMode::None | NetworkMode::Host) {
            // Docker ignores -p with --network host (with a warning); with none it is an error.
            if network == NetworkMode::None {
                return Err(c(
                    "Conflicting options: port publishing and the container type network mode",
                ));
            }
        }
        let mut volumes = self
            .volumes
            .iter()
            .map(|v| VolumeSpec::parse(v))
            .collect::<Result<Vec<_>, _>>()?;
        for m in &self.mounts {
            volumes.push(VolumeSpec::parse_mount(m)?);
        }
        let mut seen = std::collections::BTreeSet::new();
        for v in &volumes {
            let dest = v.destination.trim_end_matches('/').to_string();
            if !seen.insert(dest.clone())
                || self.tmpfs.iter().any(|t| {
                    t.split(':').next().map(|p| p.trim_end_matches('/')) == Some(dest.as_str())
                })
            {
                return Err(OptionError::Conflict(format!(
                    "Duplicate mount point: {dest}"
                )));
            }
        }
        let volumes_from = self
            .volumes_from
            .iter()
            .map(|v| options::parse_volumes_from(v))
            .collect::<Result<Vec<_>, _>>()?;
        let mut tmpfs = BTreeMap::new();
        for t in &self.tmpfs {
            let (p, o) = options::parse_tmpfs(t)?;
            tmpfs.insert(p, o);
        }
        let cap_add = self
            .cap_add
            .iter()
            .map(|c| options::parse_capability(c))
            .collect::<Result<Vec<_>, _>>()?;
        let cap_drop = self
            .cap_drop
            .iter()
            .map(|c| options::parse_capability(c))
            .collect::<Result<Vec<_>, _>>()?;
        let security = SecurityOpts::parse(&self.security_opt)?;
        if let Some(p) = &security.seccomp_profile {
            if !p.is_file() {
                return Err(OptionError::Conflict(format!(
                    "opening seccomp profile ({}) failed: open {}: no such file or directory",
                    p.display(),
                    p.display()
                )));
            }
        }
        let name = self
            .name
            .as_deref()
            .map(options::validate_name)
            .transpose()?;
        if let Some(w) = &self.workdir {
            if !w.starts_with('/') {
                return Err(OptionError::Conflict(format!(
                    "the working directory '{w}' is invalid, it needs to be an absolute path"
                )));
            }
        }
        if let Some(h) = &self.hostname {
            if h.is_empty()
                || h.len() > 63
                || !h
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
            {
                return Err(OptionError::Conflict(format!(
                    "invalid hostname format: {h}"
                )));
            }
        }
        let runtime = match self.runtime.as_deref() {
            None | Some("") | Some("berth") => String::new(),
            Some(r) => r.to_string(),
        };
        let host_config = HostConfig {
            binds: self.volumes.clone(),
            network_mode: network.as_str().to_string(),
            port_bindings: crate::network_container::port_bindings(&self.publish)
                .map_err(|e| OptionError::Conflict(e.to_string()))?,
            publish_all_ports: self.publish_all,
            dns: self.dns.clone(),
            dns_search: self.dns_search.clone(),
            extra_hosts: self.add_host.clone(),
            network_aliases: self.network_alias.clone(),
            ipv4_address: self.ipv4_address(&network)?,
            mac_address: match self.mac_address.as_deref() {
                None | Some("") => String::new(),
                Some(m) => berth_net::config::parse_mac(m)
                    .map(|b| berth_net::config::format_mac(&b))
                    .map_err(|e| OptionError::BadValue {
                        flag: "--mac-address",
                        value: m.to_string(),
                        reason: e.to_string(),
                    })?,
            },
            restart_policy,
            auto_remove: self.auto_remove,
            cap_add,
            cap_drop,
            privileged: self.privileged,
            readonly_rootfs: self.read_only,
            security_opt: self.security_opt.clone(),
            tmpfs,
            init: self.init,
            runtime,
            memory,
            memory_swap,
            memory_reservation,
            cpu_shares,
            nano_cpus,
            cpu_period,
            cpu_quota,
            cpuset_cpus,
            pids_limit: pids_limit.filter(|p| *p > 0),
            log_config: self.log_config()?,
            isolation: self.isolation.validate(network == NetworkMode::Host)?,
        };
        Ok(ValidatedFlags {
            host_config,
            env,
            network,
            volumes,
            volumes_from,
            security,
            stop_signal,
            name,
            labels: self.all_labels()?,
            exposed: self.exposed_ports()?,
        })
    }

    /// `--label-file` lines, then `-l` (a later key wins, as Docker's).
    fn all_labels(&self) -> Result<BTreeMap<String, String>, OptionError> {
        let mut lines = Vec::new();
        for f in &self.label_files {
            let text = std::fs::read_to_string(f).map_err(|e| {
                OptionError::Conflict(format!(
                    "open {}: {}",
                    f.display(),
                    e.to_string()
                        .split(" (os error")
                        .next()
                        .unwrap_or("")
                        .to_lowercase()
                ))
            })?;
            lines.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(str::to_owned),
            );
        }
        lines.extend(self.labels.iter().cloned());
        Ok(options::parse_labels(&lines))
    }

    /// `--expose` values as `ExposedPorts` keys, ranges expanded (Docker's messages).
    fn exposed_ports(&self) -> Result<Vec<String>, OptionError> {
        let mut out = Vec::new();
        for e in &self.expose {
            let (ports, proto) = e.split_once('/').unwrap_or((e.as_str(), "tcp"));
            let bad = |why: &str| {
                OptionError::Conflict(format!(
                    "invalid range format for --expose: {e}, error: {why}"
                ))
            };
            if !matches!(proto, "tcp" | "udp" | "sctp") {
                return Err(OptionError::Conflict(format!("invalid proto: {proto}")));
            }
            let num = |p: &str| {
                p.parse::<u16>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| bad(&format!("invalid port: {p}")))
            };
            let (lo, hi) = match ports.split_once('-') {
                Some((a, b)) => (num(a)?, num(b)?),
                None => {
                    let n = num(ports)?;
                    (n, n)
                }
            };
            if hi < lo {
                return Err(bad(&format!("invalid range: {ports}")));
            }
            out.extend((lo..=hi).map(|p| format!("{p}/{proto}")));
        }
        Ok(out)
    }

    /// `--log-driver` and `--log-opt`: json-file with its rotation bounds, checked now so a
    /// bad value never makes a container.
    fn log_config(&self) -> Result<super::model::LogConfig, OptionError> {
        let driver = self.log_driver.as_deref().unwrap_or("json-file");
        if driver != "json-file" {
            return Err(OptionError::Conflict(format!(
                "logger: no log driver named '{driver}' is registered"
            )));
        }
        let mut config = BTreeMap::new();
        for opt in &self.log_opts {
            let Some((k, v)) = opt.split_once('=') else {
                return Err(OptionError::BadValue {
                    flag: "--log-opt",
                    value: opt.clone(),
                    reason: "invalid log opt format, expected KEY=VALUE".into(),
                });
            };
            let checked = match k {
                "max-size" => super::logs::parse_max_size(v).map(|_| ()),
                "max-file" => super::logs::parse_max_file(v).map(|_| ()),
                _ => {
                    return Err(OptionError::Conflict(format!(
                        "unknown log opt '{k}' for json-file log driver"
                    )))
                }
            };
            checked.map_err(|e| OptionError::Conflict(e.to_string()))?;
            config.insert(k.to_owned(), v.to_owned());
        }
        Ok(super::model::LogConfig {
            kind: "json-file".into(),
            config,
        })
    }

    /// `--ip`: an IPv4 address, on a user-defined network only (as Docker); whether it
    /// lies in the network's subnet and is free is checked when the container starts.
    fn ipv4_address(&self, network: &NetworkMode) -> Result<String, OptionError> {
        let Some(ip) = self.ip.as_deref().filter(|s| !s.is_empty()) else {
            return Ok(String::new());
        };
        let addr: std::net::Ipv4Addr = ip.parse().map_err(|_| OptionError::BadValue {
            flag: "--ip",
            value: ip.to_string(),
            reason: format!("invalid string being converted to IP address: {ip}"),
        })?;
        match network {
            NetworkMode::Bridge(n) if n != "bridge" => Ok(addr.to_string()),
            _ => Err(OptionError::Conflict(
                "user specified IP address is supported on user defined networks only".into(),
            )),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn req() -> CreateRequest {
        CreateRequest {
            image: "busybox".into(),
            ..Default::default()
        }
    }

    fn err(r: CreateRequest) -> String {
        r.validate(&|_| None, 2).unwrap_err().to_string()
    }

    #[test]
    fn docker_messages() {
        assert_eq!(
            err(CreateRequest {
                memory: Some("200x".into()),
                ..req()
            }),
            "invalid argument \"200x\" for \"-m, --memory\" flag: invalid size: '200x'"
        );
        assert!(err(CreateRequest {
            cpu_shares: Some("-1".into()),
            ..req()
        })
        .contains("invalid CPU shares (-1)"));
        assert!(err(CreateRequest {
            memory: Some("1m".into()),
            ..req()
        })
        .contains("6MB"));
        assert!(err(CreateRequest {
            memory: Some("64m".into()),
            memory_swap: Some("32m".into()),
            ..req()
        })
        .contains("larger than memory"));
        assert!(err(CreateRequest {
            cpus: Some("9".into()),
            ..req()
        })
        .contains("Range of CPUs"));
        assert!(err(CreateRequest {
            cpus: Some("1".into()),
            cpu_period: Some("100000".into()),
            ..req()
        })
        .contains("Conflicting"));
        assert!(err(CreateRequest {
            auto_remove: true,
            restart: Some("always".into()),
            ..req()
        })
        .contains("--restart and --rm"));
        assert!(err(CreateRequest {
            name: Some("bad name".into()),
            ..req()
        })
        .contains("Invalid container name"));
        assert!(err(CreateRequest {
            workdir: Some("rel".into()),
            ..req()
        })
        .contains("absolute"));
        assert!(err(CreateRequest {
            cpuset_cpus: Some("0-7".into()),
            ..req()
        })
        .contains("not available"));
    }

    #[test]
    fn good_values() {
        let v = CreateRequest {
            memory: Some("64m".into()),
            memory_swap: Some("-1".into()),
            cpu_shares: Some("512".into()),
            cpus: Some("0.5".into()),
            pids_limit: Some("20".into()),
            env: vec!["A=1".into()],
            network: Some("none".into()),
            restart: Some("on-failure:2".into()),
            ..req()
        }
        .validate(&|_| None, 2)
        .unwrap();
        let h = v.host_config;
        assert_eq!(h.memory, 67108864);
        assert_eq!(h.memory_swap, -1);
        assert_eq!(h.cpu_shares, 512);
        assert_eq!(h.nano_cpus, 500_000_000);
        assert_eq!(h.pids_limit, Some(20));
        assert_eq!(h.network_mode, "none");
        assert_eq!(h.restart_policy.maximum_retry_count, 2);
        assert_eq!(v.env, vec!["A=1"]);
    }
}
