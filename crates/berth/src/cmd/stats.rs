//! `stats`: the containers' resource use, streamed (or one table with `--no-stream`).

use clap::Args;

use berth_engine::container::list::short;
use berth_engine::container::top::StatsRow;

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

/// Docker's `HumanSizeWithPrecision(b, 3)`: decimal units, Go's `%.3g` (`648B`, `1.2kB`,
/// `12.3MB`, and Go's `1e+03kB` just under the next unit).
pub(crate) fn decimal_size(b: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut f = b as f64;
    let mut i = 0;
    while f >= 1000.0 && i + 1 < units.len() {
        f /= 1000.0;
        i += 1;
    }
    format!("{}{}", go_g3(f), units[i])
}

/// Go's `%.3g` of a non-negative number: three significant digits, trailing zeros dropped,
/// the exponent form from 1e+03 up (and below 1e-04).
fn go_g3(v: f64) -> String {
    if v <= 0.0 || !v.is_finite() {
        return "0".into();
    }
    // Rust rounds to three significant digits here (`1.23e2`), as Go does for `%g`.
    let sci = format!("{v:.2e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits = mantissa.replace('.', "");
    let digits = match digits.trim_end_matches('0') {
        "" => "0",
        d => d,
    };
    if !(-4..3).contains(&exp) {
        let (first, rest) = digits.split_at(1);
        let dot = if rest.is_empty() { "" } else { "." };
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{first}{dot}{rest}e{sign}{:02}", exp.abs());
    }
    if exp < 0 {
        return format!("0.{}{digits}", "0".repeat((-exp - 1) as usize));
    }
    let int_len = exp as usize + 1;
    if digits.len() <= int_len {
        format!("{digits}{}", "0".repeat(int_len - digits.len()))
    } else {
        format!("{}.{}", &digits[..int_len], &digits[int_len..])
    }
}

/// Docker's default `stats` table.
const DEFAULT_FORMAT: &str =
    "table {{.ID}}\\t{{.Name}}\\t{{.CPUPerc}}\\t{{.MemUsage}}\\t{{.MemPerc}}\\t{{.NetIO}}\\t{{.BlockIO}}\\t{{.PIDs}}";

/// Columns of the table: field and title.
const HEADERS: &[(&str, &str)] = &[
    ("ID", "CONTAINER ID"),
    ("Container", "CONTAINER"),
    ("Name", "NAME"),
    ("CPUPerc", "CPU %"),
    ("MemUsage", "MEM USAGE / LIMIT"),
    ("MemPerc", "MEM %"),
    ("NetIO", "NET I/O"),
    ("BlockIO", "BLOCK I/O"),
    ("PIDs", "PIDS"),
];

/// Streams a table a second (redrawn in place on a terminal, one after the other
/// otherwise) until Ctrl-C or until no container is left to show; `--no-stream` prints one.
/// CPU % is Docker's: the CPU time of the interval between two samples.
pub fn run(g: &GlobalOpts, a: StatsArgs) -> anyhow::Result<i32> {
    use std::io::IsTerminal;
    let lc = super::container::lifecycle(g)?;
    let mut named = Vec::new();
    for n in &a.containers {
        match lc.find(n) {
            Ok(c) => named.push(c.id().to_string()),
            Err(e) => return Ok(super::container::daemon_error(&e)),
        }
    }
    let format = super::images::ListFormat::parse(match a.format.as_deref() {
        None | Some("") | Some("table") => DEFAULT_FORMAT,
        Some(f) => f,
    })?;
    let redraw = !a.no_stream && std::io::stdout().is_terminal();
    if !a.no_stream {
        // Streaming into a pipe: end when the reader goes away (Rust ignores SIGPIPE).
        berth_runtime::sys::reset_signals();
    }
    let mut prev: std::collections::HashMap<String, StatsRow> = Default::default();
    let mut first = true;
    loop {
        // The containers to show: the named ones still there, else every running one
        // (Docker adds those that start and drops those that stop).
        let containers: Vec<_> = if named.is_empty() {
            lc.all()
                .map_err(berth_engine::Error::from)?
                .into_iter()
                .filter(|c| a.all || c.status.is_active())
                .collect()
        } else {
            named.iter().filter_map(|id| lc.find(id).ok()).collect()
        };
        let samples: Vec<StatsRow> = containers.iter().map(|c| lc.stats(c)).collect();
        if first && !samples.is_empty() {
            // A first sample to measure the CPU time of an interval against.
            first = false;
            prev = samples.into_iter().map(|r| (r.id.clone(), r)).collect();
            std::thread::sleep(std::time::Duration::from_millis(500));
            continue;
        }
        let rows: Vec<StatsRow> = samples
            .into_iter()
            .map(|r| match prev.get(&r.id) {
                Some(p) => r.with_cpu_since(p),
                None => StatsRow {
                    cpu_percent: 0.0,
                    ..r
                },
            })
            .collect();
        if redraw {
            print!("\x1b[2J\x1b[H");
        }
        format.print(&values(&rows, a.no_trunc), HEADERS)?;
        if a.no_stream || rows.is_empty() {
            return Ok(0);
        }
        prev = rows.into_iter().map(|r| (r.id.clone(), r)).collect();
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

/// Docker's field names and strings, so `--format` templates written for Docker work.
fn values(rows: &[StatsRow], no_trunc: bool) -> Vec<serde_json::Value> {
    rows.iter()
        .map(|r| {
            let id = if no_trunc {
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
                "BlockIO": format!("{} / {}", decimal_size(r.block_read), decimal_size(r.block_write)),
                "CPUPerc": format!("{:.2}%", r.cpu_percent),
                "Container": id,
                "ID": id,
                "MemPerc": format!("{mem_pct:.2}%"),
                "MemUsage": format!("{} / {}", size(r.mem_usage), size(r.mem_limit)),
                "Name": r.name,
                "NetIO": format!("{} / {}", decimal_size(r.net_rx), decimal_size(r.net_tx)),
                "PIDs": r.pids.to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_sizes_are_dockers_human_size_with_precision_3() {
        let cases = [
            (0, "0B"),
            (1, "1B"),
            (648, "648B"),
            (999, "999B"),
            (1000, "1kB"),
            (1200, "1.2kB"),
            (1234, "1.23kB"),
            (12_345, "12.3kB"),
            (123_456, "123kB"),
            (999_999, "1e+03kB"),
            (1_500_000, "1.5MB"),
            (4_194_304, "4.19MB"),
            (2_000_000_000, "2GB"),
        ];
        for (b, want) in cases {
            assert_eq!(decimal_size(b), want, "{b} bytes");
        }
    }

    #[test]
    fn binary_sizes_are_dockers_bytes_size() {
        assert_eq!(size(0), "0B");
        assert_eq!(size(64 * 1024 * 1024), "64MiB");
        assert_eq!(size(1536), "1.5KiB");
    }
}
