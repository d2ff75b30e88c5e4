//! `_monitor ID` (hidden): the per-container monitor process that `run -d` and `start`
//! spawn. It reports the start on stdout, then watches the container to its end.

use clap::Args;

use super::GlobalOpts;

/// `_monitor CONTAINER-ID`
#[derive(Debug, Args)]
pub struct MonitorArgs {
    /// The container's full ID.
    pub id: String,
}

/// Runs the monitor to the container's end.
pub fn run(g: &GlobalOpts, a: MonitorArgs) -> anyhow::Result<i32> {
    let lc = super::container::lifecycle(g)?;
    Ok(berth_engine::container::monitor::run_monitor(&lc, &a.id))
}
