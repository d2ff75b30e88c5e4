//! `berth image analyze IMAGE`: bytes added, changed and removed per layer, wasted bytes with
//! the biggest offenders, and secrets found in layers, the config or the history.

use clap::Args;

use berth_engine::build::{parse_size, Analysis};

use super::images::human_size;
use super::GlobalOpts;

/// `image analyze [OPTIONS] IMAGE`
#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    /// Output format: 'table' (default) or 'json'.
    #[arg(long)]
    pub format: Option<String>,
    /// Exit with status 1 when a limit is passed: wasted=SIZE and/or secrets (comma separated).
    #[arg(long = "fail-on")]
    pub fail_on: Option<String>,
    /// The image.
    pub image: String,
}

fn render(id: &str, name: &str, a: &Analysis) -> String {
    let mut s = String::new();
    s.push_str(&format!("Image: {name} ({id})\n\n"));
    s.push_str(&format!(
        "{:<6} {:>10} {:>10} {:>10}  {}\n",
        "LAYER", "ADDED", "CHANGED", "REMOVED", "CREATED BY"
    ));
    for l in &a.layers {
        let by: String = l.created_by.chars().take(60).collect();
        s.push_str(&format!(
            "{:<6} {:>10} {:>10} {:>10}  {}\n",
            l.index,
            human_size(l.added),
            human_size(l.changed),
            human_size(l.removed),
            by
        ));
    }
    let pct = if a.total_bytes > 0 {
        a.wasted_bytes as f64 * 100.0 / a.total_bytes as f64
    } else {
        0.0
    };
    s.push_str(&format!(
        "\nTotal in layers: {}   visible: {}   wasted: {} ({pct:.1}%)\n",
        human_size(a.total_bytes),
        human_size(a.visible_bytes),
        human_size(a.wasted_bytes)
    ));
    if !a.wasted.is_empty() {
        s.push_str("\nWasted bytes: files that a later layer deletes or overwrites still ship in the image\n");
        for w in &a.wasted {
            s.push_str(&format!(
                "  {:>10}  {}  (added in layer {}, {} in layer {})\n",
                human_size(w.bytes),
                w.path,
                w.added_in,
                w.how,
                w.hidden_in
            ));
        }
    }
    if a.secrets.is_empty() {
        s.push_str("\nSecrets: none found\n");
    } else {
        s.push_str("\nSecrets found:\n");
        for f in &a.secrets {
            let place = match f.index {
                Some(i) => format!("{} {i}", f.place),
                None => f.place.clone(),
            };
            let note = if f.deleted_later {
                " (deleted by a later layer, but still in the image)"
            } else {
                ""
            };
            s.push_str(&format!("  {place:<10} {}: {}{note}\n", f.path, f.what));
        }
    }
    if !a.advice.is_empty() {
        s.push_str("\nAdvice:\n");
        for line in &a.advice {
            s.push_str(&format!("  - {line}\n"));
        }
    }
    s
}

/// Runs `image analyze`.
pub fn run(g: &GlobalOpts, a: AnalyzeArgs) -> anyhow::Result<i32> {
    crate::exit::status_1(|| {
        let mut wasted_limit = None;
        let mut fail_secrets = false;
        if let Some(spec) = &a.fail_on {
            for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                match part.split_once('=') {
                    Some(("wasted", v)) => {
                        wasted_limit = Some(parse_size(v).ok_or_else(|| {
                            anyhow::anyhow!(
                                "invalid --fail-on wasted={v}: expected a size like 10MB"
                            )
                        })?)
                    }
                    None if part == "secrets" => fail_secrets = true,
                    _ => {
                        anyhow::bail!("invalid --fail-on {part:?}: expected wasted=SIZE or secrets")
                    }
                }
            }
        }
        let engine = g.engine()?;
        let (id, analysis) = engine.analyze_image(&a.image)?;
        match a.format.as_deref() {
            Some("json") => {
                let mut v = serde_json::to_value(&analysis)?;
                v["id"] = serde_json::Value::String(id.to_string());
                println!("{}", serde_json::to_string_pretty(&v)?);
            }
            None | Some("table") => print!("{}", render(&id.to_string(), &a.image, &analysis)),
            Some(other) => anyhow::bail!("invalid --format {other:?}: expected table or json"),
        }
        let mut failed = false;
        if let Some(limit) = wasted_limit {
            if analysis.wasted_bytes > limit {
                eprintln!(
                    "image analyze: {} wasted, more than the {} allowed",
                    human_size(analysis.wasted_bytes),
                    human_size(limit)
                );
                failed = true;
            }
        }
        if fail_secrets && !analysis.secrets.is_empty() {
            eprintln!("image analyze: {} secret(s) found", analysis.secrets.len());
            failed = true;
        }
        Ok(if failed { 1 } else { 0 })
    })
}
