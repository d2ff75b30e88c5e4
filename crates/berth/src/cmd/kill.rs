//! `kill`: send a signal (default KILL) to running containers.

use clap::Args;

use berth_engine::container::options::parse_signal;

use super::GlobalOpts;

/// `kill [OPTIONS] CONTAINER [CONTAINER...]`
#[derive(Debug, Args)]
pub struct KillArgs {
    /// Signal to send to the container.
    #[arg(short = 's', long, default_value = "KILL")]
    pub signal: String,
    /// Containers to kill.
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// Signals each container and prints its name as given.
pub fn run(g: &GlobalOpts, a: KillArgs) -> anyhow::Result<i32> {
    let sig = match parse_signal("--signal", &a.signal) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("Error: {e}");
            return Ok(1);
        }
    };
    let lc = super::container::lifecycle(g)?;
    let mut status = 0;
    for n in &a.containers {
        match lc.find(n).and_then(|c| lc.kill_container(&c, sig)) {
            Ok(()) => println!("{n}"),
            Err(e) => status = super::container::daemon_error(&e),
        }
    }
    Ok(status)
}
