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
    /// Display total file sizes.
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

/// Docker's `Ellipsis`: at most `max` characters, the last one `…` when cut.
fn ellipsis(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let cut: String = s.chars().take(max.saturating_sub(1)).collect();
    format!("{cut}…")
}

/// Prints the containers.
pub fn run(g: &GlobalOpts, a: PsArgs) -> anyhow::Result<i32> {
    let mut filters = Vec::new();
    for f in &a.filter {
        match Filter::parse(f) {
            Ok(f) => filters.push(f),
            Err(e) => {
                eprintln!("Error: {e}");
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
    // A before=/since= container that does not exist (or an ambiguous prefix) is the
    // daemon's error, as Docker's.
    let mut rows: Vec<ContainerSummary> = match lc.list(a.all || last.is_some(), &filters) {
        Ok(rows) => rows,
        Err(e)
            if matches!(
                e.kind(),
                berth_engine::container::ErrorKind::NotFound
                    | berth_engine::container::ErrorKind::Conflict
            ) =>
        {
            return Ok(super::container::daemon_error(&e))
        }
        Err(e) => return Err(berth_engine::Error::from(e).into()),
    };
    if let Some(n) = last {
        rows.truncate(n as usize);
    }
    // As Docker, a template that shows `.Size` asks for the sizes.
    let sizes = a.size || a.format.as_deref().is_some_and(|f| f.contains(".Size"));
    if sizes && !a.quiet {
        for r in &mut rows {
            let Ok(c) = lc.find(&r.id) else {
                continue;
            };
            let rw = lc.rw_size(&c);
            let image = c
                .record
                .image_id
                .parse()
                .ok()
                .and_then(|d| lc.store().image(&d).ok().flatten())
                .map_or(0, |i| i.size);
            r.size = format!(
                "{} (virtual {})",
                super::stats::decimal_size(rw),
                super::stats::decimal_size(rw + image)
            );
        }
    }
    for r in &mut rows {
        // Docker's `2024-01-02 03:04:05 +0000 UTC`, whole seconds.
        r.created_at = super::images::created_at(r.created.div_euclid(1_000_000_000));
    }
    if !a.no_trunc {
        for r in &mut rows {
            r.id = short(&r.id).to_string();
            r.command = ellipsize_command(&r.command);
            r.mounts = r
                .mounts
                .split(',')
                .filter(|m| !m.is_empty())
                .map(|m| ellipsis(m, 15))
                .collect::<Vec<_>>()
                .join(",");
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
            let format = super::images::ListFormat::parse(t)?;
            // `{{.Label "k"}}` indexes the labels as a map (Docker's `Label` method).
            let values = rows
                .iter()
                .map(|r| {
                    let mut v = serde_json::to_value(r)?;
                    v["Label"] = serde_json::to_value(&r.label_map)?;
                    Ok(v)
                })
                .collect::<Result<Vec<_>, serde_json::Error>>()?;
            format.print(
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
                    ("LocalVolumes", "LOCAL VOLUMES"),
                ],
            )?;
        }
        _ => {
            let mut header = vec![
                "CONTAINER ID",
                "IMAGE",
                "COMMAND",
                "CREATED",
                "STATUS",
                "PORTS",
                "NAMES",
            ];
            if a.size {
                header.push("SIZE");
            }
            let cells: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    let mut row = vec![
                        r.id.clone(),
                        r.image.clone(),
                        r.command.clone(),
                        r.running_for.clone(),
                        r.status.clone(),
                        r.ports.clone(),
                        r.names.clone(),
                    ];
                    if a.size {
                        row.push(r.size.clone());
                    }
                    row
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
