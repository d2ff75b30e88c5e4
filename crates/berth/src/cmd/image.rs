//! `berth image ...`: the image verbs grouped as Docker groups them (`image ls`, `image rm`,
//! `image inspect`, `image prune`, ...).

use std::io::{BufRead, Write};

use clap::{Args, Subcommand};

use berth_engine::images::PruneFilter;

use super::images::human_size;
use super::GlobalOpts;

/// `image COMMAND`
#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// List images.
    #[command(visible_alias = "list", name = "ls")]
    Ls(super::images::ImagesArgs),
    /// Display detailed information on one or more images.
    Inspect(InspectArgs),
    /// Remove one or more images.
    #[command(visible_alias = "remove", name = "rm")]
    Rm(super::rmi::RmiArgs),
    /// Remove unused images.
    Prune(PruneArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE.
    Tag(super::tag::TagArgs),
    /// Save one or more images to a tar archive.
    Save(super::save::SaveArgs),
    /// Load an image from a tar archive or STDIN.
    Load(super::load::LoadArgs),
    /// Import the contents from a tarball to create a filesystem image.
    Import(super::import::ImportArgs),
    /// Show the history of an image.
    History(super::history::HistoryArgs),
    /// Analyze an image: bytes per layer, wasted bytes and secrets.
    Analyze(super::analyze::AnalyzeArgs),
    /// Download an image from a registry.
    Pull(super::pull::PullArgs),
    /// Upload an image to a registry.
    Push(super::push::PushArgs),
    /// Build an image from a Dockerfile.
    Build(super::build::BuildArgs),
}

/// `image inspect [OPTIONS] IMAGE [IMAGE...]`
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Format output using a custom template ('json' or a Go template).
    #[arg(short, long)]
    pub format: Option<String>,
    /// Images to inspect.
    #[arg(required = true)]
    pub images: Vec<String>,
}

/// `image prune [OPTIONS]`
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Remove all unused images, not just dangling ones.
    #[arg(short, long)]
    pub all: bool,
    /// Do not prompt for confirmation.
    #[arg(short, long)]
    pub force: bool,
    /// Provide filter values (e.g. "until=<timestamp>", "label=<key>=<value>").
    #[arg(long)]
    pub filter: Vec<String>,
}

/// Runs `image COMMAND`.
pub fn run(g: &GlobalOpts, c: ImageCommand) -> anyhow::Result<i32> {
    match c {
        ImageCommand::Ls(a) => super::images::run(g, a),
        ImageCommand::Inspect(a) => inspect(g, a),
        ImageCommand::Rm(a) => super::rmi::run(g, a),
        ImageCommand::Prune(a) => prune(g, a),
        ImageCommand::Tag(a) => super::tag::run(g, a),
        ImageCommand::Save(a) => super::save::run(g, a),
        ImageCommand::Load(a) => super::load::run(g, a),
        ImageCommand::Import(a) => super::import::run(g, a),
        ImageCommand::History(a) => super::history::run(g, a),
        ImageCommand::Analyze(a) => super::analyze::run(g, a),
        ImageCommand::Pull(a) => super::pull::run(g, a),
        ImageCommand::Push(a) => super::push::run(g, a),
        ImageCommand::Build(a) => super::build::run(g, a),
    }
}

/// Prints JSON as Docker does (4-space indent).
pub(crate) fn print_json(v: &serde_json::Value) {
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    if serde::Serialize::serialize(v, &mut ser).is_ok() {
        buf.push(b'\n');
        let _ = std::io::stdout().lock().write_all(&buf);
    }
}

/// `image inspect`: the found images are printed, each missing one is an error line and
/// the status is 1.
pub fn inspect(g: &GlobalOpts, a: InspectArgs) -> anyhow::Result<i32> {
    crate::exit::status_1(|| {
        // As `inspect`: a template that does not parse is refused first, status 64.
        let template = match a.format.as_deref() {
            Some("json") => None,
            f => match super::inspect::parse_format(f) {
                Ok(t) => t,
                Err(code) => return Ok(code),
            },
        };
        let engine = g.engine()?;
        let mut docs = Vec::new();
        let mut status = 0;
        for image in &a.images {
            match engine.inspect_image(image) {
                Ok(d) => docs.push(d),
                Err(e) => {
                    crate::exit::print_error(&e.into());
                    status = crate::exit::CLI_ERROR;
                }
            }
        }
        if let Some(t) = &template {
            let printed = super::inspect::print(&docs, Some(t))?;
            return Ok(status.max(printed));
        }
        match a.format.as_deref() {
            Some("json") => {
                for d in &docs {
                    println!("{}", serde_json::to_string(d).unwrap_or_default());
                }
            }
            _ => print_json(&serde_json::Value::Array(docs)),
        }
        Ok(status)
    })
}

fn prune(g: &GlobalOpts, a: PruneArgs) -> anyhow::Result<i32> {
    crate::exit::status_1(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let filters = a
            .filter
            .iter()
            .map(|f| PruneFilter::parse(f, now))
            .collect::<Result<Vec<_>, _>>()
            .map_err(berth_engine::Error::from)?;
        if !a.force {
            let warning = if a.all {
                "WARNING! This will remove all images without at least one container associated to them."
            } else {
                "WARNING! This will remove all dangling images."
            };
            print!("{warning}\nAre you sure you want to continue? [y/N] ");
            let _ = std::io::stdout().flush();
            let mut answer = String::new();
            let _ = std::io::stdin().lock().read_line(&mut answer);
            if !matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
                println!();
                return Ok(0);
            }
        }
        let report = g.engine()?.prune_images_filtered(a.all, &filters)?;
        if !report.actions.is_empty() {
            println!("Deleted Images:");
            super::rmi::print_actions(&report.actions, true);
            println!();
        }
        println!("Total reclaimed space: {}", human_size(report.reclaimed));
        Ok(0)
    })
}
