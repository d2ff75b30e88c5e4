//! `berth-runc`: berth's runtime behind runc's command line, so containerd's
//! `io.containerd.runc.v2` shim (or CRI-O, or anything built on go-runc) can call berth as
//! its `BinaryName`. The same binary answers to this name (argv[0], a symlink that
//! `berth runtime install` makes).
//!
//! It takes what the shim sends, exactly: the global `--root`, `--log`, `--log-format json`
//! (errors become the `{"level":"error","msg":..,"time":..}` lines the shim reads back),
//! `--systemd-cgroup`; the verbs `create`, `start`, `run`, `state`, `kill`, `delete`, `exec`,
//! `ps`, `events`, `update`, `pause`, `resume`, `features`, `spec`, `list`; `--version` in
//! runc's format. State lives in `ROOT/<id>` (runc's layout; the files are berth's).

mod cgroups_path;
mod exec;
mod info;
mod lifecycle;

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub use cgroups_path::{is_systemd_form, systemd_to_cgroupfs};
pub(crate) use lifecycle::bundle_config;

/// The name this binary answers to as a runc stand-in.
pub const RUNC_NAME: &str = "berth-runc";

/// runc's global options and verbs.
#[derive(Debug, Parser)]
#[command(
    name = "berth-runc",
    about = "berth's OCI runtime with runc's command line",
    disable_version_flag = true
)]
pub struct RuncCli {
    /// Root directory for storage of container state (should be on tmpfs).
    #[arg(long, default_value = "/run/berth-runc")]
    root: PathBuf,
    /// Log file for errors and warnings (default: stderr only).
    #[arg(long)]
    log: Option<PathBuf>,
    /// Log format: text or json.
    #[arg(long = "log-format", default_value = "text")]
    log_format: String,
    /// Use systemd to manage cgroups (not supported: berth writes cgroupfs itself).
    #[arg(long = "systemd-cgroup")]
    systemd_cgroup: bool,
    /// Debug logging.
    #[arg(long)]
    debug: bool,
    /// Path to criu (accepted; checkpoint/restore is not supported).
    #[arg(long)]
    criu: Option<String>,
    /// Rootless mode: true, false or auto (only false/auto: berth-runc runs as root).
    #[arg(long)]
    rootless: Option<String>,
    /// Print the version.
    #[arg(short = 'v', long)]
    version: bool,
    #[command(subcommand)]
    command: Option<RuncCommand>,
}

/// `create` / `run` options.
#[derive(Debug, Args)]
pub struct CreateOpts {
    /// Bundle directory (holding config.json).
    #[arg(short = 'b', long, default_value = ".")]
    pub bundle: PathBuf,
    /// Unix socket to send the pty master to.
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// File to write the init's pid to.
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Do not use pivot_root (accepted: berth pivots on every rootfs but ramfs).
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// Do not make a new session keyring (berth never makes one).
    #[arg(long = "no-new-keyring")]
    pub no_new_keyring: bool,
    /// Pass this many descriptors after stdio (3..) to the container (only 0 supported).
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
    /// Container ID.
    pub id: String,
}

#[derive(Debug, Subcommand)]
enum RuncCommand {
    /// Create a container; its process waits for `start`.
    Create(CreateOpts),
    /// Start a created container.
    Start { id: String },
    /// Create and start a container (in the foreground unless --detach).
    Run {
        #[command(flatten)]
        opts: CreateOpts,
        /// Detach from the container's process.
        #[arg(short = 'd', long)]
        detach: bool,
        /// Keep the container's state after it exits.
        #[arg(long)]
        keep: bool,
    },
    /// The container's state as JSON.
    State { id: String },
    /// Send a signal (default SIGTERM) to the container's init.
    Kill {
        /// To every process of the container.
        #[arg(short = 'a', long)]
        all: bool,
        id: String,
        signal: Option<String>,
    },
    /// Delete a container's state and cgroup.
    Delete {
        /// Kill it first if it runs.
        #[arg(short = 'f', long)]
        force: bool,
        id: String,
    },
    /// Run another process in a running container.
    Exec(exec::ExecOpts),
    /// The container's processes.
    Ps {
        /// table or json.
        #[arg(short = 'f', long, default_value = "table")]
        format: String,
        id: String,
        /// Options for ps(1) (table format).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Resource usage statistics (--stats once, or a stream every --interval).
    Events {
        /// One stats event, then exit.
        #[arg(long)]
        stats: bool,
        /// Interval of the stream.
        #[arg(long, default_value = "5s")]
        interval: String,
        id: String,
    },
    /// Change the container's resources.
    Update(info::UpdateOpts),
    /// Freeze every process of the container.
    Pause { id: String },
    /// Thaw a paused container.
    Resume { id: String },
    /// What this runtime supports, as runc's JSON.
    Features,
    /// Write a config.json template.
    Spec {
        /// Directory to write config.json into.
        #[arg(short = 'b', long, default_value = ".")]
        bundle: PathBuf,
        /// A rootless template (not supported).
        #[arg(long)]
        rootless: bool,
    },
    /// List the containers in --root.
    #[command(alias = "ls")]
    List {
        /// table or json.
        #[arg(short = 'f', long, default_value = "table")]
        format: String,
        /// IDs only.
        #[arg(short = 'q', long)]
        quiet: bool,
    },
}

/// Where errors go: stderr, and the `--log` file in its format.
struct Log {
    file: Option<PathBuf>,
    json: bool,
}

impl Log {
    fn error(&self, msg: &str) {
        eprintln!("{msg}");
        let Some(path) = &self.file else { return };
        let line = if self.json {
            serde_json::json!({
                "level": "error",
                "msg": msg,
                "time": rfc3339_now(),
            })
            .to_string()
        } else {
            format!("time=\"{}\" level=error msg={:?}", rfc3339_now(), msg)
        };
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "{line}");
        }
    }
}

