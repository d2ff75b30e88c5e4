//! `pull`, `push`, `login`, `logout`: the registry client pointed at the local store.
//!
//! The client writes pulled blobs through [`StoreSink`] (verified files renamed into the
//! store's blob directory) and reads pushed blobs through [`StoreSource`]; this module then
//! unpacks pulled layers into snapshots and records the image, or finds the local image a
//! push names. Credentials live in a Docker-compatible `config.json`.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use berth_oci::{manifest, Digest, ImageRef};
use berth_registry::client::{
    self, BlobSink, BlobSource, BoxError, ClientError, CredentialStore, Credentials,
    EndpointOptions, ProgressFn, PullOptions, PushOptions, Session,
};
use berth_registry::name::{NameError, RepoName};
use berth_registry::protocol::Descriptor;
use berth_store::{BlobReader, Ingester};

pub use berth_registry::client::{Progress, ProgressFn as TransferProgressFn};
pub use berth_registry::server::{
    AccessRule, AuthConfig, GcOptions, GcReport, ServerConfig, ServerConfigFile, TlsMode,
};

/// Runs a registry server in the foreground until SIGINT/SIGTERM (`berth registry serve`);
/// `on_ready` gets the bound address.
pub fn serve_registry(
    config: &ServerConfig,
    on_ready: impl FnOnce(std::net::SocketAddr),
) -> Result<(), Error> {
    berth_registry::server::serve(config, on_ready).map_err(RegistryError::from)?;
    Ok(())
}

/// Mark-and-sweep garbage collection of a registry's storage (`berth registry gc`).
pub fn gc_registry(storage: &Path, opts: &GcOptions) -> Result<GcReport, Error> {
    let s = berth_registry::server::FsStorage::open(storage).map_err(RegistryError::from)?;
    Ok(berth_registry::server::gc(&s, opts).map_err(RegistryError::from)?)
}

use crate::{Engine, Error, ErrorKind};

/// Failures of the registry use cases.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// Talking to the registry failed.
    #[error("{0}")]
    Client(#[from] ClientError),
    /// The repository name is not valid for a registry.
    #[error(transparent)]
    Name(#[from] NameError),
    /// `push` names a reference no local image has.
    #[error("An image does not exist locally with the tag: {0}")]
    NotTaggedLocally(String),
    /// The pulled config does not list as many layers as the manifest.
    #[error("{reference}: the config lists {config} layers, the manifest {manifest}")]
    LayerCount {
        /// The reference pulled.
        reference: String,
        /// Diff IDs in the config.
        config: usize,
        /// Layers in the manifest.
        manifest: usize,
    },
    /// `berth.toml` could not be read.
    #[error("{path}: {reason}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The registry server could not start or failed.
    #[error(transparent)]
    Serve(#[from] berth_registry::server::ServeError),
    /// The registry server's storage failed.
    #[error(transparent)]
    Storage(#[from] berth_registry::server::StorageError),
    /// Moving a verified blob into the store failed.
    #[error("storing blob {digest}: {source}")]
    Ingest {
        /// The blob.
        digest: Digest,
        /// The OS error.
        source: std::io::Error,
    },
}

impl RegistryError {
    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        use berth_registry::ErrorKind as K;
        match self {
            RegistryError::Client(e) => match e.kind() {
                K::NotFound => ErrorKind::NotFound,
                K::InvalidArgument | K::Unauthorized | K::Corrupt => ErrorKind::InvalidArgument,
                K::Unavailable | K::Internal => ErrorKind::Internal,
            },
            RegistryError::Name(_) | RegistryError::Config { .. } => ErrorKind::InvalidArgument,
            RegistryError::NotTaggedLocally(_) => ErrorKind::NotFound,
            RegistryError::LayerCount { .. } => ErrorKind::InvalidArgument,
            RegistryError::Ingest { .. } | RegistryError::Storage(_) => ErrorKind::Internal,
            RegistryError::Serve(e) => match e.kind() {
                berth_registry::ErrorKind::InvalidArgument => ErrorKind::InvalidArgument,
                _ => ErrorKind::Internal,
            },
        }
    }
}

/// What to pull.
#[derive(Debug, Clone, Default)]
pub struct PullRequest {
    /// The reference as typed (`busybox`, `localhost:5000/a/b:1`, `x@sha256:...`).
    pub reference: String,
    /// `--platform`.
    pub platform: Option<String>,
    /// `--all-platforms`: keep every platform of an index (blobs and manifests; only the
    /// chosen platform is unpacked), so that `push` sends the whole index on.
    pub all_platforms: bool,
    /// `--tls-verify`: `Some(false)` allows plain HTTP and unverified certificates.
    pub tls_verify: Option<bool>,
}

/// What a pull did.
#[derive(Debug, Clone)]
pub struct PullReport {
    /// The reference, normalized (`docker.io/library/busybox:latest`).
    pub reference: String,
    /// The reference as Docker shows it (`busybox:latest`).
    pub familiar: String,
    /// Digest of what the reference named on the registry.
    pub digest: Digest,
    /// The image ID (config digest).
    pub id: Digest,
    /// Whether the tag already pointed at this image.
    pub up_to_date: bool,
}

/// What to push.
#[derive(Debug, Clone, Default)]
pub struct PushRequest {
    /// A local tag naming a registry (`localhost:5000/a/b:1`).
    pub reference: String,
    /// `--tls-verify`.
    pub tls_verify: Option<bool>,
    /// Keep uncompressed layers uncompressed (default: gzip them, as Docker does).
    pub no_compress: bool,
    /// `--compression-level` (gzip 1..9; `None`: the client's default).
    pub compression_level: Option<u32>,
}

/// What a push did.
#[derive(Debug, Clone)]
pub struct PushReport {
    /// The tag pushed (`latest`), or the digest when none.
    pub tag: String,
    /// Digest of the manifest on the registry.
    pub digest: Digest,
    /// Its size.
    pub size: u64,
}

/// What to log in with.
#[derive(Clone, Default)]
pub struct LoginRequest {
    /// Registry host; Docker Hub when empty.
    pub server: Option<String>,
    /// User name.
    pub username: String,
    /// Password or token.
    pub password: String,
    /// `--tls-verify`.
    pub tls_verify: Option<bool>,
}

impl std::fmt::Debug for LoginRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginRequest")
            .field("server", &self.server)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// `--pull` of `run`, `create` and `build`: when the image is pulled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PullPolicy {
    /// Pull before every use, even when the image is present.
    Always,
    /// Pull only when the image is not in the store (Docker's default).
    #[default]
    Missing,
    /// Never pull: a missing image is an error.
    Never,
}

/// A `--pull` value that is none of the policies.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid pull option: '{0}': must be one of \"always\", \"missing\" or \"never\"")]
pub struct BadPullPolicy(pub String);

impl std::str::FromStr for PullPolicy {
    type Err = BadPullPolicy;

    /// Docker's three words; `true`/`false` too, which `build --pull[=BOOL]` takes.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "always" | "true" => Ok(PullPolicy::Always),
            "missing" | "false" => Ok(PullPolicy::Missing),
            "never" => Ok(PullPolicy::Never),
            _ => Err(BadPullPolicy(s.to_owned())),
        }
    }
}

