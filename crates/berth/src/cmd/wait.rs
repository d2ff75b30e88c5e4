//! `wait`: block until containers stop, print their exit codes.

use clap::Args;

use super::GlobalOpts;

/// `wait CONTAINER [CONTAINER...]`
#[derive(Debug, Args)]
pub struct WaitArgs {
    /// Containers to wait for.
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// Waits for each container in turn and prints its exit status on a line of its own; as
/// Docker, the errors (an unknown container) come after every status, and make the
/// status 1.
pub fn run(g: &GlobalOpts, a: WaitArgs) -> anyhow::Result<i32> {
    let lc = super::container::lifecycle(g)?;
    let mut errors = Vec::new();
    for n in &a.containers {
        match lc.find(n).and_then(|c| lc.wait_exit_code(&c)) {
            Ok(code) => println!("{code}"),
            Err(e) => errors.push(e),
        }
    }
    let mut status = 0;
    for e in &errors {
        status = super::container::daemon_error(e);
    }
    Ok(status)
}
