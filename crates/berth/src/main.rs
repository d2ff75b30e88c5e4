//! `berth`: the command-line face of the berth container engine.
//!
//! The binary only parses arguments, calls `berth-engine` and prints. Each verb lives in
//! `cmd/<verb>.rs` and turns its arguments into one engine call.

mod cmd;
mod exit;

use clap::Parser;

fn main() {
    exit::quiet_broken_pipe();
    let cli = cmd::Cli::parse();
    exit::init_logging(&cli.global);
    let code = match cmd::dispatch(cli) {
        Ok(code) => code,
        Err(err) => exit::report(&err),
    };
    std::process::exit(code);
}
