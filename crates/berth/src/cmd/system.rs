//! `berth system ...`: `system df`, the disk usage of images (and, as they arrive,
//! containers, volumes and build cache).

use clap::{Args, Subcommand};
use serde_json::json;

use super::images::{human_size, print_columns, print_formatted};
use super::GlobalOpts;

/// `system COMMAND`
#[derive(Debug, Subcommand)]
pub enum SystemCommand {
    /// Show berth disk usage.
    Df(DfArgs),
    /// Serve Docker's Engine API (for the docker CLI, Docker SDKs, compose).
    Service(super::service::ServiceArgs),
    /// Remove unused data.
    Prune(PruneArgs),
    /// Get real time events from berth (as `berth events`).
    Events(super::events::EventsArgs),
    /// Display system-wide information (as `berth info`).
    Info(super::info::InfoArgs),
}

/// `system prune [OPTIONS]`
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Remove all unused images not just dangling ones.
    #[arg(short, long)]
    pub all: bool,
    /// Provide filter values (e.g. 'label=<key>=<value>').
    #[arg(long = "filter")]
    pub filter: Vec<String>,
    /// Do not prompt for confirmation.
    #[arg(short, long)]
    pub force: bool,
    /// Prune anonymous volumes.
    #[arg(long)]
    pub volumes: bool,
}

/// `system df [OPTIONS]`
#[derive(Debug, Args)]
pub struct DfArgs {
    /// Show detailed information on space usage.
    #[arg(short, long)]
    pub verbose: bool,
    /// Format output using a custom template ('table', 'json', or a Go template).
    #[arg(long)]
    pub format: Option<String>,
}

/// Runs `system COMMAND`.
pub fn run(g: &GlobalOpts, c: SystemCommand) -> anyhow::Result<i32> {
    match c {
        SystemCommand::Df(a) => df(g, a),
        SystemCommand::Service(a) => super::service::run(g, a),
        SystemCommand::Prune(a) => prune(g, a),
        SystemCommand::Events(a) => super::events::run(g, a),
        SystemCommand::Info(a) => super::info::run(g, a),
    }
}

/// Docker's confirmation text for `system prune` with these options.
pub fn prune_warning(a: &PruneArgs) -> String {
    let mut w = String::from("WARNING! This will remove:\n  - all stopped containers\n  - all networks not used by at least one container\n");
    if a.volumes {
        w.push_str("  - all anonymous volumes not used by at least one container\n");
    }
    if a.all {
        w.push_str("  - all images without at least one container associated to them\n  - all build cache\n");
    } else {
        w.push_str("  - all dangling images\n  - unused build cache\n");
    }
    if !a.filter.is_empty() {
        w.push_str(&format!(
            "\n  Items to be pruned will be filtered with:\n  - {}\n",
            a.filter.join("\n  - ")
        ));
    }
    w.push_str("\nAre you sure you want to continue? [y/N] ");
    w
}

fn prune(g: &GlobalOpts, a: PruneArgs) -> anyhow::Result<i32> {
    use std::io::{BufRead, Write};
    if !a.force {
        print!("{}", prune_warning(&a));
        std::io::stdout().flush()?;
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        if !matches!(line.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
            return Ok(0);
        }
    }
    crate::exit::status_1(|| {
        let now = berth_engine::container::now_nanos();
        let req = berth_engine::system::SystemPruneRequest {
            all: a.all,
            volumes: a.volumes,
            filters: berth_engine::system::PruneFilters::parse(&a.filter, now)?,
        };
        let r = g.engine()?.system_prune(&req)?;
        let section = |title: &str, items: &[String]| {
            if !items.is_empty() {
                println!("{title}:");
                for i in items {
                    println!("{i}");
                }
                println!();
            }
        };
        section("Deleted Containers", &r.containers.removed);
        section("Deleted Networks", &r.networks);
        section("Deleted Volumes", &r.volumes);
        let images: Vec<String> = r
            .images
            .actions
            .iter()
            .map(|a| match a {
                berth_engine::images::RemoveAction::Untagged(n) => format!("untagged: {n}"),
                berth_engine::images::RemoveAction::Deleted(d) => format!("deleted: {d}"),
            })
            .collect();
        section("Deleted Images", &images);
        if r.build_cache_entries > 0 {
            println!("Deleted build cache objects: {}", r.build_cache_entries);
            println!();
        }
        println!("Total reclaimed space: {}", human_size(r.reclaimed));
        Ok(0)
    })
}

fn reclaimable(part: u64, total: u64) -> String {
    if total == 0 {
        return human_size(part);
    }
    format!("{} ({}%)", human_size(part), part * 100 / total)
}

/// `system df`'s columns: field, header.
const DF_COLUMNS: &[(&str, &str)] = &[
    ("Type", "TYPE"),
    ("TotalCount", "TOTAL"),
    ("Active", "ACTIVE"),
    ("Size", "SIZE"),
    ("Reclaimable", "RECLAIMABLE"),
];

fn df(g: &GlobalOpts, a: DfArgs) -> anyhow::Result<i32> {
    crate::exit::status_1(|| {
        if a.verbose
            && a.format
                .as_deref()
                .is_none_or(|f| f == "table" || f.is_empty())
        {
            return super::df_verbose::print(g);
        }
        let engine = g.engine()?;
        let du = engine.disk_usage()?;
        let vols = engine.volume_totals()?;
        let mut rows = vec![
            json!({"Type": "Images", "TotalCount": du.images.to_string(), "Active": du.active_images.to_string(),
                   "Size": human_size(du.images_size), "Reclaimable": reclaimable(du.images_reclaimable, du.images_size)}),
            json!({"Type": "Containers", "TotalCount": du.containers.to_string(), "Active": du.active_containers.to_string(),
                   "Size": "0B", "Reclaimable": "0B"}),
            json!({"Type": "Local Volumes", "TotalCount": vols.count.to_string(), "Active": vols.active.to_string(),
                   "Size": human_size(vols.size), "Reclaimable": reclaimable(vols.reclaimable, vols.size)}),
            json!({"Type": "Build Cache", "TotalCount": "0", "Active": "0", "Size": "0B", "Reclaimable": "0B"}),
        ];
        if du.staging_size > 0 {
            // Not Docker's: only shown while something is staged (berth has no daemon, so
            // pulls, loads and builds in progress write there).
            rows.push(
                json!({"Type": "Staging (in progress)", "TotalCount": "-", "Active": "-",
                   "Size": human_size(du.staging_size), "Reclaimable": "0B"}),
            );
        }
        match a.format.as_deref() {
            Some(f) if f != "table" && !f.is_empty() => print_formatted(f, &rows, DF_COLUMNS)?,
            _ => print_columns(&rows, DF_COLUMNS),
        }
        Ok(0)
    })
}
