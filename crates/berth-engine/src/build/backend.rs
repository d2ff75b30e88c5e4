//! The builder's view of the store: base images, layers, root file system views, cache
//! mounts and the build cache table, behind [`berth_build::exec::BuildBackend`].

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use berth_build::cache::CacheEntry;
use berth_build::exec::{BackendError, BaseImage, BuildBackend, LayerRef, RootfsView};
use berth_build::imageconfig::ImageConfig;
use berth_oci::Digest;
use berth_store::{chain_id, BuildCacheRecord, LayerRecord};

use crate::{Engine, EngineConfig};

/// The store-backed backend. It opens its own engine so that build threads can share it
/// behind a lock (the store holds one database connection).
pub struct StoreBackend {
    engine: Mutex<Engine>,
    root: PathBuf,
    /// `ROOT/tmp/build-*`: this build's scratch directory (layer tars, views, contexts),
    /// owned by this process's lock and removed when the backend is dropped; after a crash
    /// the next command sweeps it (see `berth_store::staging`).
    scratch: berth_store::Staging,
    /// `--pull`: whether a missing base image may be pulled.
    pull: crate::registry::PullPolicy,
}

/// A merged view in a temporary directory, removed when dropped.
struct TmpView(tempfile::TempDir);

impl RootfsView for TmpView {
    fn path(&self) -> &Path {
        self.0.path()
    }
}

fn failed(
    what: impl Into<String>,
    e: impl std::error::Error + Send + Sync + 'static,
) -> BackendError {
    BackendError::failed(what, e)
}

/// Chain IDs of `layers`, bottom first.
pub(crate) fn chain_ids(layers: &[LayerRef]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(layers.len());
    for l in layers {
        let c = chain_id(out.last(), &l.diff_id);
        out.push(c);
    }
    out
}

pub(crate) fn layer_ref(r: &LayerRecord) -> LayerRef {
    LayerRef {
        diff_id: r.diff_id.clone(),
        digest: r.blob_digest.clone(),
        size: r.blob_size,
        media_type: r.media_type.clone(),
    }
}

impl StoreBackend {
    /// A backend on the store at `config.root`.
    pub fn open(config: &EngineConfig) -> Result<Self, crate::Error> {
        let engine = Engine::open(config.clone())?;
        let tmp = config.root.join("tmp");
        let scratch = berth_store::Staging::new_dir_in(&tmp, "build")?;
        Ok(StoreBackend {
            engine: Mutex::new(engine),
            root: config.root.clone(),
            scratch,
            pull: crate::registry::PullPolicy::Missing,
        })
    }

    /// The backend with build's `--pull` policy.
    pub fn with_pull_policy(mut self, pull: crate::registry::PullPolicy) -> Self {
        self.pull = pull;
        self
    }

    fn with<T>(&self, f: impl FnOnce(&Engine) -> T) -> T {
        let guard = self.engine.lock().unwrap_or_else(|e| e.into_inner());
        f(&guard)
    }

    /// The stored records of `layers`.
    pub fn records(&self, layers: &[LayerRef]) -> Result<Vec<LayerRecord>, BackendError> {
        let chains = chain_ids(layers);
        self.with(|e| {
            chains
                .iter()
                .map(|c| {
                    e.store()
                        .layer(c)
                        .map_err(|err| failed("reading the layer table", err))?
                        .ok_or_else(|| BackendError::NotFound {
                            what: format!("layer {c}"),
                        })
                })
                .collect()
        })
    }

    /// Stores an image made of `config` and `layers` and points `names` at it.
    pub fn commit_image(
        &self,
        config: &[u8],
        layers: &[LayerRef],
        created: &str,
        names: &[String],
    ) -> Result<Digest, crate::Error> {
        let id = Digest::of(config);
        // A rebuild that changed nothing: the image exists and every tag points at it
        // already, so nothing is written (no blob, no transaction, no fsync).
        let unchanged = self.with(|e| {
            matches!(e.store().image(&id), Ok(Some(_)))
                && names
                    .iter()
                    .all(|n| matches!(e.store().image_by_tag(n), Ok(Some(t)) if t == id))
        });
        if unchanged {
            return Ok(id);
        }
        let records = self
            .records(layers)
            .map_err(crate::build::BuildFailure::Backend)?;
        self.with(|e| e.store_image(config, &records, created, names))
    }
}

/// `nosuchimg` as `docker.io/library/nosuchimg:latest` (as given when it does not parse).
fn qualified(reference: &str) -> String {
    berth_oci::ImageRef::parse(reference)
        .map(|r| r.to_string())
        .unwrap_or_else(|_| reference.to_owned())
}

impl BuildBackend for StoreBackend {
    fn base_image(&self, reference: &str, pull: bool) -> Result<BaseImage, BackendError> {
        self.with(|e| {
            let local = e.resolve_image(reference);
            let missing = matches!(&local, Err(err) if err.kind() == crate::ErrorKind::NotFound);
            // Pull with --pull, or when the image is missing unless --pull=never, as Docker
            // does (also for Docker Hub, whose host `berth.toml` may name: `docker-hub`).
            let may_pull = self.pull != crate::registry::PullPolicy::Never;
            let local = if pull || (missing && may_pull) {
                let req = crate::registry::PullRequest {
                    reference: reference.to_owned(),
                    platform: None,
                    tls_verify: None,
                    ..Default::default()
                };
                match e.pull(&req, &|_| {}) {
                    Ok(report) => Ok(report.id),
                    Err(err) if missing => {
                        return Err(BackendError::ImageNotFound {
                            reference: qualified(reference),
                            why: format!("could not be pulled: {err}"),
                        })
                    }
                    Err(err) => return Err(failed(format!("pulling {reference}"), err)),
                }
            } else {
                local
            };
            let id = local.map_err(|err| match err.kind() {
                crate::ErrorKind::NotFound => BackendError::ImageNotFound {
                    reference: qualified(reference),
                    why: "not pulled (--pull=never)".to_owned(),
                },
                _ => failed(format!("resolving image {reference:?}"), err),
            })?;
            let bytes = e
                .store()
                .blobs()
                .read_blob(&id)
                .map_err(|err| failed(format!("reading the config of {reference}"), err))?;
            let config = ImageConfig::from_bytes(&bytes)
                .map_err(|err| failed(format!("parsing the config of {reference}"), err))?;
            let layers = e
                .store()
                .image_layers(&id)
                .map_err(|err| failed(format!("reading the layers of {reference}"), err))?
                .iter()
                .map(layer_ref)
                .collect();
            Ok(BaseImage { id, config, layers })
        })
    }

