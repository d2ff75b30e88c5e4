//! `berth registry serve`: an OCI distribution registry on tokio and hyper.
//!
//! [`Registry`] holds the storage, the authorizer and the hot-manifest cache; [`serve`] runs
//! it on a listener until a signal; [`gc()`] collects unreferenced blobs, safely while pushes
//! run. Every failure of a request becomes a spec error body in one place
//! ([`api::RequestError::code`]).
//!
//! What a registry keeps beyond one process lives in its storage: the token signing key
//! (made once, so logins outlive restarts and work on every replica) and the upload sessions
//! with the repository and user that opened them. At start, what earlier runs left behind
//! (temp files, abandoned uploads) is removed on a background thread.

pub mod api;
pub mod auth;
pub mod body;
pub mod gc;
pub mod s3;
pub mod storage;
pub mod tls;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use berth_oci::{Digest, Hasher};
use bytes::Bytes;
use hyper::header::HeaderValue;
use serde::Deserialize;

pub use auth::{AccessRule, AuthConfig, Authorizer};
pub use gc::{gc, GcOptions, GcReport};
pub use s3::{S3Config, S3ConfigFile, S3Storage};
pub use storage::{FsStorage, Storage, StorageError};

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The configuration file could not be read or parsed.
    #[error("registry config {path}: {reason}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Binding the address failed.
    #[error("listening on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The auth configuration is unusable.
    #[error(transparent)]
    Auth(#[from] auth::AuthError),
    /// The storage could not be opened.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// TLS could not be set up.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// The runtime could not start.
    #[error("starting the server runtime: {0}")]
    Runtime(std::io::Error),
    /// The S3 storage settings are unusable.
    #[error(transparent)]
    S3Config(#[from] s3::S3ConfigError),
}

impl ServeError {
    /// The kind of error.
    pub fn kind(&self) -> crate::ErrorKind {
        match self {
            ServeError::Config { .. }
            | ServeError::Auth(_)
            | ServeError::Tls(_)
            | ServeError::S3Config(_) => crate::ErrorKind::InvalidArgument,
            ServeError::Bind { .. } | ServeError::Runtime(_) => crate::ErrorKind::Unavailable,
            ServeError::Storage(_) => crate::ErrorKind::Internal,
        }
    }
}

/// How the server speaks TLS.
#[derive(Debug, Clone, Default)]
pub enum TlsMode {
    /// Plain HTTP.
    #[default]
    Off,
    /// A certificate and key (PEM files).
    Files {
        /// Certificate chain.
        cert: PathBuf,
        /// Private key.
        key: PathBuf,
    },
    /// A self-signed certificate made at start (for trying things out).
    SelfSigned,
}

/// The `[registry]` table of a `berth.toml`-style configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfigFile {
    /// Address to listen on.
    pub addr: Option<String>,
    /// Storage directory, or `s3://BUCKET/PREFIX`.
    pub storage: Option<PathBuf>,
    /// Settings of S3 storage (the AWS environment variables take precedence).
    pub s3: Option<S3ConfigFile>,
    /// Largest manifest accepted, bytes (default 4 MiB).
    pub max_manifest_size: Option<usize>,
    /// How long a tag lookup may be served from memory, milliseconds (default 1000); other
    /// replicas' tag moves are seen after at most this long.
    pub tag_cache_ms: Option<u64>,
    /// Authentication and access rules.
    pub auth: Option<AuthConfig>,
    /// TLS certificate (PEM).
    pub tls_cert: Option<PathBuf>,
    /// TLS key (PEM).
    pub tls_key: Option<PathBuf>,
    /// Upload sessions untouched this long (seconds) are removed at start and by
    /// `registry gc` (default 86400).
    pub upload_max_age_secs: Option<u64>,
}

#[derive(Deserialize)]
struct WholeFile {
    registry: Option<ServerConfigFile>,
}

