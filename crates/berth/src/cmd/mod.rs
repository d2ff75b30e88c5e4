//! The verbs: one module each, each turning its arguments into one engine call.

pub mod analyze;
pub mod attach;
pub mod build;
pub mod build_tty;
pub mod builder;
pub mod commit;
pub mod completion;
pub mod container;
pub mod cp;
pub mod create;
pub mod df_verbose;
pub mod diff;
pub mod events;
pub mod exec;
pub mod export;
pub mod gotemplate;
pub mod history;
pub mod image;
pub mod images;
pub mod import;
pub mod info;
pub mod init;
pub mod inspect;
pub mod kill;
pub mod load;
pub mod login;
pub mod logout;
pub mod logs;
pub mod monitor;
pub mod network;
pub mod pause;
pub mod port;
pub mod ps;
pub mod pull;
pub mod push;
pub mod registry;
pub mod rename;
pub mod restart;
pub mod rm;
pub mod rmi;
pub mod run;
pub mod runtime;
pub mod save;
pub mod service;
pub mod start;
pub mod stats;
pub mod stop;
pub mod system;
pub mod tag;
pub mod top;
pub mod unpause;
pub mod update;
pub mod version;
pub mod volume;
pub mod wait;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Options that every verb accepts.
#[derive(Debug, Clone, Args)]
pub struct GlobalOpts {
    /// Root of the persistent state (images, layers, containers).
    #[arg(
        long,
        global = true,
        env = "BERTH_ROOT",
        help_heading = "Global Options",
        hide_env_values = true,
        default_value = "/var/lib/berth"
    )]
    pub root: PathBuf,
    /// Root of the runtime state (monitor pids, sockets, mount points).
    #[arg(
        long,
        global = true,
        env = "BERTH_RUNROOT",
        help_heading = "Global Options",
        hide_env_values = true,
        default_value = "/run/berth"
    )]
    pub runroot: PathBuf,
    /// Log level: error, warn, info, debug, trace.
    #[arg(
        long = "log-level",
        global = true,
        env = "BERTH_LOG_LEVEL",
        help_heading = "Global Options",
        hide_env_values = true
    )]
    pub log_level: Option<String>,
}

impl GlobalOpts {
    /// Opens the engine on the configured roots.
    pub fn engine(&self) -> anyhow::Result<berth_engine::Engine> {
        require_root()?;
        Ok(berth_engine::Engine::open(berth_engine::EngineConfig {
            root: self.root.clone(),
            runroot: self.runroot.clone(),
        })?)
    }
}

/// berth opens its store, namespaces and cgroups as root: another user gets one clear line
/// (status 125) instead of the first `EACCES` on the way.
pub(crate) fn require_root() -> anyhow::Result<()> {
    if !rustix::process::geteuid().is_root() {
        anyhow::bail!("berth needs root (rootless mode is not supported yet)");
    }
    Ok(())
}

/// berth: build, ship and run containers; type `berth` where you typed `docker`.
#[derive(Debug, Parser)]
#[command(
    name = "berth",
    version,
    about,
    disable_help_subcommand = true,
    arg_required_else_help = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOpts,
    #[command(subcommand)]
    pub command: Command,
}

