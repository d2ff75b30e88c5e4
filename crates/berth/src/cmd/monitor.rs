//! `_monitor ID` (hidden): the per-container monitor process that `run -d` and `start`
//! spawn. It reports the start on stdout, then watches the container to its end (handing
//! the quiet part to the lean `berth-monitor` binary, which calls it back with `--exited`).

use clap::Args;

use super::GlobalOpts;

/// `_monitor CONTAINER-ID [--exited CODE] [--delay MS]`
#[derive(Debug, Args)]
pub struct MonitorArgs {
    /// The container's full ID.
    pub id: String,
    /// The container's process exited with this status (a call-back of `berth-monitor`).
    #[arg(long, allow_negative_numbers = true)]
    pub exited: Option<i32>,
    /// The next restart back-off, in milliseconds.
    #[arg(long)]
    pub delay: Option<u64>,
    /// `PID:START`: take over a foreground `run --rm` whose CLI died (from `berth-monitor
    /// --rm-guard`): wait for that process, then remove the container.
    #[arg(long)]
    pub adopt: Option<String>,
}

/// Runs the monitor to the container's end.
pub fn run(g: &GlobalOpts, a: MonitorArgs) -> anyhow::Result<i32> {
    let lc = super::container::lifecycle(g)?;
    if let Some((pid, start)) = a.adopt.as_deref().and_then(|p| p.split_once(':')) {
        let (pid, start) = (pid.parse().unwrap_or(0), start.parse().unwrap_or(0));
        return Ok(berth_engine::container::monitor::adopt_orphan(
            &lc, &a.id, pid, start,
        ));
    }
    Ok(berth_engine::container::monitor::run_monitor(
        &lc, &a.id, a.exited, a.delay,
    ))
}

/// `_health CONTAINER-ID` (hidden): the health checker of a running container with a
/// healthcheck, spawned at its start; probes until the container's process ends.
#[derive(Debug, Args)]
pub struct HealthArgs {
    /// The container's full ID.
    pub id: String,
}

/// Runs the checker to the container's end.
pub fn health(g: &GlobalOpts, a: HealthArgs) -> anyhow::Result<i32> {
    let lc = super::container::lifecycle(g)?;
    Ok(berth_engine::container::health::run_checker(&lc, &a.id))
}
