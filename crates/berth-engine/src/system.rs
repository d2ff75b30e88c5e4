//! `system prune` and `container prune --filter`: what is unused goes, in Docker's order
//! (containers, networks, volumes, images, build cache).

use crate::container::{ContainerStatus, Lifecycle};
use crate::{Engine, Error};

/// A `--filter` of `container prune` / `system prune`: `until`, `label`, `label!`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneFilters {
    /// `until=TIME`: only what was created before this (unix nanoseconds).
    pub until: Option<i64>,
    /// `label=KEY[=VALUE]`: only what carries every such label.
    pub labels: Vec<(String, Option<String>)>,
    /// `label!=KEY[=VALUE]`: only what carries none of these.
    pub not_labels: Vec<(String, Option<String>)>,
    /// The raw `key=value` strings (handed on to the image and volume prunes).
    pub raw: Vec<String>,
}

impl PruneFilters {
    /// Parses `--filter` values; `now` is unix nanoseconds (for `until=10m`).
    pub fn parse(values: &[String], now: i64) -> Result<PruneFilters, Error> {
        let mut f = PruneFilters {
            raw: values.to_vec(),
            ..Default::default()
        };
        for v in values {
            let Some((k, val)) = v.split_once('=') else {
                return Err(Error::InvalidArgument(format!(
                    "bad format of filter (expected name=value): {v}"
                )));
            };
            let label = |s: &str| match s.split_once('=') {
                Some((k, v)) => (k.to_string(), Some(v.to_string())),
                None => (s.to_string(), None),
            };
            match k {
                "until" => {
                    f.until = Some(
                        crate::events::time::parse_timestamp(val, now)
                            .map_err(|e| Error::InvalidArgument(e.to_string()))?,
                    )
                }
                "label" => f.labels.push(label(val)),
                "label!" => f.not_labels.push(label(val)),
                _ => return Err(Error::InvalidArgument(format!("Invalid filter '{k}'"))),
            }
        }
        Ok(f)
    }

    /// Whether something created at `created` (unix nanoseconds) with `labels` passes.
    pub fn admits(
        &self,
        created: i64,
        labels: &std::collections::BTreeMap<String, String>,
    ) -> bool {
        let has = |(k, v): &(String, Option<String>)| {
            labels
                .get(k)
                .is_some_and(|have| v.as_ref().is_none_or(|v| v == have))
        };
        self.until.is_none_or(|u| created < u)
            && self.labels.iter().all(has)
            && !self.not_labels.iter().any(has)
    }
}

/// What `container prune` removed.
#[derive(Debug, Clone, Default)]
pub struct ContainerPrune {
    /// Full IDs.
    pub removed: Vec<String>,
    /// Bytes of their rw layers.
    pub reclaimed: u64,
}

impl Lifecycle {
    /// Removes the stopped containers that pass `filters` (and finishes removals whose
    /// remover died, as [`Lifecycle::prune`] does).
    pub fn prune_containers(
        &self,
        filters: &PruneFilters,
    ) -> crate::container::Result<ContainerPrune> {
        if filters.until.is_none() && filters.labels.is_empty() && filters.not_labels.is_empty() {
            let sizes: Vec<(String, u64)> = self
                .all()?
                .iter()
                .filter(|c| !c.status.is_active())
                .map(|c| (c.id().to_string(), self.rw_size(c)))
                .collect();
            let removed = self.prune()?;
            let reclaimed = sizes
                .iter()
                .filter(|(id, _)| removed.contains(id))
                .map(|(_, s)| s)
                .sum();
            return Ok(ContainerPrune { removed, reclaimed });
        }
        let mut out = ContainerPrune::default();
        for c in self.all()? {
            if !matches!(
                c.status,
                ContainerStatus::Exited | ContainerStatus::Created | ContainerStatus::Dead
            ) || !filters.admits(c.record.created, &c.spec.config.labels)
            {
                continue;
            }
            let size = self.rw_size(&c);
            self.remove_container(&c, false, false)?;
            out.removed.push(c.id().to_string());
            out.reclaimed += size;
        }
        Ok(out)
    }
}

/// `system prune`'s options.
#[derive(Debug, Clone, Default)]
pub struct SystemPruneRequest {
    /// `-a`: every unused image, not only dangling ones.
    pub all: bool,
    /// `--volumes`: unused anonymous volumes too.
    pub volumes: bool,
    /// `--filter`s (`until`, `label`, `label!`).
    pub filters: PruneFilters,
}

/// What `system prune` removed.
#[derive(Debug, Clone, Default)]
pub struct SystemPruneReport {
    /// Containers.
    pub containers: ContainerPrune,
    /// Network names.
    pub networks: Vec<String>,
    /// Volume names.
    pub volumes: Vec<String>,
    /// Untagged and deleted images.
    pub images: crate::images::PruneReport,
    /// Build cache entries removed.
    pub build_cache_entries: u64,
    /// Bytes freed in all.
    pub reclaimed: u64,
}

impl Engine {
    /// `system prune`: stopped containers, unused networks, (with `volumes`) unused
    /// anonymous volumes, dangling (with `all`: unused) images, and the build cache.
    pub fn system_prune(&self, req: &SystemPruneRequest) -> Result<SystemPruneReport, Error> {
        let mut report = SystemPruneReport::default();
        let lc = Lifecycle::open(&self.config.root, &self.config.runroot)?;
        report.containers = lc.prune_containers(&req.filters)?;
        report.reclaimed += report.containers.reclaimed;
        report.networks = self.networks().network_prune()?;
        if req.volumes {
            let vf = crate::volume::VolumeFilters::parse(&req.filters.raw)?;
            let v = self.prune_volumes(&vf, false)?;
            report.reclaimed += v.space_reclaimed;
            report.volumes = v.removed;
        }
        let now_secs = crate::container::now_nanos() / 1_000_000_000;
        let image_filters = req
            .filters
            .raw
            .iter()
            .map(|f| crate::images::PruneFilter::parse(f, now_secs))
            .collect::<Result<Vec<_>, _>>()?;
        report.images = self.prune_images_filtered(req.all, &image_filters)?;
        report.reclaimed += report.images.reclaimed;
        if req.filters.raw.is_empty() {
            let b = self.builder_prune()?;
            report.build_cache_entries = b.entries;
            report.reclaimed += b.bytes;
        }
        Ok(report)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn filters() {
        let now = 1_700_000_000_000_000_000;
        let f = PruneFilters::parse(
            &["until=10m".into(), "label=a".into(), "label!=b=1".into()],
            now,
        )
        .unwrap();
        let mut l = std::collections::BTreeMap::new();
        l.insert("a".to_string(), "x".to_string());
        assert!(f.admits(now - 3_600_000_000_000, &l));
        assert!(!f.admits(now, &l));
        l.insert("b".into(), "1".into());
        assert!(!f.admits(now - 3_600_000_000_000, &l));
        assert!(PruneFilters::parse(&["bogus=1".into()], now).is_err());
    }
}
