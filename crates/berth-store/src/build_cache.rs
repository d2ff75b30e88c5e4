//! The build cache table: which layer a build step produced, by the step's key.
//!
//! The keys and their meaning belong to `berth-build`; the store keeps rows and forgets
//! them on `builder prune`. A row names a layer by digests only: a layer that garbage
//! collection removed makes the row useless, and the builder treats it as a miss.

use rusqlite::{params, OptionalExtension};

use crate::{Result, Store};

/// One cached step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildCacheRecord {
    /// The step key, `sha256:<hex>`.
    pub key: String,
    /// The layer's diff ID.
    pub diff_id: String,
    /// The layer blob's digest.
    pub blob_digest: String,
    /// The blob's size.
    pub blob_size: u64,
    /// The blob's media type.
    pub media_type: String,
    /// When the step first ran (RFC 3339).
    pub created: String,
}

/// What `builder prune` removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BuildCachePrune {
    /// Rows removed.
    pub entries: u64,
    /// Sum of the blob sizes they named.
    pub bytes: u64,
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Store {
    /// The cached step `key`, if any. A read only: a fully cached build writes nothing.
    pub fn build_cache_get(&self, key: &str) -> Result<Option<BuildCacheRecord>> {
        let row = self.with_conn(|c| {
            c.query_row(
                "SELECT key, diff_id, blob_digest, blob_size, media_type, created \
                 FROM build_cache WHERE key = ?1",
                [key],
                |r| {
                    Ok(BuildCacheRecord {
                        key: r.get(0)?,
                        diff_id: r.get(1)?,
                        blob_digest: r.get(2)?,
                        blob_size: r.get::<_, i64>(3)? as u64,
                        media_type: r.get(4)?,
                        created: r.get(5)?,
                    })
                },
            )
            .optional()
        })?;
        Ok(row)
    }

    /// Records (or replaces) a cached step.
    pub fn build_cache_put(&self, rec: &BuildCacheRecord) -> Result<()> {
        self.with_tx(|tx| {
            tx.execute(
                "INSERT OR REPLACE INTO build_cache \
                 (key, diff_id, blob_digest, blob_size, media_type, created, last_used) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    rec.key,
                    rec.diff_id,
                    rec.blob_digest,
                    rec.blob_size as i64,
                    rec.media_type,
                    rec.created,
                    now_secs()
                ],
            )?;
            Ok(())
        })
    }

    /// Removes every cached step.
    pub fn build_cache_prune(&self) -> Result<BuildCachePrune> {
        self.with_tx(|tx| {
            let (entries, bytes): (i64, i64) = tx.query_row(
                "SELECT COUNT(*), COALESCE(SUM(blob_size), 0) FROM build_cache",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            tx.execute("DELETE FROM build_cache", [])?;
            Ok(BuildCachePrune {
                entries: entries as u64,
                bytes: bytes as u64,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_prune() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open(dir.path()).expect("open");
        assert_eq!(store.build_cache_get("sha256:k").expect("get"), None);
        let rec = BuildCacheRecord {
            key: "sha256:k".into(),
            diff_id: "sha256:d".into(),
            blob_digest: "sha256:b".into(),
            blob_size: 10,
            media_type: "application/vnd.oci.image.layer.v1.tar".into(),
            created: "2024-01-01T00:00:00Z".into(),
        };
        store.build_cache_put(&rec).expect("put");
        store.build_cache_put(&rec).expect("put again");
        assert_eq!(store.build_cache_get("sha256:k").expect("get"), Some(rec));
        let p = store.build_cache_prune().expect("prune");
        assert_eq!(
            p,
            BuildCachePrune {
                entries: 1,
                bytes: 10
            }
        );
        assert_eq!(store.build_cache_get("sha256:k").expect("get"), None);
    }
}
