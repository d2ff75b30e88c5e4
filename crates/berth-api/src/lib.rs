//! berth-api: the Docker Engine API face of berth (`berth system service`), so that the
//! `docker` CLI, Docker's SDKs and compose drive berth.
//!
//! It owns routes, Docker's JSON shapes and hijacked streams; it owns no business logic:
//! every route turns its request into calls of [`berth_engine`] (the same the CLI makes)
//! and their results back into Docker's documents, so a container made through the API
//! shows in `berth ps` and the other way round. Containers outlive the service: a detached
//! start hands the container to its monitor process, and an attached start (`docker run`
//! without `-d`) is watched by a `berth start -a` process of its own, whose standard
//! streams the service binds to the hijacked connection.
//!
//! Main types: [`ServiceConfig`] (where to listen, the roots, the idle timeout),
//! [`Listen`] (a `unix://` or `tcp://` address), [`serve`] (runs until stopped or idle).
//! The routes live in one module per area: [`system`], [`images`], [`build`],
//! [`containers`], [`exec`], [`networks`]; [`streams`] holds the hijack and Docker's
//! stream multiplexing; [`http`] the error model (`{"message": ...}` with Docker's status
//! codes, decided in one place: [`http::ApiError`]).
//!
//! ```no_run
//! let config = berth_api::ServiceConfig {
//!     root: "/var/lib/berth".into(),
//!     runroot: "/run/berth".into(),
//!     exe: "/usr/bin/berth".into(),
//!     listen: vec![berth_api::Listen::parse("unix:///run/berth/berth.sock")?],
//!     idle_timeout: None,
//!     socket_group: None,
//!     tls: None,
//! };
//! berth_api::serve(config, |addr| eprintln!("listening on {addr}"))?;
//! # Ok::<(), berth_api::ServeError>(())
//! ```

#![recursion_limit = "256"]

pub mod build;
pub mod containers;
pub mod exec;
pub mod http;
pub mod images;
mod listen;
pub mod networks;
mod router;
pub mod streams;
pub mod system;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use listen::{Listen, ServeError, TlsFiles};

/// The API version the service speaks (Docker 27's), and the oldest it accepts.
pub const API_VERSION: &str = "1.47";
/// The oldest API version accepted (as Docker's daemon).
pub const MIN_API_VERSION: &str = "1.24";

/// How the service runs.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// The engine's persistent root (`--root`).
    pub root: PathBuf,
    /// The engine's runtime root (`--runroot`).
    pub runroot: PathBuf,
    /// The `berth` binary: containers' monitors and attached watchers are this program.
    pub exe: PathBuf,
    /// Where to listen.
    pub listen: Vec<Listen>,
    /// Exit after this long without a request or an open connection; `None`: never.
    pub idle_timeout: Option<Duration>,
    /// The group owning unix sockets (mode 0660); `None`: root's.
    pub socket_group: Option<String>,
    /// TLS with client-certificate verification for `tcp://` addresses.
    pub tls: Option<TlsFiles>,
}

/// What the routes share: the configuration and the streams the service itself watches.
#[derive(Debug)]
pub(crate) struct State {
    pub config: ServiceConfig,
    /// Attaches waiting for their container's start, by container ID.
    pub pending: Mutex<HashMap<String, streams::PendingAttach>>,
    /// Exit statuses seen by the watchers this service started, by container ID (for
    /// `wait?condition=removed` of a container that is gone).
    pub exits: Mutex<HashMap<String, i64>>,
    /// Woken whenever a watcher of this service ends.
    pub changed: tokio::sync::Notify,
    /// Exec instances, by exec ID.
    pub execs: Mutex<HashMap<String, exec::ExecSession>>,
    /// Open connections.
    pub active: AtomicUsize,
    /// The last time a request arrived or a connection closed.
    pub last_activity: Mutex<Instant>,
}

impl State {
    fn new(config: ServiceConfig) -> State {
        State {
            config,
            pending: Mutex::new(HashMap::new()),
            exits: Mutex::new(HashMap::new()),
            changed: tokio::sync::Notify::new(),
            execs: Mutex::new(HashMap::new()),
            active: AtomicUsize::new(0),
            last_activity: Mutex::new(Instant::now()),
        }
    }

