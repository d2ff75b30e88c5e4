//! Where the service listens: `unix://PATH` (mode 0660, root's group or the configured
//! one: the socket is root-equivalent), `tcp://HOST:PORT` with TLS client-certificate
//! verification, or plain on a loopback address only. Each connection is served by hyper
//! with upgrades on (attach and exec hijack their connection).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};

use crate::{ServiceConfig, State};

/// One address to listen on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// A unix socket.
    Unix(PathBuf),
    /// A TCP address.
    Tcp(SocketAddr),
}

/// The files of `--tlsverify --tlscacert --tlscert --tlskey`.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// CA certificates that client certificates must chain to.
    pub ca: PathBuf,
    /// The server's certificate chain.
    pub cert: PathBuf,
    /// The server's private key.
    pub key: PathBuf,
}

/// Why the service cannot serve.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// An address does not parse.
    #[error("invalid --host {0:?}: expected unix:///path or tcp://host:port")]
    BadAddress(String),
    /// Plain TCP on an address other than loopback.
    #[error("refusing to serve {0} without TLS: the API is root-equivalent; use --tlsverify --tlscacert --tlscert --tlskey, a loopback address or a unix socket")]
    InsecureTcp(String),
    /// A TLS file is missing or not valid.
    #[error("TLS: {0}")]
    Tls(String),
    /// The socket's group does not exist.
    #[error("socket group {0:?} does not exist")]
    NoSuchGroup(String),
    /// A system call failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
}

impl Listen {
    /// Parses `unix:///run/berth/berth.sock`, `/path` or `tcp://127.0.0.1:2375`.
    pub fn parse(s: &str) -> Result<Listen, ServeError> {
        let bad = || ServeError::BadAddress(s.to_owned());
        if let Some(p) = s.strip_prefix("unix://") {
            if p.is_empty() {
                return Err(bad());
            }
            return Ok(Listen::Unix(PathBuf::from(p)));
        }
        if s.starts_with('/') {
            return Ok(Listen::Unix(PathBuf::from(s)));
        }
        if let Some(a) = s.strip_prefix("tcp://") {
            let a = a.trim_end_matches('/');
            let a = if a.starts_with(':') {
                format!("127.0.0.1{a}")
            } else {
                a.to_owned()
            };
            let a = if a.contains(':') {
                a
            } else {
                format!("{a}:2375")
            };
            let addr = a
                .parse::<SocketAddr>()
                .or_else(|_| {
                    std::net::ToSocketAddrs::to_socket_addrs(&a)
                        .ok()
                        .and_then(|mut i| i.next())
                        .ok_or(())
                })
                .map_err(|_| bad())?;
            return Ok(Listen::Tcp(addr));
        }
        Err(bad())
    }
}

pub(crate) enum Acceptor {
    Unix(UnixListener),
    Tcp(TcpListener, Option<tokio_rustls::TlsAcceptor>),
}

