//! `berth rmi` (and `image rm`): untag or delete images, as Docker decides.

use clap::Args;

use berth_engine::images::RemoveAction;

use super::GlobalOpts;

/// `rmi [OPTIONS] IMAGE [IMAGE...]`
#[derive(Debug, Args)]
pub struct RmiArgs {
    /// Force removal of the image.
    #[arg(short, long)]
    pub force: bool,
    /// Do not delete untagged parents (accepted; berth keeps no parent images).
    #[arg(long = "no-prune")]
    pub no_prune: bool,
    /// Images to remove (name, ID or unique ID prefix).
    #[arg(required = true)]
    pub images: Vec<String>,
}

/// Runs `rmi`: every image is tried; any failure gives status 1 at the end.
pub fn run(g: &GlobalOpts, a: RmiArgs) -> anyhow::Result<i32> {
    crate::exit::status_1(|| {
        let engine = g.engine()?;
        let mut status = 0;
        for image in &a.images {
            match engine.remove_image(image, a.force) {
                Ok(actions) => print_actions(&actions, false),
                Err(e) => {
                    crate::exit::print_error(&e.into());
                    status = crate::exit::CLI_ERROR;
                }
            }
        }
        Ok(status)
    })
}

/// `Untagged: x` / `Deleted: sha256:...` lines (lower case for `prune`).
pub(crate) fn print_actions(actions: &[RemoveAction], lower: bool) {
    for a in actions {
        let (what, text) = match a {
            RemoveAction::Untagged(n) => ("Untagged", n.clone()),
            RemoveAction::Deleted(d) => ("Deleted", d.to_string()),
        };
        if lower {
            println!("{}: {text}", what.to_ascii_lowercase());
        } else {
            println!("{what}: {text}");
        }
    }
}
