//! `exec`: run a command in a running container.

use clap::Args;

use berth_engine::container::exec::ExecRequest;
use berth_engine::container::ContainerError;

use super::GlobalOpts;

/// `exec [OPTIONS] CONTAINER COMMAND [ARG...]`
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Detached mode: run command in the background.
    #[arg(short, long)]
    pub detach: bool,
    /// Set environment variables.
    #[arg(short, long)]
    pub env: Vec<String>,
    /// Read in a file of environment variables.
    #[arg(long = "env-file")]
    pub env_file: Vec<std::path::PathBuf>,
    /// Override the key sequence for detaching a container.
    #[arg(long = "detach-keys")]
    pub detach_keys: Option<String>,
    /// Keep STDIN open even if not attached.
    #[arg(short, long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY.
    #[arg(short, long)]
    pub tty: bool,
    /// Username or UID (format: "<name|uid>[:<group|gid>]").
    #[arg(short, long)]
    pub user: Option<String>,
    /// Working directory inside the container.
    #[arg(short, long)]
    pub workdir: Option<String>,
    /// Give extended privileges to the command.
    #[arg(long)]
    pub privileged: bool,
    /// The container (name, ID or unique ID prefix).
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    /// The command and its arguments.
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND [ARG...]"
    )]
    pub command: Vec<String>,
}

/// Runs the command; exits with its status.
pub fn run(g: &GlobalOpts, a: ExecArgs) -> anyhow::Result<i32> {
    if !a.detach && a.interactive && a.tty && !super::run::stdin_is_terminal() {
        eprintln!("the input device is not a TTY");
        return Ok(1);
    }
    if let Some(k) = a.detach_keys.as_deref() {
        if let Err(e) = berth_engine::container::tty::parse_detach_keys(k) {
            eprintln!("Error: {e}");
            return Ok(1);
        }
    }
    // Docker: the files first, then -e, so -e wins.
    let mut env = Vec::new();
    let host = |k: &str| std::env::var(k).ok();
    for f in &a.env_file {
        match berth_engine::container::options::parse_env_file(f, &host) {
            Ok(v) => env.extend(v),
            Err(e) => {
                eprintln!("Error: {e}");
                return Ok(1);
            }
        }
    }
    env.extend(a.env);
    let lc = super::container::lifecycle(g)?;
    let c = match lc.find(&a.container) {
        Ok(c) => c,
        Err(e) => return Ok(super::container::daemon_error(&e)),
    };
    let req = ExecRequest {
        cmd: a.command.clone(),
        env,
        user: a.user,
        workdir: a.workdir,
        tty: a.tty,
        interactive: a.interactive,
        detach: a.detach,
        privileged: a.privileged,
    };
    match lc.exec(&c, &req) {
        Ok(code) => Ok(code),
        // Docker prints a failed start of the process as is, the daemon's refusals (not
        // running, no such user) as "Error:" with status 1.
        Err(e @ ContainerError::ExecFailed { .. }) => {
            eprintln!("{e}");
            Ok(e.exit_code())
        }
        Err(e) => {
            let code = e.exit_code();
            eprintln!("Error: {e}");
            Ok(if code == 125 { 1 } else { code })
        }
    }
}
