//! `inspect` / `container inspect`: containers (and, for `inspect`, images) as JSON.

use clap::Args;

use super::gotemplate::Template;
use super::GlobalOpts;

/// `inspect [OPTIONS] NAME|ID [NAME|ID...]`
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Format output using a custom template ('json' or a Go template).
    #[arg(short, long)]
    pub format: Option<String>,
    /// Display total file sizes (accepted).
    #[arg(short, long)]
    pub size: bool,
    /// Only inspect objects of this type (container or image).
    #[arg(long = "type")]
    pub kind: Option<String>,
    /// Names or IDs.
    #[arg(required = true)]
    pub names: Vec<String>,
}

/// Checks `--format` before anything is looked up, as Docker does: a template that does not
/// parse is "template parsing error: ..." with status 64.
pub(crate) fn parse_format(format: Option<&str>) -> Result<Option<Template>, i32> {
    match format {
        Some(f) if f != "json" && !f.is_empty() => match Template::parse(f) {
            Ok(t) => Ok(Some(t)),
            Err(e) => {
                eprintln!("template parsing error: {e}");
                Err(64)
            }
        },
        _ => Ok(None),
    }
}

/// Prints `values` (as JSON, or through the template); a template that fails on a value is
/// an error for that value (status 1), the others still print.
pub(crate) fn print(
    values: &[serde_json::Value],
    template: Option<&Template>,
) -> anyhow::Result<i32> {
    let Some(t) = template else {
        println!("{}", serde_json::to_string_pretty(values)?);
        return Ok(0);
    };
    let mut out = String::new();
    let mut errors = Vec::new();
    for v in values {
        match t.execute(v) {
            Ok(s) => {
                out.push_str(&s);
                out.push('\n');
            }
            Err(e) => errors.push(format!("template parsing error: {e}")),
        }
    }
    // Docker prints an empty line when nothing rendered.
    if out.is_empty() {
        out.push('\n');
    }
    print!("{out}");
    for e in &errors {
        eprintln!("{e}");
    }
    Ok(if errors.is_empty() { 0 } else { 1 })
}

/// `container inspect`: containers only.
pub fn run_containers(g: &GlobalOpts, a: InspectArgs) -> anyhow::Result<i32> {
    let template = match parse_format(a.format.as_deref()) {
        Ok(t) => t,
        Err(code) => return Ok(code),
    };
    let lc = super::container::lifecycle(g)?;
    let mut out = Vec::new();
    let mut status = 0;
    for n in &a.names {
        match lc.find(n) {
            Ok(c) => out.push(lc.inspect(&c)),
            Err(e) => {
                eprintln!("Error: No such container: {n}");
                let _ = e;
                status = 1;
            }
        }
    }
    let printed = print(&out, template.as_ref())?;
    Ok(status.max(printed))
}

/// `inspect`: a container, or else an image.
pub fn run(g: &GlobalOpts, a: InspectArgs) -> anyhow::Result<i32> {
    let template = match parse_format(a.format.as_deref()) {
        Ok(t) => t,
        Err(code) => return Ok(code),
    };
    let lc = super::container::lifecycle(g)?;
    let mut out = Vec::new();
    let mut status = 0;
    let want_image = a.kind.as_deref() == Some("image");
    let want_container = a.kind.as_deref() == Some("container");
    let engine = if want_container {
        None
    } else {
        Some(g.engine()?)
    };
    for n in &a.names {
        if !want_image {
            if let Ok(c) = lc.find(n) {
                out.push(lc.inspect(&c));
                continue;
            }
        }
        if let Some(engine) = &engine {
            if let Ok(img) = engine.inspect_image(n) {
                out.push(serde_json::to_value(img)?);
                continue;
            }
        }
        eprintln!("Error: No such object: {n}");
        status = 1;
    }
    let printed = print(&out, template.as_ref())?;
    Ok(status.max(printed))
}
