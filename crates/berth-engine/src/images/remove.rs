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

/// A `--filter` of `image prune` (Docker's keys: `dangling`, `until`, `label`, `label!`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PruneFilter {
    /// `dangling=true` (the default) or `dangling=false` (all unused images, as `-a`).
    Dangling(bool),
    /// `until=TIME`: only images created before this Unix time.
    Until(i64),
    /// `label=KEY` or `label=KEY=VALUE`: only images with the label.
    Label(String, Option<String>),
    /// `label!=KEY` or `label!=KEY=VALUE`: only images without the label.
    NotLabel(String, Option<String>),
}

impl PruneFilter {
    /// Parses `KEY=VALUE` as `docker image prune --filter` does; `now` (Unix seconds)
    /// anchors durations (`until=24h`).
    pub fn parse(s: &str, now: i64) -> Result<PruneFilter, ImageError> {
        let bad = || ImageError::BadFilter(s.to_owned());
        let (k, v) = s.split_once('=').ok_or_else(bad)?;
        let label = |v: &str| match v.split_once('=') {
            Some((k, v)) => (k.to_owned(), Some(v.to_owned())),
            None => (v.to_owned(), None),
        };
        // `label!=x` splits as ("label!", "x").
        match k {
            "dangling" => match v.to_ascii_lowercase().as_str() {
                "true" | "1" => Ok(PruneFilter::Dangling(true)),
                "false" | "0" => Ok(PruneFilter::Dangling(false)),
                _ => Err(bad()),
            },
            "until" => parse_timestamp(v, now)
                .map(PruneFilter::Until)
                .ok_or_else(|| ImageError::BadTime(v.to_owned())),
            "label" if !v.is_empty() => {
                let (k, v) = label(v);
                Ok(PruneFilter::Label(k, v))
            }
            "label!" if !v.is_empty() => {
                let (k, v) = label(v);
                Ok(PruneFilter::NotLabel(k, v))
            }
            _ => Err(bad()),
        }
    }
}

/// A time as Docker's filters take it (a Go duration before `now`, Unix seconds, or an
/// RFC 3339 date): the events' parser (`events::time`), in Unix seconds.
pub(crate) fn parse_timestamp(v: &str, now: i64) -> Option<i64> {
    crate::events::time::parse_timestamp(v, now.saturating_mul(1_000_000_000))
        .ok()
        .map(|nanos| nanos.div_euclid(1_000_000_000))
}