/// The host serving a reference's domain (`docker.io` is served by `registry-1.docker.io`).
pub fn registry_host(domain: &str) -> &str {
    match domain {
        "docker.io" | "index.docker.io" => "registry-1.docker.io",
        d => d,
    }
}

/// Hosts listed under `insecure-registries` in `berth.toml` (top level or `[registry]`),
/// read from `ROOT/berth.toml` and `ROOT/../berth.toml`.
pub fn insecure_registries(root: &Path) -> Result<Vec<String>, RegistryError> {
    Ok(RegistrySettings::read(root)?.insecure)
}

/// The environment variable that names the host serving Docker Hub's images, before
/// `berth.toml`'s `[registry] docker-hub`.
pub const DOCKER_HUB_ENV: &str = "BERTH_DOCKER_HUB";

/// The registry settings of `berth.toml` (top level or `[registry]`), from
/// `ROOT/berth.toml` and `ROOT/../berth.toml`, the first file's values first.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RegistrySettings {
    /// `insecure-registries`: hosts spoken to over plain HTTP or without verifying TLS.
    pub insecure: Vec<String>,
    /// `docker-hub`: the host (`HOST[:PORT]`) that serves `docker.io` references instead
    /// of `registry-1.docker.io`: a site's pull-through cache, or a closed port on a
    /// machine that must never reach the internet (berth's own tests).
    pub docker_hub: Option<String>,
}

impl RegistrySettings {
    /// Reads both files; a missing file is no setting, a malformed one is an error.
    pub fn read(root: &Path) -> Result<Self, RegistryError> {
        let mut out = RegistrySettings::default();
        for path in [root.join("berth.toml"), root.join("../berth.toml")] {
            let text = match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    return Err(RegistryError::Config {
                        path,
                        reason: e.to_string(),
                    })
                }
            };
            let doc: toml::Value = toml::from_str(&text).map_err(|e| RegistryError::Config {
                path: path.clone(),
                reason: e.message().to_owned(),
            })?;
            let section = doc.get("registry");
            let lookup = |key: &str| {
                [doc.get(key), section.and_then(|r| r.get(key))]
                    .into_iter()
                    .flatten()
            };
            for list in lookup("insecure-registries") {
                let Some(arr) = list.as_array() else {
                    return Err(RegistryError::Config {
                        path,
                        reason: "insecure-registries must be a list of hosts".into(),
                    });
                };
                out.insecure
                    .extend(arr.iter().filter_map(|v| v.as_str()).map(str::to_owned));
            }
            for hub in lookup("docker-hub") {
                let Some(host) = hub.as_str().filter(|h| !h.is_empty() && !h.contains('/')) else {
                    return Err(RegistryError::Config {
                        path,
                        reason: "docker-hub must be a host such as \"mirror.example:5000\"".into(),
                    });
                };
                out.docker_hub.get_or_insert_with(|| host.to_owned());
            }
        }
        if let Ok(host) = std::env::var(DOCKER_HUB_ENV) {
            if !host.is_empty() {
                out.docker_hub = Some(host);
            }
        }
        Ok(out)
    }

    /// The host serving `domain`: `docker-hub` for Docker Hub when set, else
    /// [`registry_host`].
    pub fn serving_host(&self, domain: &str) -> String {
        match (registry_host(domain), &self.docker_hub) {
            ("registry-1.docker.io", Some(hub)) => hub.clone(),
            (host, _) => host.to_owned(),
        }
    }
}