    /// An engine on the configured roots.
    pub fn engine(&self) -> Result<berth_engine::Engine, http::ApiError> {
        Ok(berth_engine::Engine::open(berth_engine::EngineConfig {
            root: self.config.root.clone(),
            runroot: self.config.runroot.clone(),
        })?)
    }

    /// The container lifecycle on the configured roots.
    pub fn lifecycle(&self) -> Result<berth_engine::container::Lifecycle, http::ApiError> {
        Ok(berth_engine::container::Lifecycle::open(
            &self.config.root,
            &self.config.runroot,
        )?)
    }

    /// A `berth` command on the configured roots (monitors and attached watchers).
    pub fn berth(&self) -> std::process::Command {
        let mut c = std::process::Command::new(&self.config.exe);
        c.arg("--root")
            .arg(&self.config.root)
            .arg("--runroot")
            .arg(&self.config.runroot);
        c
    }

    pub fn touch(&self) {
        if let Ok(mut t) = self.last_activity.lock() {
            *t = Instant::now();
        }
    }

    fn idle_for(&self) -> Option<Duration> {
        if self.active.load(Ordering::SeqCst) > 0 {
            return None;
        }
        self.last_activity.lock().ok().map(|t| t.elapsed())
    }
}

/// Runs blocking engine work off the async threads.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T, http::ApiError>
where
    F: FnOnce() -> Result<T, http::ApiError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| http::ApiError::internal(format!("the request's worker failed: {e}")))?
}

/// Serves the API on every address of `config` until SIGINT/SIGTERM or the idle timeout;
/// `on_ready` is told each address once it listens. Unix sockets are removed on the way
/// out.
pub fn serve(config: ServiceConfig, on_ready: impl FnMut(&str)) -> Result<(), ServeError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(64)
        .enable_all()
        .build()
        .map_err(|e| ServeError::Io {
            what: "starting the async runtime".into(),
            source: e,
        })?;
    let r = rt.block_on(serve_async(config, on_ready));
    // Watchers of attached containers are processes of their own: nothing to wait for.
    rt.shutdown_timeout(Duration::from_millis(200));
    r
}

async fn serve_async(
    config: ServiceConfig,
    mut on_ready: impl FnMut(&str),
) -> Result<(), ServeError> {
    let timeout = config.idle_timeout;
    let state = Arc::new(State::new(config));
    let bound = listen::bind_all(&state.config)?;
    for b in &bound {
        on_ready(&b.shown);
    }
    let mut sockets = Vec::new();
    for b in bound {
        if let Some(p) = b.unix_path.clone() {
            sockets.push(p);
        }
        let st = state.clone();
        tokio::spawn(listen::accept_loop(b, st));
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| ServeError::Io {
            what: "handling SIGTERM".into(),
            source: e,
        })?;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
            _ = tick.tick() => {
                if let (Some(t), Some(idle)) = (timeout, state.idle_for()) {
                    if idle >= t {
                        log::info!("no request for {} s: exiting", t.as_secs());
                        break;
                    }
                }
            }
        }
    }
    for p in sockets {
        let _ = std::fs::remove_file(p);
    }
    Ok(())
}

/// The group of the API's unix sockets from `berth.toml` (`[api] socket-group = "docker"`),
/// read from `ROOT/berth.toml` then `ROOT/../berth.toml`.
pub fn socket_group_from_config(root: &std::path::Path) -> Option<String> {
    for path in [root.join("berth.toml"), root.join("../berth.toml")] {
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let Ok(doc) = toml::from_str::<toml::Value>(&text) else {
            log::warn!("{}: not valid TOML; ignored", path.display());
            continue;
        };
        if let Some(g) = doc
            .get("api")
            .and_then(|a| a.get("socket-group"))
            .and_then(|g| g.as_str())
        {
            return Some(g.to_owned());
        }
    }
    None
}
