//! `berth volume create|ls|inspect|rm|prune`: volumes of the local driver, with Docker's
//! flags, output and exit statuses (1 for every failure of these verbs).

use std::collections::BTreeMap;
use std::io::{BufRead, Write};

use berth_engine::volume::{Volume, VolumeCreate, VolumeFilters};
use clap::{Args, Subcommand};
use serde_json::json;

use super::images::{human_size, print_formatted, print_table};
use super::GlobalOpts;

/// `volume COMMAND`
#[derive(Debug, Subcommand)]
pub enum VolumeCommand {
    /// Create a volume.
    Create(CreateArgs),
    /// List volumes.
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more volumes.
    Inspect(InspectArgs),
    /// Remove one or more volumes.
    #[command(visible_alias = "remove")]
    Rm(RmArgs),
    /// Remove unused local volumes.
    Prune(PruneArgs),
}

/// `volume create [OPTIONS] [VOLUME]`
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Specify volume driver name.
    #[arg(short = 'd', long, default_value = "local")]
    pub driver: String,
    /// Set metadata for a volume.
    #[arg(long)]
    pub label: Vec<String>,
    /// Set driver specific options.
    #[arg(short = 'o', long = "opt")]
    pub opt: Vec<String>,
    /// Specify volume name.
    #[arg(long, hide = true)]
    pub name: Option<String>,
    /// The volume's name (random when omitted).
    pub volume: Option<String>,
}

/// `volume ls [OPTIONS]`
#[derive(Debug, Args)]
pub struct LsArgs {
    /// Only display volume names.
    #[arg(short, long)]
    pub quiet: bool,
    /// Provide filter values (e.g. "dangling=true").
    #[arg(short, long)]
    pub filter: Vec<String>,
    /// Format output using a custom template ('table', 'json', or a Go template).
    #[arg(long)]
    pub format: Option<String>,
}

/// `volume inspect [OPTIONS] VOLUME [VOLUME...]`
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Format output using a custom template.
    #[arg(short, long)]
    pub format: Option<String>,
    /// Volumes.
    #[arg(required = true)]
    pub volumes: Vec<String>,
}

/// `volume rm [OPTIONS] VOLUME [VOLUME...]`
#[derive(Debug, Args)]
pub struct RmArgs {
    /// Do not fail when a volume does not exist.
    #[arg(short, long)]
    pub force: bool,
    /// Volumes.
    #[arg(required = true)]
    pub volumes: Vec<String>,
}

/// `volume prune [OPTIONS]`
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Remove all unused volumes, not just anonymous ones.
    #[arg(short, long)]
    pub all: bool,
    /// Provide filter values (e.g. "label=<label>").
    #[arg(long)]
    pub filter: Vec<String>,
    /// Do not prompt for confirmation.
    #[arg(short, long)]
    pub force: bool,
}

/// Runs `volume COMMAND`; every failure is one `Error: ...` line and status 1.
pub fn run(g: &GlobalOpts, c: VolumeCommand) -> anyhow::Result<i32> {
    crate::exit::status_1(|| match c {
        VolumeCommand::Create(a) => create(g, a),
        VolumeCommand::Ls(a) => ls(g, a),
        VolumeCommand::Inspect(a) => inspect(g, a),
        VolumeCommand::Rm(a) => rm(g, a),
        VolumeCommand::Prune(a) => prune(g, a),
    })
}

fn key_values(values: &[String]) -> BTreeMap<String, String> {
    values
        .iter()
        .map(|l| match l.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (l.clone(), String::new()),
        })
        .collect()
}

fn create(g: &GlobalOpts, a: CreateArgs) -> anyhow::Result<i32> {
    let name = match (a.volume, a.name) {
        (Some(v), Some(n)) if v != n => anyhow::bail!(
            "conflicting options: either specify --name or provide positional arg, not both"
        ),
        (v, n) => v.or(n),
    };
    let v = g.engine()?.create_volume(&VolumeCreate {
        name,
        driver: Some(a.driver),
        labels: key_values(&a.label),
        options: key_values(&a.opt),
    })?;
    println!("{}", v.name);
    Ok(0)
}

