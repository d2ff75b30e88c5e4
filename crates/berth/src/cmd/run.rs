//! `run`: create a container and start it, in the foreground or detached (`-d`).

use clap::Args;

use super::GlobalOpts;

/// `run [OPTIONS] IMAGE [COMMAND] [ARG...]`
#[derive(Debug, Args)]
#[command(disable_help_flag = true)]
pub struct RunArgs {
    /// Print help.
    #[arg(long, action = clap::ArgAction::Help)]
    pub help: Option<bool>,
    /// Run container in background and print container ID.
    #[arg(short = 'd', long)]
    pub detach: bool,
    #[command(flatten)]
    pub flags: super::create::ContainerFlags,
}

/// Runs the container; a foreground run exits with the container's status.
pub fn run(g: &GlobalOpts, a: RunArgs) -> anyhow::Result<i32> {
    if let Some(code) = a.flags.reject_unknown_flag("run") {
        return Ok(code);
    }
    if !a.detach && a.flags.interactive && a.flags.tty && !stdin_is_terminal() {
        eprintln!("the input device is not a TTY");
        return Ok(1);
    }
    // A published port in use fails here, before any container exists.
    berth_engine::network::check_publish(&a.flags.publish).map_err(berth_engine::Error::from)?;
    let lc = super::container::lifecycle(g)?;
    lc.ensure_runroot().map_err(berth_engine::Error::from)?;
    let c = super::create::create_container(g, &lc, &a.flags, a.detach)?;
    for w in c.warnings() {
        eprintln!("WARNING: {w}");
    }
    if a.detach {
        let exe = std::env::current_exe()?;
        if let Err(e) = lc.start_detached(&c, &exe) {
            if c.spec.host_config.auto_remove {
                let _ = lc.remove_container(&c, true, true);
            }
            return Err(berth_engine::Error::from(e).into());
        }
        println!("{}", c.id());
        return Ok(0);
    }
    Ok(lc
        .run_attached(&c, true)
        .map_err(berth_engine::Error::from)?)
}

/// `-it` needs a terminal on stdin (Docker refuses `docker run -it X </dev/null` likewise).
pub(crate) fn stdin_is_terminal() -> bool {
    use std::io::IsTerminal;
    std::io::stdin().is_terminal()
}
