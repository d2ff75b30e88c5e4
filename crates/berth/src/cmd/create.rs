//! `create`: the flags shared with `run`, and making a container without starting it.

use std::path::PathBuf;

use clap::Args;

use berth_engine::container::CreateRequest;
use berth_engine::registry::PullPolicy;

use super::GlobalOpts;

/// The flags of `create` and `run` (Docker's names).
#[derive(Debug, Clone, Args)]
pub struct ContainerFlags {
    /// Assign a name to the container.
    #[arg(long)]
    pub name: Option<String>,
    /// Automatically remove the container when it exits.
    #[arg(long)]
    pub rm: bool,
    /// Set environment variables.
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Read in a file of environment variables.
    #[arg(long = "env-file")]
    pub env_file: Vec<PathBuf>,
    /// Working directory inside the container.
    #[arg(short = 'w', long = "workdir")]
    pub workdir: Option<String>,
    /// Overwrite the default ENTRYPOINT of the image.
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Keep STDIN open even if not attached.
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY.
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Run an init inside the container that forwards signals and reaps processes.
    #[arg(long)]
    pub init: bool,
    /// Signal to stop the container.
    #[arg(long = "stop-signal")]
    pub stop_signal: Option<String>,
    /// Timeout (in seconds) to stop a container.
    #[arg(long = "stop-timeout", allow_negative_numbers = true)]
    pub stop_timeout: Option<i64>,
    /// Restart policy to apply when a container exits.
    #[arg(long)]
    pub restart: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>]).
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Container host name.
    #[arg(short = 'h', long)]
    pub hostname: Option<String>,
    /// Mount the container's root filesystem as read only.
    #[arg(long = "read-only")]
    pub read_only: bool,
    /// Mount a tmpfs directory.
    #[arg(long)]
    pub tmpfs: Vec<String>,
    /// Bind mount a volume.
    #[arg(short = 'v', long = "volume")]
    pub volume: Vec<String>,
    /// Attach a filesystem mount to the container.
    #[arg(long = "mount")]
    pub mount: Vec<String>,
    /// Mount volumes from the specified container(s).
    #[arg(long = "volumes-from")]
    pub volumes_from: Vec<String>,
    /// Add Linux capabilities.
    #[arg(long = "cap-add")]
    pub cap_add: Vec<String>,
    /// Drop Linux capabilities.
    #[arg(long = "cap-drop")]
    pub cap_drop: Vec<String>,
    /// Security options.
    #[arg(long = "security-opt")]
    pub security_opt: Vec<String>,
    /// Give extended privileges to this container.
    #[arg(long)]
    pub privileged: bool,
    /// Memory limit.
    #[arg(short = 'm', long, allow_hyphen_values = true)]
    pub memory: Option<String>,
    /// Swap limit equal to memory plus swap: -1 to enable unlimited swap.
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Memory soft limit.
    #[arg(long = "memory-reservation", allow_hyphen_values = true)]
    pub memory_reservation: Option<String>,
    /// CPU shares (relative weight).
    #[arg(short = 'c', long = "cpu-shares", allow_hyphen_values = true)]
    pub cpu_shares: Option<String>,
    /// Number of CPUs.
    #[arg(long, allow_hyphen_values = true)]
    pub cpus: Option<String>,
    /// Limit CPU CFS (Completely Fair Scheduler) period.
    #[arg(long = "cpu-period", allow_hyphen_values = true)]
    pub cpu_period: Option<String>,
    /// Limit CPU CFS (Completely Fair Scheduler) quota.
    #[arg(long = "cpu-quota", allow_hyphen_values = true)]
    pub cpu_quota: Option<String>,
    /// CPUs in which to allow execution (0-3, 0,1).
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    /// Tune container pids limit (set -1 for unlimited).
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pub pids_limit: Option<String>,
    /// Connect a container to a network.
    #[arg(long = "network", visible_alias = "net")]
    pub network: Option<String>,
    /// Publish a container's port(s) to the host.
    #[arg(short = 'p', long)]
    pub publish: Vec<String>,
    /// Publish all exposed ports to random ports.
    #[arg(short = 'P', long = "publish-all")]
    pub publish_all: bool,
    /// Set custom DNS servers.
    #[arg(long)]
    pub dns: Vec<String>,
    /// Set custom DNS search domains.
    #[arg(long = "dns-search")]
    pub dns_search: Vec<String>,
    /// Add a custom host-to-IP mapping (host:ip).
    #[arg(long = "add-host")]
    pub add_host: Vec<String>,
    /// Add network-scoped alias for the container.
    #[arg(long = "network-alias")]
    pub network_alias: Vec<String>,
    /// IPv4 address on the --network network (user-defined networks only).
    #[arg(long)]
    pub ip: Option<String>,
    /// Container MAC address (e.g. 92:d0:c6:0a:29:33).
    #[arg(long = "mac-address")]
    pub mac_address: Option<String>,
    /// Runtime to use for this container (runc, crun or a path).
    #[arg(long)]
    pub runtime: Option<String>,
    /// Set meta data on a container.
    #[arg(short = 'l', long = "label")]
    pub label: Vec<String>,
    /// Expose a port or a range of ports.
    #[arg(long)]
    pub expose: Vec<String>,
    /// Set platform if server is multi-platform capable.
    #[arg(long, env = "DOCKER_DEFAULT_PLATFORM")]
    pub platform: Option<String>,
    /// Logging driver for the container (json-file).
    #[arg(long = "log-driver")]
    pub log_driver: Option<String>,
    /// Log driver options (max-size, max-file).
    #[arg(long = "log-opt")]
    pub log_opt: Vec<String>,
    /// Read in a line delimited file of labels.
    #[arg(long = "label-file")]
    pub label_file: Vec<PathBuf>,
    /// Write the container ID to the file.
    #[arg(long)]
    pub cidfile: Option<PathBuf>,
    /// Command to run to check health.
    #[arg(long = "health-cmd")]
    pub health_cmd: Option<String>,
    /// Time between running the check (ms|s|m|h) (default 0s).
    #[arg(long = "health-interval")]
    pub health_interval: Option<String>,
    /// Consecutive failures needed to report unhealthy.
    #[arg(long = "health-retries", allow_hyphen_values = true)]
    pub health_retries: Option<String>,
    /// Start period for the container to initialize before starting health-retries countdown (ms|s|m|h) (default 0s).
    #[arg(long = "health-start-period")]
    pub health_start_period: Option<String>,
    /// Time between running the check during the start period (ms|s|m|h) (default 0s).
    #[arg(long = "health-start-interval")]
    pub health_start_interval: Option<String>,
    /// Maximum time to allow one check to run (ms|s|m|h) (default 0s).
    #[arg(long = "health-timeout")]
    pub health_timeout: Option<String>,
    /// Disable any container-specified HEALTHCHECK.
    #[arg(long = "no-healthcheck")]
    pub no_healthcheck: bool,
    /// Ulimit options (NAME=SOFT[:HARD]).
    #[arg(long)]
    pub ulimit: Vec<String>,
    /// Size of /dev/shm.
    #[arg(long = "shm-size")]
    pub shm_size: Option<String>,
    /// Add a host device to the container (HOST[:CONTAINER][:PERMISSIONS]).
    #[arg(long)]
    pub device: Vec<String>,
    /// Add a rule to the cgroup allowed devices list ('c 1:3 rwm').
    #[arg(long = "device-cgroup-rule")]
    pub device_cgroup_rule: Vec<String>,
    /// Sysctl options (KEY=VALUE).
    #[arg(long)]
    pub sysctl: Vec<String>,
    /// PID namespace to use (host, container:NAME).
    #[arg(long)]
    pub pid: Option<String>,
    /// IPC mode to use (none, private, shareable, host, container:NAME).
    #[arg(long)]
    pub ipc: Option<String>,
    /// UTS namespace to use (host).
    #[arg(long)]
    pub uts: Option<String>,
    /// User namespace to use (host).
    #[arg(long)]
    pub userns: Option<String>,
    /// Cgroup namespace to use (host, private).
    #[arg(long)]
    pub cgroupns: Option<String>,
    /// Add additional groups to join.
    #[arg(long = "group-add")]
    pub group_add: Vec<String>,
    /// Tune host's OOM preferences (-1000 to 1000).
    #[arg(long = "oom-score-adj", allow_hyphen_values = true)]
    pub oom_score_adj: Option<String>,
    /// Disable OOM Killer.
    #[arg(long = "oom-kill-disable")]
    pub oom_kill_disable: bool,
    /// Tune container memory swappiness (0 to 100).
    #[arg(long = "memory-swappiness", allow_hyphen_values = true)]
    pub memory_swappiness: Option<String>,
    /// MEMs in which to allow execution (0-3, 0,1).
    #[arg(long = "cpuset-mems")]
    pub cpuset_mems: Option<String>,
    /// Block IO (relative weight), between 10 and 1000, or 0 to disable.
    #[arg(long = "blkio-weight")]
    pub blkio_weight: Option<String>,
    /// Pull image before running ("always", "missing", "never").
    #[arg(long, default_value = "missing", value_parser = super::build::parse_pull_policy)]
    pub pull: PullPolicy,
    /// The image, then the command and its arguments.
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "IMAGE [COMMAND] [ARG...]"
    )]
    pub image_and_args: Vec<String>,
}