/// Every verb berth knows.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show berth's version.
    Version(version::VersionArgs),
    /// Get real time events from berth.
    Events(events::EventsArgs),
    /// Attach to a running container's output, signals and detach keys.
    Attach(attach::AttachArgs),
    /// Display system-wide information.
    Info(info::InfoArgs),
    /// Rename a container.
    Rename(rename::RenameArgs),
    /// Pause all processes within one or more containers.
    Pause(pause::PauseArgs),
    /// Unpause all processes within one or more containers.
    Unpause(unpause::UnpauseArgs),
    /// Update configuration of one or more containers.
    Update(update::UpdateArgs),
    /// Build an image from a Dockerfile.
    Build(build::BuildArgs),
    /// Manage builds (build cache).
    #[command(subcommand)]
    Builder(builder::BuilderCommand),
    /// Create and run a new container from an image.
    Run(run::RunArgs),
    /// Create a new container.
    Create(create::CreateArgs),
    /// Start one or more stopped containers.
    Start(start::StartArgs),
    /// Stop one or more running containers.
    Stop(stop::StopArgs),
    /// Restart one or more containers.
    Restart(restart::RestartArgs),
    /// Kill one or more running containers.
    Kill(kill::KillArgs),
    /// Remove one or more containers.
    Rm(rm::RmArgs),
    /// List containers.
    Ps(ps::PsArgs),
    /// Fetch the logs of a container.
    Logs(logs::LogsArgs),
    /// Execute a command in a running container.
    Exec(exec::ExecArgs),
    /// Block until one or more containers stop, then print their exit codes.
    Wait(wait::WaitArgs),
    /// Return low-level information on containers or images.
    Inspect(inspect::InspectArgs),
    /// Display the running processes of a container.
    Top(top::TopArgs),
    /// Copy files/folders between a container and the local filesystem.
    Cp(cp::CpArgs),
    /// Inspect changes to files or directories on a container's filesystem.
    Diff(diff::DiffArgs),
    /// Export a container's filesystem as a tar archive.
    Export(export::ExportArgs),
    /// Create a new image from a container's changes.
    Commit(commit::CommitArgs),
    /// Display container(s) resource usage statistics.
    Stats(stats::StatsArgs),
    /// Manage containers.
    #[command(subcommand)]
    Container(container::ContainerCommand),
    /// berth's minimal init, PID 1 of `run --init` containers (internal).
    #[command(name = "_init", hide = true)]
    Init(init::InitArgs),
    /// The health checker of a container (internal).
    #[command(name = "_health", hide = true)]
    Health(monitor::HealthArgs),
    /// The per-container monitor (internal).
    #[command(name = "_monitor", hide = true)]
    Monitor(monitor::MonitorArgs),
    /// Manage networks.
    #[command(subcommand)]
    Network(network::NetworkCommand),
    /// List port mappings or a specific mapping for the container.
    Port(port::PortArgs),
    /// Import the contents from a tarball to create a filesystem image.
    Import(import::ImportArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default).
    Save(save::SaveArgs),
    /// Load an image from a tar archive or STDIN.
    Load(load::LoadArgs),
    /// List images.
    Images(images::ImagesArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE.
    Tag(tag::TagArgs),
    /// Remove one or more images.
    Rmi(rmi::RmiArgs),
    /// Download an image from a registry.
    Pull(pull::PullArgs),
    /// Upload an image to a registry.
    Push(push::PushArgs),
    /// Log in to a registry.
    Login(login::LoginArgs),
    /// Log out from a registry.
    Logout(logout::LogoutArgs),
    /// Run a registry of berth's own, and collect its garbage.
    #[command(subcommand)]
    Registry(registry::RegistryCommand),
    /// Show the history of an image.
    History(history::HistoryArgs),
    /// Manage images.
    #[command(subcommand)]
    Image(image::ImageCommand),
    /// Manage berth (disk usage).
    #[command(subcommand)]
    System(system::SystemCommand),
    /// Manage volumes.
    #[command(subcommand)]
    Volume(volume::VolumeCommand),
    /// Generate the shell completion script (bash, zsh, fish).
    Completion(completion::CompletionArgs),
    /// Write berth's man pages into a directory (internal: `scripts/install.sh` calls it).
    #[command(name = "_man", hide = true)]
    Man(completion::ManArgs),
    /// Low-level OCI runtime commands, compatible with runc (create, start, run, state, kill, delete, spec).
    Runtime(runtime::RuntimeArgs),
}

/// Runs the verb and returns the process exit status.
pub fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    let g = cli.global;
    match cli.command {
        Command::Version(a) => version::run(&g, a),
        Command::Events(a) => events::run(&g, a),
        Command::Attach(a) => attach::run(&g, a),
        Command::Info(a) => info::run(&g, a),
        Command::Rename(a) => rename::run(&g, a),
        Command::Pause(a) => pause::run(&g, a),
        Command::Unpause(a) => unpause::run(&g, a),
        Command::Update(a) => update::run(&g, a),
        Command::Build(a) => build::run(&g, a),
        Command::Builder(c) => builder::run(&g, c),
        Command::Run(a) => run::run(&g, a),
        Command::Create(a) => create::run(&g, a),
        Command::Start(a) => start::run(&g, a),
        Command::Stop(a) => stop::run(&g, a),
        Command::Restart(a) => restart::run(&g, a),
        Command::Kill(a) => kill::run(&g, a),
        Command::Rm(a) => rm::run(&g, a),
        Command::Ps(a) => ps::run(&g, a),
        Command::Logs(a) => logs::run(&g, a),
        Command::Exec(a) => exec::run(&g, a),
        Command::Wait(a) => wait::run(&g, a),
        Command::Inspect(a) => inspect::run(&g, a),
        Command::Top(a) => top::run(&g, a),
        Command::Cp(a) => cp::run(&g, a),
        Command::Diff(a) => diff::run(&g, a),
        Command::Export(a) => export::run(&g, a),
        Command::Commit(a) => commit::run(&g, a),
        Command::Stats(a) => stats::run(&g, a),
        Command::Container(c) => container::run(&g, c),
        Command::Monitor(a) => monitor::run(&g, a),
        Command::Health(a) => monitor::health(&g, a),
        Command::Init(a) => init::run(&g, a),
        Command::Network(c) => network::run(&g, c),
        Command::Port(a) => port::run(&g, a),
        Command::Import(a) => import::run(&g, a),
        Command::Save(a) => save::run(&g, a),
        Command::Load(a) => load::run(&g, a),
        Command::Images(a) => images::run(&g, a),
        Command::Tag(a) => tag::run(&g, a),
        Command::Rmi(a) => rmi::run(&g, a),
        Command::Pull(a) => pull::run(&g, a),
        Command::Push(a) => push::run(&g, a),
        Command::Login(a) => login::run(&g, a),
        Command::Logout(a) => logout::run(&g, a),
        Command::Registry(c) => registry::run(&g, c),
        Command::History(a) => history::run(&g, a),
        Command::Image(c) => image::run(&g, c),
        Command::System(c) => system::run(&g, c),
        Command::Volume(c) => volume::run(&g, c),
        Command::Runtime(a) => runtime::run(&g, a),
        Command::Completion(a) => completion::run(a),
        Command::Man(a) => completion::man(a),
    }
}
