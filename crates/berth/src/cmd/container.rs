//! `berth container ...`: the container verbs grouped as Docker groups them, plus helpers
//! the container verbs share (opening the lifecycle, Docker-style daemon errors).

use std::mem::ManuallyDrop;

use clap::{Args, Subcommand};

use berth_engine::container::{Container, ContainerError, Lifecycle};

use super::GlobalOpts;

/// `container COMMAND`
#[derive(Debug, Subcommand)]
pub enum ContainerCommand {
    /// List containers.
    #[command(name = "ls", visible_aliases = ["list", "ps"])]
    Ls(super::ps::PsArgs),
    /// Create and run a new container from an image.
    Run(super::run::RunArgs),
    /// Create a new container.
    Create(super::create::CreateArgs),
    /// Start one or more stopped containers.
    Start(super::start::StartArgs),
    /// Stop one or more running containers.
    Stop(super::stop::StopArgs),
    /// Restart one or more containers.
    Restart(super::restart::RestartArgs),
    /// Kill one or more running containers.
    Kill(super::kill::KillArgs),
    /// Remove one or more containers.
    #[command(name = "rm", visible_alias = "remove")]
    Rm(super::rm::RmArgs),
    /// Fetch the logs of a container.
    Logs(super::logs::LogsArgs),
    /// Execute a command in a running container.
    Exec(super::exec::ExecArgs),
    /// Block until one or more containers stop, then print their exit codes.
    Wait(super::wait::WaitArgs),
    /// Display detailed information on one or more containers.
    Inspect(super::inspect::InspectArgs),
    /// Display the running processes of a container.
    Top(super::top::TopArgs),
    /// Display a live stream of container(s) resource usage statistics.
    Stats(super::stats::StatsArgs),
    /// Remove all stopped containers.
    Prune(PruneArgs),
    /// Rename a container.
    Rename(super::rename::RenameArgs),
    /// Attach to a running container.
    Attach(super::attach::AttachArgs),
    /// Pause all processes within one or more containers.
    Pause(super::pause::PauseArgs),
    /// Unpause all processes within one or more containers.
    Unpause(super::unpause::UnpauseArgs),
    /// Update configuration of one or more containers.
    Update(super::update::UpdateArgs),
    /// Copy files/folders between a container and the local filesystem.
    Cp(super::cp::CpArgs),
    /// Inspect changes to files or directories on a container's filesystem.
    Diff(super::diff::DiffArgs),
    /// Export a container's filesystem as a tar archive.
    Export(super::export::ExportArgs),
    /// Create a new image from a container's changes.
    Commit(super::commit::CommitArgs),
}

/// `container prune`
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Do not prompt for confirmation.
    #[arg(short, long)]
    pub force: bool,
    /// Provide filter values (e.g. 'until=<timestamp>').
    #[arg(long = "filter")]
    pub filter: Vec<String>,
}

/// Runs a `container` subcommand.
pub fn run(g: &GlobalOpts, c: ContainerCommand) -> anyhow::Result<i32> {
    match c {
        ContainerCommand::Ls(a) => super::ps::run(g, a),
        ContainerCommand::Run(a) => super::run::run(g, a),
        ContainerCommand::Create(a) => super::create::run(g, a),
        ContainerCommand::Start(a) => super::start::run(g, a),
        ContainerCommand::Stop(a) => super::stop::run(g, a),
        ContainerCommand::Restart(a) => super::restart::run(g, a),
        ContainerCommand::Kill(a) => super::kill::run(g, a),
        ContainerCommand::Rm(a) => super::rm::run(g, a),
        ContainerCommand::Logs(a) => super::logs::run(g, a),
        ContainerCommand::Exec(a) => super::exec::run(g, a),
        ContainerCommand::Wait(a) => super::wait::run(g, a),
        ContainerCommand::Inspect(a) => super::inspect::run_containers(g, a),
        ContainerCommand::Top(a) => super::top::run(g, a),
        ContainerCommand::Stats(a) => super::stats::run(g, a),
        ContainerCommand::Prune(a) => {
            let now = berth_engine::container::now_nanos();
            let filters = match berth_engine::system::PruneFilters::parse(&a.filter, now) {
                Ok(f) => f,
                Err(e) => {
                    eprintln!("Error: {e}");
                    return Ok(1);
                }
            };
            if !a.force {
                use std::io::{BufRead, Write};
                print!("WARNING! This will remove all stopped containers.\nAre you sure you want to continue? [y/N] ");
                std::io::stdout().flush()?;
                let mut line = String::new();
                std::io::stdin().lock().read_line(&mut line)?;
                if !matches!(line.trim(), "y" | "Y" | "yes") {
                    return Ok(0);
                }
            }
            let lc = lifecycle(g)?;
            let report = lc
                .prune_containers(&filters)
                .map_err(berth_engine::Error::from)?;
            if !report.removed.is_empty() {
                println!("Deleted Containers:");
                for id in &report.removed {
                    println!("{id}");
                }
                println!();
            }
            println!(
                "Total reclaimed space: {}",
                super::images::human_size(report.reclaimed)
            );
            Ok(0)
        }
        ContainerCommand::Rename(a) => super::rename::run(g, a),
        ContainerCommand::Attach(a) => super::attach::run(g, a),
        ContainerCommand::Pause(a) => super::pause::run(g, a),
        ContainerCommand::Unpause(a) => super::unpause::run(g, a),
        ContainerCommand::Update(a) => super::update::run(g, a),
        ContainerCommand::Cp(a) => super::cp::run(g, a),
        ContainerCommand::Diff(a) => super::diff::run(g, a),
        ContainerCommand::Export(a) => super::export::run(g, a),
        ContainerCommand::Commit(a) => super::commit::run(g, a),
    }
}

/// Opens the container lifecycle on the global roots.
///
/// It is never closed: the process exits right after the verb, and closing the last
/// database connection would checkpoint and delete the WAL (fsyncs that cost more than
/// the rest of a `run --rm`). SQLite's WAL is crash-safe; the next process reuses it.
pub fn lifecycle(g: &GlobalOpts) -> anyhow::Result<ManuallyDrop<Lifecycle>> {
    super::require_root()?;
    Ok(ManuallyDrop::new(
        Lifecycle::open(&g.root, &g.runroot).map_err(berth_engine::Error::from)?,
    ))
}

/// Prints an error the way Docker's CLI prints a daemon error and returns exit status 1.
pub fn daemon_error(e: &ContainerError) -> i32 {
    eprintln!("Error: {e}");
    1
}

/// Runs `f` on each named container; failures are printed and make the status 1, as
/// Docker's multi-container verbs do.
pub fn for_each(
    lc: &Lifecycle,
    names: &[String],
    mut f: impl FnMut(&Container) -> Result<(), ContainerError>,
) -> i32 {
    let mut status = 0;
    for n in names {
        let r = lc.find(n).and_then(|c| f(&c));
        if let Err(e) = r {
            status = daemon_error(&e);
        }
    }
    status
}
