//! `berth tag`: another name for an image.

use clap::Args;

use super::GlobalOpts;

/// `tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]`
#[derive(Debug, Args)]
pub struct TagArgs {
    /// The image to tag (name, ID or ID prefix).
    pub source: String,
    /// The new name.
    pub target: String,
}

/// Runs `tag`.
pub fn run(g: &GlobalOpts, a: TagArgs) -> anyhow::Result<i32> {
    crate::exit::status_1(|| {
        g.engine()?.tag(&a.source, &a.target)?;
        Ok(0)
    })
}
