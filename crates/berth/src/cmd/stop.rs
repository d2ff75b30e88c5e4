//! `stop`: the stop signal, then SIGKILL after the timeout.

use clap::Args;

use berth_engine::container::options::parse_signal;

use super::GlobalOpts;

/// `stop [OPTIONS] CONTAINER [CONTAINER...]`
#[derive(Debug, Args)]
pub struct StopArgs {
    /// Seconds to wait before killing the container.
    #[arg(
        short = 't',
        long = "time",
        visible_alias = "timeout",
        allow_negative_numbers = true
    )]
    pub time: Option<i64>,
    /// Signal to send to the container.
    #[arg(short = 's', long)]
    pub signal: Option<String>,
    /// Containers to stop.
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// Stops each container and prints its name as given.
pub fn run(g: &GlobalOpts, a: StopArgs) -> anyhow::Result<i32> {
    let lc = super::container::lifecycle(g)?;
    let sig = match a
        .signal
        .as_deref()
        .map(|s| parse_signal("--signal", s))
        .transpose()
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("Error: {e}");
            return Ok(1);
        }
    };
    let mut status = 0;
    for n in &a.containers {
        match lc.find(n).and_then(|c| lc.stop_container(&c, a.time, sig)) {
            Ok(()) => println!("{n}"),
            Err(e) => status = super::container::daemon_error(&e),
        }
    }
    Ok(status)
}
