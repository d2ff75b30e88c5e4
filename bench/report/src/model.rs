//! One measured figure per (suite, metric, tool), and targets evaluated against them.

use std::io::{BufRead, Write};
use std::path::Path;

/// One tool's figure for one metric.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Record {
    /// The suite (`start`, `publish`, ...).
    pub suite: String,
    /// What was measured.
    pub metric: String,
    /// `ms`, `MB`, `req/s`, `MB/s`.
    pub unit: String,
    /// Whether more is better (throughput) or less (latency, memory).
    #[serde(default)]
    pub higher_is_better: bool,
    /// The target, see [`evaluate`].
    #[serde(default)]
    pub target: Option<String>,
    /// `berth`, `runc`, `podman`, `docker`, ...
    pub tool: String,
    /// Median of the samples.
    pub median: Option<f64>,
    /// Smallest sample.
    pub min: Option<f64>,
    /// Largest sample.
    pub max: Option<f64>,
    /// How many samples.
    #[serde(default)]
    pub runs: usize,
    /// Every sample.
    #[serde(default)]
    pub samples: Vec<f64>,
    /// Why there is no figure (the tool could not be set up or failed).
    #[serde(default)]
    pub error: Option<String>,
}

/// Appends `r` as one JSON line.
pub fn append(path: &Path, r: &Record) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    let line = serde_json::to_string(r).map_err(std::io::Error::other)?;
    writeln!(f, "{line}")
}

/// Reads every record; a later record for the same (suite, metric, tool) replaces an earlier one.
pub fn load(path: &Path) -> std::io::Result<Vec<Record>> {
    let f = std::fs::File::open(path)?;
    let mut out: Vec<Record> = Vec::new();
    for (n, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let r: Record = serde_json::from_str(&line).map_err(|e| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}:{}: {e}", path.display(), n + 1))
        })?;
        match out.iter_mut().find(|o| o.suite == r.suite && o.metric == r.metric && o.tool == r.tool) {
            Some(o) => *o = r,
            None => out.push(r),
        }
    }
    Ok(out)
}

/// Median, min and max of samples.
pub fn stats(samples: &[f64]) -> Option<(f64, f64, f64)> {
    if samples.is_empty() {
        return None;
    }
    let mut s = samples.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    let median = if n % 2 == 1 { s[n / 2] } else { (s[n / 2 - 1] + s[n / 2]) / 2.0 };
    Some((median, s[0], s[n - 1]))
}

/// A number with sensible precision for a table.
pub fn fmt_num(v: f64) -> String {
    let a = v.abs();
    if a >= 1000.0 {
        format!("{v:.0}")
    } else if a >= 100.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// How many times better berth is than `other` (>1: berth better).
pub fn advantage(berth: f64, other: f64, higher_is_better: bool) -> Option<f64> {
    if berth <= 0.0 || other <= 0.0 {
        return None;
    }
    Some(if higher_is_better { berth / other } else { other / berth })
}

/// The verdict on a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every condition holds.
    Met,
    /// A condition fails; the text says which.
    NotMet(String),
    /// Conditions that could be checked hold; others lack a figure.
    Partly(String),
    /// Nothing could be checked.
    Unknown(String),
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Verdict::Met => write!(f, "yes"),
            Verdict::NotMet(why) => write!(f, "**no** ({why})"),
            Verdict::Partly(why) => write!(f, "yes so far ({why})"),
            Verdict::Unknown(why) => write!(f, "n/a ({why})"),
        }
    }
}

/// Evaluates a target spec against the figures of one metric: `<=12`, `>=20000`, `<runc`,
/// `10x podman`, `0.9x dd`, comma-separated.
pub fn evaluate(spec: &str, records: &[&Record]) -> Verdict {
    let berth = records.iter().find(|r| r.tool == "berth");
    let Some(b) = berth.and_then(|r| r.median) else {
        return Verdict::Unknown("no berth figure".into());
    };
    let hib = berth.is_some_and(|r| r.higher_is_better);
    let median_of = |tool: &str| records.iter().find(|r| r.tool == tool).and_then(|r| r.median);
    let mut failed = Vec::new();
    let mut missing = Vec::new();
    let mut checked = 0;
    for cond in spec.split(',').map(str::trim).filter(|c| !c.is_empty()) {
        let ok = if let Some(v) = cond.strip_prefix("<=") {
            v.trim().parse::<f64>().ok().map(|v| b <= v)
        } else if let Some(v) = cond.strip_prefix(">=") {
            v.trim().parse::<f64>().ok().map(|v| b >= v)
        } else if let Some(tool) = cond.strip_prefix('<') {
            match median_of(tool.trim()) {
                Some(o) => Some(if hib { b > o } else { b < o }),
                None => {
                    missing.push(tool.trim().to_string());
                    continue;
                }
            }
        } else if let Some((factor, tool)) = cond.split_once("x ") {
            let Ok(factor) = factor.trim().parse::<f64>() else {
                failed.push(format!("bad condition {cond:?}"));
                continue;
            };
            match median_of(tool.trim()) {
                Some(o) => advantage(b, o, hib).map(|adv| adv >= factor),
                None => {
                    missing.push(tool.trim().to_string());
                    continue;
                }
            }
        } else {
            None
        };
        match ok {
            Some(true) => checked += 1,
            Some(false) => failed.push(cond.to_string()),
            None => failed.push(format!("bad condition {cond:?}")),
        }
    }
    if !failed.is_empty() {
        Verdict::NotMet(failed.join(", "))
    } else if missing.is_empty() {
        Verdict::Met
    } else if checked > 0 {
        Verdict::Partly(format!("no figure for {}", missing.join(", ")))
    } else {
        Verdict::Unknown(format!("no figure for {}", missing.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(tool: &str, median: f64, hib: bool) -> Record {
        Record {
            suite: "s".into(),
            metric: "m".into(),
            unit: "ms".into(),
            higher_is_better: hib,
            target: None,
            tool: tool.into(),
            median: Some(median),
            min: Some(median),
            max: Some(median),
            runs: 1,
            samples: vec![median],
            error: None,
        }
    }

    #[test]
    fn targets() {
        let (b, r, p) = (rec("berth", 10.0, false), rec("runc", 20.0, false), rec("podman", 150.0, false));
        let all = [&b, &r, &p];
        assert_eq!(evaluate("<=12, <runc, 10x podman", &all), Verdict::Met);
        assert!(matches!(evaluate("<=9", &all), Verdict::NotMet(_)));
        assert!(matches!(evaluate("20x podman", &all), Verdict::NotMet(_)));
        assert!(matches!(evaluate("<=12, 10x docker", &all), Verdict::Partly(_)));
        assert!(matches!(evaluate("10x docker", &all), Verdict::Unknown(_)));
        let (b, d) = (rec("berth", 350.0, true), rec("dd", 380.0, true));
        assert_eq!(evaluate("0.9x dd", &[&b, &d]), Verdict::Met);
        assert!(matches!(evaluate("2x dd", &[&b, &d]), Verdict::NotMet(_)));
    }

    #[test]
    fn median_min_max() {
        assert_eq!(stats(&[3.0, 1.0, 2.0]), Some((2.0, 1.0, 3.0)));
        assert_eq!(stats(&[4.0, 1.0, 2.0, 3.0]), Some((2.5, 1.0, 4.0)));
        assert_eq!(stats(&[]), None);
    }
}
