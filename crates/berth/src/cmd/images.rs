//! `berth images` (and `image ls`): list images as Docker does, plus the table, size, time
//! and template helpers the other image verbs share.

use std::io::Write;

use clap::Args;
use serde_json::{json, Value};

use berth_engine::images::{ImageFilter, ImageSummary, ListOptions};

use super::gotemplate::{Template, TemplateError};
use super::GlobalOpts;

/// `images [OPTIONS] [REPOSITORY[:TAG]]`
#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// Show all images (default hides intermediate images).
    #[arg(short, long)]
    pub all: bool,
    /// Only show image IDs.
    #[arg(short, long)]
    pub quiet: bool,
    /// Show digests.
    #[arg(long)]
    pub digests: bool,
    /// Don't truncate output.
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Filter output based on conditions provided (dangling=, reference=, before=, since=, label=).
    #[arg(short, long = "filter")]
    pub filter: Vec<String>,
    /// Format output using a custom template: 'table', 'table TEMPLATE', 'json', or a Go template.
    #[arg(long)]
    pub format: Option<String>,
    /// Repository (and tag) to list.
    pub reference: Option<String>,
}

/// Runs `images`.
pub fn run(g: &GlobalOpts, a: ImagesArgs) -> anyhow::Result<i32> {
    crate::exit::status_1(|| {
        let engine = g.engine()?;
        let mut filters = a
            .filter
            .iter()
            .map(|f| ImageFilter::parse(f))
            .collect::<Result<Vec<_>, _>>()
            .map_err(berth_engine::Error::from)?;
        if let Some(r) = &a.reference {
            filters.push(ImageFilter::Reference(r.clone()));
        }
        let images = engine.list_images(&ListOptions {
            all: a.all,
            filters,
        })?;
        print_images(&images, &a)?;
        Ok(0)
    })
}

struct Row {
    repository: String,
    tag: String,
    digest: String,
    image: ImageSummary,
}

fn rows(images: &[ImageSummary]) -> Vec<Row> {
    let mut out = Vec::new();
    for img in images {
        let digest_for = |repo: &str| {
            img.repo_digests
                .iter()
                .find_map(|d| {
                    d.split_once('@')
                        .filter(|(r, _)| *r == repo)
                        .map(|(_, d)| d.to_owned())
                })
                .unwrap_or_else(|| "<none>".to_owned())
        };
        if img.tags.is_empty() {
            if img.repo_digests.is_empty() {
                out.push(Row {
                    repository: "<none>".into(),
                    tag: "<none>".into(),
                    digest: "<none>".into(),
                    image: img.clone(),
                });
            }
            for d in &img.repo_digests {
                let (repo, digest) = d.split_once('@').unwrap_or((d, "<none>"));
                out.push(Row {
                    repository: repo.to_owned(),
                    tag: "<none>".into(),
                    digest: digest.to_owned(),
                    image: img.clone(),
                });
            }
        }
        for t in &img.tags {
            let (repo, tag) = split_tag(t);
            out.push(Row {
                repository: repo.to_owned(),
                tag: tag.to_owned(),
                digest: digest_for(repo),
                image: img.clone(),
            });
        }
    }
    out
}

/// `busybox:1` → (`busybox`, `1`); `localhost:5000/a:1` → (`localhost:5000/a`, `1`).
pub(crate) fn split_tag(t: &str) -> (&str, &str) {
    match t.rfind(':') {
        Some(i) if !t[i + 1..].contains('/') => (&t[..i], &t[i + 1..]),
        _ => (t, "<none>"),
    }
}

