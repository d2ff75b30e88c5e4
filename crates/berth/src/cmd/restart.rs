//! `restart`: stop, then start again (detached).

use clap::Args;

use super::GlobalOpts;

/// `restart [OPTIONS] CONTAINER [CONTAINER...]`
#[derive(Debug, Args)]
pub struct RestartArgs {
    /// Seconds to wait before killing the container.
    #[arg(
        short = 't',
        long = "timeout",
        visible_alias = "time",
        allow_negative_numbers = true
    )]
    pub time: Option<i64>,
    /// Signal to send to the container.
    #[arg(short = 's', long = "signal")]
    pub signal: Option<String>,
    /// Containers to restart.
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// Restarts each container and prints its name as given.
pub fn run(g: &GlobalOpts, a: RestartArgs) -> anyhow::Result<i32> {
    let signal = match a.signal.as_deref() {
        Some(s) => match berth_engine::container::options::parse_signal("--signal", s) {
            Ok(n) => Some(n),
            Err(e) => {
                eprintln!("Error: {e}");
                return Ok(1);
            }
        },
        None => None,
    };
    let lc = super::container::lifecycle(g)?;
    let exe = std::env::current_exe()?;
    let mut status = 0;
    for n in &a.containers {
        let r = lc
            .find(n)
            .and_then(|c| lc.restart_container(&c, a.time, signal, &exe));
        match r {
            Ok(()) => println!("{n}"),
            Err(e) => status = super::container::daemon_error(&e),
        }
    }
    Ok(status)
}
