//! `berth history`: the steps that made an image, newest first.

use clap::Args;
use serde_json::json;

use super::images::{human_since, human_size, print_columns, print_formatted};
use super::GlobalOpts;

/// `history [OPTIONS] IMAGE`
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Print sizes and dates in human readable format.
    #[arg(short = 'H', long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub human: bool,
    /// Only show image IDs.
    #[arg(short, long)]
    pub quiet: bool,
    /// Don't truncate output.
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Format output using a custom template: 'table', 'table TEMPLATE', 'json', or a Go template.
    #[arg(long)]
    pub format: Option<String>,
    /// The image.
    pub image: String,
}

/// Docker's `stringutils.Ellipsis`: at most `max` characters, the last one `…`.
fn ellipsis(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// Runs `history`.
pub fn run(g: &GlobalOpts, a: HistoryArgs) -> anyhow::Result<i32> {
    crate::exit::status_1(|| {
        let entries = g.engine()?.history(&a.image)?;
        let id_text = |id: &Option<berth_oci::Digest>| match id {
            Some(d) if a.no_trunc => d.to_string(),
            Some(d) => d.short().to_owned(),
            None => "<missing>".to_owned(),
        };
        if a.quiet {
            for e in &entries {
                println!("{}", id_text(&e.id));
            }
            return Ok(0);
        }
        let rows: Vec<_> = entries
            .iter()
            .map(|e| {
                let created_by = e.created_by.replace('\t', " ");
                let created_by = if a.no_trunc {
                    created_by
                } else {
                    ellipsis(&created_by, 45)
                };
                json!({
                    "ID": id_text(&e.id),
                    "CreatedSince": if a.human { human_since(e.created_unix) } else { e.created.clone() },
                    "CreatedAt": e.created,
                    "CreatedBy": created_by,
                    "Size": if a.human { human_size(e.size) } else { e.size.to_string() },
                    "Comment": e.comment,
                })
            })
            .collect();
        match a.format.as_deref() {
            Some(f) if f != "table" && !f.is_empty() => print_formatted(
                f,
                &rows,
                &[
                    ("ID", "IMAGE"),
                    ("CreatedSince", "CREATED"),
                    ("CreatedAt", "CREATED AT"),
                    ("CreatedBy", "CREATED BY"),
                    ("Size", "SIZE"),
                    ("Comment", "COMMENT"),
                ],
            )?,
            _ => print_columns(
                &rows,
                &[
                    ("ID", "IMAGE"),
                    ("CreatedSince", "CREATED"),
                    ("CreatedBy", "CREATED BY"),
                    ("Size", "SIZE"),
                    ("Comment", "COMMENT"),
                ],
            ),
        }
        Ok(0)
    })
}
