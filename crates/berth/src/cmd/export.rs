//! `export`: a container's file system as a tar archive, on standard output or `-o FILE`.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use clap::Args;

use super::GlobalOpts;

/// `export [OPTIONS] CONTAINER`
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Write to a file, instead of STDOUT.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// The container.
    pub container: String,
}

/// Writes the archive; failures are exit status 1, as Docker's. A file is written under
/// a temporary name beside it and renamed into place, so a failure leaves nothing.
pub fn run(g: &GlobalOpts, a: ExportArgs) -> anyhow::Result<i32> {
    crate::exit::status_1(|| {
        let lc = super::container::lifecycle(g)?;
        let c = lc.find(&a.container).map_err(berth_engine::Error::from)?;
        match &a.output {
            None => {
                let stdout = std::io::stdout();
                if stdout.is_terminal() {
                    anyhow::bail!(
                        "cowardly refusing to save to a terminal. Use the -o flag or redirect"
                    );
                }
                lc.export(&c, &a.container, &mut stdout.lock())?;
            }
            Some(path) => {
                let dir = match path.parent() {
                    Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
                    _ => PathBuf::from("."),
                };
                let mut tmp = tempfile::Builder::new()
                    .prefix(".berth-export-")
                    .tempfile_in(&dir)
                    .map_err(|e| {
                        anyhow::anyhow!("failed to export container: {}: {e}", dir.display())
                    })?;
                lc.export(&c, &a.container, tmp.as_file_mut())?;
                tmp.as_file_mut().flush()?;
                tmp.persist(path).map_err(|e| {
                    anyhow::anyhow!(
                        "failed to export container: {}: {}",
                        path.display(),
                        e.error
                    )
                })?;
            }
        }
        Ok(0)
    })
}
