//! `system df -v`: Docker's four tables (images, containers, local volumes, build cache).

use berth_engine::container::list::short;

use super::images::{human_since, human_size, print_table};
use super::GlobalOpts;

fn table(header: &[&str], rows: Vec<Vec<String>>) {
    let mut all = vec![header.iter().map(|h| h.to_string()).collect::<Vec<_>>()];
    all.extend(rows);
    print_table(&all);
}

/// Prints the tables.
pub fn print(g: &GlobalOpts) -> anyhow::Result<i32> {
    let engine = g.engine()?;
    let lc = super::container::lifecycle(g)?;
    println!("Images space usage:\n");
    let images = engine.image_usage()?;
    table(
        &[
            "REPOSITORY",
            "TAG",
            "IMAGE ID",
            "CREATED",
            "SIZE",
            "SHARED SIZE",
            "UNIQUE SIZE",
            "CONTAINERS",
        ],
        images
            .iter()
            .map(|i| {
                let (repo, tag) = match i.tag.as_deref().and_then(|t| t.rsplit_once(':')) {
                    Some((r, t)) if !r.is_empty() && !t.contains('/') => {
                        (r.to_owned(), t.to_owned())
                    }
                    _ => ("<none>".to_owned(), "<none>".to_owned()),
                };
                vec![
                    repo,
                    tag,
                    short(i.id.hex()).to_owned(),
                    human_since(i.created_unix),
                    human_size(i.size),
                    human_size(i.shared_size),
                    human_size(i.size - i.shared_size.min(i.size)),
                    i.containers.to_string(),
                ]
            })
            .collect(),
    );
    println!("\nContainers space usage:\n");
    let mut rows = Vec::new();
    for s in lc.list(true, &[]).map_err(berth_engine::Error::from)? {
        let size = lc.find(&s.id).map(|c| lc.rw_size(&c)).unwrap_or(0);
        rows.push(vec![
            short(&s.id).to_owned(),
            s.image,
            super::ps::ellipsize_command(&s.command),
            s.local_volumes,
            human_size(size),
            s.running_for,
            s.status,
            s.names,
        ]);
    }
    table(
        &[
            "CONTAINER ID",
            "IMAGE",
            "COMMAND",
            "LOCAL VOLUMES",
            "SIZE",
            "CREATED",
            "STATUS",
            "NAMES",
        ],
        rows,
    );
    println!("\nLocal Volumes space usage:\n");
    table(
        &["VOLUME NAME", "LINKS", "SIZE"],
        engine
            .volume_usage()?
            .into_iter()
            .map(|v| vec![v.name, v.links.to_string(), human_size(v.size)])
            .collect(),
    );
    let cache = engine.build_cache_usage()?;
    let total: u64 = cache.iter().map(|c| c.size).sum();
    println!("\nBuild cache usage: {}\n", human_size(total));
    table(
        &[
            "CACHE ID",
            "CACHE TYPE",
            "SIZE",
            "CREATED",
            "LAST USED",
            "USAGE",
            "SHARED",
        ],
        cache
            .iter()
            .map(|c| {
                let hex = c.id.strip_prefix("sha256:").unwrap_or(&c.id);
                vec![
                    short(hex).to_owned(),
                    "regular".to_owned(),
                    human_size(c.size),
                    human_since(c.created_unix),
                    human_since(c.last_used),
                    "1".to_owned(),
                    c.shared.to_string(),
                ]
            })
            .collect(),
    );
    Ok(0)
}
