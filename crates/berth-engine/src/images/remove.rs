//! `rmi` and `image prune`: untag versus delete, exactly as Docker decides.

use std::collections::BTreeSet;

use berth_oci::{Digest, ImageRef};

use super::{familiar, looks_like_id, ImageError};
use crate::{Engine, Error};

/// One line of `rmi`'s output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoveAction {
    /// A reference was removed (familiar form).
    Untagged(String),
    /// An image or layer was deleted (image ID or layer chain ID).
    Deleted(Digest),
}

/// What `image prune` removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Untagged references and deleted images, in order.
    pub actions: Vec<RemoveAction>,
    /// Bytes of layer content freed.
    pub reclaimed: u64,
}

fn repository_of(reference: &str) -> String {
    ImageRef::parse_no_default(reference)
        .map(|r| r.repository())
        .unwrap_or_else(|_| reference.to_owned())
}

impl Engine {
    /// Removes an image reference or an image (`rmi`). By name: untags it, and deletes the
    /// image when that was its last reference. By ID (or unique prefix): untags every
    /// reference and deletes it, refusing without `force` when the references span several
    /// repositories or a container uses the image.
    pub fn remove_image(&self, input: &str, force: bool) -> Result<Vec<RemoveAction>, Error> {
        let id = self.resolve_image(input)?;
        let rec = self.image_record(&id)?;
        let users = self.store.image_users(&id)?;
        let hex = input
            .strip_prefix("sha256:")
            .unwrap_or(input)
            .to_ascii_lowercase();
        let by_id = looks_like_id(input) && id.hex().starts_with(&hex);
        let mut actions = Vec::new();
        if !by_id {
            let full = ImageRef::parse(input)?.to_string();
            let refs = rec.tags.len() + rec.repo_digests.len();
            if refs == 1 && !force && !users.is_empty() {
                return Err(ImageError::InUse {
                    action: "remove repository reference",
                    target: format!("{input:?}"),
                    users,
                }
                .into());
            }
            let removed = match self.store.untag(&full)? {
                Some(_) => true,
                None => self.store.remove_repo_digest(&full)?.is_some(),
            };
            if removed {
                actions.push(RemoveAction::Untagged(familiar(&full)));
            }
            let rec = self.image_record(&id)?;
            // A tag went: digest references of the same repository go too when no tag of
            // that repository is left (as Docker).
            let repo = repository_of(&full);
            if !rec.tags.iter().any(|t| repository_of(t) == repo) {
                for d in rec.repo_digests.iter().filter(|d| repository_of(d) == repo) {
                    self.store.remove_repo_digest(d)?;
                    actions.push(RemoveAction::Untagged(familiar(d)));
                }
            }
            let rec = self.image_record(&id)?;
            if !rec.tags.is_empty() || !rec.repo_digests.is_empty() || !users.is_empty() {
                return Ok(actions);
            }
        } else {
            let running: Vec<String> = users
                .iter()
                .filter(|u| u.starts_with("running "))
                .cloned()
                .collect();
            if !running.is_empty() {
                return Err(ImageError::InUseRunning {
                    target: id.short().to_owned(),
                    users: running,
                }
                .into());
            }
            if !users.is_empty() && !force {
                return Err(ImageError::InUse {
                    action: "delete",
                    target: id.short().to_owned(),
                    users,
                }
                .into());
            }
            let repos: BTreeSet<String> = rec
                .tags
                .iter()
                .chain(&rec.repo_digests)
                .map(|r| repository_of(r))
                .collect();
            if repos.len() > 1 && !force {
                return Err(ImageError::MultipleRepositories(id.short().to_owned()).into());
            }
            for t in &rec.tags {
                self.store.untag(t)?;
                actions.push(RemoveAction::Untagged(familiar(t)));
            }
            for d in &rec.repo_digests {
                self.store.remove_repo_digest(d)?;
                actions.push(RemoveAction::Untagged(familiar(d)));
            }
        }
        self.store.delete_image(&id)?;
        actions.push(RemoveAction::Deleted(id));
        // Layers go now unless another process is adding content (then at the next rmi or
        // prune): rmi never waits for a pull or import to finish.
        if let Some(report) = self.store.try_gc()? {
            actions.extend(report.layers.into_iter().map(RemoveAction::Deleted));
        }
        Ok(actions)
    }

    /// Removes dangling images (no tag), or with `all` every image no container uses.
    pub fn prune_images(&self, all: bool) -> Result<PruneReport, Error> {
        let mut report = PruneReport::default();
        for rec in self.store.list_images()? {
            if !all && !rec.tags.is_empty() {
                continue;
            }
            if !self.store.image_users(&rec.id)?.is_empty() {
                continue;
            }
            for t in &rec.tags {
                self.store.untag(t)?;
                report.actions.push(RemoveAction::Untagged(familiar(t)));
            }
            for d in &rec.repo_digests {
                self.store.remove_repo_digest(d)?;
                report.actions.push(RemoveAction::Untagged(familiar(d)));
            }
            self.store.delete_image(&rec.id)?;
            report.actions.push(RemoveAction::Deleted(rec.id));
        }
        let gc = self.store.gc()?;
        report
            .actions
            .extend(gc.layers.into_iter().map(RemoveAction::Deleted));
        report.reclaimed = gc.layer_bytes;
        Ok(report)
    }

    /// Points `target` at the image `source` names (`tag`).
    pub fn tag(&self, source: &str, target: &str) -> Result<(), Error> {
        let id = self.resolve_image(source)?;
        let r = ImageRef::parse(target)?;
        if r.digest().is_some() {
            return Err(Error::InvalidArgument(format!(
                "refusing to create a tag with a digest reference: {target}"
            )));
        }
        self.store.tag_image(&r.to_string(), &id)?;
        Ok(())
    }
}
