//! `rm`: remove containers (`-f` kills running ones, `-v` removes anonymous volumes).

use clap::Args;

use super::GlobalOpts;

/// `rm [OPTIONS] CONTAINER [CONTAINER...]`
#[derive(Debug, Args)]
pub struct RmArgs {
    /// Force the removal of a running container (uses SIGKILL).
    #[arg(short, long)]
    pub force: bool,
    /// Remove anonymous volumes associated with the container.
    #[arg(short, long)]
    pub volumes: bool,
    /// Containers to remove.
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// Removes each container and prints its name as given.
pub fn run(g: &GlobalOpts, a: RmArgs) -> anyhow::Result<i32> {
    let lc = super::container::lifecycle(g)?;
    let mut status = 0;
    for n in &a.containers {
        match lc
            .find(n)
            .and_then(|c| lc.remove_container(&c, a.force, a.volumes))
        {
            Ok(()) => println!("{n}"),
            Err(e) => status = super::container::daemon_error(&e),
        }
    }
    Ok(status)
}
