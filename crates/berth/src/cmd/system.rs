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
    }
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
        let du = g.engine()?.disk_usage()?;
        let mut rows = vec![
            json!({"Type": "Images", "TotalCount": du.images.to_string(), "Active": du.active_images.to_string(),
                   "Size": human_size(du.images_size), "Reclaimable": reclaimable(du.images_reclaimable, du.images_size)}),
            json!({"Type": "Containers", "TotalCount": du.containers.to_string(), "Active": du.active_containers.to_string(),
                   "Size": "0B", "Reclaimable": "0B"}),
            json!({"Type": "Local Volumes", "TotalCount": "0", "Active": "0", "Size": "0B", "Reclaimable": "0B"}),
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
