//! `berth load`: images from a Docker archive or an OCI-layout tar.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::Args;

use berth_engine::images::ImportSource;

use super::GlobalOpts;

/// `load [OPTIONS]`
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Read from tar archive file, instead of STDIN.
    #[arg(short, long)]
    pub input: Option<PathBuf>,
    /// Suppress the load output.
    #[arg(short, long)]
    pub quiet: bool,
}

/// Runs `load`.
pub fn run(g: &GlobalOpts, a: LoadArgs) -> anyhow::Result<i32> {
    crate::exit::status_1(|| {
        let source = match a.input {
            Some(p) => ImportSource::Path(p),
            None => {
                if std::io::stdin().is_terminal() {
                    anyhow::bail!("requested load from stdin, but stdin is empty");
                }
                ImportSource::Stdin
            }
        };
        let engine = g.engine()?;
        let report = engine.load(&source)?;
        for (name, old) in &report.renamed {
            eprintln!(
                "The image {name} already exists, renaming the old one with ID {old} to empty string"
            );
        }
        if !a.quiet {
            for (id, names) in &report.images {
                if names.is_empty() {
                    println!("Loaded image ID: {id}");
                }
                for n in names {
                    println!("Loaded image: {n}");
                }
            }
        }
        Ok(0)
    })
}
