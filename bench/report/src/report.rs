//! `latest.md` (one table per suite), `latest.json` and the charts.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use crate::model::{advantage, evaluate, fmt_num, Record};

/// Why the report could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// Reading results or writing files failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Drawing a chart failed.
    #[error("chart {0}: {1}")]
    Chart(String, String),
}

/// Suites in the order they are shown; others follow alphabetically.
const ORDER: [&str; 6] = ["start", "publish", "build", "registry", "import", "memory"];

/// Records grouped by suite, then metric (in first-seen order), tools in first-seen order.
pub struct Suite<'a> {
    /// Its name.
    pub name: String,
    /// Metric name and its records.
    pub metrics: Vec<(String, Vec<&'a Record>)>,
    /// Every tool in the suite, berth first.
    pub tools: Vec<String>,
}

/// Groups records by suite.
pub fn suites(records: &[Record]) -> Vec<Suite<'_>> {
    let mut by: BTreeMap<String, Suite<'_>> = BTreeMap::new();
    for r in records {
        let s = by.entry(r.suite.clone()).or_insert_with(|| Suite { name: r.suite.clone(), metrics: Vec::new(), tools: Vec::new() });
        match s.metrics.iter_mut().find(|(m, _)| *m == r.metric) {
            Some((_, v)) => v.push(r),
            None => s.metrics.push((r.metric.clone(), vec![r])),
        }
        if !s.tools.contains(&r.tool) {
            s.tools.push(r.tool.clone());
        }
    }
    let mut out: Vec<Suite<'_>> = by.into_values().collect();
    for s in &mut out {
        // berth first, peers in the order they were measured.
        let seen = s.tools.clone();
        s.tools.sort_by_key(|t| (t != "berth", seen.iter().position(|x| x == t)));
    }
    let rank = |n: &str| ORDER.iter().position(|o| *o == n).unwrap_or(ORDER.len());
    out.sort_by(|a, b| (rank(&a.name), &a.name).cmp(&(rank(&b.name), &b.name)));
    out
}

fn cell(r: Option<&&Record>) -> String {
    match r {
        None => "–".into(),
        Some(r) => match (&r.error, r.median) {
            (Some(_), _) => "failed¹".into(),
            (None, Some(m)) => match (r.min, r.max) {
                (Some(lo), Some(hi)) if r.runs > 1 => format!("{} ({}–{})", fmt_num(m), fmt_num(lo), fmt_num(hi)),
                _ => fmt_num(m),
            },
            (None, None) => "–".into(),
        },
    }
}

/// The Markdown report.
pub fn markdown(records: &[Record]) -> String {
    let mut md = String::new();
    let host = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| c.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string()))
        .unwrap_or_default();
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    let _ = writeln!(md, "# berth benchmarks: latest results\n");
    let _ = writeln!(
        md,
        "Measured by `bench/run.sh` on {cpus} CPU(s) ({host}). Each cell: median (min–max); tools alternate run by run. \
         *ratio*: how many times better berth is than each peer (>1: berth better). Rerun: `sudo bench/run.sh [suite...]`. \
         Load average when this report was written: {} (other work on the machine inflates every figure alike).\n",
        load.join(" ")
    );
    let mut notes: Vec<String> = Vec::new();
    for s in suites(records) {
        let _ = writeln!(md, "## {}\n", s.name);
        let _ = writeln!(md, "![{0}]({0}.png)\n", s.name);
        let _ = write!(md, "| metric | unit |");
        for t in &s.tools {
            let _ = write!(md, " {t} |");
        }
        let _ = writeln!(md, " ratio | target | met |");
        let _ = writeln!(md, "|---|---|{}---|---|---|", "---|".repeat(s.tools.len()));
        for (metric, recs) in &s.metrics {
            let unit = recs.first().map(|r| r.unit.as_str()).unwrap_or("");
            let _ = write!(md, "| {metric} | {unit} |");
            for t in &s.tools {
                let r = recs.iter().find(|r| &r.tool == t);
                if let Some(e) = r.and_then(|r| r.error.as_ref()) {
                    notes.push(format!("{} / {metric} / {t}: {e}", s.name));
                }
                let _ = write!(md, " {} |", cell(r));
            }
            let berth = recs.iter().find(|r| r.tool == "berth").and_then(|r| r.median);
            let hib = recs.first().is_some_and(|r| r.higher_is_better);
            let ratios: Vec<String> = recs
                .iter()
                .filter(|r| r.tool != "berth")
                .filter_map(|r| {
                    let adv = advantage(berth?, r.median?, hib)?;
                    Some(format!("{:.2}x {}", adv, r.tool))
                })
                .collect();
            let target = recs.iter().find_map(|r| r.target.clone()).unwrap_or_default();
            let verdict = if target.is_empty() { String::from("–") } else { evaluate(&target, recs).to_string() };
            let _ = writeln!(
                md,
                " {} | {} | {} |",
                if ratios.is_empty() { "–".into() } else { ratios.join(", ") },
                if target.is_empty() { "–".into() } else { format!("`{target}`") },
                verdict
            );
        }
        let _ = writeln!(md);
    }
    if !notes.is_empty() {
        let _ = writeln!(md, "## ¹ Failures\n");
        for n in notes {
            let _ = writeln!(md, "- {}", n.replace('|', "\\|"));
        }
    }
    md
}

/// Writes `latest.md`, `latest.json` and `<suite>.png` into `out`.
pub fn write_all(records: &[Record], out: &Path) -> Result<(), ReportError> {
    std::fs::create_dir_all(out)?;
    std::fs::write(out.join("latest.md"), markdown(records))?;
    let json = serde_json::json!({
        "generated": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        "records": records,
        "verdicts": suites(records).iter().flat_map(|s| s.metrics.iter().map(move |(m, recs)| {
            let target = recs.iter().find_map(|r| r.target.clone());
            serde_json::json!({
                "suite": s.name, "metric": m, "target": target,
                "met": target.as_deref().map(|t| evaluate(t, recs).to_string()),
            })
        })).collect::<Vec<_>>(),
    });
    std::fs::write(out.join("latest.json"), serde_json::to_string_pretty(&json).unwrap_or_default() + "\n")?;
    for s in suites(records) {
        let path = out.join(format!("{}.png", s.name));
        crate::chart::draw(&s, &path).map_err(|e| ReportError::Chart(s.name.clone(), e))?;
    }
    Ok(())
}