impl ContainerFlags {
    /// An unknown `-x`/`--xyz` before the image lands in the image slot (the image takes
    /// hyphen values for the command's sake): say so as Docker does, status 125.
    pub fn reject_unknown_flag(&self, verb: &str) -> Option<i32> {
        let first = self.image_and_args.first()?;
        if first.starts_with('-') && first.len() > 1 {
            let flag = first.split('=').next().unwrap_or(first);
            eprintln!("unknown flag: {flag}\nSee 'berth {verb} --help'.");
            return Some(125);
        }
        None
    }

    /// The engine's request (values still as typed; the engine validates them).
    pub fn request(&self, detach: bool) -> CreateRequest {
        let mut it = self.image_and_args.iter().cloned();
        let image = it.next().unwrap_or_default();
        CreateRequest {
            image,
            args: it.collect(),
            name: self.name.clone(),
            auto_remove: self.rm,
            env: self.env.clone(),
            env_files: self.env_file.clone(),
            workdir: self.workdir.clone(),
            entrypoint: self.entrypoint.clone(),
            interactive: self.interactive,
            tty: self.tty,
            init: self.init,
            stop_signal: self.stop_signal.clone(),
            stop_timeout: self.stop_timeout,
            restart: self.restart.clone(),
            user: self.user.clone(),
            hostname: self.hostname.clone(),
            read_only: self.read_only,
            tmpfs: self.tmpfs.clone(),
            volumes: self.volume.clone(),
            mounts: self.mount.clone(),
            volumes_from: self.volumes_from.clone(),
            cap_add: self.cap_add.clone(),
            cap_drop: self.cap_drop.clone(),
            security_opt: self.security_opt.clone(),
            privileged: self.privileged,
            memory: self.memory.clone(),
            memory_swap: self.memory_swap.clone(),
            memory_reservation: self.memory_reservation.clone(),
            cpu_shares: self.cpu_shares.clone(),
            cpus: self.cpus.clone(),
            cpu_period: self.cpu_period.clone(),
            cpu_quota: self.cpu_quota.clone(),
            cpuset_cpus: self.cpuset_cpus.clone(),
            pids_limit: self.pids_limit.clone(),
            network: self.network.clone(),
            publish: self.publish.clone(),
            publish_all: self.publish_all,
            dns: self.dns.clone(),
            dns_search: self.dns_search.clone(),
            add_host: self.add_host.clone(),
            network_alias: self.network_alias.clone(),
            ip: self.ip.clone(),
            mac_address: self.mac_address.clone(),
            runtime: self.runtime.clone(),
            labels: self.label.clone(),
            detach,
            label_files: self.label_file.clone(),
            health: berth_engine::container::health::HealthFlags {
                cmd: self.health_cmd.clone(),
                interval: self.health_interval.clone(),
                timeout: self.health_timeout.clone(),
                start_period: self.health_start_period.clone(),
                start_interval: self.health_start_interval.clone(),
                retries: self.health_retries.clone(),
                none: self.no_healthcheck,
            },
            expose: self.expose.clone(),
            platform: self.platform.clone(),
            log_driver: self.log_driver.clone(),
            log_opts: self.log_opt.clone(),
            isolation: berth_engine::container::isolation::IsolationFlags {
                ulimits: self.ulimit.clone(),
                shm_size: self.shm_size.clone(),
                devices: self.device.clone(),
                device_cgroup_rules: self.device_cgroup_rule.clone(),
                sysctls: self.sysctl.clone(),
                pid: self.pid.clone(),
                ipc: self.ipc.clone(),
                uts: self.uts.clone(),
                userns: self.userns.clone(),
                cgroupns: self.cgroupns.clone(),
                group_add: self.group_add.clone(),
                oom_score_adj: self.oom_score_adj.clone(),
                oom_kill_disable: self.oom_kill_disable,
                memory_swappiness: self.memory_swappiness.clone(),
                cpuset_mems: self.cpuset_mems.clone(),
                blkio_weight: self.blkio_weight.clone(),
            },
        }
    }
}