    fn tmp_dir(&self) -> PathBuf {
        self.scratch.path().to_path_buf()
    }

    fn put_layer(&self, parents: &[LayerRef], tar: &Path) -> Result<LayerRef, BackendError> {
        let parent = chain_ids(parents).pop();
        let f = File::open(tar).map_err(|e| failed(format!("opening {}", tar.display()), e))?;
        self.with(|e| {
            let _lease = e
                .store()
                .content_lease()
                .map_err(|err| failed("taking a content lease", err))?;
            let (rec, _) = e
                .ingest_layer(
                    std::io::BufReader::with_capacity(1 << 20, f),
                    parent.as_ref(),
                    "build step",
                )
                .map_err(|err| failed("storing the layer", err))?;
            Ok(layer_ref(&rec))
        })
    }

    fn has_layer(&self, parents: &[LayerRef], layer: &LayerRef) -> bool {
        let mut all = parents.to_vec();
        all.push(layer.clone());
        let Some(c) = chain_ids(&all).pop() else {
            return false;
        };
        self.with(|e| {
            matches!(e.store().layer(&c), Ok(Some(r)) if r.diff_id == layer.diff_id)
                && e.store().layer_dir(&c).is_dir()
        })
    }

    fn rootfs(&self, layers: &[LayerRef]) -> Result<Box<dyn RootfsView>, BackendError> {
        let dirs: Vec<PathBuf> = self.with(|e| {
            chain_ids(layers)
                .iter()
                .map(|c| e.store().layer_dir(c))
                .collect()
        });
        let tmp = self.tmp_dir();
        fs::create_dir_all(&tmp).map_err(|e| failed(format!("creating {}", tmp.display()), e))?;
        let dir = tempfile::Builder::new()
            .prefix("build-view-")
            .tempdir_in(&tmp)
            .map_err(|e| failed("creating a view directory", e))?;
        let refs: Vec<&Path> = dirs.iter().map(|p| p.as_path()).collect();
        berth_build::view::merge_layers(&refs, dir.path())
            .map_err(|e| failed("merging layers for reading", e))?;
        Ok(Box::new(TmpView(dir)))
    }

    fn path_exists(&self, layers: &[LayerRef], path: &str) -> bool {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let rel = path.trim_start_matches('/');
        let dirs: Vec<PathBuf> = self.with(|e| {
            chain_ids(layers)
                .iter()
                .rev()
                .map(|c| e.store().layer_dir(c))
                .collect()
        });
        for d in dirs {
            // Looked up inside the layer: an image's symlink (`app -> /root`) must not
            // tell whether a host path exists.
            let found = berth_oci::in_root::open_root(&d)
                .and_then(|root| berth_oci::in_root::open_in_root_nofollow(&root, rel.as_ref()))
                .and_then(|f| fs::File::from(f).metadata());
            if let Ok(md) = found {
                // A 0/0 character device is a whiteout: deleted above the lower layers.
                return !(md.file_type().is_char_device() && md.rdev() == 0);
            }
        }
        false
    }

    fn digest_memo_path(&self) -> Option<PathBuf> {
        Some(self.root.join("build-digests.json"))
    }

    fn cache_mount_dir(&self, id: &str) -> Result<PathBuf, BackendError> {
        let dir = self
            .root
            .join("build-cache-mounts")
            .join(Digest::of(id.as_bytes()).hex());
        fs::create_dir_all(&dir).map_err(|e| failed(format!("creating {}", dir.display()), e))?;
        Ok(dir)
    }

    fn cache_get(&self, key: &Digest) -> Result<Option<CacheEntry>, BackendError> {
        let rec = self.with(|e| e.store().build_cache_get(&key.to_string()));
        let Some(rec) = rec.map_err(|e| failed("reading the build cache", e))? else {
            return Ok(None);
        };
        let (Ok(diff_id), Ok(digest)) = (rec.diff_id.parse(), rec.blob_digest.parse()) else {
            return Ok(None);
        };
        Ok(Some(CacheEntry {
            layer: LayerRef {
                diff_id,
                digest,
                size: rec.blob_size,
                media_type: rec.media_type,
            },
            created: rec.created,
        }))
    }

    fn cache_put(&self, key: &Digest, entry: &CacheEntry) -> Result<(), BackendError> {
        let rec = BuildCacheRecord {
            key: key.to_string(),
            diff_id: entry.layer.diff_id.to_string(),
            blob_digest: entry.layer.digest.to_string(),
            blob_size: entry.layer.size,
            media_type: entry.layer.media_type.clone(),
            created: entry.created.clone(),
        };
        self.with(|e| e.store().build_cache_put(&rec))
            .map_err(|e| failed("writing the build cache", e))
    }
}