impl ServerConfigFile {
    /// Reads a config file: either a `[registry]` table (as in `berth.toml`) or the same keys
    /// at top level.
    pub fn load(path: &Path) -> Result<ServerConfigFile, ServeError> {
        let bad = |reason: String| ServeError::Config {
            path: path.to_owned(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        let value: toml::Value = toml::from_str(&text).map_err(|e| bad(e.message().to_owned()))?;
        if value.get("registry").is_some() {
            let whole: WholeFile = value
                .try_into()
                .map_err(|e: toml::de::Error| bad(e.message().to_owned()))?;
            Ok(whole.registry.unwrap_or_default())
        } else {
            value
                .try_into()
                .map_err(|e: toml::de::Error| bad(e.message().to_owned()))
        }
    }
}

/// Everything `serve` needs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on (`127.0.0.1:0` picks a free port).
    pub addr: String,
    /// Storage directory (unused when `s3` is set).
    pub storage: PathBuf,
    /// S3 storage instead of the directory.
    pub s3: Option<S3Config>,
    /// TLS mode.
    pub tls: TlsMode,
    /// Auth settings (auth is off without an htpasswd file).
    pub auth: AuthConfig,
    /// Largest manifest accepted.
    pub max_manifest_size: usize,
    /// Tag cache lifetime.
    pub tag_cache: Duration,
    /// Upload sessions untouched this long are removed at start.
    pub upload_max_age: Duration,
    /// The longest a manifest PUT may take from touching its blobs to its last check;
    /// slower ones are not acknowledged. `registry gc`'s grace period must be longer
    /// (see `gc.rs`).
    pub manifest_put_deadline: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            addr: "127.0.0.1:5000".into(),
            storage: PathBuf::from("/var/lib/berth-registry"),
            s3: None,
            tls: TlsMode::Off,
            auth: AuthConfig::default(),
            max_manifest_size: 4 << 20,
            tag_cache: Duration::from_millis(1000),
            upload_max_age: gc::DEFAULT_UPLOAD_MAX_AGE,
            manifest_put_deadline: gc::MANIFEST_PUT_DEADLINE,
        }
    }
}

impl ServerConfig {
    /// Points the configuration at its storage: `s3://BUCKET/PREFIX` (with `s3` from the
    /// config file, under the AWS environment variables) or a directory.
    pub fn set_storage(
        &mut self,
        storage: &Path,
        s3: Option<&S3ConfigFile>,
    ) -> Result<(), ServeError> {
        let text = storage.to_string_lossy();
        if S3Config::is_s3_url(&text) {
            self.s3 = Some(S3Config::from_url(
                &text,
                s3.unwrap_or(&S3ConfigFile::default()),
            )?);
        } else {
            self.storage = storage.to_owned();
            self.s3 = None;
        }
        Ok(())
    }

    /// Runs `registry gc` over the storage this configuration names.
    pub fn collect_garbage(&self, opts: &GcOptions) -> Result<GcReport, ServeError> {
        let storage = open_storage(self)?;
        Ok(gc(storage.as_ref(), opts)?)
    }
}

/// A manifest held in memory, with its response headers ready.
#[derive(Debug, Clone)]
pub struct CachedManifest {
    /// The bytes.
    pub bytes: Bytes,
    /// `Content-Type`.
    pub media_type: HeaderValue,
    /// `Docker-Content-Digest`.
    pub digest_header: HeaderValue,
    /// `Content-Length`.
    pub length_header: HeaderValue,
}

/// The in-memory view of hot manifests: content by digest (immutable, so never stale) and
/// tags by (repository, tag) for a short time.
#[derive(Debug, Default)]
pub struct ManifestCache {
    by_digest: RwLock<HashMap<Digest, Arc<CachedManifest>>>,
    tags: RwLock<HashMap<String, (Digest, Instant)>>,
}

const CACHE_LIMIT: usize = 4096;

impl ManifestCache {
    fn tag_key(repo: &str, tag: &str) -> String {
        let mut k = String::with_capacity(repo.len() + tag.len() + 1);
        k.push_str(repo);
        k.push(':');
        k.push_str(tag);
        k
    }

    /// A cached tag resolution younger than `ttl`.
    pub fn tag(&self, repo: &str, tag: &str, ttl: Duration) -> Option<Digest> {
        let map = self.tags.read().ok()?;
        let (d, at) = map.get(&Self::tag_key(repo, tag))?;
        (at.elapsed() < ttl).then(|| d.clone())
    }

    /// Remembers a tag resolution.
    pub fn put_tag(&self, repo: &str, tag: &str, digest: &Digest) {
        if let Ok(mut map) = self.tags.write() {
            if map.len() >= CACHE_LIMIT {
                map.clear();
            }
            map.insert(Self::tag_key(repo, tag), (digest.clone(), Instant::now()));
        }
    }

