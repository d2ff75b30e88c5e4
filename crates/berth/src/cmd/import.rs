//! `berth import`: a rootfs tar becomes an image; prints its ID.

use std::path::PathBuf;

use clap::Args;

use berth_engine::images::{ImportRequest, ImportSource};

use super::GlobalOpts;

/// `import [OPTIONS] file|- [REPOSITORY[:TAG]]`
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Apply Dockerfile instruction to the created image (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR).
    #[arg(short, long)]
    pub change: Vec<String>,
    /// Set commit message for imported image.
    #[arg(short, long)]
    pub message: Option<String>,
    /// Set platform if server is multi-platform capable (only the host's is supported).
    #[arg(long)]
    pub platform: Option<String>,
    /// The tar file, or `-` for standard input.
    pub file: String,
    /// Name and optionally a tag for the image.
    pub reference: Option<String>,
}

/// Runs `import`.
pub fn run(g: &GlobalOpts, a: ImportArgs) -> anyhow::Result<i32> {
    crate::exit::status_1(|| {
        let engine = g.engine()?;
        let source = match a.file.as_str() {
            "-" => ImportSource::Stdin,
            f => ImportSource::Path(PathBuf::from(f)),
        };
        let id = engine.import(&ImportRequest {
            source,
            reference: a.reference,
            changes: a.change,
            message: a.message,
        })?;
        println!("{id}");
        Ok(0)
    })
}
