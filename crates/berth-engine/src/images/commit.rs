//! The image side of `commit`: a layer stream on top of an image's layers, and a config
//! that records the container's settings and the `--change` instructions.

use std::io::Read;

use berth_oci::{manifest, Digest, ImageRef};
use serde_json::{json, Map, Value};

use super::{config::apply_changes, now_rfc3339, ImageError};
use crate::{Engine, Error};

/// What the new image records besides its new layer.
#[derive(Debug, Clone, Default)]
pub struct CommitImage {
    /// The image the container runs (the new image's base).
    pub base: Option<Digest>,
    /// The container's ID (`container` in the config).
    pub container_id: String,
    /// The container's settings, Docker's `Config` keys (`Cmd`, `Env`, ...), laid over the
    /// base image's before the changes.
    pub container_config: Map<String, Value>,
    /// `--author`.
    pub author: Option<String>,
    /// `--message`: the history comment.
    pub message: Option<String>,
    /// `--change` instructions.
    pub changes: Vec<String>,
    /// The container's command, for the history's `created_by`.
    pub created_by: String,
    /// A reference to tag the image with.
    pub reference: Option<String>,
}

impl CommitImage {
    /// Checks the reference and the changes before anything is written.
    pub fn validate(&self) -> Result<(), Error> {
        if let Some(r) = self.reference.as_deref() {
            let parsed = ImageRef::parse(r)?;
            if parsed.digest().is_some() {
                return Err(Error::InvalidArgument(format!(
                    "cannot commit onto a digest reference: {r}"
                )));
            }
        }
        apply_changes(&mut Map::new(), &self.changes)?;
        Ok(())
    }
}

impl Engine {
    /// Stores `layer` (a plain layer tar) on top of `req.base`'s layers and adds the image;
    /// returns its ID. On any error nothing is left behind.
    pub fn commit_image(&self, req: &CommitImage, layer: impl Read) -> Result<Digest, Error> {
        let r = self.commit_image_inner(req, layer);
        self.collect_after_failure(r)
    }

    fn commit_image_inner(&self, req: &CommitImage, layer: impl Read) -> Result<Digest, Error> {
        req.validate()?;
        let names: Vec<String> = req
            .reference
            .as_deref()
            .map(ImageRef::parse)
            .transpose()?
            .iter()
            .map(|r| r.to_string())
            .collect();
        let _lease = self.store.content_lease()?;
        let (mut layers, mut config) = match &req.base {
            Some(base) => {
                let layers = self.store.image_layers(base)?;
                let raw = self.store.blobs().read_blob(base)?;
                let config: Value =
                    serde_json::from_slice(&raw).map_err(|source| ImageError::BadStoredJson {
                        id: base.clone(),
                        what: "config",
                        source,
                    })?;
                (layers, config)
            }
            None => (Vec::new(), json!({})),
        };
        let parent = layers.last().map(|l| l.chain_id.clone());
        let (record, _) = self.ingest_layer(layer, parent.as_ref(), "the container's changes")?;
        let created = now_rfc3339();
        let obj = match config.as_object_mut() {
            Some(o) => o,
            None => {
                config = json!({});
                config
                    .as_object_mut()
                    .ok_or_else(|| Error::InvalidArgument("image config is not an object".into()))?
            }
        };
        let mut inner = obj
            .get("config")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        for (k, v) in &req.container_config {
            if k == "Labels" {
                // The container's labels add to the image's.
                let mut labels = inner
                    .get("Labels")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                if let Some(m) = v.as_object() {
                    labels.extend(m.clone());
                }
                inner.insert(k.clone(), Value::Object(labels));
            } else if v.is_null() {
                inner.remove(k);
            } else {
                inner.insert(k.clone(), v.clone());
            }
        }
        apply_changes(&mut inner, &req.changes)?;
        obj.insert("config".into(), Value::Object(inner));
        obj.insert("created".into(), Value::String(created.clone()));
        obj.insert("container".into(), Value::String(req.container_id.clone()));
        obj.entry("architecture")
            .or_insert_with(|| Value::String(manifest::host_arch().to_owned()));
        obj.entry("os")
            .or_insert_with(|| Value::String("linux".into()));
        for (key, value) in [("author", &req.author), ("comment", &req.message)] {
            match value {
                Some(v) => obj.insert(key.into(), Value::String(v.clone())),
                None => obj.remove(key),
            };
        }
        let rootfs = obj
            .entry("rootfs")
            .or_insert_with(|| json!({"type": "layers", "diff_ids": []}));
        if let Some(r) = rootfs.as_object_mut() {
            let ids = r.entry("diff_ids").or_insert_with(|| json!([]));
            match ids.as_array_mut() {
                Some(a) => a.push(Value::String(record.diff_id.to_string())),
                None => *ids = json!([record.diff_id.to_string()]),
            }
        }
        let mut entry = Map::new();
        entry.insert("created".into(), Value::String(created.clone()));
        if let Some(a) = &req.author {
            entry.insert("author".into(), Value::String(a.clone()));
        }
        entry.insert("created_by".into(), Value::String(req.created_by.clone()));
        if let Some(m) = &req.message {
            entry.insert("comment".into(), Value::String(m.clone()));
        }
        let history = obj.entry("history").or_insert_with(|| json!([]));
        match history.as_array_mut() {
            Some(h) => h.push(Value::Object(entry)),
            None => *history = Value::Array(vec![Value::Object(entry)]),
        }
        let bytes = manifest::to_json(&config);
        layers.push(record);
        self.store_image(&bytes, &layers, &created, &names)
    }
}