    /// Forgets a tag.
    pub fn forget_tag(&self, repo: &str, tag: &str) {
        if let Ok(mut map) = self.tags.write() {
            map.remove(&Self::tag_key(repo, tag));
        }
    }

    /// Forgets every tag of a repository.
    pub fn forget_repo(&self, repo: &str) {
        if let Ok(mut map) = self.tags.write() {
            let prefix = format!("{repo}:");
            map.retain(|k, _| !k.starts_with(&prefix));
        }
    }

    /// A cached manifest.
    pub fn manifest(&self, digest: &Digest) -> Option<Arc<CachedManifest>> {
        self.by_digest.read().ok()?.get(digest).cloned()
    }

    /// Remembers a manifest.
    pub fn put_manifest(&self, digest: &Digest, m: Arc<CachedManifest>) {
        if let Ok(mut map) = self.by_digest.write() {
            if map.len() >= CACHE_LIMIT {
                map.clear();
            }
            map.insert(digest.clone(), m);
        }
    }
}

/// One registry: storage, auth, caches and uploads in flight.
pub struct Registry {
    /// The backend.
    pub storage: Arc<dyn Storage>,
    /// The authorizer; `None` when auth is off.
    pub auth: Option<Authorizer>,
    /// Hot manifests.
    pub cache: ManifestCache,
    /// Hash state of uploads in flight, so a blob is hashed once while it streams in.
    pub uploads: Mutex<HashMap<String, Hasher>>,
    /// Largest manifest accepted.
    pub max_manifest_size: usize,
    /// Tag cache lifetime.
    pub tag_cache: Duration,
    /// Whether the listener speaks TLS (for the default realm).
    pub tls: bool,
    /// See [`ServerConfig::manifest_put_deadline`].
    pub manifest_put_deadline: Duration,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("auth", &self.auth)
            .finish()
    }
}

impl Registry {
    /// A registry over `storage` with the settings of `config`.
    pub fn new(storage: Arc<dyn Storage>, config: &ServerConfig) -> Result<Registry, ServeError> {
        let auth = match Authorizer::new(&config.auth)? {
            // The storage's key unless the configuration names one: tokens (and the logins
            // that keep refresh tokens) survive restarts and work on every replica.
            Some(a) if config.auth.token_secret.is_none() => {
                Some(a.with_signing_key(storage.signing_key()?))
            }
            other => other,
        };
        Ok(Registry {
            storage,
            auth,
            cache: ManifestCache::default(),
            uploads: Mutex::new(HashMap::new()),
            max_manifest_size: config.max_manifest_size,
            tag_cache: config.tag_cache,
            tls: !matches!(config.tls, TlsMode::Off),
            manifest_put_deadline: config.manifest_put_deadline,
        })
    }
}