fn row(v: &Volume) -> serde_json::Value {
    json!({
        "Driver": v.driver,
        "Name": v.name,
        "Mountpoint": v.mountpoint,
        "Scope": "local",
        "Labels": v.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","),
        "Label": v.labels,
        "Size": "N/A",
        "Links": "N/A",
    })
}

fn ls(g: &GlobalOpts, a: LsArgs) -> anyhow::Result<i32> {
    let filters = VolumeFilters::parse(&a.filter).map_err(berth_engine::Error::from)?;
    let vols = g.engine()?.list_volumes(&filters)?;
    if a.quiet {
        let mut out = std::io::stdout().lock();
        for v in &vols {
            writeln!(out, "{}", v.name)?;
        }
        return Ok(0);
    }
    match a.format.as_deref() {
        Some(f) if f != "table" && !f.is_empty() => {
            let rows: Vec<_> = vols.iter().map(row).collect();
            print_formatted(
                f,
                &rows,
                &[
                    ("Driver", "DRIVER"),
                    ("Name", "VOLUME NAME"),
                    ("Mountpoint", "MOUNTPOINT"),
                    ("Scope", "SCOPE"),
                    ("Labels", "LABELS"),
                    ("Size", "SIZE"),
                    ("Links", "LINKS"),
                ],
            )?;
        }
        _ => {
            let mut rows = vec![vec!["DRIVER".to_string(), "VOLUME NAME".to_string()]];
            rows.extend(vols.iter().map(|v| vec![v.driver.clone(), v.name.clone()]));
            print_table(&rows);
        }
    }
    Ok(0)
}

fn inspect(g: &GlobalOpts, a: InspectArgs) -> anyhow::Result<i32> {
    let template = match super::inspect::parse_format(a.format.as_deref()) {
        Ok(t) => t,
        Err(code) => return Ok(code),
    };
    let engine = g.engine()?;
    let mut found = Vec::new();
    let mut status = 0;
    for n in &a.volumes {
        match engine.inspect_volume(n) {
            Ok(v) => found.push(v.to_json()),
            Err(e) if e.kind() == berth_engine::ErrorKind::NotFound => {
                eprintln!("Error: No such volume: {n}");
                status = 1;
            }
            Err(e) => return Err(e.into()),
        }
    }
    if found.is_empty() && status != 0 {
        // Docker prints "[]" only when something was found.
        return Ok(status);
    }
    let printed = super::inspect::print(&found, template.as_ref())?;
    Ok(status.max(printed))
}

fn rm(g: &GlobalOpts, a: RmArgs) -> anyhow::Result<i32> {
    let engine = g.engine()?;
    let mut status = 0;
    for n in &a.volumes {
        match engine.remove_volume(n) {
            Ok(()) => println!("{n}"),
            Err(e) if a.force && e.kind() == berth_engine::ErrorKind::NotFound => {
                println!("{n}")
            }
            Err(e) => {
                crate::exit::print_error(&e.into());
                status = 1;
            }
        }
    }
    Ok(status)
}

fn prune(g: &GlobalOpts, a: PruneArgs) -> anyhow::Result<i32> {
    let filters = VolumeFilters::parse(&a.filter).map_err(berth_engine::Error::from)?;
    if !a.force {
        let what = if a.all {
            "all local volumes"
        } else {
            "anonymous local volumes"
        };
        print!(
            "WARNING! This will remove {what} not used by at least one container.\n\
             Are you sure you want to continue? [y/N] "
        );
        std::io::stdout().flush()?;
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        if !matches!(line.trim(), "y" | "Y" | "yes") {
            return Ok(0);
        }
    }
    let report = g.engine()?.prune_volumes(&filters, a.all)?;
    let mut out = std::io::stdout().lock();
    if !report.removed.is_empty() {
        writeln!(out, "Deleted Volumes:")?;
        for n in &report.removed {
            writeln!(out, "{n}")?;
        }
        writeln!(out)?;
    }
    writeln!(
        out,
        "Total reclaimed space: {}",
        human_size(report.space_reclaimed)
    )?;
    Ok(0)
}
