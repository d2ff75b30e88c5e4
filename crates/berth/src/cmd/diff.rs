//! `diff`: the changes of a container's file system, one `A`, `C` or `D` line each.

use clap::Args;

use super::GlobalOpts;

/// `diff CONTAINER`
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The container.
    pub container: String,
}

/// Prints the changes; failures are exit status 1, as Docker's.
pub fn run(g: &GlobalOpts, a: DiffArgs) -> anyhow::Result<i32> {
    let lc = super::container::lifecycle(g)?;
    let changes = match lc.find(&a.container) {
        Ok(c) => lc.diff(&c),
        Err(e) => return Ok(super::container::daemon_error(&e)),
    };
    match changes {
        Ok(changes) => {
            use std::io::Write;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            for c in changes {
                writeln!(out, "{} {}", c.kind.letter(), c.path)?;
            }
            out.flush()?;
            Ok(0)
        }
        Err(e) => {
            eprintln!("Error: {e}");
            Ok(1)
        }
    }
}
