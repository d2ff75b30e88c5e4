//! `start`: start stopped containers (detached, or attached with `-a`).

use clap::Args;

use super::GlobalOpts;

/// `start [OPTIONS] CONTAINER [CONTAINER...]`
#[derive(Debug, Args)]
pub struct StartArgs {
    /// Attach STDOUT/STDERR and forward signals.
    #[arg(short = 'a', long)]
    pub attach: bool,
    /// Attach container's STDIN.
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Containers to start.
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// Starts each container and prints its name as given.
pub fn run(g: &GlobalOpts, a: StartArgs) -> anyhow::Result<i32> {
    let lc = super::container::lifecycle(g)?;
    if (a.attach || a.interactive) && a.containers.len() > 1 {
        eprintln!("you cannot start and attach multiple containers at once");
        return Ok(1);
    }
    if a.attach || a.interactive {
        let c = match lc.find(&a.containers[0]) {
            Ok(c) => c,
            Err(e) => return Ok(super::container::daemon_error(&e)),
        };
        if c.status.is_active() {
            // Already running: attach to it (its output from now on) and wait, as Docker.
            return match lc.attach_output(&c, &mut print_entry) {
                Ok(code) => Ok(code as i32),
                Err(e) => Ok(super::container::daemon_error(&e)),
            };
        }
        return Ok(lc
            .run_attached(&c, a.interactive)
            .map_err(berth_engine::Error::from)?);
    }
    let exe = std::env::current_exe()?;
    let code = super::container::for_each(&lc, &a.containers, |c| lc.start_detached(c, &exe));
    if code == 0 {
        for n in &a.containers {
            println!("{n}");
        }
    }
    Ok(code)
}

/// One log entry to our stdout or stderr, as its stream was.
fn print_entry(e: &berth_engine::container::logs::LogEntry) -> std::io::Result<()> {
    use std::io::Write;
    if e.stream == "stderr" {
        let mut h = std::io::stderr().lock();
        h.write_all(e.log.as_bytes())?;
        h.flush()
    } else {
        let mut h = std::io::stdout().lock();
        h.write_all(e.log.as_bytes())?;
        h.flush()
    }
}
