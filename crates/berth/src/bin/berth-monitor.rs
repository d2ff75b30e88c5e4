//! `berth-monitor`: the lean half of a detached container's monitor. It inherits the
//! container's output pipes from `berth _monitor`, writes them to the json-file log until
//! the container's process exits, then executes `berth _monitor ID --exited CODE` to record
//! the exit and apply the restart policy. No database, no argument parser: it stays small
//! in memory for as long as the container runs.
//!
//! Usage (internal): `berth-monitor PID LOG-PATH out:FD err:FD -- BERTH ARGS...`

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(berth_engine::container::monitor::run_lean(&args));
}
