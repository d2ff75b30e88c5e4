//! `commit`: a new image from a container's changes; prints its ID.

use clap::{ArgAction, Args};

use berth_engine::container::commit::CommitRequest;

use super::GlobalOpts;

/// `commit [OPTIONS] CONTAINER [REPOSITORY[:TAG]]`
#[derive(Debug, Args)]
pub struct CommitArgs {
    /// Author (e.g., "John Hannibal Smith <hannibal@a-team.com>").
    #[arg(short, long)]
    pub author: Option<String>,
    /// Apply Dockerfile instruction to the created image (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR).
    #[arg(short, long)]
    pub change: Vec<String>,
    /// Commit message.
    #[arg(short, long)]
    pub message: Option<String>,
    /// Pause container during commit.
    #[arg(
        short,
        long,
        default_value_t = true,
        num_args = 0..=1,
        default_missing_value = "true",
        require_equals = true,
        action = ArgAction::Set
    )]
    pub pause: bool,
    /// The container.
    pub container: String,
    /// Name and optionally a tag for the image.
    pub reference: Option<String>,
}

/// Runs `commit`; failures are exit status 1, as Docker's.
pub fn run(g: &GlobalOpts, a: CommitArgs) -> anyhow::Result<i32> {
    crate::exit::status_1(|| {
        let engine = g.engine()?;
        let lc = super::container::lifecycle(g)?;
        let id = lc.commit(
            &engine,
            &CommitRequest {
                container: a.container,
                reference: a.reference,
                author: a.author,
                message: a.message,
                changes: a.change,
                pause: a.pause,
            },
        )?;
        println!("{id}");
        Ok(0)
    })
}