fn print_images(images: &[ImageSummary], a: &ImagesArgs) -> anyhow::Result<()> {
    let rows = rows(images);
    let id_of = |img: &ImageSummary| {
        if a.no_trunc {
            img.id.to_string()
        } else {
            img.id.short().to_owned()
        }
    };
    if a.quiet {
        let mut out = std::io::stdout().lock();
        let mut seen = std::collections::HashSet::new();
        for r in &rows {
            if seen.insert(r.image.id.clone()) {
                let _ = writeln!(out, "{}", id_of(&r.image));
            }
        }
        return Ok(());
    }
    let json_of = |r: &Row| {
        json!({
            "Containers": "N/A",
            "CreatedAt": created_at(r.image.created_unix),
            "CreatedSince": human_since(r.image.created_unix),
            "Digest": r.digest,
            "ID": id_of(&r.image),
            "Repository": r.repository,
            "SharedSize": "N/A",
            "Size": human_size(r.image.size),
            "Tag": r.tag,
            "UniqueSize": "N/A",
            "VirtualSize": human_size(r.image.size),
        })
    };
    match a.format.as_deref() {
        Some(f) if f != "table" && !f.is_empty() => {
            let values: Vec<Value> = rows.iter().map(json_of).collect();
            print_formatted(
                f,
                &values,
                &[
                    ("Repository", "REPOSITORY"),
                    ("Tag", "TAG"),
                    ("Digest", "DIGEST"),
                    ("ID", "IMAGE ID"),
                    ("CreatedSince", "CREATED"),
                    ("CreatedAt", "CREATED AT"),
                    ("Size", "SIZE"),
                    ("Containers", "CONTAINERS"),
                    ("SharedSize", "SHARED SIZE"),
                    ("UniqueSize", "UNIQUE SIZE"),
                    ("VirtualSize", "VIRTUAL SIZE"),
                ],
            )?;
        }
        _ => {
            let mut table = vec![];
            let mut header = vec!["REPOSITORY", "TAG"];
            if a.digests {
                header.push("DIGEST");
            }
            header.extend(["IMAGE ID", "CREATED", "SIZE"]);
            table.push(header.iter().map(|s| s.to_string()).collect::<Vec<_>>());
            for r in &rows {
                let mut line = vec![r.repository.clone(), r.tag.clone()];
                if a.digests {
                    line.push(r.digest.clone());
                }
                line.extend([
                    id_of(&r.image),
                    human_since(r.image.created_unix),
                    human_size(r.image.size),
                ]);
                table.push(line);
            }
            print_table(&table);
        }
    }
    Ok(())
}

/// A listing's `--format`, as Docker's CLI takes it: `json` (one object per row),
/// `table TEMPLATE` (a header, then a row per value, aligned as Docker's tabwriter), or a Go
/// template ([`Template`]) per row.
pub(crate) enum ListFormat {
    Json,
    Table(Template),
    Rows(Template),
}

impl ListFormat {
    /// Parses `format`. A template that does not parse is Docker's one line on stderr,
    /// `template parsing error: template: :1: unclosed action`, and status 1.
    pub(crate) fn parse(format: &str) -> anyhow::Result<ListFormat> {
        if format == "json" {
            return Ok(ListFormat::Json);
        }
        let (table, text) = match format.strip_prefix("table") {
            Some(rest) => (true, rest.trim_matches(' ')),
            None => (false, format),
        };
        let template = Template::parse(text).map_err(template_error)?;
        Ok(if table {
            ListFormat::Table(template)
        } else {
            ListFormat::Rows(template)
        })
    }

    /// Prints `values`; `titles` (field, column title) head a table's columns. Every row is
    /// rendered before anything is printed, so a row the template fails on (a missing
    /// field) is the same one-line error and status 1, with nothing on stdout, as Docker.
    pub(crate) fn print(&self, values: &[Value], titles: &[(&str, &str)]) -> anyhow::Result<()> {
        let mut text = String::new();
        let template = match self {
            ListFormat::Json => {
                for v in values {
                    text.push_str(&serde_json::to_string(v)?);
                    text.push('\n');
                }
                std::io::stdout().lock().write_all(text.as_bytes())?;
                return Ok(());
            }
            ListFormat::Table(t) => {
                let titles: serde_json::Map<String, Value> = titles
                    .iter()
                    .map(|(field, title)| (field.to_string(), Value::from(*title)))
                    .collect();
                text.push_str(&t.execute_header(&Value::Object(titles)));
                text.push('\n');
                t
            }
            ListFormat::Rows(t) => t,
        };
        for v in values {
            text.push_str(&template.execute(v).map_err(template_error)?);
            text.push('\n');
        }
        if let ListFormat::Table(_) = self {
            let rows: Vec<Vec<String>> = text
                .strip_suffix('\n')
                .unwrap_or(&text)
                .split('\n')
                .map(|line| line.split('\t').map(str::to_owned).collect())
                .collect();
            print_table(&rows);
            return Ok(());
        }
        std::io::stdout().lock().write_all(text.as_bytes())?;
        Ok(())
    }
}

/// Prints `values` as the `--format` `format` asks ([`ListFormat`]).
pub(crate) fn print_formatted(
    format: &str,
    values: &[Value],
    titles: &[(&str, &str)],
) -> anyhow::Result<()> {
    ListFormat::parse(format)?.print(values, titles)
}

/// Docker's line for a `--format` that does not parse or run; the status is 1.
fn template_error(e: TemplateError) -> anyhow::Error {
    eprintln!("template parsing error: {e}");
    crate::exit::ExitStatus(crate::exit::CLI_ERROR).into()
}

/// Prints rows as Docker's tabwriter does (columns padded by 3, at least 10 wide; the last
/// column unpadded).
pub(crate) fn print_table(rows: &[Vec<String>]) {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0usize; cols];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            out.push_str(c);
            if i + 1 < r.len() {
                let w = (widths[i] + 3).max(10);
                out.extend(std::iter::repeat_n(' ', w - c.chars().count()));
            }
        }
        out.push('\n');
    }
    let _ = std::io::stdout().lock().write_all(out.as_bytes());
}

