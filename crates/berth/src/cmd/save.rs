//! `berth save`: images to a Docker archive (or an OCI-layout tar).

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Args, ValueEnum};

use berth_engine::images::ArchiveFormat;

use super::GlobalOpts;

/// Archive kinds `save --format` writes.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SaveFormat {
    /// `docker save`'s format (manifest.json, also an OCI layout).
    #[value(name = "docker-archive", alias = "docker")]
    Docker,
    /// An OCI image layout in a tar.
    #[value(name = "oci-archive", alias = "oci")]
    Oci,
}

/// `save [OPTIONS] IMAGE [IMAGE...]`
#[derive(Debug, Args)]
pub struct SaveArgs {
    /// Write to a file, instead of STDOUT.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Archive format.
    #[arg(long, value_enum, default_value = "docker-archive")]
    pub format: SaveFormat,
    /// Images to save.
    #[arg(required = true)]
    pub images: Vec<String>,
}

/// Runs `save`.
pub fn run(g: &GlobalOpts, a: SaveArgs) -> anyhow::Result<i32> {
    crate::exit::status_1(|| {
        let format = match a.format {
            SaveFormat::Docker => ArchiveFormat::Docker,
            SaveFormat::Oci => ArchiveFormat::Oci,
        };
        let engine = g.engine()?;
        let display = super::load::LayerDisplay::new(false, "Saving layer", true);
        let progress = |p| display.event(p);
        match &a.output {
            Some(path) => engine.save_to_file_with_progress(&a.images, format, path, &progress)?,
            None => {
                let stdout = std::io::stdout();
                if stdout.is_terminal() {
                    anyhow::bail!(
                        "cowardly refusing to save to a terminal. Use the -o flag or redirect"
                    );
                }
                engine.save_with_progress(&a.images, format, stdout.lock(), &progress)?;
            }
        }
        display.finish();
        Ok(0)
    })
}