/// `create [OPTIONS] IMAGE [COMMAND] [ARG...]`
#[derive(Debug, Args)]
#[command(disable_help_flag = true)]
pub struct CreateArgs {
    /// Print help.
    #[arg(long, action = clap::ArgAction::Help)]
    pub help: Option<bool>,
    #[command(flatten)]
    pub flags: ContainerFlags,
}

/// Creates the container and prints its ID.
pub fn run(g: &GlobalOpts, a: CreateArgs) -> anyhow::Result<i32> {
    if let Some(code) = a.flags.reject_unknown_flag("create") {
        return Ok(code);
    }
    let lc = super::container::lifecycle(g)?;
    let c = create_container(g, &lc, &a.flags, true)?;
    for w in c.warnings() {
        eprintln!("WARNING: {w}");
    }
    println!("{}", c.id());
    Ok(0)
}

/// Creates the container of `run`/`create`: claims `--cidfile` first (an existing file is an
/// error, as Docker's), pulls as `--pull` says, writes the ID into the file.
pub(crate) fn create_container(
    g: &GlobalOpts,
    lc: &berth_engine::container::Lifecycle,
    flags: &ContainerFlags,
    detach: bool,
) -> anyhow::Result<berth_engine::container::Container> {
    let cid = CidFile::claim(flags.cidfile.as_deref())?;
    let c = create_pulling(g, lc, &flags.request(detach), flags.pull)?;
    cid.write(c.id())?;
    Ok(c)
}

