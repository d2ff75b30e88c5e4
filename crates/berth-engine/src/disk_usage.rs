//! `system df -v`: the disk use of each image and each build cache entry (the containers'
//! part is [`crate::container::Lifecycle::rw_size`]).

use berth_oci::Digest;

use crate::{Engine, Error};

/// One image's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageUsage {
    /// The image ID.
    pub id: Digest,
    /// Its first tag, familiar (`busybox:latest`), if any.
    pub tag: Option<String>,
    /// Unix seconds of its `created` (0 when unknown).
    pub created_unix: i64,
    /// Unpacked bytes of all its layers.
    pub size: u64,
    /// Bytes of its layers that other images use too.
    pub shared_size: u64,
    /// Containers made from it.
    pub containers: usize,
}

/// One build cache entry's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheUsage {
    /// The step key (`sha256:<hex>`).
    pub id: String,
    /// Size of the layer blob it names.
    pub size: u64,
    /// When the step first ran (Unix seconds).
    pub created_unix: i64,
    /// When a build last used it (Unix seconds).
    pub last_used: i64,
    /// Whether an image uses its layer too.
    pub shared: bool,
}

impl Engine {
    /// Every image with its shared and unique sizes, oldest first as Docker lists them.
    pub fn image_usage(&self) -> Result<Vec<ImageUsage>, Error> {
        let mut out = Vec::new();
        for rec in self.store.list_images()? {
            let mut size = 0;
            let mut shared_size = 0;
            for chain in &rec.layers {
                if let Some(l) = self.store.layer(chain)? {
                    size += l.size;
                    if l.refcount > 1 {
                        shared_size += l.size;
                    }
                }
            }
            let containers = self
                .store
                .image_users(&rec.id)?
                .iter()
                .filter(|u| u.contains(" container "))
                .count();
            out.push(ImageUsage {
                id: rec.id.clone(),
                tag: rec.tags.first().map(|t| crate::images::familiar(t)),
                created_unix: rec.created_unix,
                size,
                shared_size,
                containers,
            });
        }
        out.sort_by_key(|i| std::cmp::Reverse(i.created_unix));
        Ok(out)
    }

    /// Every build cache entry, most recently used first.
    pub fn build_cache_usage(&self) -> Result<Vec<CacheUsage>, Error> {
        let rows = self.store.with_conn(|c| {
            let mut stmt = c.prepare(
                "SELECT b.key, b.blob_size, b.created, b.last_used, \
                 EXISTS (SELECT 1 FROM layers l WHERE l.diff_id = b.diff_id) \
                 FROM build_cache b ORDER BY b.last_used DESC, b.key",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(CacheUsage {
                    id: r.get(0)?,
                    size: r.get::<_, i64>(1)?.max(0) as u64,
                    created_unix: crate::images::parse_rfc3339(&r.get::<_, String>(2)?),
                    last_used: r.get(3)?,
                    shared: r.get(4)?,
                })
            })?;
            rows.collect::<Result<Vec<_>, _>>()
        })?;
        Ok(rows)
    }
}

/// The volumes' line of `system df`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VolumeTotals {
    /// Number of volumes.
    pub count: usize,
    /// Volumes that at least one container uses.
    pub active: usize,
    /// Bytes of all their data.
    pub size: u64,
    /// Bytes of the unused ones.
    pub reclaimable: u64,
}

impl Engine {
    /// The volumes' count, active count, size and reclaimable size.
    pub fn volume_totals(&self) -> Result<VolumeTotals, Error> {
        let mut t = VolumeTotals::default();
        for v in self.volume_usage()? {
            t.count += 1;
            t.size += v.size;
            if v.links > 0 {
                t.active += 1;
            } else {
                t.reclaimable += v.size;
            }
        }
        Ok(t)
    }
}
