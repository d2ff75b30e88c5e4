//! `cp`: copy files between a container and the host, or a tar stream (`-`).

use std::io::IsTerminal;

use clap::Args;

use berth_engine::container::copy::{CopyEndpoint, CopyRequest};

use super::GlobalOpts;

/// `cp [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-` or `cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH`
#[derive(Debug, Args)]
pub struct CpArgs {
    /// Archive mode (copy all uid/gid information).
    #[arg(short, long)]
    pub archive: bool,
    /// Always follow symbol link in SRC_PATH.
    #[arg(short = 'L', long = "follow-link")]
    pub follow_link: bool,
    /// Suppress progress output during copy. Progress output is automatically suppressed if no terminal is attached.
    #[arg(short, long)]
    pub quiet: bool,
    /// CONTAINER:SRC_PATH, a local path, or `-` (a tar stream on standard input).
    pub source: String,
    /// CONTAINER:DEST_PATH, a local path, or `-` (a tar stream on standard output).
    pub destination: String,
}

/// Runs `cp`; every failure is exit status 1, as Docker's.
pub fn run(g: &GlobalOpts, a: CpArgs) -> anyhow::Result<i32> {
    let req = CopyRequest {
        source: CopyEndpoint::parse(&a.source),
        destination: CopyEndpoint::parse(&a.destination),
        archive: a.archive,
        follow_link: a.follow_link,
    };
    let lc = super::container::lifecycle(g)?;
    let mut stdin = std::io::stdin().lock();
    let mut stdout = std::io::stdout().lock();
    match lc.copy(&req, &mut stdin, &mut stdout) {
        Ok(report) => {
            let to_stream = req.destination == CopyEndpoint::Stream;
            if !a.quiet && !to_stream && std::io::stderr().is_terminal() {
                eprintln!(
                    "Successfully copied {} to {}",
                    super::images::human_size(report.bytes),
                    a.destination
                );
            }
            Ok(0)
        }
        Err(e) => {
            eprintln!("Error: {e}");
            Ok(1)
        }
    }
}
