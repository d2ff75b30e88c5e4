//! `unpause`: thaw the processes of one or more paused containers.

use clap::Args;

use super::GlobalOpts;

/// `unpause CONTAINER [CONTAINER...]`
#[derive(Debug, Args)]
pub struct UnpauseArgs {
    /// Containers to unpause.
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// Unpauses each container and prints its name as given.
pub fn run(g: &GlobalOpts, a: UnpauseArgs) -> anyhow::Result<i32> {
    let lc = super::container::lifecycle(g)?;
    let mut status = 0;
    for n in &a.containers {
        match lc.find(n).and_then(|c| lc.unpause_container(&c)) {
            Ok(()) => println!("{n}"),
            Err(e) => status = super::container::daemon_error(&e),
        }
    }
    Ok(status)
}
