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
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let tmp =
                    path.with_file_name(format!(".{name}.berth-export-{}", std::process::id()));
                let mut file = std::fs::File::create_new(&tmp).map_err(|e| {
                    anyhow::anyhow!("failed to export container: {}: {e}", path.display())
                })?;
                let written = lc
                    .export(&c, &a.container, &mut file)
                    .map_err(anyhow::Error::from)
                    .and_then(|_| Ok(file.flush()?))
                    .and_then(|()| Ok(std::fs::rename(&tmp, path)?));
                if let Err(e) = written {
                    let _ = std::fs::remove_file(&tmp);
                    return Err(e);
                }
            }
        }
        Ok(0)
    })
}
