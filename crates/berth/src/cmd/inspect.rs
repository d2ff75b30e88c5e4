//! `inspect` / `container inspect`: containers (and, for `inspect`, images) as JSON.

use clap::Args;

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

fn print(values: &[serde_json::Value], format: Option<&str>) -> anyhow::Result<()> {
    match format {
        Some(f) if f != "json" => {
            for v in values {
                println!("{}", super::images::render_template(f, v));
            }
        }
        _ => println!("{}", serde_json::to_string_pretty(values)?),
    }
    Ok(())
}

/// `container inspect`: containers only.
pub fn run_containers(g: &GlobalOpts, a: InspectArgs) -> anyhow::Result<i32> {
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
    print(&out, a.format.as_deref())?;
    Ok(status)
}

/// `inspect`: a container, or else an image.
pub fn run(g: &GlobalOpts, a: InspectArgs) -> anyhow::Result<i32> {
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
    print(&out, a.format.as_deref())?;
    Ok(status)
}