pub(crate) struct Bound {
    pub acceptor: Acceptor,
    pub shown: String,
    pub unix_path: Option<PathBuf>,
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ServeError {
    let what = what.into();
    move |source| ServeError::Io { what, source }
}

/// Binds every address (all or none: a failure closes what was bound).
pub(crate) fn bind_all(config: &ServiceConfig) -> Result<Vec<Bound>, ServeError> {
    let tls = match &config.tls {
        Some(files) => Some(tls_acceptor(files)?),
        None => None,
    };
    let mut out = Vec::new();
    for l in &config.listen {
        match l {
            Listen::Unix(path) => {
                let listener = bind_unix(path, config.socket_group.as_deref())?;
                out.push(Bound {
                    acceptor: Acceptor::Unix(listener),
                    shown: format!("unix://{}", path.display()),
                    unix_path: Some(path.clone()),
                });
            }
            Listen::Tcp(addr) => {
                if tls.is_none() && !addr.ip().is_loopback() {
                    return Err(ServeError::InsecureTcp(addr.to_string()));
                }
                let std = std::net::TcpListener::bind(addr)
                    .map_err(io(format!("binding tcp://{addr}")))?;
                std.set_nonblocking(true)
                    .map_err(io(format!("binding tcp://{addr}")))?;
                let shown = format!(
                    "tcp://{}",
                    std.local_addr().map_err(io("reading the bound address"))?
                );
                let listener =
                    TcpListener::from_std(std).map_err(io(format!("binding tcp://{addr}")))?;
                out.push(Bound {
                    acceptor: Acceptor::Tcp(listener, tls.clone()),
                    shown,
                    unix_path: None,
                });
            }
        }
    }
    Ok(out)
}

/// Binds a unix socket: a stale socket file (nobody answers on it) is replaced, a live one
/// is an error; the socket is 0660, owned by root and `group`.
fn bind_unix(path: &Path, group: Option<&str>) -> Result<UnixListener, ServeError> {
    let shown = format!("binding unix://{}", path.display());
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    }
    if std::fs::symlink_metadata(path).is_ok() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(ServeError::Io {
                what: shown,
                source: std::io::Error::new(
                    std::io::ErrorKind::AddrInUse,
                    "another service answers on this socket",
                ),
            });
        }
        std::fs::remove_file(path).map_err(io(format!("removing the stale {}", path.display())))?;
    }
    let gid = match group {
        Some(g) => Some(
            nix::unistd::Group::from_name(g)
                .ok()
                .flatten()
                .ok_or_else(|| ServeError::NoSuchGroup(g.to_owned()))?
                .gid,
        ),
        None => None,
    };
    // Bound under a umask that leaves nobody else a window on it, then opened to the group.
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let listener = UnixListener::bind(path);
    nix::sys::stat::umask(old);
    let listener = listener.map_err(io(shown))?;
    if let Some(gid) = gid {
        nix::unistd::chown(path, None, Some(gid)).map_err(|e| ServeError::Io {
            what: format!("chown {}", path.display()),
            source: e.into(),
        })?;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .map_err(io(format!("chmod {}", path.display())))?;
    Ok(listener)
}

fn tls_acceptor(files: &TlsFiles) -> Result<tokio_rustls::TlsAcceptor, ServeError> {
    let bad =
        |what: &str, p: &Path, e: String| ServeError::Tls(format!("{what} {}: {e}", p.display()));
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| bad("reading", &files.cert, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| bad("reading", &files.cert, e.to_string()))?;
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| bad("reading", &files.key, e.to_string()))?;
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_file_iter(&files.ca)
        .map_err(|e| bad("reading", &files.ca, e.to_string()))?
    {
        let ca = ca.map_err(|e| bad("reading", &files.ca, e.to_string()))?;
        roots
            .add(ca)
            .map_err(|e| bad("adding the CA", &files.ca, e.to_string()))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(|e| ServeError::Tls(e.to_string()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ServeError::Tls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| ServeError::Tls(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Accepts connections until the process exits.
pub(crate) async fn accept_loop(b: Bound, state: Arc<State>) {
    loop {
        match &b.acceptor {
            Acceptor::Unix(l) => match l.accept().await {
                Ok((s, _)) => {
                    tokio::spawn(serve_conn(s, state.clone()));
                }
                Err(e) => {
                    log::warn!("accept on {}: {e}", b.shown);
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            Acceptor::Tcp(l, tls) => match l.accept().await {
                Ok((s, _)) => {
                    let _ = s.set_nodelay(true);
                    let st = state.clone();
                    match tls.clone() {
                        Some(acc) => {
                            tokio::spawn(async move {
                                match acc.accept(s).await {
                                    Ok(s) => serve_conn(s, st).await,
                                    Err(e) => log::info!("TLS handshake: {e}"),
                                }
                            });
                        }
                        None => {
                            tokio::spawn(serve_conn(s, st));
                        }
                    }
                }
                Err(e) => {
                    log::warn!("accept on {}: {e}", b.shown);
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
        }
    }
}

async fn serve_conn<S>(s: S, state: Arc<State>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    state.active.fetch_add(1, Ordering::SeqCst);
    state.touch();
    let st = state.clone();
    let svc = hyper::service::service_fn(move |req| {
        let st = st.clone();
        async move { Ok::<_, Infallible>(crate::router::handle(st, req).await) }
    });
    if let Err(e) = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(s), svc)
        .with_upgrades()
        .await
    {
        log::debug!("connection: {e}");
    }
    state.active.fetch_sub(1, Ordering::SeqCst);
    state.touch();
}
