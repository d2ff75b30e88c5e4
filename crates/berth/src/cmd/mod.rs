//! The verbs: one module each, each turning its arguments into one engine call.

pub mod history;
pub mod image;
pub mod images;
pub mod import;
pub mod load;
pub mod rmi;
pub mod save;
pub mod system;
pub mod tag;

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
        default_value = "/var/lib/berth"
    )]
    pub root: PathBuf,
    /// Root of the runtime state (monitor pids, sockets, mount points).
    #[arg(
        long,
        global = true,
        env = "BERTH_RUNROOT",
        default_value = "/run/berth"
    )]
    pub runroot: PathBuf,
    /// Log level: error, warn, info, debug, trace.
    #[arg(long = "log-level", global = true, env = "BERTH_LOG_LEVEL")]
    pub log_level: Option<String>,
}

impl GlobalOpts {
    /// Opens the engine on the configured roots.
    pub fn engine(&self) -> anyhow::Result<berth_engine::Engine> {
        Ok(berth_engine::Engine::open(berth_engine::EngineConfig {
            root: self.root.clone(),
            runroot: self.runroot.clone(),
        })?)
    }
}

/// berth: build, ship and run containers; type `berth` where you typed `docker`.
#[derive(Debug, Parser)]
#[command(name = "berth", version, about, disable_help_subcommand = true)]
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
    Version,
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
    /// Show the history of an image.
    History(history::HistoryArgs),
    /// Manage images.
    #[command(subcommand)]
    Image(image::ImageCommand),
    /// Manage berth (disk usage).
    #[command(subcommand)]
    System(system::SystemCommand),
}

/// Runs the verb and returns the process exit status.
pub fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    let g = cli.global;
    match cli.command {
        Command::Version => {
            let _ = &g;
            println!("berth version {}", env!("CARGO_PKG_VERSION"));
            Ok(0)
        }
        Command::Import(a) => import::run(&g, a),
        Command::Save(a) => save::run(&g, a),
        Command::Load(a) => load::run(&g, a),
        Command::Images(a) => images::run(&g, a),
        Command::Tag(a) => tag::run(&g, a),
        Command::Rmi(a) => rmi::run(&g, a),
        Command::History(a) => history::run(&g, a),
        Command::Image(c) => image::run(&g, c),
        Command::System(c) => system::run(&g, c),
    }
}
