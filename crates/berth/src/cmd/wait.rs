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

/// Waits for each container and prints its exit status.
pub fn run(g: &GlobalOpts, a: WaitArgs) -> anyhow::Result<i32> {
    let lc = super::container::lifecycle(g)?;
    let mut status = 0;
    for n in &a.containers {
        match lc.find(n).and_then(|c| lc.wait_exit_code(&c)) {
            Ok(code) => println!("{code}"),
            Err(e) => status = super::container::daemon_error(&e),
        }
    }
    Ok(status)
}
