//! `pause`: freeze every process of one or more containers.

use clap::Args;

use super::GlobalOpts;

/// `pause CONTAINER [CONTAINER...]`
#[derive(Debug, Args)]
pub struct PauseArgs {
    /// Containers to pause.
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// Pauses each container and prints its name as given.
pub fn run(g: &GlobalOpts, a: PauseArgs) -> anyhow::Result<i32> {
    let lc = super::container::lifecycle(g)?;
    let mut status = 0;
    for n in &a.containers {
        match lc.find(n).and_then(|c| lc.pause_container(&c)) {
            Ok(()) => println!("{n}"),
            Err(e) => status = super::container::daemon_error(&e),
        }
    }
    Ok(status)
}
