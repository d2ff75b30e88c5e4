//! `berth push`: upload a locally tagged image to the registry its name points at.

use berth_engine::registry::PushRequest;
use clap::{ArgAction, Args};

use super::pull::{daemon_error, TransferDisplay, Verb};
use super::GlobalOpts;

/// `push [OPTIONS] NAME[:TAG]`
#[derive(Debug, Args)]
pub struct PushArgs {
    /// The image to push (a local tag naming the registry, e.g. `localhost:5000/app:1`).
    pub image: String,
    /// Require HTTPS and verify certificates (`--tls-verify=false` allows plain HTTP).
    #[arg(long = "tls-verify", num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set)]
    pub tls_verify: Option<bool>,
    /// Push uncompressed layers as they are (default: gzip them on the way).
    #[arg(long = "no-compress")]
    pub no_compress: bool,
    /// Gzip level for layers compressed on the way: 1 (fastest, biggest) to 9 (smallest); default 2.
    #[arg(long = "compression-level", value_parser = clap::value_parser!(u32).range(1..=9))]
    pub compression_level: Option<u32>,
    /// Suppress verbose output.
    #[arg(short, long)]
    pub quiet: bool,
    /// Push all tags of an image to the repository.
    #[arg(short = 'a', long = "all-tags")]
    pub all_tags: bool,
}

/// Runs `push` (of one tag, or of every local tag of a repository with `-a`).
pub fn run(g: &GlobalOpts, a: PushArgs) -> anyhow::Result<i32> {
    let engine = g.engine()?;
    let repo = match a.image.rsplit_once(':') {
        Some((n, t)) if !t.contains('/') => n,
        _ => a.image.as_str(),
    };
    if !a.quiet {
        println!("The push refers to repository [{repo}]");
    }
    if !a.all_tags {
        return push_one(&engine, &a, &a.image);
    }
    if repo != a.image || a.image.contains('@') {
        eprintln!("tag can't be used with --all-tags/-a");
        return Ok(1);
    }
    let tags = engine.local_tags(&a.image)?;
    if tags.is_empty() {
        eprintln!("An image does not exist locally with the tag: {}", a.image);
        return Ok(1);
    }
    for tag in &tags {
        let code = push_one(&engine, &a, tag)?;
        if code != 0 {
            return Ok(code);
        }
    }
    Ok(0)
}

/// Pushes one tag with Docker's lines.
fn push_one(engine: &berth_engine::Engine, a: &PushArgs, image: &str) -> anyhow::Result<i32> {
    let progress = TransferDisplay::new(a.quiet, Verb::Push);
    let result = engine.push(
        &PushRequest {
            reference: image.to_owned(),
            tls_verify: a.tls_verify,
            no_compress: a.no_compress,
            compression_level: a.compression_level,
        },
        &|p| progress.event(p),
    );
    progress.finish();
    match result {
        Ok(r) => {
            println!("{}: digest: {} size: {}", r.tag, r.digest, r.size);
            Ok(0)
        }
        Err(e) => Ok(daemon_error(&anyhow::Error::from(e))),
    }
}
