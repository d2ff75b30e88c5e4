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
}

/// Runs `push`.
pub fn run(g: &GlobalOpts, a: PushArgs) -> anyhow::Result<i32> {
    let engine = g.engine()?;
    let progress = TransferDisplay::new(a.quiet, Verb::Push);
    if !a.quiet {
        let repo = match a.image.rsplit_once(':') {
            Some((n, t)) if !t.contains('/') => n,
            _ => a.image.as_str(),
        };
        println!("The push refers to repository [{repo}]");
    }
    let result = engine.push(
        &PushRequest {
            reference: a.image.clone(),
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
