//! `rename`: a container's new name.

use clap::Args;

use super::GlobalOpts;

/// `rename CONTAINER NEW_NAME`
#[derive(Debug, Args)]
pub struct RenameArgs {
    /// The container.
    pub container: String,
    /// Its new name.
    pub new_name: String,
}

/// Renames the container; Docker's errors exit 1.
pub fn run(g: &GlobalOpts, a: RenameArgs) -> anyhow::Result<i32> {
    let lc = super::container::lifecycle(g)?;
    match lc
        .find(&a.container)
        .and_then(|c| lc.rename_container(&c, &a.new_name))
    {
        Ok(()) => Ok(0),
        Err(e) => Ok(super::container::daemon_error(&e)),
    }
}