/// A layer being unpacked while its blob downloads.
#[derive(Debug)]
struct Unpacking {
    staging: berth_store::Staging,
    handle: std::thread::JoinHandle<Result<berth_oci::AppliedStream, berth_oci::LayerError>>,
    /// The client verified the download this unpacker was fed, every byte of it.
    verified: bool,
}

/// The local store as the client's sink: verified downloads are renamed into place, and
/// layers are unpacked into staging directories while they arrive.
#[derive(Debug)]
pub struct StoreSink {
    blobs: berth_store::BlobStore,
    unpacking: std::sync::Mutex<std::collections::HashMap<Digest, Unpacking>>,
    /// The partial downloads this process owns (`ROOT/tmp/pull-<hex>.partial`, one owner
    /// at a time across processes): released once the blob is stored, removed with the
    /// sink when the pull fails.
    partials: std::sync::Mutex<std::collections::HashMap<Digest, berth_store::Staging>>,
}

/// Feeds a byte stream from a download thread to an unpacking thread.
struct ChannelWriter(std::sync::mpsc::SyncSender<Vec<u8>>);

impl std::io::Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .send(buf.to_vec())
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "unpacker stopped"))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct ChannelReader {
    rx: std::sync::mpsc::Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    pos: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos >= self.chunk.len() {
            match self.rx.recv() {
                Ok(c) => {
                    self.chunk = c;
                    self.pos = 0;
                }
                // The sender is gone: the end of the stream (whole or cut; the digest the
                // unpacker computes tells which).
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.chunk.len() - self.pos);
        out[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Drop for StoreSink {
    fn drop(&mut self) {
        // Unpackers nobody took (layers the store had already): wait for them, so their
        // staging directories are removed after they stop writing.
        if let Ok(map) = self.unpacking.get_mut() {
            for (_, u) in map.drain() {
                let _ = u.handle.join();
                drop(u.staging);
            }
        }
    }
}

impl StoreSink {
    /// A sink over the store's blob directory.
    pub fn new(blobs: berth_store::BlobStore) -> StoreSink {
        StoreSink {
            blobs,
            unpacking: std::sync::Mutex::new(std::collections::HashMap::new()),
            partials: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    /// A fresh staging file `ROOT/tmp/pull-*` that is a hard link of the stored blob.
    fn link_stored(&self, digest: &Digest) -> Option<berth_store::Staging> {
        let (own, file) = berth_store::Staging::new_file_in(self.blobs.tmp_dir(), "pull").ok()?;
        drop(file);
        std::fs::remove_file(own.path()).ok()?;
        match std::fs::hard_link(self.blobs.path(digest), own.path()) {
            Ok(()) => Some(own),
            Err(e) => {
                log::debug!("linking {digest} to {}: {e}", own.path().display());
                None
            }
        }
    }

    /// The unpacking of a layer blob that was fed exactly the verified blob, if any (waits
    /// for it to finish); an unverified one is waited for and dropped.
    fn take_unpacked(
        &self,
        digest: &Digest,
    ) -> Option<(berth_store::Staging, berth_oci::AppliedStream)> {
        let u = self.unpacking.lock().ok()?.remove(digest)?;
        let result = u.handle.join().ok()?;
        match result {
            Ok(applied) if u.verified => Some((u.staging, applied)),
            _ => None,
        }
    }
}

impl BlobSink for StoreSink {
    fn has_blob(&self, digest: &Digest) -> bool {
        self.blobs.contains(digest)
    }

    fn partial_path(&self, digest: &Digest) -> PathBuf {
        let name = format!("pull-{}.partial", digest.hex());
        let fixed = self.blobs.tmp_dir().join(&name);
        if let Some(p) = self
            .partials
            .lock()
            .ok()
            .and_then(|held| held.get(digest).map(|s| s.path().to_owned()))
        {
            // A retry of this process's own download: resume it.
            return p;
        }
        // One download of a blob at a time on this store: a parallel pull of the same
        // blob waits here for the first to finish (or die: then its partial is resumed).
        let owned = match berth_store::Staging::named_in(self.blobs.tmp_dir(), &name) {
            Ok(owned) => owned,
            Err(e) => {
                // The download then goes on unlocked, as before the lock existed.
                log::warn!("{e}");
                return fixed;
            }
        };
        let owned = if self.blobs.contains(digest) {
            // Stored by the other pull while this one waited: the download finds the whole
            // blob in a partial file of its own (a second name of the stored one),
            // verifies it and downloads nothing. Not at the shared name: the pull that
            // stored it removes that name once more after storing.
            match self.link_stored(digest) {
                Some(own) => own,
                None => owned,
            }
        } else {
            owned
        };
        let path = owned.path().to_owned();
        if let Ok(mut held) = self.partials.lock() {
            held.insert(digest.clone(), owned);
        }
        path
    }

    fn tee(&self, desc: &Descriptor) -> Option<Box<dyn std::io::Write + Send>> {
        if !berth_oci::media::is_layer(&desc.media_type) {
            return None;
        }
        let staging = berth_store::Staging::new_dir_in(self.blobs.tmp_dir(), "layer").ok()?;
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(16);
        let target = staging.path().to_owned();
        let handle = std::thread::spawn(move || {
            let reader = ChannelReader {
                rx,
                chunk: Vec::new(),
                pos: 0,
            };
            // The download hashes the blob; only the decompressed stream is hashed here.
            berth_oci::apply_layer_stream(reader, &target, &berth_oci::ApplyOptions::default())
        });
        let mut map = self.unpacking.lock().ok()?;
        let unpacking = Unpacking {
            staging,
            handle,
            verified: false,
        };
        if let Some(old) = map.insert(desc.digest.clone(), unpacking) {
            // An earlier attempt's unpacker ends on its own (its stream was cut).
            drop(old);
        }
        Some(Box::new(ChannelWriter(tx)))
    }

    fn tee_verified(&self, desc: &Descriptor) {
        if let Ok(mut map) = self.unpacking.lock() {
            if let Some(u) = map.get_mut(&desc.digest) {
                u.verified = true;
            }
        }
    }

    fn ingest_file(&self, desc: &Descriptor, path: &Path) -> Result<(), BoxError> {
        // The client verified digest and size and fsynced the file; the rename is atomic
        // and the directory is fsynced, as the store's ingester does.
        let target = self.blobs.path(&desc.digest);
        std::fs::rename(path, &target).map_err(|source| RegistryError::Ingest {
            digest: desc.digest.clone(),
            source,
        })?;
        if let Some(dir) = target.parent() {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|source| RegistryError::Ingest {
                    digest: desc.digest.clone(),
                    source,
                })?;
        }
        // Stored: the partial's lock goes, and a pull waiting for it finds the blob.
        if let Ok(mut held) = self.partials.lock() {
            held.remove(&desc.digest);
        }
        Ok(())
    }
}

/// The local store as the client's source.
#[derive(Debug, Clone)]
pub struct StoreSource {
    blobs: berth_store::BlobStore,
}

impl StoreSource {
    fn memo_path(&self, uncompressed: &Digest) -> Option<PathBuf> {
        let root = self.blobs.tmp_dir().parent()?;
        Some(
            root.join("push-cache")
                .join(format!("{}.json", uncompressed.hex())),
        )
    }
}

impl BlobSource for StoreSource {
    fn open_blob(&self, digest: &Digest) -> Result<Box<dyn Read + Send>, BoxError> {
        Ok(Box::new(self.blobs.open_blob(digest)?))
    }

    fn blob_file(&self, digest: &Digest) -> Option<File> {
        File::open(self.blobs.path(digest)).ok()
    }

    fn compressed_form(&self, uncompressed: &Digest) -> Option<Descriptor> {
        let bytes = std::fs::read(self.memo_path(uncompressed)?).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    fn remember_compressed(&self, uncompressed: &Digest, compressed: &Descriptor) {
        // A memo only: losing it costs a recompression, so failures are ignored.
        let Some(path) = self.memo_path(uncompressed) else {
            return;
        };
        if let (Some(dir), Ok(json)) = (path.parent(), serde_json::to_vec(compressed)) {
            let tmp = dir.join(format!(".{}.{}", uncompressed.hex(), std::process::id()));
            let _ = std::fs::create_dir_all(dir)
                .and_then(|_| std::fs::write(&tmp, json))
                .and_then(|_| std::fs::rename(&tmp, &path));
        }
    }
}

impl Engine {
    /// A session with the registry serving `domain` (see [`RegistrySettings::serving_host`]).
    fn session(&self, domain: &str, tls_verify: Option<bool>) -> Result<Session, Error> {
        let settings = RegistrySettings::read(&self.config().root)?;
        let host = &settings.serving_host(domain);
        let insecure = tls_verify == Some(false)
            || client::is_loopback_host(host)
            || settings.insecure.iter().any(|h| h == host);
        let creds = CredentialStore::default_location()
            .get(host)
            .map_err(RegistryError::from)?;
        Ok(Session::new(
            host,
            creds,
            EndpointOptions {
                insecure,
                ..Default::default()
            },
        ))
    }

    /// The tags of the repository `repository` (`localhost:5000/app`) on its registry, for
    /// `pull --all-tags`.
    pub fn remote_tags(
        &self,
        repository: &str,
        tls_verify: Option<bool>,
    ) -> Result<Vec<String>, Error> {
        let r = ImageRef::parse(repository)?;
        let repo = RepoName::new(r.path()).map_err(RegistryError::from)?;
        let session = self.session(r.domain(), tls_verify)?;
        Ok(client::list_tags(&session, &repo).map_err(RegistryError::from)?)
    }

    /// The local tags of `repository` (full references, sorted), for `push --all-tags`.
    pub fn local_tags(&self, repository: &str) -> Result<Vec<String>, Error> {
        let want = ImageRef::parse(repository)?.repository();
        let mut out: Vec<String> = self
            .store()
            .list_images()?
            .into_iter()
            .flat_map(|i| i.tags)
            .filter(|t| ImageRef::parse(t).is_ok_and(|r| r.repository() == want))
            .collect();
        out.sort();
        Ok(out)
    }

    /// Pulls an image into the store and tags it.
    pub fn pull(&self, req: &PullRequest, progress: ProgressFn<'_>) -> Result<PullReport, Error> {
        let r = self.pull_inner(req, progress);
        if let Ok(rep) = &r {
            crate::events::emit_image(&self.config().root, "pull", &rep.reference, &rep.reference);
        }
        self.collect_after_failure(r)
    }

    fn pull_inner(&self, req: &PullRequest, progress: ProgressFn<'_>) -> Result<PullReport, Error> {
        let r = ImageRef::parse(&req.reference)?;
        let repo = RepoName::new(r.path()).map_err(RegistryError::from)?;
        let reference = match (r.digest(), r.tag()) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.to_owned(),
            (None, None) => "latest".to_owned(),
        };
        let session = self.session(r.domain(), req.tls_verify)?;
        let _lease = self.store().content_lease()?;
        let sink = StoreSink::new(self.store().blobs().clone());
        let opts = PullOptions {
            platform: req.platform.clone(),
            all_platforms: req.all_platforms,
        };
        let pulled = client::pull(&session, &repo, &reference, &opts, &sink, progress)
            .map_err(RegistryError::from)?;

        let blobs = self.store().blobs();
        let config_bytes = blobs.read_blob(&pulled.config.digest)?;
        let id = pulled.config.digest.clone();
        let config = manifest::parse_config(&config_bytes)?;
        let diff_ids = manifest::config_diff_ids(&config)?;
        if diff_ids.len() != pulled.layers.len() {
            return Err(RegistryError::LayerCount {
                reference: r.to_string(),
                config: diff_ids.len(),
                manifest: pulled.layers.len(),
            }
            .into());
        }
        let chains = manifest::chain_ids(&diff_ids);
        let mut records = Vec::new();
        for (i, layer) in pulled.layers.iter().enumerate() {
            if let Some(rec) = self.store().layer(&chains[i])? {
                if blobs.contains(&rec.blob_digest) {
                    records.push(rec);
                    continue;
                }
            }
            let parent = i.checked_sub(1).map(|p| &chains[p]);
            // Unpacked while it downloaded: keep it when the unpacker saw exactly the blob.
            if let Some((staging, applied)) = sink.take_unpacked(&layer.digest) {
                // A plain tar's diff ID is its blob digest, which the download verified.
                let diff_id = applied
                    .diff_id
                    .clone()
                    .unwrap_or_else(|| layer.digest.clone());
                if diff_id == diff_ids[i] {
                    log::info!("layer {} unpacked while it downloaded", layer.digest);
                    records.push(
                        self.store().commit_layer(
                            staging,
                            parent,
                            &berth_store::NewLayer {
                                diff_id,
                                blob_digest: layer.digest.clone(),
                                media_type: berth_oci::media::layer_media_type(
                                    applied.compression,
                                    false,
                                )
                                .to_owned(),
                                blob_size: layer.size,
                                size: applied.size,
                            },
                        )?,
                    );
                    continue;
                }
            }
            log::info!("layer {}: unpacking from the stored blob", layer.digest);
            let what = format!("{}: layer {}", r.familiar_string(), layer.digest);
            records.push(self.unpack_pulled_layer(layer, i, parent, &diff_ids[i], &what)?);
        }
        blobs.ingest(&mut &pulled.manifest[..], Some(&pulled.manifest_digest))?;
        // The index too (and, with --all-platforms, every platform's manifest), so that a
        // push can send the whole multi-platform image on.
        if let Some((_, index_bytes)) = &pulled.index {
            for (d, b) in &pulled.other_manifests {
                blobs.ingest(&mut &b[..], Some(&d.digest))?;
            }
            blobs.ingest(&mut &index_bytes[..], Some(&pulled.repo_digest))?;
        }
        let created = config.created().clone().unwrap_or_default();
        let tagged = if r.digest().is_none() {
            Some(r.with_tag(&reference)?.to_string())
        } else {
            None
        };
        let before = match &tagged {
            Some(t) => self.store().image_by_tag(t)?,
            None => None,
        };
        let names: Vec<String> = tagged.iter().cloned().collect();
        self.add_image_record(
            &id,
            &pulled.manifest_digest,
            &pulled.media_type,
            &created,
            &records,
            &names,
        )?;
        let repo_digest = format!("{}@{}", r.repository(), pulled.repo_digest);
        self.store().add_repo_digest(&repo_digest, &id)?;
        if pulled.index.is_some() {
            // No row names the index or the other platforms' blobs: kept on the image's
            // behalf, a collection (after any rmi) leaves them for the push of the index.
            self.store()
                .keep_blobs_for_image(&id, &index_blobs(blobs, &pulled))?;
        }
        let shown = match &tagged {
            Some(t) => ImageRef::parse(t)?.familiar_string(),
            None => r.familiar_string(),
        };
        Ok(PullReport {
            reference: tagged.unwrap_or_else(|| r.to_string()),
            familiar: shown,
            digest: pulled.repo_digest,
            up_to_date: before.as_ref() == Some(&id),
            id,
        })
    }

    /// Unpacks a pulled (verified, stored) layer blob into its snapshot. Unlike an import
    /// the blob is already in place, so it is only read, not copied again.
    fn unpack_pulled_layer(
        &self,
        layer: &Descriptor,
        index: usize,
        parent: Option<&Digest>,
        diff_id: &Digest,
        what: &str,
    ) -> Result<berth_store::LayerRecord, Error> {
        use crate::images::ImageError;
        let file = self.store().blobs().open_blob(&layer.digest)?;
        let staging = self.store().staging_dir()?;
        let applied = berth_oci::apply_layer(
            std::io::BufReader::with_capacity(1 << 20, file),
            staging.path(),
            &berth_oci::ApplyOptions::default(),
        )
        .map_err(|source| ImageError::Layer {
            what: what.to_owned(),
            source,
        })?;
        if applied.compressed_digest != layer.digest {
            return Err(berth_store::Error::DigestMismatch {
                expected: layer.digest.clone(),
                actual: applied.compressed_digest,
            }
            .into());
        }
        if &applied.diff_id != diff_id {
            return Err(ImageError::DiffIdMismatch {
                index,
                path: layer.digest.to_string(),
                expected: diff_id.clone(),
                actual: applied.diff_id,
            }
            .into());
        }
        Ok(self.store().commit_layer(
            staging,
            parent,
            &berth_store::NewLayer {
                diff_id: applied.diff_id,
                blob_digest: layer.digest.clone(),
                media_type: berth_oci::media::layer_media_type(applied.compression, false)
                    .to_owned(),
                blob_size: layer.size,
                size: applied.size,
            },
        )?)
    }

    /// Pushes a locally tagged image to the registry its reference names.
    pub fn push(&self, req: &PushRequest, progress: ProgressFn<'_>) -> Result<PushReport, Error> {
        let rep = self.push_inner(req, progress)?;
        crate::events::emit_image(&self.config().root, "push", &req.reference, &req.reference);
        Ok(rep)
    }

    fn push_inner(&self, req: &PushRequest, progress: ProgressFn<'_>) -> Result<PushReport, Error> {
        let r = ImageRef::parse(&req.reference)?;
        let repo = RepoName::new(r.path()).map_err(RegistryError::from)?;
        let local = match r.digest() {
            Some(_) => r.clone(),
            None => r.with_tag(r.tag().unwrap_or("latest"))?,
        };
        let id = self
            .store()
            .image_by_tag(&local.to_string())?
            .ok_or_else(|| RegistryError::NotTaggedLocally(r.familiar_string()))?;
        let record = self
            .store()
            .image(&id)?
            .ok_or_else(|| RegistryError::NotTaggedLocally(r.familiar_string()))?;
        // A multi-platform image whose every platform is at hand is pushed as its index.
        let (manifest_bytes, media_type) = match self.complete_index(&record) {
            Some(index) => index,
            None => (
                self.store().blobs().read_blob(&record.manifest_digest)?,
                record.manifest_media_type.clone(),
            ),
        };
        // Other repositories of the same registry holding this image: mount sources.
        let mount_from: Vec<RepoName> = record
            .tags
            .iter()
            .chain(&record.repo_digests)
            .filter_map(|t| ImageRef::parse(t).ok())
            .filter(|t| t.domain() == r.domain() && t.path() != r.path())
            .filter_map(|t| RepoName::new(t.path()).ok())
            .collect();
        let session = self.session(r.domain(), req.tls_verify)?;
        let source = StoreSource {
            blobs: self.store().blobs().clone(),
        };
        let mut opts = PushOptions {
            compress: !req.no_compress,
            mount_from,
            ..Default::default()
        };
        if let Some(level) = req.compression_level {
            opts.gzip_level = level;
        }
        let tag = local.tag().map(str::to_owned);
        let pushed = client::push(
            &session,
            &repo,
            tag.as_deref(),
            &manifest_bytes,
            &media_type,
            &source,
            &opts,
            progress,
        )
        .map_err(RegistryError::from)?;
        let repo_digest = format!("{}@{}", r.repository(), pushed.digest);
        self.store().add_repo_digest(&repo_digest, &id)?;
        Ok(PushReport {
            tag: tag.unwrap_or_else(|| pushed.digest.to_string()),
            digest: pushed.digest,
            size: pushed.size,
        })
    }

    /// The index an image was pulled as (`repo@sha256:...` of an index naming its manifest),
    /// when every platform's manifest, config and layers are in the store: (bytes, media
    /// type).
    fn complete_index(&self, record: &berth_store::ImageRecord) -> Option<(Vec<u8>, String)> {
        use berth_registry::protocol::{self, ManifestView};
        let blobs = self.store().blobs();
        let manifest_at = |d: &Digest| -> Option<ManifestView> {
            serde_json::from_slice(&blobs.read_blob(d).ok()?).ok()
        };
        for rd in &record.repo_digests {
            let Some(d) = rd
                .rsplit_once('@')
                .and_then(|(_, d)| d.parse::<Digest>().ok())
            else {
                continue;
            };
            if d == record.manifest_digest || !blobs.contains(&d) {
                continue;
            }
            let Ok(bytes) = blobs.read_blob(&d) else {
                continue;
            };
            let Ok(view) = serde_json::from_slice::<ManifestView>(&bytes) else {
                continue;
            };
            let Some(children) = view.manifests else {
                continue;
            };
            if !children.iter().any(|c| c.digest == record.manifest_digest) {
                continue;
            }
            let complete = children.iter().all(|c| {
                manifest_at(&c.digest).is_some_and(|m| m.blobs().all(|x| blobs.contains(&x.digest)))
            });
            if complete {
                let mt = view
                    .media_type
                    .filter(|t| protocol::is_index(t))
                    .unwrap_or_else(|| protocol::OCI_INDEX.to_owned());
                return Some((bytes, mt));
            }
        }
        None
    }

    /// Checks credentials against a registry and stores them; nothing is stored when the
    /// registry refuses them. Returns the host logged in to.
    pub fn login(&self, req: &LoginRequest) -> Result<String, Error> {
        let host = req
            .server
            .as_deref()
            .map(|s| {
                s.trim_start_matches("https://")
                    .trim_start_matches("http://")
                    .trim_end_matches('/')
                    .trim_end_matches("/v1")
                    .trim_end_matches("/v2")
            })
            .filter(|s| !s.is_empty())
            .unwrap_or("docker.io")
            .to_owned();
        let settings = RegistrySettings::read(&self.config().root)?;
        let serving = settings.serving_host(&host);
        let creds = Credentials {
            username: req.username.clone(),
            password: req.password.clone(),
        };
        let insecure = req.tls_verify == Some(false)
            || client::is_loopback_host(&serving)
            || settings.insecure.iter().any(|h| h == &serving);
        let session = Session::new(
            &serving,
            Some(creds.clone()),
            EndpointOptions {
                insecure,
                ..Default::default()
            },
        );
        // A refresh token, when the registry's token service gives one, is stored instead
        // of the password (as Docker stores an identity token).
        let stored = match session.login().map_err(RegistryError::from)? {
            Some(token) => Credentials {
                username: client::credentials::IDENTITY_TOKEN_USER.to_owned(),
                password: token,
            },
            None => creds,
        };
        CredentialStore::default_location()
            .store(&host, &stored)
            .map_err(RegistryError::from)?;
        Ok(host)
    }

    /// Removes stored credentials; `false` when there were none.
    pub fn logout(&self, server: Option<&str>) -> Result<bool, Error> {
        let host = server
            .map(|s| {
                s.trim_start_matches("https://")
                    .trim_start_matches("http://")
                    .trim_end_matches('/')
            })
            .unwrap_or("docker.io");
        Ok(CredentialStore::default_location()
            .remove(host)
            .map_err(RegistryError::from)?)
    }
}

/// The blobs of a pulled index that no image row names: the index, the other platforms'
/// manifests, and those of their configs and layers that are in the store.
fn index_blobs(blobs: &berth_store::BlobStore, pulled: &client::PulledImage) -> Vec<Digest> {
    let mut out = vec![pulled.repo_digest.clone()];
    for (d, bytes) in &pulled.other_manifests {
        out.push(d.digest.clone());
        if let Ok(m) = serde_json::from_slice::<berth_registry::protocol::ManifestView>(bytes) {
            out.extend(
                m.blobs()
                    .map(|x| x.digest.clone())
                    .filter(|x| blobs.contains(x)),
            );
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests fail loudly by design
mod tests {
    use super::*;

    #[test]
    fn pull_with_a_cut_download_unpacks_the_verified_blob() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        // A one-layer image: a 2 MB file, gzip.
        let content = dir.path().join("content");
        std::fs::create_dir_all(&content).unwrap();
        let data: Vec<u8> = (0..2_000_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        std::fs::write(content.join("hello.bin"), &data).unwrap();
        let mut tar = Vec::new();
        let stats =
            berth_oci::write_dir_tar(&content, &mut tar, &berth_oci::DiffOptions::default())
                .unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        let gz = gz.finish().unwrap();
        let src = client::DirBlobs::new(dir.path().join("src")).unwrap();
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [stats.diff_id.to_string()]}
        }))
        .unwrap();
        let cd = src.put(&config).unwrap();
        let ld = src.put(&gz).unwrap();
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": berth_registry::protocol::OCI_MANIFEST,
            "config": {"mediaType": berth_registry::protocol::OCI_CONFIG, "digest": cd.to_string(), "size": config.len()},
            "layers": [{"mediaType": berth_registry::protocol::OCI_LAYER_GZIP, "digest": ld.to_string(), "size": gz.len()}]
        }))
        .unwrap();
        let srv = berth_registry::server::spawn(&ServerConfig {
            addr: "127.0.0.1:0".into(),
            storage: dir.path().join("storage"),
            ..Default::default()
        })
        .unwrap();
        let s = Session::new(
            &srv.addr.to_string(),
            None,
            EndpointOptions {
                insecure: true,
                ..Default::default()
            },
        );
        let repo = RepoName::new("t/app").unwrap();
        client::push(
            &s,
            &repo,
            Some("1"),
            &manifest,
            berth_registry::protocol::OCI_MANIFEST,
            &src,
            &PushOptions::default(),
            &|_| {},
        )
        .unwrap();

        // Pull through a proxy that cuts the layer download half way: the unpacker fed
        // while it downloaded sees a cut stream and is dropped, the download resumes, and
        // the layer is unpacked from the verified blob.
        let proxy =
            berth_registry::test_support::flaky_proxy(srv.addr, 0, Some(gz.len() / 2)).unwrap();
        let engine = Engine::open(crate::EngineConfig {
            root: dir.path().join("root"),
            runroot: dir.path().join("run"),
        })
        .unwrap();
        let reference = format!("{proxy}/t/app:1");
        let report = engine
            .pull(
                &PullRequest {
                    reference: reference.clone(),
                    ..Default::default()
                },
                &|_| {},
            )
            .unwrap();
        assert_eq!(report.id, cd);
        assert_eq!(report.digest, Digest::of(&manifest));
        let full = ImageRef::parse(&reference).unwrap().to_string();
        assert_eq!(
            engine.store().image_by_tag(&full).unwrap(),
            Some(cd.clone())
        );
        let unpacked = engine.store().layer_dir(&stats.diff_id).join("hello.bin");
        assert_eq!(std::fs::read(unpacked).unwrap(), data);
        // Nothing left in the staging area.
        let left: Vec<_> = std::fs::read_dir(dir.path().join("root/tmp"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert!(left.is_empty(), "{left:?}");

        // A second pull, straight: unpacked while downloading, same result.
        let engine2 = Engine::open(crate::EngineConfig {
            root: dir.path().join("root2"),
            runroot: dir.path().join("run2"),
        })
        .unwrap();
        let direct = format!("{}/t/app:1", srv.addr);
        engine2
            .pull(
                &PullRequest {
                    reference: direct,
                    ..Default::default()
                },
                &|_| {},
            )
            .unwrap();
        let unpacked = engine2.store().layer_dir(&stats.diff_id).join("hello.bin");
        assert_eq!(std::fs::read(unpacked).unwrap(), data);
    }

    #[test]
    fn insecure_list_from_berth_toml() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(
            dir.path().join("berth.toml"),
            "insecure-registries = [\"reg.example:5000\"]\n[network]\nx = 1\n",
        )
        .unwrap();
        std::fs::write(
            root.join("berth.toml"),
            "[registry]\ninsecure-registries = [\"other:1\"]\n",
        )
        .unwrap();
        let mut l = insecure_registries(&root).unwrap();
        l.sort();
        assert_eq!(l, vec!["other:1".to_owned(), "reg.example:5000".to_owned()]);
    }

    #[test]
    fn docker_hub_is_served_by_registry_1() {
        assert_eq!(registry_host("docker.io"), "registry-1.docker.io");
        assert_eq!("never".parse(), Ok(PullPolicy::Never));
        assert_eq!("true".parse(), Ok(PullPolicy::Always));
        assert_eq!(
            "sometimes".parse::<PullPolicy>().unwrap_err().to_string(),
            "invalid pull option: 'sometimes': must be one of \"always\", \"missing\" or \"never\""
        );
        let hub = RegistrySettings {
            docker_hub: Some("127.0.0.1:9".into()),
            ..Default::default()
        };
        assert_eq!(hub.serving_host("docker.io"), "127.0.0.1:9");
        assert_eq!(hub.serving_host("quay.io"), "quay.io");
        assert_eq!(registry_host("localhost:5000"), "localhost:5000");
    }
}
