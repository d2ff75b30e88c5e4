//! `ps`: list containers as Docker's table, IDs only, JSON or a template.

use clap::Args;

use berth_engine::container::list::{short, ContainerSummary, Filter};

use super::GlobalOpts;

/// `ps [OPTIONS]`
#[derive(Debug, Args)]
pub struct PsArgs {
    /// Show all containers (default shows just running).
    #[arg(short, long)]
    pub all: bool,
    /// Only display container IDs.
    #[arg(short, long)]
    pub quiet: bool,
    /// Show n last created containers (includes all states).
    #[arg(short = 'n', long = "last", allow_negative_numbers = true)]
    pub last: Option<i64>,
    /// Show the latest created container (includes all states).
    #[arg(short = 'l', long)]
    pub latest: bool,
    /// Don't truncate output.
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Filter output based on conditions provided.
    #[arg(short, long)]
    pub filter: Vec<String>,
    /// Format output: table, json, or a Go template.
    #[arg(long)]
    pub format: Option<String>,
    /// Display total file sizes (accepted; sizes are not computed).
    #[arg(short, long)]
    pub size: bool,
}

fn pad(s: &str, w: usize) -> String {
    format!("{s:<w$}")
}

/// Docker cuts the command itself (not its quotes) to 20 characters, the last one `…`.
pub(crate) fn ellipsize_command(quoted: &str) -> String {
    let raw = quoted
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(quoted);
    if raw.chars().count() <= 20 {
        return quoted.to_string();
    }
    let cut: String = raw.chars().take(19).collect();
    format!("\"{cut}…\"")
}

/// Prints the containers.
pub fn run(g: &GlobalOpts, a: PsArgs) -> anyhow::Result<i32> {
    let mut filters = Vec::new();
    for f in &a.filter {
        match Filter::parse(f) {
            Ok(f) => filters.push(f),
            Err(e) => {
                eprintln!("Error response from daemon: {e}");
                return Ok(1);
            }
        }
    }
    let lc = super::container::lifecycle(g)?;
    let last = if a.latest {
        Some(1)
    } else {
        a.last.filter(|n| *n > 0)
    };
    let mut rows: Vec<ContainerSummary> = lc
        .list(a.all || last.is_some(), &filters)
        .map_err(berth_engine::Error::from)?;
    if let Some(n) = last {
        rows.truncate(n as usize);
    }
    if !a.no_trunc {
        for r in &mut rows {
            r.id = short(&r.id).to_string();
            r.command = ellipsize_command(&r.command);
        }
    }
    if a.quiet {
        for r in &rows {
            println!("{}", r.id);
        }
        return Ok(0);
    }
    match a.format.as_deref() {
        Some("json") | Some("{{json .}}") => {
            for r in &rows {
                println!("{}", serde_json::to_string(r)?);
            }
        }
        Some(t) if t != "table" && !t.is_empty() => {
            let values = rows
                .iter()
                .map(serde_json::to_value)
                .collect::<Result<Vec<_>, _>>()?;
            super::images::print_formatted(
                t,
                &values,
                &[
                    ("ID", "CONTAINER ID"),
                    ("Names", "NAMES"),
                    ("Image", "IMAGE"),
                    ("Status", "STATUS"),
                    ("State", "STATE"),
                    ("Command", "COMMAND"),
                    ("Ports", "PORTS"),
                    ("RunningFor", "CREATED"),
                    ("CreatedAt", "CREATED AT"),
                    ("Size", "SIZE"),
                    ("Labels", "LABELS"),
                    ("Mounts", "MOUNTS"),
                    ("Networks", "NETWORKS"),
                ],
            );
        }
        _ => {
            let header = [
                "CONTAINER ID",
                "IMAGE",
                "COMMAND",
                "CREATED",
                "STATUS",
                "PORTS",
                "NAMES",
            ];
            let cells: Vec<[String; 7]> = rows
                .iter()
                .map(|r| {
                    [
                        r.id.clone(),
                        r.image.clone(),
                        r.command.clone(),
                        r.running_for.clone(),
                        r.status.clone(),
                        r.ports.clone(),
                        r.names.clone(),
                    ]
                })
                .collect();
            let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
            for row in &cells {
                for (i, c) in row.iter().enumerate() {
                    widths[i] = widths[i].max(c.chars().count());
                }
            }
            let line = |row: &[String]| {
                let mut out = String::new();
                for (i, c) in row.iter().enumerate() {
                    if i + 1 == row.len() {
                        out.push_str(c);
                    } else {
                        out.push_str(&pad(c, widths[i] + 3));
                    }
                }
                out.trim_end().to_string()
            };
            let h: Vec<String> = header.iter().map(|s| s.to_string()).collect();
            println!("{}", line(&h));
            for row in &cells {
                println!("{}", line(row));
            }
        }
    }
    Ok(0)
}
