//! `events`: what happens to containers, images, networks and volumes, from every berth
//! process on this root (the engine's events journal).

use std::io::Write;

use clap::Args;

use super::gotemplate::Template;
use super::GlobalOpts;

/// `events [OPTIONS]`
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Filter output based on conditions provided.
    #[arg(short = 'f', long = "filter")]
    pub filter: Vec<String>,
    /// Format output using a custom template ('json', or a Go template).
    #[arg(long)]
    pub format: Option<String>,
    /// Show all events created since timestamp.
    #[arg(long)]
    pub since: Option<String>,
    /// Stream events until this timestamp.
    #[arg(long)]
    pub until: Option<String>,
}

/// The event with Go's field names, for templates (`{{.Actor.Attributes.name}}`).
fn template_value(ev: &berth_engine::events::Event) -> serde_json::Value {
    serde_json::json!({
        "Status": ev.status, "ID": ev.id, "From": ev.from, "Type": ev.kind,
        "Action": ev.action,
        "Actor": {"ID": ev.actor.id, "Attributes": ev.actor.attributes},
        "Scope": ev.scope, "Time": ev.time, "TimeNano": ev.time_nano,
    })
}

/// Streams events until `--until` or until stdout closes.
pub fn run(g: &GlobalOpts, a: EventsArgs) -> anyhow::Result<i32> {
    use berth_engine::events::{self, time::parse_timestamp, EventFilter, EventsRequest};
    let now = berth_engine::container::now_nanos();
    let bad = |e: berth_engine::events::EventsError| -> anyhow::Result<i32> {
        eprintln!("Error: {e}");
        Ok(125)
    };
    let since = match a
        .since
        .as_deref()
        .map(|s| parse_timestamp(s, now))
        .transpose()
    {
        Ok(s) => s,
        Err(e) => return bad(e),
    };
    let until = match a
        .until
        .as_deref()
        .map(|s| parse_timestamp(s, now))
        .transpose()
    {
        Ok(u) => u,
        Err(e) => return bad(e),
    };
    let filter = match EventFilter::parse(&a.filter) {
        Ok(f) => f,
        Err(e) => return bad(e),
    };
    let raw_json = matches!(
        a.format.as_deref().map(str::trim),
        Some("json" | "{{json .}}")
    );
    let template = match a.format.as_deref() {
        Some(f) if !raw_json && !f.is_empty() => match Template::parse(f) {
            Ok(t) => Some(t),
            Err(e) => {
                eprintln!("template parsing error: {e}");
                return Ok(1);
            }
        },
        _ => None,
    };
    let root = g.root.clone();
    let req = EventsRequest {
        since,
        until,
        filter,
    };
    let stdout = std::io::stdout();
    let mut failed = None;
    events::stream(&root, &req, |ev| {
        let line = if raw_json {
            serde_json::to_string(ev).unwrap_or_default()
        } else if let Some(t) = &template {
            match t.execute(&template_value(ev)) {
                Ok(s) => s,
                Err(e) => {
                    failed = Some(e.to_string());
                    return false;
                }
            }
        } else {
            ev.docker_line()
        };
        let mut out = stdout.lock();
        writeln!(out, "{line}").and_then(|_| out.flush()).is_ok()
    })?;
    if let Some(e) = failed {
        eprintln!("Error: template: {e}");
        return Ok(1);
    }
    Ok(0)
}
