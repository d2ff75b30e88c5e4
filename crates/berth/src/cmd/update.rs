//! `update`: new limits and restart policy for running or stopped containers.

use berth_engine::container::update::UpdateRequest;
use clap::Args;

use super::GlobalOpts;

/// `update [OPTIONS] CONTAINER [CONTAINER...]`
#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// Memory limit.
    #[arg(short = 'm', long)]
    pub memory: Option<String>,
    /// Swap limit equal to memory plus swap: -1 to enable unlimited swap.
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Memory soft limit.
    #[arg(long = "memory-reservation")]
    pub memory_reservation: Option<String>,
    /// CPU shares (relative weight).
    #[arg(short = 'c', long = "cpu-shares")]
    pub cpu_shares: Option<String>,
    /// Number of CPUs.
    #[arg(long)]
    pub cpus: Option<String>,
    /// Limit CPU CFS (Completely Fair Scheduler) period.
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<String>,
    /// Limit CPU CFS (Completely Fair Scheduler) quota.
    #[arg(long = "cpu-quota", allow_hyphen_values = true)]
    pub cpu_quota: Option<String>,
    /// CPUs in which to allow execution (0-3, 0,1).
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    /// Tune container pids limit (set -1 for unlimited).
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pub pids_limit: Option<String>,
    /// Restart policy to apply when a container exits.
    #[arg(long)]
    pub restart: Option<String>,
    /// Containers to update.
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// Updates each container and prints its name as given; a bad flag is one error line.
pub fn run(g: &GlobalOpts, a: UpdateArgs) -> anyhow::Result<i32> {
    let req = UpdateRequest {
        memory: a.memory,
        memory_swap: a.memory_swap,
        memory_reservation: a.memory_reservation,
        cpu_shares: a.cpu_shares,
        cpus: a.cpus,
        cpu_period: a.cpu_period,
        cpu_quota: a.cpu_quota,
        cpuset_cpus: a.cpuset_cpus,
        pids_limit: a.pids_limit,
        restart: a.restart,
    };
    let update = match req.parse() {
        Ok(u) => u,
        Err(e) => {
            eprintln!("Error: {e}");
            return Ok(1);
        }
    };
    let lc = super::container::lifecycle(g)?;
    let mut status = 0;
    for n in &a.containers {
        match lc.find(n).and_then(|c| lc.update_container(&c, &update)) {
            Ok(warnings) => {
                for w in warnings {
                    eprintln!("WARNING: {w}");
                }
                println!("{n}");
            }
            Err(e) => status = super::container::daemon_error(&e),
        }
    }
    Ok(status)
}
