//! `stats --no-stream`: one snapshot of the containers' resource use.

use clap::Args;

use berth_engine::container::list::short;

use super::GlobalOpts;

/// `stats [OPTIONS] [CONTAINER...]`
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Show all containers (default shows just running).
    #[arg(short, long)]
    pub all: bool,
    /// Disable streaming stats and only pull the first result.
    #[arg(long = "no-stream")]
    pub no_stream: bool,
    /// Don't truncate output.
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Format output: table, json, or a Go template (`table {{.Name}}\t{{.MemUsage}}`).
    #[arg(long)]
    pub format: Option<String>,
    /// Containers (default: all running).
    pub containers: Vec<String>,
}

/// Docker's `BytesSize`: binary units, four significant digits (`64MiB`, `1.234GiB`).
fn size(b: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut f = b as f64;
    let mut i = 0;
    while f >= 1024.0 && i + 1 < units.len() {
        f /= 1024.0;
        i += 1;
    }
    let decimals = if f >= 1000.0 {
        0
    } else if f >= 100.0 {
        1
    } else if f >= 10.0 {
        2
    } else {
        3
    };
    let mut s = format!("{f:.decimals$}");
    if s.contains('.') {
        s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    format!("{s}{}", units[i])
}

/// Docker's default `stats` table.
const DEFAULT_FORMAT: &str =
    "table {{.ID}}\\t{{.Name}}\\t{{.CPUPerc}}\\t{{.MemUsage}}\\t{{.MemPerc}}\\t{{.NetIO}}\\t{{.BlockIO}}\\t{{.PIDs}}";

/// Prints one table (streaming is not implemented: it prints once, as `--no-stream`).
pub fn run(g: &GlobalOpts, a: StatsArgs) -> anyhow::Result<i32> {
    let lc = super::container::lifecycle(g)?;
    let containers = if a.containers.is_empty() {
        lc.all()
            .map_err(berth_engine::Error::from)?
            .into_iter()
            .filter(|c| a.all || c.status.is_active())
            .collect()
    } else {
        let mut v = Vec::new();
        for n in &a.containers {
            match lc.find(n) {
                Ok(c) => v.push(c),
                Err(e) => return Ok(super::container::daemon_error(&e)),
            }
        }
        v
    };
    let rows: Vec<_> = containers.iter().map(|c| lc.stats(c)).collect();
    // Docker's field names and strings, so `--format` templates written for Docker work.
    let values: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            let id = if a.no_trunc {
                r.id.as_str()
            } else {
                short(&r.id)
            };
            let mem_pct = if r.mem_limit > 0 {
                r.mem_usage as f64 / r.mem_limit as f64 * 100.0
            } else {
                0.0
            };
            serde_json::json!({
                "BlockIO": "0B / 0B",
                "CPUPerc": format!("{:.2}%", r.cpu_percent),
                "Container": id,
                "ID": id,
                "MemPerc": format!("{mem_pct:.2}%"),
                "MemUsage": format!("{} / {}", size(r.mem_usage), size(r.mem_limit)),
                "Name": r.name,
                "NetIO": "0B / 0B",
                "PIDs": r.pids.to_string(),
            })
        })
        .collect();
    let format = match a.format.as_deref() {
        None | Some("") | Some("table") => DEFAULT_FORMAT,
        Some(f) => f,
    };
    super::images::print_formatted(
        format,
        &values,
        &[
            ("ID", "CONTAINER ID"),
            ("Container", "CONTAINER"),
            ("Name", "NAME"),
            ("CPUPerc", "CPU %"),
            ("MemUsage", "MEM USAGE / LIMIT"),
            ("MemPerc", "MEM %"),
            ("NetIO", "NET I/O"),
            ("BlockIO", "BLOCK I/O"),
            ("PIDs", "PIDS"),
        ],
    );
    Ok(0)
}
