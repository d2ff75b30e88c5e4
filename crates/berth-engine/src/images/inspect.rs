//! `image inspect`, `history` and `system df`.

use berth_oci::Digest;
use serde_json::{json, Value};

use super::familiar;
use crate::{Engine, Error};

/// Docker's `image inspect` document for one image (`Id`, `RepoTags`, `RepoDigests`,
/// `Created`, `Config`, `RootFS`, `Size`, ...), ready to print as JSON.
pub type ImageInspect = Value;

/// One row of `history`, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// The image ID on the top row, `None` (`<missing>`) below.
    pub id: Option<Digest>,
    /// RFC 3339.
    pub created: String,
    /// Unix seconds.
    pub created_unix: i64,
    /// The command that made the layer.
    pub created_by: String,
    /// Bytes the step added (0 for empty layers).
    pub size: u64,
    /// The comment.
    pub comment: String,
    /// Tags of the image, on the top row.
    pub tags: Vec<String>,
}

/// `system df` figures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiskUsage {
    /// Number of images.
    pub images: usize,
    /// Images used by at least one container.
    pub active_images: usize,
    /// Unpacked bytes of all layers (shared layers counted once).
    pub images_size: u64,
    /// Bytes of layers no in-use image needs.
    pub images_reclaimable: u64,
    /// Number of containers.
    pub containers: usize,
    /// Containers running.
    pub active_containers: usize,
    /// Bytes in the staging area (`ROOT/tmp`): downloads, unpacks and builds in progress
    /// (what dead processes left is swept before counting).
    pub staging_size: u64,
}

impl Engine {
    /// The inspect document of the image `input` names.
    pub fn inspect_image(&self, input: &str) -> Result<ImageInspect, Error> {
        let id = self.resolve_image(input)?;
        let rec = self.image_record(&id)?;
        let config = self.image_config(&id)?;
        let layers = self.store.image_layers(&id)?;
        let diff_ids: Vec<String> = layers.iter().map(|l| l.diff_id.to_string()).collect();
        let lower: Vec<String> = self
            .store
            .image_lowerdirs(&id)?
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        let last_tag = rec
            .last_tag_time
            .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
            .map(super::format_rfc3339)
            .unwrap_or_else(|| "0001-01-01T00:00:00Z".to_owned());
        Ok(json!({
            "Id": id.to_string(),
            "RepoTags": rec.tags.iter().map(|t| familiar(t)).collect::<Vec<_>>(),
            "RepoDigests": rec.repo_digests.iter().map(|t| familiar(t)).collect::<Vec<_>>(),
            "Parent": config.get("parent").cloned().unwrap_or(json!("")),
            "Comment": config.get("comment").cloned().unwrap_or(json!("")),
            "Created": config.get("created").cloned().unwrap_or(json!("")),
            "DockerVersion": config.get("docker_version").cloned().unwrap_or(json!("")),
            "Author": config.get("author").cloned().unwrap_or(json!("")),
            "Config": config.get("config").cloned().unwrap_or(json!({})),
            "Architecture": config.get("architecture").cloned().unwrap_or(json!("")),
            "Os": config.get("os").cloned().unwrap_or(json!("")),
            "Size": rec.size,
            "GraphDriver": {
                "Name": "overlay2",
                "Data": {"LowerDir": lower.join(":")},
            },
            "RootFS": {"Type": "layers", "Layers": diff_ids},
            "Metadata": {"LastTagTime": last_tag},
            "Descriptor": {
                "mediaType": rec.manifest_media_type,
                "digest": rec.manifest_digest.to_string(),
            },
        }))
    }

    /// The image's history, newest first, with per-layer sizes.
    pub fn history(&self, input: &str) -> Result<Vec<HistoryEntry>, Error> {
        let id = self.resolve_image(input)?;
        let rec = self.image_record(&id)?;
        let config = self.image_config(&id)?;
        let layers = self.store.image_layers(&id)?;
        let mut sizes = layers.iter().map(|l| l.size);
        let mut out = Vec::new();
        let history = config
            .get("history")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if history.is_empty() {
            // No history: one row per layer.
            for l in &layers {
                out.push(HistoryEntry {
                    id: None,
                    created: rec.created.clone(),
                    created_unix: rec.created_unix,
                    created_by: String::new(),
                    size: l.size,
                    comment: String::new(),
                    tags: Vec::new(),
                });
            }
        }
        for h in &history {
            let empty = h
                .get("empty_layer")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let created = h
                .get("created")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            out.push(HistoryEntry {
                id: None,
                created_unix: super::parse_rfc3339(&created),
                created,
                created_by: h
                    .get("created_by")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                size: if empty { 0 } else { sizes.next().unwrap_or(0) },
                comment: h
                    .get("comment")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                tags: Vec::new(),
            });
        }
        out.reverse();
        if let Some(top) = out.first_mut() {
            top.id = Some(id);
            top.tags = rec.tags.iter().map(|t| familiar(t)).collect();
        }
        Ok(out)
    }

    /// Disk usage of images (`system df`).
    pub fn disk_usage(&self) -> Result<DiskUsage, Error> {
        let images = self.store.list_images()?;
        let layers = self.store.list_layers()?;
        let mut used_chains = std::collections::HashSet::new();
        let mut du = DiskUsage {
            images: images.len(),
            ..Default::default()
        };
        for rec in &images {
            if !self.store.image_users(&rec.id)?.is_empty() {
                du.active_images += 1;
                used_chains.extend(rec.layers.iter().cloned());
            }
        }
        for l in &layers {
            du.images_size += l.size;
            if !used_chains.contains(&l.chain_id) {
                du.images_reclaimable += l.size;
            }
        }
        let (total, running) = self.store.with_conn(|c| {
            c.query_row(
                "SELECT COUNT(*), COUNT(CASE WHEN status IN ('running', 'restarting') THEN 1 END) \
                 FROM containers",
                [],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)),
            )
        })?;
        du.containers = total.max(0) as usize;
        du.active_containers = running.max(0) as usize;
        self.store.sweep_staging()?;
        du.staging_size = self.store.staging_bytes()?;
        Ok(du)
    }
}
