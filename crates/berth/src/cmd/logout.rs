//! `berth logout`: forget the credentials stored for a registry.

use clap::Args;

use super::GlobalOpts;

/// `logout [SERVER]`
#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// The registry (default: Docker Hub).
    pub server: Option<String>,
}

/// Runs `logout`.
pub fn run(g: &GlobalOpts, a: LogoutArgs) -> anyhow::Result<i32> {
    crate::exit::status_1(|| {
        let shown = a
            .server
            .clone()
            .unwrap_or_else(|| "https://index.docker.io/v1/".to_owned());
        if g.engine()?.logout(a.server.as_deref())? {
            println!("Removing login credentials for {shown}");
        } else {
            println!("Not logged in to {shown}");
        }
        Ok(0)
    })
}
