//! `berth-monitor`: the lean half of a detached container's monitor. It inherits the
//! container's output pipes from `berth _monitor`, writes them to the json-file log until
//! the container's process exits, then executes `berth _monitor ID --exited CODE` to record
//! the exit and apply the restart policy. No database, no argument parser: it stays small
//! in memory for as long as the container runs.
//!
//! Usage (internal): `berth-monitor PID LOG-PATH out:FD err:FD -- BERTH ARGS...`
//!
//! `berth-monitor --sweep DIR...` (internal): deletes what `run --rm` left in the trash
//! directories, in a process that outlives the `run` that started it.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(berth_engine::container::monitor::run_lean(&args));
}