/// Whether removing one reference leaves the image without any: all references are of one
/// repository and at most one is a tag (a tag and its repository's digest references go
/// together, so `app:1` plus `app@sha256:...` is one reference, as Docker counts).
fn is_single_reference(tags: &[String], repo_digests: &[String]) -> bool {
    let repos: BTreeSet<String> = tags
        .iter()
        .chain(repo_digests)
        .map(|r| repository_of(r))
        .collect();
    repos.len() <= 1 && tags.len() <= 1
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
        let actions = self.remove_image_inner(input, force)?;
        let id = actions.iter().find_map(|a| match a {
            RemoveAction::Deleted(d) => Some(d.to_string()),
            RemoveAction::Untagged(_) => None,
        });
        for a in &actions {
            match a {
                RemoveAction::Untagged(n) => {
                    let of = id.clone().unwrap_or_else(|| input.to_string());
                    crate::events::emit_image(&self.config.root, "untag", &of, n);
                }
                RemoveAction::Deleted(d) if Some(d.to_string()) == id => {
                    crate::events::emit_image(
                        &self.config.root,
                        "delete",
                        &d.to_string(),
                        &d.to_string(),
                    );
                }
                RemoveAction::Deleted(_) => {}
            }
        }
        Ok(actions)
    }

    fn remove_image_inner(&self, input: &str, force: bool) -> Result<Vec<RemoveAction>, Error> {
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
            if is_single_reference(&rec.tags, &rec.repo_digests) && !force && !users.is_empty() {
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
        if !users.is_empty() {
            // Forced past stopped containers: the image loses its names but stays (as
            // `<none>`) while a container runs on its layers.
            return Ok(actions);
        }
        match self.store.delete_image(&id) {
            Ok(()) => actions.push(RemoveAction::Deleted(id)),
            // A container was created from it since the check above: it wins, and the
            // image stays, untagged.
            Err(berth_store::Error::ImageInUse { .. }) => return Ok(actions),
            Err(e) => return Err(e.into()),
        }
        // Layers go now unless another process is adding content (then at the next rmi or
        // prune): rmi never waits for a pull or import to finish.
        if let Some(report) = self.store.try_gc()? {
            actions.extend(report.layers.into_iter().map(RemoveAction::Deleted));
        }
        Ok(actions)
    }

    /// Removes dangling images (no tag), or with `all` every image no container uses.
    pub fn prune_images(&self, all: bool) -> Result<PruneReport, Error> {
        self.prune_images_filtered(all, &[])
    }

    /// [`Engine::prune_images`] of the images that pass every filter, as Docker applies
    /// them: `until` keeps images created after the time, `label` keeps images without the
    /// label, `label!` keeps images with it, `dangling=false` means `all`.
    pub fn prune_images_filtered(
        &self,
        all: bool,
        filters: &[PruneFilter],
    ) -> Result<PruneReport, Error> {
        let all = all || filters.contains(&PruneFilter::Dangling(false));
        let labels_asked = filters
            .iter()
            .any(|f| matches!(f, PruneFilter::Label(..) | PruneFilter::NotLabel(..)));
        let mut report = PruneReport::default();
        for rec in self.store.list_images()? {
            if !all && !rec.tags.is_empty() {
                continue;
            }
            let until_ok = filters.iter().all(|f| match f {
                PruneFilter::Until(t) => rec.created_unix < *t,
                _ => true,
            });
            if !until_ok {
                continue;
            }
            if labels_asked {
                let cfg = self.image_config(&rec.id)?;
                let labels = cfg.pointer("/config/Labels").and_then(|l| l.as_object());
                let has = |k: &str, v: &Option<String>| {
                    labels
                        .and_then(|l| l.get(k))
                        .is_some_and(|have| v.as_ref().is_none_or(|v| have.as_str() == Some(v)))
                };
                let mut wanted = true;
                let mut excluded_by = 0;
                let mut not_labels = 0;
                for f in filters {
                    match f {
                        PruneFilter::Label(k, v) => wanted &= has(k, v),
                        PruneFilter::NotLabel(k, v) => {
                            not_labels += 1;
                            excluded_by += usize::from(has(k, v));
                        }
                        _ => {}
                    }
                }
                // Docker: every `label` must match; the image is kept when it matches every
                // `label!`.
                if !wanted || (not_labels > 0 && excluded_by == not_labels) {
                    continue;
                }
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
            match self.store.delete_image(&rec.id) {
                Ok(()) => report.actions.push(RemoveAction::Deleted(rec.id)),
                // A container was created from it meanwhile: it stays.
                Err(berth_store::Error::ImageInUse { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let gc = self.store.gc()?;
        let freed = gc.total_bytes();
        report
            .actions
            .extend(gc.layers.into_iter().map(RemoveAction::Deleted));
        // What was really freed: snapshots, blobs (those of deleted images and orphans of
        // failed operations) and dead processes' staging.
        report.reclaimed = freed;
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
        crate::events::emit_image(&self.config.root, "tag", &id.to_string(), &r.to_string());
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_and_its_repository_digest_are_one_reference() {
        let tags = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let digest = "localhost:5000/app@sha256:".to_owned() + &"a".repeat(64);
        assert!(is_single_reference(&tags(&["localhost:5000/app:1"]), &[]));
        assert!(is_single_reference(
            &tags(&["localhost:5000/app:1"]),
            std::slice::from_ref(&digest)
        ));
        assert!(!is_single_reference(
            &tags(&["localhost:5000/app:1", "localhost:5000/app:2"]),
            std::slice::from_ref(&digest)
        ));
        assert!(!is_single_reference(
            &tags(&["localhost:5000/app:1", "localhost:5000/other:1"]),
            &[]
        ));
    }

    #[test]
    fn prune_filters_parse_as_docker() {
        let now = 1_700_000_000;
        assert_eq!(
            PruneFilter::parse("until=24h", now).unwrap(),
            PruneFilter::Until(now - 86_400)
        );
        assert_eq!(
            PruneFilter::parse("until=1h30m", now).unwrap(),
            PruneFilter::Until(now - 5_400)
        );
        assert_eq!(
            PruneFilter::parse("until=1600000000", now).unwrap(),
            PruneFilter::Until(1_600_000_000)
        );
        assert_eq!(
            PruneFilter::parse("until=2020-09-13T12:26:40Z", now).unwrap(),
            PruneFilter::Until(1_600_000_000)
        );
        assert_eq!(
            PruneFilter::parse("until=2020-09-13", now).unwrap(),
            PruneFilter::Until(1_599_955_200)
        );
        assert_eq!(
            PruneFilter::parse("until=2020-09-13T12:26:40", now).unwrap(),
            PruneFilter::Until(1_600_000_000)
        );
        assert_eq!(
            PruneFilter::parse("label=a=b", now).unwrap(),
            PruneFilter::Label("a".into(), Some("b".into()))
        );
        assert_eq!(
            PruneFilter::parse("label!=a", now).unwrap(),
            PruneFilter::NotLabel("a".into(), None)
        );
        assert_eq!(
            PruneFilter::parse("dangling=false", now).unwrap(),
            PruneFilter::Dangling(false)
        );
        for bad in [
            "until=soon",
            "until=",
            "bogus=1",
            "label=",
            "dangling=maybe",
            "until",
        ] {
            assert!(PruneFilter::parse(bad, now).is_err(), "{bad}");
        }
    }
}