/// Prints JSON `rows` as a [`print_table`] of `columns` (field name, header); fields that
/// are not strings print empty.
pub(crate) fn print_columns(rows: &[Value], columns: &[(&str, &str)]) {
    let mut table = vec![columns
        .iter()
        .map(|(_, h)| h.to_string())
        .collect::<Vec<_>>()];
    for r in rows {
        table.push(
            columns
                .iter()
                .map(|(k, _)| r[*k].as_str().unwrap_or_default().to_owned())
                .collect(),
        );
    }
    print_table(&table);
}

/// Sizes as Docker prints them: decimal units, 3 significant digits (`4.26MB`, `0B`).
pub(crate) fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let mut size = bytes as f64;
    let mut i = 0;
    while size >= 1000.0 && i < UNITS.len() - 1 {
        size /= 1000.0;
        i += 1;
    }
    format!("{}{}", g3(size), UNITS[i])
}

/// Go's `%.3g` for 0 <= x < 1000.
fn g3(x: f64) -> String {
    if x == 0.0 {
        return "0".into();
    }
    let digits = x.abs().log10().floor() as i32 + 1;
    let decimals = (3 - digits).max(0) as usize;
    let s = format!("{x:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// `2 hours ago`, as Docker's CREATED column.
pub(crate) fn human_since(unix: i64) -> String {
    if unix <= 0 {
        return "N/A".into();
    }
    format!("{} ago", human_duration(now_unix() - unix))
}

/// Docker's (go-units) `HumanDuration`.
pub(crate) fn human_duration(secs: i64) -> String {
    let secs = secs.max(0);
    if secs < 1 {
        return "Less than a second".into();
    }
    if secs == 1 {
        return "1 second".into();
    }
    if secs < 60 {
        return format!("{secs} seconds");
    }
    let minutes = secs / 60;
    if minutes == 1 {
        return "About a minute".into();
    }
    if minutes < 60 {
        return format!("{minutes} minutes");
    }
    let hours = (secs as f64 / 3600.0 + 0.5) as i64;
    if hours == 1 {
        return "About an hour".into();
    }
    if hours < 48 {
        return format!("{hours} hours");
    }
    if hours < 24 * 7 * 2 {
        return format!("{} days", hours / 24);
    }
    if hours < 24 * 30 * 2 {
        return format!("{} weeks", hours / 24 / 7);
    }
    if hours < 24 * 365 * 2 {
        return format!("{} months", hours / 24 / 30);
    }
    format!("{} years", secs / 3600 / 24 / 365)
}

/// `2024-01-02 03:04:05 +0000 UTC`, as Docker's `CreatedAt`.
pub(crate) fn created_at(unix: i64) -> String {
    let secs = unix.max(0);
    let days = secs / 86400;
    let rem = secs % 86400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} +0000 UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn sizes_like_docker() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(4_261_550), "4.26MB");
        assert_eq!(human_size(1_000_000), "1MB");
        assert_eq!(human_size(12_340), "12.3kB");
        assert_eq!(human_size(123_456_789), "123MB");
    }

    #[test]
    fn durations_like_docker() {
        assert_eq!(human_duration(0), "Less than a second");
        assert_eq!(human_duration(45), "45 seconds");
        assert_eq!(human_duration(90), "About a minute");
        assert_eq!(human_duration(7200), "2 hours");
        assert_eq!(human_duration(86400 * 20), "2 weeks");
    }

    #[test]
    fn templates() {
        let v = json!({"Repository": "busybox", "Tag": "1", "Config": {"Cmd": ["sh"]}});
        let render = |t: &str| Template::parse(t).unwrap().execute(&v).unwrap();
        assert_eq!(render("{{.Repository}}:{{.Tag}}"), "busybox:1");
        assert_eq!(render("{{json .Config.Cmd}}"), r#"["sh"]"#);
        assert_eq!(render("{{.Config.Cmd}}"), "[sh]");
        assert_eq!(render("{{.Repository | upper}}\\t{{.Tag}}"), "BUSYBOX\t1");
        assert!(matches!(
            ListFormat::parse("table {{.Repository}}").unwrap(),
            ListFormat::Table(_)
        ));
        assert!(matches!(
            ListFormat::parse("json").unwrap(),
            ListFormat::Json
        ));
        assert_eq!(created_at(0), "1970-01-01 00:00:00 +0000 UTC");
        assert_eq!(created_at(951782400), "2000-02-29 00:00:00 +0000 UTC");
    }

    #[test]
    fn tags_split() {
        assert_eq!(split_tag("busybox:1"), ("busybox", "1"));
        assert_eq!(
            split_tag("localhost:5000/a/b:x"),
            ("localhost:5000/a/b", "x")
        );
    }
}