/// A running server: its address, and a handle to stop it.
#[derive(Debug)]
pub struct RunningServer {
    /// The address bound (the real port when 0 was asked).
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RunningServer {
    /// Stops the server and waits for it.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, ServeError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(32)
        .thread_stack_size(256 * 1024)
        .enable_all()
        .build()
        .map_err(ServeError::Runtime)
}

/// A non-blocking listener on `addr` and the address it got (the port of `:0` filled in).
fn bind(addr: &str) -> Result<(std::net::TcpListener, SocketAddr), ServeError> {
    let bind_err = |source| ServeError::Bind {
        addr: addr.to_owned(),
        source,
    };
    let l = std::net::TcpListener::bind(addr).map_err(bind_err)?;
    l.set_nonblocking(true).map_err(bind_err)?;
    let bound = l.local_addr().map_err(bind_err)?;
    Ok((l, bound))
}

/// Removes what earlier runs left behind (temp files of interrupted writes, abandoned upload
/// sessions, blobs of a killed collection), on a thread of its own: a large storage must not
/// delay the start. Blobs are left to `registry gc`.
fn clean_at_start(storage: Arc<dyn Storage>, upload_max_age: Duration) {
    let run = move || -> Result<(usize, usize), StorageError> {
        let debris = storage.clean_debris(gc::DEFAULT_TEMP_MAX_AGE)?;
        let now = std::time::SystemTime::now();
        let mut uploads = 0;
        for (id, modified) in storage.list_uploads()? {
            if now.duration_since(modified).unwrap_or_default() >= upload_max_age
                && storage.cancel_upload(&id)?
            {
                uploads += 1;
            }
        }
        Ok((debris, uploads))
    };
    let spawned = std::thread::Builder::new()
        .name("registry-clean".into())
        .spawn(move || match run() {
            Ok((0, 0)) => {}
            Ok((debris, uploads)) => {
                log::info!("registry: removed {debris} temp files and {uploads} abandoned uploads")
            }
            Err(e) => log::warn!("registry: cleaning the storage at start: {e}"),
        });
    if let Err(e) = spawned {
        log::warn!("registry: cleaning the storage at start: {e}");
    }
}

/// Opens the storage a configuration names: its S3 bucket, else its directory.
pub fn open_storage(config: &ServerConfig) -> Result<Arc<dyn Storage>, StorageError> {
    Ok(match &config.s3 {
        Some(s3) => Arc::new(S3Storage::open(s3.clone())?),
        None => Arc::new(FsStorage::open(&config.storage)?),
    })
}

fn prepare(config: &ServerConfig) -> Result<(Arc<Registry>, Option<tls::Acceptor>), ServeError> {
    let storage = open_storage(config)?;
    clean_at_start(storage.clone(), config.upload_max_age);
    let registry = Arc::new(Registry::new(storage, config)?);
    let acceptor = tls::acceptor(&config.tls)?;
    Ok((registry, acceptor))
}

/// Starts a server on a background thread (for tests and embedding).
pub fn spawn(config: &ServerConfig) -> Result<RunningServer, ServeError> {
    let (registry, acceptor) = prepare(config)?;
    let (listener, addr) = bind(&config.addr)?;
    let rt = runtime()?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        rt.block_on(async move {
            let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                return;
            };
            tokio::select! {
                _ = api::accept_loop(listener, registry, acceptor) => {}
                _ = rx => {}
            }
        });
        rt.shutdown_timeout(Duration::from_millis(100));
    });
    Ok(RunningServer {
        addr,
        stop: Some(tx),
        thread: Some(thread),
    })
}

/// Runs a server in the foreground until SIGINT or SIGTERM; `on_ready` is told the address
/// bound before the first request is accepted.
pub fn serve(config: &ServerConfig, on_ready: impl FnOnce(SocketAddr)) -> Result<(), ServeError> {
    let (registry, acceptor) = prepare(config)?;
    let (listener, addr) = bind(&config.addr)?;
    let rt = runtime()?;
    rt.block_on(async move {
        let listener =
            tokio::net::TcpListener::from_std(listener).map_err(|source| ServeError::Bind {
                addr: addr.to_string(),
                source,
            })?;
        on_ready(addr);
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(ServeError::Runtime)?;
        tokio::select! {
            _ = api::accept_loop(listener, registry, acceptor) => {}
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        Ok::<(), ServeError>(())
    })?;
    rt.shutdown_timeout(Duration::from_millis(200));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_file_in_berth_toml_shape() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("berth.toml");
        std::fs::write(
            &p,
            r#"
[network]
ignored = true

[registry]
addr = "127.0.0.1:5000"
storage = "/srv/registry"
max_manifest_size = 1048576

[registry.auth]
htpasswd = "/etc/berth/htpasswd"
public = ["library/*"]
token_secret = "shared-by-replicas"

[[registry.auth.rule]]
repository = "team/*"
users = ["alice"]
actions = ["pull", "push"]
"#,
        )
        .unwrap();
        let c = ServerConfigFile::load(&p).unwrap();
        assert_eq!(c.addr.as_deref(), Some("127.0.0.1:5000"));
        assert_eq!(c.max_manifest_size, Some(1 << 20));
        let auth = c.auth.unwrap();
        assert_eq!(auth.public, vec!["library/*".to_owned()]);
        assert_eq!(auth.rules[0].users, vec!["alice".to_owned()]);
        // Unknown keys are refused with the file named.
        std::fs::write(&p, "[registry]\nadress = \"x\"\n").unwrap();
        let err = ServerConfigFile::load(&p).unwrap_err();
        assert!(err.to_string().contains("berth.toml"), "{err}");
    }
}
