//! `_init -- CMD...` (hidden): berth's minimal init, PID 1 of a container run with `--init`.

use clap::Args;

use super::GlobalOpts;

/// `_init -- COMMAND [ARG...]`
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The command and its arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    pub command: Vec<String>,
}

/// Runs the init loop; exits with the command's status.
pub fn run(_g: &GlobalOpts, a: InitArgs) -> anyhow::Result<i32> {
    Ok(berth_engine::container::init::run_init(&a.command))
}
