//! `berth builder prune`: empty the build cache.

use clap::{Args, Subcommand};

use super::images::human_size;
use super::GlobalOpts;

/// `builder COMMAND`
#[derive(Debug, Subcommand)]
pub enum BuilderCommand {
    /// Remove build cache.
    Prune(PruneArgs),
}

/// `builder prune [OPTIONS]`
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Remove all unused build cache, not just dangling ones (all cache is removed).
    #[arg(short, long)]
    pub all: bool,
    /// Do not prompt for confirmation.
    #[arg(short, long)]
    pub force: bool,
}

/// Runs `builder COMMAND`.
pub fn run(g: &GlobalOpts, c: BuilderCommand) -> anyhow::Result<i32> {
    match c {
        BuilderCommand::Prune(_a) => {
            let engine = g.engine()?;
            let p = engine.builder_prune()?;
            println!("Deleted build cache objects: {}", p.entries);
            println!();
            println!("Total reclaimed space: {}", human_size(p.bytes));
            Ok(0)
        }
    }
}
