//! What a container is made of, in Docker's shapes (`Config`, `HostConfig`), persisted as
//! JSON in the container's row and shown by `inspect`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::options::{NetworkMode, RestartPolicy, SecurityOpts, VolumeSpec};

/// Docker's `Config`: what the image and the flags say the process is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Config {
    /// The healthcheck in force (the image's `HEALTHCHECK`, or `--health-*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<super::health::HealthConfig>,
    /// Hostname (the short ID unless `--hostname`).
    pub hostname: String,
    /// Domain name.
    pub domainname: String,
    /// `--user` as given (or the image's USER).
    pub user: String,
    /// `-a stdin` / `-i` on run.
    pub attach_stdin: bool,
    /// Stdout attached.
    pub attach_stdout: bool,
    /// Stderr attached.
    pub attach_stderr: bool,
    /// `-t`.
    pub tty: bool,
    /// `-i`.
    pub open_stdin: bool,
    /// Close stdin after the first attach ends.
    pub stdin_once: bool,
    /// Environment, image's then flags'.
    pub env: Vec<String>,
    /// CMD (after the flags).
    pub cmd: Option<Vec<String>>,
    /// Image as named by the user.
    pub image: String,
    /// Working directory.
    pub working_dir: String,
    /// ENTRYPOINT (after the flags).
    pub entrypoint: Option<Vec<String>>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Signal that `stop` sends first.
    pub stop_signal: Option<String>,
    /// Seconds `stop` waits before SIGKILL.
    pub stop_timeout: Option<i64>,
    /// Ports the image exposes (`80/tcp` -> {}).
    #[serde(default)]
    pub exposed_ports: BTreeMap<String, serde_json::Value>,
}

/// Docker's `HostConfig`: resources and isolation asked by flags.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HostConfig {
    /// `-v` binds as given.
    pub binds: Vec<String>,
    /// `--network`.
    pub network_mode: String,
    /// `-p` bindings, as Docker: `"80/tcp" -> [{"HostIp": "", "HostPort": "8080"}]`.
    #[serde(default)]
    pub port_bindings: BTreeMap<String, Vec<PortBinding>>,
    /// `-P`: publish every exposed port on a free host port.
    #[serde(default)]
    pub publish_all_ports: bool,
    /// `--dns`.
    #[serde(default)]
    pub dns: Vec<String>,
    /// `--dns-search`.
    #[serde(default)]
    pub dns_search: Vec<String>,
    /// `--add-host` (`name:ip`).
    #[serde(default)]
    pub extra_hosts: Vec<String>,
    /// `--network-alias` (Docker keeps these in `NetworkingConfig`).
    #[serde(default)]
    pub network_aliases: Vec<String>,
    /// `--ip` (Docker keeps it in `NetworkingConfig`'s IPAM config); empty: any free one.
    #[serde(default)]
    pub ipv4_address: String,
    /// `--mac-address` (lower case); empty: the kernel's random one.
    #[serde(default)]
    pub mac_address: String,
    /// `--restart`.
    pub restart_policy: RestartPolicy,
    /// `--rm`.
    pub auto_remove: bool,
    /// `--cap-add`.
    pub cap_add: Vec<String>,
    /// `--cap-drop`.
    pub cap_drop: Vec<String>,
    /// `--privileged`.
    pub privileged: bool,
    /// `--read-only`.
    pub readonly_rootfs: bool,
    /// `--security-opt` as given.
    pub security_opt: Vec<String>,
    /// `--tmpfs path -> options`.
    pub tmpfs: BTreeMap<String, String>,
    /// `--init`.
    pub init: bool,
    /// `--runtime` (empty = berth's own).
    pub runtime: String,
    /// `--memory` in bytes (0 = unlimited).
    pub memory: i64,
    /// `--memory-swap` in bytes (0 = default, -1 = unlimited).
    pub memory_swap: i64,
    /// `--memory-reservation` in bytes.
    pub memory_reservation: i64,
    /// `--cpu-shares`.
    pub cpu_shares: i64,
    /// `--cpus` in nano-CPUs.
    pub nano_cpus: i64,
    /// `--cpu-period` in microseconds.
    pub cpu_period: i64,
    /// `--cpu-quota` in microseconds.
    pub cpu_quota: i64,
    /// `--cpuset-cpus`.
    pub cpuset_cpus: String,
    /// `--pids-limit` (None = unlimited).
    pub pids_limit: Option<i64>,
    /// Log driver (always json-file).
    pub log_config: LogConfig,
    /// Ulimits, devices, sysctls, namespace modes, OOM and block-I/O settings.
    #[serde(flatten)]
    pub isolation: super::isolation::Isolation,
}

/// One host side of a published port.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PortBinding {
    /// Host address (empty = all).
    pub host_ip: String,
    /// Host port.
    pub host_port: String,
}

/// Docker's `LogConfig`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogConfig {
    /// Driver name.
    #[serde(rename = "Type")]
    pub kind: String,
    /// Driver options.
    #[serde(rename = "Config")]
    pub config: BTreeMap<String, String>,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            kind: "json-file".into(),
            config: BTreeMap::new(),
        }
    }
}

/// Everything the engine keeps about a container beyond its status: stored as JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContainerSpec {
    /// Docker's `Config`.
    pub config: Config,
    /// Docker's `HostConfig`.
    pub host_config: HostConfig,
    /// argv[0] as resolved.
    pub path: String,
    /// argv[1..].
    pub args: Vec<String>,
    /// Parsed network mode.
    pub network: Option<NetworkMode>,
    /// Parsed volumes.
    pub volumes: Vec<VolumeSpec>,
    /// Parsed security options.
    pub security: SecurityOpts,
    /// Capabilities in effect.
    pub capabilities: Vec<String>,
    /// Stop signal number.
    pub stop_signal: i32,
    /// Stop timeout, seconds.
    pub stop_timeout: i64,
    /// Anonymous volumes made for this container (removed by `rm -v`).
    #[serde(default)]
    pub anonymous_volumes: Vec<String>,
    /// uid, gid and extra gids resolved at create time.
    #[serde(default)]
    pub uid: u32,
    /// Primary gid.
    #[serde(default)]
    pub gid: u32,
    /// Supplementary gids.
    #[serde(default)]
    pub additional_gids: Vec<u32>,
    /// Home directory of the user (for `HOME`).
    #[serde(default)]
    pub home: String,
}