/// `--cidfile`: made empty and exclusively before the container, removed again when the
/// create fails, holding the ID once it succeeds.
struct CidFile(Option<PathBuf>);

impl CidFile {
    fn claim(path: Option<&std::path::Path>) -> anyhow::Result<CidFile> {
        let Some(path) = path else {
            return Ok(CidFile(None));
        };
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
        {
            Ok(_) => Ok(CidFile(Some(path.to_owned()))),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => anyhow::bail!(
                "Container ID file found, make sure the other container isn't running or delete {}",
                path.display()
            ),
            Err(e) => Err(anyhow::Error::new(e).context(format!(
                "failed to create the container ID file {}",
                path.display()
            ))),
        }
    }

    fn write(mut self, id: &str) -> anyhow::Result<()> {
        if let Some(path) = self.0.take() {
            std::fs::write(&path, id).map_err(|e| {
                let _ = std::fs::remove_file(&path);
                anyhow::Error::new(e).context(format!(
                    "failed to write the container ID to {}",
                    path.display()
                ))
            })?;
        }
        Ok(())
    }
}

impl Drop for CidFile {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Creates the container, pulling its image as `--pull` says: with `missing` (the default) a
/// missing image is pulled and the create tried again, as Docker's `run`/`create` do.
pub(crate) fn create_pulling(
    g: &GlobalOpts,
    lc: &berth_engine::container::Lifecycle,
    req: &CreateRequest,
    pull: PullPolicy,
) -> anyhow::Result<berth_engine::container::Container> {
    if pull == PullPolicy::Always {
        super::pull::pull_missing(g, &req.image, req.platform.as_deref())?;
    }
    match lc.create(req) {
        Err(berth_engine::container::ContainerError::ImageNotFound(shown))
            if pull == PullPolicy::Missing && super::pull::pullable(&req.image) =>
        {
            eprintln!("Unable to find image '{shown}' locally");
            super::pull::pull_missing(g, &req.image, req.platform.as_deref())?;
            Ok(lc.create(req).map_err(berth_engine::Error::from)?)
        }
        // Docker's words for a missing image that may not be pulled; status 125.
        Err(berth_engine::container::ContainerError::ImageNotFound(shown)) => {
            anyhow::bail!("No such image: {shown}")
        }
        other => Ok(other.map_err(berth_engine::Error::from)?),
    }
}
