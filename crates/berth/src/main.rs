//! `berth`: the command-line face of the berth container engine.
//!
//! The binary only parses arguments, calls `berth-engine` and prints. Each verb lives in
//! `cmd/<verb>.rs` and turns its arguments into one engine call.

mod cmd;
mod exit;
mod runc;

use clap::Parser;

fn main() {
    exit::quiet_broken_pipe();
    // The same binary is containerd's runc when called `berth-runc` (`berth runtime install`).
    if runc::invoked_as_runc() {
        std::process::exit(runc::main());
    }
    let cli = match cmd::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if e.kind() == clap::error::ErrorKind::MissingSubcommand => {
            // `berth --root X` or `berth image`: the help of that level, as Docker prints it
            // (clap's own message would list the hidden internal verbs).
            let args = std::env::args_os().chain(std::iter::once("--help".into()));
            let help = cmd::Cli::try_parse_from(args).err().unwrap_or(e);
            let _ = help.print();
            std::process::exit(exit::usage_status(help.kind()));
        }
        Err(e) => {
            let _ = e.print();
            std::process::exit(exit::usage_status(e.kind()));
        }
    };
    exit::init_logging(&cli.global);
    let code = match cmd::dispatch(cli) {
        Ok(code) => code,
        Err(err) => exit::report(&err),
    };
    std::process::exit(code);
}