/// Now in UTC, RFC 3339 to the second (`2026-12-04T22:58:33Z`), as runc's log lines.
fn rfc3339_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Whether argv[0] names the runc face.
pub fn invoked_as_runc() -> bool {
    std::env::args_os()
        .next()
        .map(PathBuf::from)
        .and_then(|p| p.file_name().map(|n| n == RUNC_NAME))
        .unwrap_or(false)
}

/// Runs berth-runc with the process's arguments; returns the exit status.
pub fn main() -> i32 {
    let cli = match RuncCli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 1 } else { 0 };
        }
    };
    let log = Log {
        file: cli.log.clone(),
        json: cli.log_format == "json",
    };
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            log.error(&crate::exit::cause_line("", &err));
            1
        }
    }
}

fn run(cli: RuncCli) -> anyhow::Result<i32> {
    if cli.version {
        info::print_version();
        return Ok(0);
    }
    if !matches!(cli.log_format.as_str(), "text" | "json") {
        anyhow::bail!("invalid log-format: {}", cli.log_format);
    }
    if cli.systemd_cgroup {
        anyhow::bail!(
            "--systemd-cgroup is not supported: berth manages cgroupfs itself (set \
             SystemdCgroup = false; a cgroupsPath in systemd's slice:prefix:name form is \
             still placed where systemd would put it)"
        );
    }
    if cli.rootless.as_deref() == Some("true") {
        anyhow::bail!("--rootless=true is not supported: berth-runc runs as root");
    }
    let Some(command) = cli.command else {
        use clap::CommandFactory;
        RuncCli::command().print_help()?;
        return Ok(0);
    };
    let root = cli.root;
    match command {
        RuncCommand::Create(opts) => lifecycle::create(&root, &opts).map(|_| 0),
        RuncCommand::Start { id } => lifecycle::start(&root, &id).map(|_| 0),
        RuncCommand::Run { opts, detach, keep } => lifecycle::run(&root, &opts, detach, keep),
        RuncCommand::State { id } => lifecycle::state(&root, &id).map(|_| 0),
        RuncCommand::Kill { all, id, signal } => {
            lifecycle::kill(&root, &id, signal.as_deref(), all).map(|_| 0)
        }
        RuncCommand::Delete { force, id } => lifecycle::delete(&root, &id, force).map(|_| 0),
        RuncCommand::Exec(opts) => exec::exec(&root, opts),
        RuncCommand::Ps {
            format,
            id,
            ps_args,
        } => info::ps(&root, &id, &format, &ps_args).map(|_| 0),
        RuncCommand::Events {
            stats,
            interval,
            id,
        } => info::events(&root, &id, stats, &interval).map(|_| 0),
        RuncCommand::Update(opts) => info::update(&root, &opts).map(|_| 0),
        RuncCommand::Pause { id } => lifecycle::pause(&root, &id, true).map(|_| 0),
        RuncCommand::Resume { id } => lifecycle::pause(&root, &id, false).map(|_| 0),
        RuncCommand::Features => info::features().map(|_| 0),
        RuncCommand::Spec { bundle, rootless } => {
            if rootless {
                anyhow::bail!("spec --rootless is not supported");
            }
            crate::cmd::runtime::write_spec(&bundle).map(|_| 0)
        }
        RuncCommand::List { format, quiet } => lifecycle::list(&root, &format, quiet).map(|_| 0),
    }
}
