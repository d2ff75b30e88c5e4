//! The registry client: a blocking HTTP session to one registry with the auth flows of
//! Docker Hub, GHCR and the distribution registry, plus pull ([`pull`]) and push ([`push`]).
//!
//! Pulled blobs go to a [`BlobSink`], pushed blobs come from a [`BlobSource`]; the engine
//! implements both with the local store, tests with a directory ([`DirBlobs`]).

pub mod credentials;
pub mod gzip;
pub mod pull;
pub mod push;
pub mod tags;

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use berth_oci::Digest;
use serde::Deserialize;

use crate::protocol::{Descriptor, ErrorBody};
pub use credentials::{AuthEntry, CredentialStore};
pub use pull::{pull, PullOptions, PulledImage};
pub use push::{push, PushOptions, PushedImage};
pub use tags::list_tags;

/// An error from a sink or source (the engine's store errors, boxed at this boundary).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong talking to a registry.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The registry could not be reached or the connection broke.
    #[error("{method} \"{url}\": {}", transport_text(cause))]
    Transport {
        /// Method.
        method: &'static str,
        /// URL.
        url: String,
        /// Cause (worded into the message, so not chained as a `source`: the CLI would
        /// print ureq's text, URL included, a second time).
        cause: Box<ureq::Transport>,
    },
    /// A response body broke off or could not be read.
    #[error("reading \"{url}\": {source}")]
    BodyRead {
        /// URL.
        url: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The registry answered with an error status.
    #[error("{method} \"{url}\": {}", status_text(*status, code.as_deref(), message))]
    Status {
        /// Method.
        method: &'static str,
        /// URL.
        url: String,
        /// HTTP status.
        status: u16,
        /// The spec's error code from the body, if any.
        code: Option<String>,
        /// The message from the body.
        message: String,
    },
    /// The credentials were refused or are missing.
    #[error("{}unauthorized: {message}", unauthorized_prefix(url))]
    Unauthorized {
        /// The URL that refused.
        url: String,
        /// What the registry said.
        message: String,
    },
    /// The registry has no manifest under the reference.
    #[error("manifest for {reference} not found: manifest unknown: {message}")]
    ManifestNotFound {
        /// `host/repository:tag` or `@digest`.
        reference: String,
        /// What the registry said.
        message: String,
    },
    /// A manifest could not be understood.
    #[error("manifest {reference}: {reason}")]
    ManifestInvalid {
        /// The reference.
        reference: String,
        /// What is wrong.
        reason: String,
    },
    /// No manifest of an index matches the platform.
    #[error(
        "no matching manifest for {platform} in the manifest list entries (available: {available})"
    )]
    NoPlatform {
        /// Wanted.
        platform: String,
        /// Offered.
        available: String,
    },
    /// Content did not hash to its digest; nothing was stored.
    #[error("{what}: content is {actual}, expected {expected}")]
    DigestMismatch {
        /// What was checked.
        what: String,
        /// Expected.
        expected: Digest,
        /// Actual.
        actual: Digest,
    },
    /// Content had the wrong size; nothing was stored.
    #[error("blob {digest}: {actual} bytes received, expected {expected}")]
    SizeMismatch {
        /// The blob.
        digest: Digest,
        /// Expected.
        expected: u64,
        /// Actual.
        actual: u64,
    },
    /// The sink refused a blob.
    #[error("storing blob {digest}: {source}")]
    Sink {
        /// The blob.
        digest: Digest,
        /// Cause.
        source: BoxError,
    },
    /// The source could not provide a blob.
    #[error("reading blob {digest}: {source}")]
    Source {
        /// The blob.
        digest: Digest,
        /// Cause.
        source: BoxError,
    },
    /// Local file I/O.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The credentials file is unusable.
    #[error("credentials file {path}: {reason}")]
    Credentials {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A credential helper (`docker-credential-NAME`) failed or is missing.
    #[error("{message}")]
    CredentialHelper {
        /// Docker's wording of the failure.
        message: String,
    },
    /// A registry's answer broke the protocol.
    #[error("{url}: {reason}")]
    Protocol {
        /// The URL.
        url: String,
        /// What was wrong.
        reason: String,
    },
}

/// Docker names the URL of a refusal only for the `/v2/` check that `login` makes
/// (`Get "https://host/v2/": unauthorized: ...`); a refused push or pull says just
/// `unauthorized: ...` (an upload is a POST, so `Get` would be wrong there anyway).
fn unauthorized_prefix(url: &str) -> String {
    if url.ends_with("/v2/") {
        format!("Get \"{url}\": ")
    } else {
        String::new()
    }
}

/// A transport failure the way Docker's (Go's) client words it, without repeating the URL:
/// `dial tcp 127.0.0.1:1: connect: connection refused`.
fn transport_text(t: &ureq::Transport) -> String {
    let io = std::error::Error::source(t).and_then(|e| e.downcast_ref::<std::io::Error>());
    let host = t
        .url()
        .map(|u| {
            let port = u
                .port_or_known_default()
                .map(|p| format!(":{p}"))
                .unwrap_or_default();
            format!("{}{port}", u.host_str().unwrap_or(""))
        })
        .unwrap_or_default();
    match (t.kind(), io) {
        (ureq::ErrorKind::ConnectionFailed, Some(e)) => {
            format!("dial tcp {host}: connect: {}", e.kind())
        }
        (ureq::ErrorKind::Dns, _) => format!("dial tcp: lookup {host}: no such host"),
        (_, Some(e)) => format!("{}: {}", t.kind(), e.kind()),
        (kind, None) => match t.message() {
            Some(m) => format!("{kind}: {m}"),
            None => kind.to_string(),
        },
    }
}

fn status_text(status: u16, code: Option<&str>, message: &str) -> String {
    match code {
        Some(c) if !message.is_empty() => {
            format!("{}: {message}", c.to_lowercase().replace('_', " "))
        }
        Some(c) => c.to_lowercase().replace('_', " "),
        None => format!("status {status}"),
    }
}

impl ClientError {
    /// The kind of error.
    pub fn kind(&self) -> crate::ErrorKind {
        use crate::ErrorKind as K;
        match self {
            ClientError::Transport { .. } | ClientError::BodyRead { .. } => K::Unavailable,
            ClientError::Status { status, .. } => match status {
                401 | 403 => K::Unauthorized,
                404 => K::NotFound,
                400..=499 => K::InvalidArgument,
                _ => K::Unavailable,
            },
            ClientError::Unauthorized { .. } => K::Unauthorized,
            ClientError::ManifestInvalid { .. } => K::InvalidArgument,
            ClientError::NoPlatform { .. } | ClientError::ManifestNotFound { .. } => K::NotFound,
            ClientError::DigestMismatch { .. } | ClientError::SizeMismatch { .. } => K::Corrupt,
            ClientError::Sink { .. } | ClientError::Source { .. } | ClientError::Io { .. } => {
                K::Internal
            }
            ClientError::Credentials { .. } | ClientError::CredentialHelper { .. } => {
                K::InvalidArgument
            }
            ClientError::Protocol { .. } => K::Unavailable,
        }
    }

    /// Whether trying again may help (connection faults and 5xx).
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::Transport { .. } | ClientError::BodyRead { .. } => true,
            ClientError::Status { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }
}

/// Where pulled blobs go. The client checks every blob's digest and size before handing it
/// over, so a sink never sees unverified content.
pub trait BlobSink: Sync {
    /// Whether the blob is already held (then it is not downloaded).
    fn has_blob(&self, digest: &Digest) -> bool;
    /// Where a partial download of `digest` may be kept between attempts (same file system
    /// as the store, so that [`BlobSink::ingest_file`] can rename it).
    fn partial_path(&self, digest: &Digest) -> PathBuf;
    /// Takes a verified file into the store (the file may be moved away).
    fn ingest_file(&self, desc: &Descriptor, path: &Path) -> Result<(), BoxError>;
    /// A writer that gets a copy of a blob's bytes as a fresh download receives them (to
    /// unpack a layer while it arrives). The copy is unverified: the sink must only trust
    /// what it derives from it once the download ends verified (and [`BlobSink::ingest_file`]
    /// is called); a cut or failed download drops the writer early.
    fn tee(&self, _desc: &Descriptor) -> Option<Box<dyn std::io::Write + Send>> {
        None
    }
    /// Called once a download whose every byte went through the writer [`BlobSink::tee`]
    /// gave for it (and nothing else) is verified, after that writer is dropped and before
    /// [`BlobSink::ingest_file`]: the copy was exactly the blob, so what the sink derived
    /// from it may be trusted without hashing the blob a second time.
    fn tee_verified(&self, _desc: &Descriptor) {}
}

/// Where pushed blobs come from.
pub trait BlobSource: Sync {
    /// Opens a blob for reading.
    fn open_blob(&self, digest: &Digest) -> Result<Box<dyn Read + Send>, BoxError>;
    /// The compressed form an uncompressed blob was pushed as before, if remembered (so a
    /// second push can find it on the registry instead of compressing again).
    fn compressed_form(&self, _uncompressed: &Digest) -> Option<Descriptor> {
        None
    }
    /// Remembers the compressed form of an uncompressed blob.
    fn remember_compressed(&self, _uncompressed: &Digest, _compressed: &Descriptor) {}
    /// The blob as a file, when it is one: a plain-HTTP upload then sends it with
    /// `sendfile(2)`, from the page cache to the socket without copies in this process.
    fn blob_file(&self, _digest: &Digest) -> Option<std::fs::File> {
        None
    }
}

/// A directory of blobs laid out as `blobs/sha256/<hex>` (an OCI layout's blob directory):
/// the simplest sink and source.
#[derive(Debug, Clone)]
pub struct DirBlobs {
    root: PathBuf,
}

impl DirBlobs {
    /// Uses (creating) `root`.
    pub fn new(root: impl Into<PathBuf>) -> std::io::Result<DirBlobs> {
        let root = root.into();
        std::fs::create_dir_all(root.join("blobs/sha256"))?;
        std::fs::create_dir_all(root.join("tmp"))?;
        Ok(DirBlobs { root })
    }

    /// The path of a blob.
    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(digest.hex())
    }

    /// Stores bytes under their digest.
    pub fn put(&self, bytes: &[u8]) -> std::io::Result<Digest> {
        let d = Digest::of(bytes);
        let tmp = self.root.join("tmp").join(format!("put-{}", d.hex()));
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, self.path(&d))?;
        Ok(d)
    }
}

impl BlobSink for DirBlobs {
    fn has_blob(&self, digest: &Digest) -> bool {
        self.path(digest).exists()
    }
    fn partial_path(&self, digest: &Digest) -> PathBuf {
        self.root
            .join("tmp")
            .join(format!("{}.partial", digest.hex()))
    }
    fn ingest_file(&self, desc: &Descriptor, path: &Path) -> Result<(), BoxError> {
        std::fs::rename(path, self.path(&desc.digest))?;
        Ok(())
    }
}

impl BlobSource for DirBlobs {
    fn open_blob(&self, digest: &Digest) -> Result<Box<dyn Read + Send>, BoxError> {
        Ok(Box::new(std::fs::File::open(self.path(digest))?))
    }
    fn blob_file(&self, digest: &Digest) -> Option<std::fs::File> {
        std::fs::File::open(self.path(digest)).ok()
    }
}

/// A user name and password (or identity token) for a registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name.
    pub username: String,
    /// Password or token.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the password.
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    fn basic(&self) -> String {
        format!(
            "Basic {}",
            STANDARD.encode(format!("{}:{}", self.username, self.password))
        )
    }
}

/// How to reach a registry.
#[derive(Debug, Clone)]
pub struct EndpointOptions {
    /// Plain HTTP is allowed (after HTTPS fails), and certificates are not verified:
    /// localhost, the `insecure-registries` list, or `--tls-verify=false`.
    pub insecure: bool,
    /// Attempts per request on connection faults and 5xx (at least 1).
    pub attempts: u32,
    /// First backoff delay; doubled on each retry.
    pub backoff: Duration,
    /// Parallel blob transfers.
    pub parallel: usize,
}

impl Default for EndpointOptions {
    fn default() -> Self {
        EndpointOptions {
            insecure: false,
            attempts: 4,
            backoff: Duration::from_millis(200),
            parallel: 3,
        }
    }
}

/// Whether a registry host is insecure by default (loopback, as Docker treats it).
pub fn is_loopback_host(host: &str) -> bool {
    let h = host
        .rsplit_once(':')
        .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
        .map(|(h, _)| h)
        .unwrap_or(host);
    let h = h.trim_start_matches('[').trim_end_matches(']');
    h == "localhost" || h.starts_with("127.") || h == "::1"
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Challenge {
    /// `bearer` or `basic` (lowercase).
    pub scheme: String,
    /// Parameters: realm, service, scope, error.
    pub params: HashMap<String, String>,
}

/// Parses a `WWW-Authenticate` header value.
pub fn parse_challenge(value: &str) -> Challenge {
    let value = value.trim();
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    let mut params = HashMap::new();
    let mut s = rest.trim();
    while !s.is_empty() {
        let Some(eq) = s.find('=') else { break };
        let key = s[..eq].trim().trim_start_matches(',').trim().to_lowercase();
        s = &s[eq + 1..];
        let val;
        if let Some(stripped) = s.strip_prefix('"') {
            let end = stripped.find('"').unwrap_or(stripped.len());
            val = stripped[..end].to_owned();
            s = stripped.get(end + 1..).unwrap_or("");
        } else {
            let end = s.find(',').unwrap_or(s.len());
            val = s[..end].trim().to_owned();
            s = &s[end..];
        }
        s = s.trim_start_matches([',', ' ']);
        params.insert(key, val);
    }
    Challenge {
        scheme: scheme.to_lowercase(),
        params,
    }
}

#[derive(Deserialize)]
struct TokenAnswer {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    /// An OAuth2 refresh token (offline access, asked for at login): the identity token.
    #[serde(default)]
    refresh_token: Option<String>,
}

/// A session with one registry.
pub struct Session {
    agent: ureq::Agent,
    insecure_agent: Option<ureq::Agent>,
    host: String,
    base: Mutex<Option<String>>,
    credentials: Option<Credentials>,
    challenge: Mutex<Option<Challenge>>,
    tokens: Mutex<HashMap<String, String>>,
    /// The refresh token a token answer carried (only login asks for one).
    refresh: Mutex<Option<String>>,
    options: EndpointOptions,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("host", &self.host)
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

/// A response's parts that callers use.
pub struct Reply {
    /// Status.
    pub status: u16,
    /// The final URL.
    pub url: String,
    response: ureq::Response,
}

impl Reply {
    /// A header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.response.header(name)
    }
    /// The body as a reader.
    pub fn into_reader(self) -> Box<dyn Read + Send + Sync + 'static> {
        self.response.into_reader()
    }
    /// The body as bytes, at most `limit`.
    pub fn into_bytes(self, limit: u64) -> Result<Vec<u8>, ClientError> {
        let url = self.url.clone();
        let mut out = Vec::new();
        self.response
            .into_reader()
            .take(limit)
            .read_to_end(&mut out)
            .map_err(|e| ClientError::Protocol {
                url,
                reason: format!("reading body: {e}"),
            })?;
        Ok(out)
    }
}

/// The body of a request.
pub enum RequestBody<'a> {
    /// None.
    Empty,
    /// Bytes.
    Bytes(&'a [u8]),
    /// A stream (sent chunked unless `len` is known).
    Reader(Box<dyn Read + Send + 'a>, Option<u64>),
}

mod noverify {
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::{DigitallySignedStruct, SignatureScheme};

    /// Accepts any certificate: only for registries the user declared insecure.
    #[derive(Debug)]
    pub struct NoVerify(pub std::sync::Arc<rustls::crypto::CryptoProvider>);

    impl ServerCertVerifier for NoVerify {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }
        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }
        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
}

fn builder() -> ureq::AgentBuilder {
    ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(10))
        .timeout_read(Duration::from_secs(120))
        .timeout_write(Duration::from_secs(120))
        .max_idle_connections_per_host(8)
        .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
}

fn insecure_agent() -> ureq::Agent {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map(|b| {
            b.dangerous()
                .with_custom_certificate_verifier(Arc::new(noverify::NoVerify(provider)))
                .with_no_client_auth()
        });
    match config {
        Ok(c) => builder().tls_config(Arc::new(c)).build(),
        Err(_) => builder().build(),
    }
}

impl Session {
    /// A session with `host` (`registry.example.com`, `localhost:5000`).
    pub fn new(host: &str, credentials: Option<Credentials>, options: EndpointOptions) -> Session {
        Session {
            agent: builder().build(),
            insecure_agent: options.insecure.then(insecure_agent),
            host: host.to_owned(),
            base: Mutex::new(None),
            credentials,
            challenge: Mutex::new(None),
            tokens: Mutex::new(HashMap::new()),
            refresh: Mutex::new(None),
            options,
        }
    }

    /// The registry host.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The options.
    pub fn options(&self) -> &EndpointOptions {
        &self.options
    }

    fn agent(&self) -> &ureq::Agent {
        self.insecure_agent.as_ref().unwrap_or(&self.agent)
    }

    /// `GET /v2/`: finds the scheme (HTTPS, or HTTP for insecure registries) and the
    /// registry's auth challenge. Returns the base URL.
    pub fn ping(&self) -> Result<String, ClientError> {
        if let Ok(b) = self.base.lock() {
            if let Some(b) = b.as_ref() {
                return Ok(b.clone());
            }
        }
        let schemes: &[&str] = if self.options.insecure {
            &["https", "http"]
        } else {
            &["https"]
        };
        let mut last = None;
        for scheme in schemes {
            let base = format!("{scheme}://{}", self.host);
            let url = format!("{base}/v2/");
            // Probing HTTPS on an insecure registry: a plain-HTTP server fails the
            // handshake at once, and retrying would not heal it.
            let tries = (self.options.insecure && *scheme == "https").then_some(1);
            match self.send_with_retry("GET", &url, &[], || RequestBody::Empty, tries) {
                Ok(_) => {
                    self.set_base(&base);
                    return Ok(base);
                }
                Err(Raw::Status(401, resp)) => {
                    if let Some(h) = resp.header("www-authenticate") {
                        if let Ok(mut c) = self.challenge.lock() {
                            *c = Some(parse_challenge(h));
                        }
                    }
                    self.set_base(&base);
                    return Ok(base);
                }
                Err(Raw::Status(status, resp)) => {
                    // Some registries answer 404 on /v2/ yet serve the API.
                    if status == 404 {
                        self.set_base(&base);
                        return Ok(base);
                    }
                    last = Some(status_error("GET", &url, status, resp));
                }
                Err(Raw::Transport(t)) => {
                    last = Some(ClientError::Transport {
                        method: "GET",
                        url,
                        cause: Box::new(t),
                    })
                }
            }
        }
        Err(last.unwrap_or(ClientError::Protocol {
            url: self.host.clone(),
            reason: "no scheme to try".into(),
        }))
    }

    fn set_base(&self, base: &str) {
        if let Ok(mut b) = self.base.lock() {
            *b = Some(base.to_owned());
        }
    }

    /// Checks the credentials against the registry (as `docker login` does).
    pub fn login(&self) -> Result<Option<String>, ClientError> {
        let base = self.ping()?;
        let url = format!("{base}/v2/");
        let challenge = self.challenge.lock().ok().and_then(|c| c.clone());
        let Some(challenge) = challenge else {
            // The registry asks for nothing: any credentials "work", as with Docker.
            return Ok(None);
        };
        if challenge.scheme == "bearer" {
            // Offline access asked for, as Docker's login does: a token service that grants
            // it answers with a refresh token, kept instead of the password.
            self.fetch_token(&challenge, "", &url)?;
            return Ok(self.refresh.lock().ok().and_then(|mut r| r.take()));
        }
        let headers = self.auth_header_basic();
        match self.send_with_retry("GET", &url, &headers, || RequestBody::Empty, None) {
            Ok(_) => Ok(None),
            Err(Raw::Status(401, _)) | Err(Raw::Status(403, _)) => Err(ClientError::Unauthorized {
                url,
                message: "incorrect username or password".into(),
            }),
            Err(e) => Err(e.into_error("GET", &url)),
        }
    }

    fn auth_header_basic(&self) -> Vec<(String, String)> {
        match &self.credentials {
            Some(c) => vec![("Authorization".into(), c.basic())],
            None => Vec::new(),
        }
    }

    fn fetch_token(
        &self,
        ch: &Challenge,
        scope: &str,
        for_url: &str,
    ) -> Result<String, ClientError> {
        if let Ok(t) = self.tokens.lock() {
            if let Some(tok) = t.get(scope) {
                return Ok(tok.clone());
            }
        }
        let realm = ch
            .params
            .get("realm")
            .ok_or_else(|| ClientError::Protocol {
                url: for_url.to_owned(),
                reason: "bearer challenge without realm".into(),
            })?;
        let mut url = realm.clone();
        let mut sep = if url.contains('?') { '&' } else { '?' };
        if let Some(service) = ch.params.get("service") {
            url.push_str(&format!("{sep}service={}", encode(service)));
            sep = '&';
        }
        for s in scope.split(' ').filter(|s| !s.is_empty()) {
            url.push_str(&format!("{sep}scope={}", encode(s)));
            sep = '&';
        }
        if scope.is_empty() && self.credentials.is_some() {
            // Login: Docker's token flow asks for a refresh token with offline_token.
            url.push_str(&format!("{sep}offline_token=true&client_id=berth"));
        }
        let refused = || ClientError::Unauthorized {
            url: for_url.to_owned(),
            message: if self.credentials.is_some() {
                "incorrect username or password".into()
            } else {
                "authentication required".into()
            },
        };
        let identity_token = self
            .credentials
            .as_ref()
            .is_some_and(|c| c.username == credentials::IDENTITY_TOKEN_USER);
        let resp = if identity_token {
            // A refresh token only works with the OAuth2 form.
            self.oauth_token(ch, realm, scope, for_url)?
        } else {
            let headers = self.auth_header_basic();
            match self.send_with_retry("GET", &url, &headers, || RequestBody::Empty, None) {
                Ok(r) => r,
                // A token endpoint that only speaks OAuth2 (POST), as Docker's client
                // falls back the other way round.
                Err(Raw::Status(404 | 405, _)) if self.credentials.is_some() => {
                    self.oauth_token(ch, realm, scope, for_url)?
                }
                Err(Raw::Status(401, _)) | Err(Raw::Status(403, _)) => return Err(refused()),
                Err(e) => return Err(e.into_error("GET", &url)),
            }
        };
        let body = Reply {
            status: resp.status(),
            url: url.clone(),
            response: resp,
        }
        .into_bytes(1 << 20)?;
        let answer: TokenAnswer =
            serde_json::from_slice(&body).map_err(|e| ClientError::Protocol {
                url: url.clone(),
                reason: format!("token answer: {e}"),
            })?;
        let token = answer
            .token
            .or(answer.access_token)
            .ok_or_else(|| ClientError::Protocol {
                url,
                reason: "token answer without token".into(),
            })?;
        if let Ok(mut t) = self.tokens.lock() {
            t.insert(scope.to_owned(), token.clone());
        }
        if let (Some(r), Ok(mut slot)) = (answer.refresh_token, self.refresh.lock()) {
            *slot = Some(r);
        }
        Ok(token)
    }

    /// The OAuth2 token request (RFC 6749 4.3 and 6): a form POST to the realm with
    /// `grant_type=password` (user name and password) or `grant_type=refresh_token` (an
    /// identity token), as Docker's client sends it.
    fn oauth_token(
        &self,
        ch: &Challenge,
        realm: &str,
        scope: &str,
        for_url: &str,
    ) -> Result<ureq::Response, ClientError> {
        let Some(c) = &self.credentials else {
            return Err(ClientError::Unauthorized {
                url: for_url.to_owned(),
                message: "authentication required".into(),
            });
        };
        let mut form = if c.username == credentials::IDENTITY_TOKEN_USER {
            format!(
                "grant_type=refresh_token&refresh_token={}",
                encode(&c.password)
            )
        } else {
            format!(
                "grant_type=password&username={}&password={}",
                encode(&c.username),
                encode(&c.password)
            )
        };
        if let Some(service) = ch.params.get("service") {
            form.push_str(&format!("&service={}", encode(service)));
        }
        let scopes: Vec<&str> = scope.split(' ').filter(|s| !s.is_empty()).collect();
        if !scopes.is_empty() {
            form.push_str(&format!("&scope={}", encode(&scopes.join(" "))));
        }
        form.push_str("&client_id=berth");
        if scopes.is_empty() {
            // Login: offline access asks for a refresh token, as Docker's login does.
            form.push_str("&access_type=offline");
        }
        let headers = vec![(
            "Content-Type".to_owned(),
            "application/x-www-form-urlencoded".to_owned(),
        )];
        match self.send_with_retry(
            "POST",
            realm,
            &headers,
            || RequestBody::Bytes(form.as_bytes()),
            None,
        ) {
            Ok(r) => Ok(r),
            Err(Raw::Status(400 | 401 | 403, _)) => Err(ClientError::Unauthorized {
                url: for_url.to_owned(),
                message: "incorrect username or password".into(),
            }),
            Err(e) => Err(e.into_error("POST", realm)),
        }
    }

    fn auth_headers(&self, scope: &str, url: &str) -> Result<Vec<(String, String)>, ClientError> {
        let challenge = self.challenge.lock().ok().and_then(|c| c.clone());
        match challenge {
            Some(ch) if ch.scheme == "bearer" => {
                let t = self.fetch_token(&ch, scope, url)?;
                Ok(vec![("Authorization".into(), format!("Bearer {t}"))])
            }
            Some(ch) if ch.scheme == "basic" => Ok(self.auth_header_basic()),
            _ => Ok(Vec::new()),
        }
    }

    /// Sends an authenticated request for `path` (under the base URL, or an absolute URL)
    /// needing `scope` (e.g. `repository:a/b:pull`); retries connection faults and 5xx, and
    /// answers one new challenge. Error statuses become [`ClientError::Status`].
    pub fn request<'b>(
        &self,
        method: &'static str,
        path: &str,
        scope: &str,
        headers: &[(&str, String)],
        body: &mut dyn FnMut() -> RequestBody<'b>,
    ) -> Result<Reply, ClientError> {
        let base = self.ping()?;
        let url = if path.starts_with("http://") || path.starts_with("https://") {
            path.to_owned()
        } else {
            format!("{base}{path}")
        };
        let mut all: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        let auth = self.auth_headers(scope, &url)?;
        all.extend(auth.iter().cloned());
        let mut retried_auth = false;
        loop {
            match self.send_with_retry(method, &url, &all, &mut *body, None) {
                Ok(resp) => {
                    return Ok(Reply {
                        status: resp.status(),
                        url,
                        response: resp,
                    })
                }
                Err(Raw::Status(401, resp)) if !retried_auth => {
                    retried_auth = true;
                    let Some(h) = resp.header("www-authenticate") else {
                        return Err(status_error(method, &url, 401, resp));
                    };
                    let ch = parse_challenge(h);
                    let wanted = ch.params.get("scope").cloned().unwrap_or(scope.to_owned());
                    if let Ok(mut c) = self.challenge.lock() {
                        *c = Some(ch);
                    }
                    if let Ok(mut t) = self.tokens.lock() {
                        t.remove(&wanted);
                    }
                    all.retain(|(k, _)| k != "Authorization");
                    all.extend(self.auth_headers(&wanted, &url)?);
                }
                Err(Raw::Status(status, resp)) => {
                    return Err(status_error(method, &url, status, resp))
                }
                Err(Raw::Transport(t)) => {
                    return Err(ClientError::Transport {
                        method,
                        url,
                        cause: Box::new(t),
                    })
                }
            }
        }
    }

    #[allow(clippy::result_large_err)] // private, consumed at once
    fn send_with_retry<'b>(
        &self,
        method: &'static str,
        url: &str,
        headers: &[(String, String)],
        mut body: impl FnMut() -> RequestBody<'b>,
        attempts: Option<u32>,
    ) -> Result<ureq::Response, Raw> {
        let attempts = attempts.unwrap_or(self.options.attempts).max(1);
        let mut delay = self.options.backoff;
        let mut n = 0;
        loop {
            n += 1;
            let mut req = self.agent().request(method, url);
            for (k, v) in headers {
                req = req.set(k, v);
            }
            let b = body();
            let streamed = matches!(b, RequestBody::Reader(..));
            let result = match b {
                RequestBody::Empty => req.call(),
                RequestBody::Bytes(b) => req.send_bytes(b),
                RequestBody::Reader(r, len) => {
                    if let Some(len) = len {
                        req = req.set("Content-Length", &len.to_string());
                    }
                    req.send(r)
                }
            };
            let err = match result {
                Ok(r) => return Ok(r),
                Err(ureq::Error::Status(s, r)) => Raw::Status(s, r),
                Err(ureq::Error::Transport(t)) => Raw::Transport(t),
            };
            let retry = match &err {
                Raw::Transport(t) => !matches!(
                    t.kind(),
                    ureq::ErrorKind::InvalidUrl | ureq::ErrorKind::UnknownScheme
                ),
                Raw::Status(s, _) => *s >= 500 || *s == 429,
            };
            // A stream cannot be replayed here; the caller retries the whole transfer.
            if !retry || streamed || n >= attempts {
                return Err(err);
            }
            log::debug!("retrying {method} {url} in {delay:?}");
            std::thread::sleep(delay);
            delay *= 2;
        }
    }
}

/// Either side of a failed send.
enum Raw {
    Status(u16, ureq::Response),
    Transport(ureq::Transport),
}

impl Raw {
    fn into_error(self, method: &'static str, url: &str) -> ClientError {
        match self {
            Raw::Status(s, r) => status_error(method, url, s, r),
            Raw::Transport(t) => ClientError::Transport {
                method,
                url: url.to_owned(),
                cause: Box::new(t),
            },
        }
    }
}

fn status_error(method: &'static str, url: &str, status: u16, resp: ureq::Response) -> ClientError {
    let mut body = Vec::new();
    let _ = resp.into_reader().take(64 * 1024).read_to_end(&mut body);
    let parsed: Option<ErrorBody> = serde_json::from_slice(&body).ok();
    let (code, message) = match parsed.and_then(|b| b.errors.into_iter().next()) {
        Some(e) => (Some(e.code), e.message),
        None => (None, String::new()),
    };
    if status == 401 {
        return ClientError::Unauthorized {
            url: url.to_owned(),
            message: if message.is_empty() {
                "authentication required".into()
            } else {
                message
            },
        };
    }
    ClientError::Status {
        method,
        url: url.to_owned(),
        status,
        code,
        message,
    }
}

/// Percent-encodes a query value.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Progress of a pull or push, for the CLI to render.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// A blob is queued.
    Waiting(Digest),
    /// The store already has the blob.
    AlreadyExists(Digest),
    /// Bytes moved so far.
    Transferring {
        /// The blob.
        digest: Digest,
        /// Bytes done.
        done: u64,
        /// Total bytes (0 when unknown).
        total: u64,
    },
    /// Download finished and verified.
    PullComplete(Digest),
    /// The registry has the blob already.
    LayerExists(Digest),
    /// Mounted from another repository.
    Mounted {
        /// The blob.
        digest: Digest,
        /// Source repository.
        from: String,
    },
    /// Upload finished.
    Pushed(Digest),
    /// A transfer failed and is being retried.
    Retrying {
        /// The blob.
        digest: Digest,
        /// Why.
        reason: String,
    },
}

/// A callback receiving progress events from transfer threads.
pub type ProgressFn<'a> = &'a (dyn Fn(Progress) + Sync);

/// Reports `done` of a transfer of `digest` (of `total` bytes; 0: unknown) when at least
/// 512 KiB passed since the `last` report, or at the `end` when anything did.
pub(crate) fn report_transfer(
    progress: ProgressFn<'_>,
    digest: &Digest,
    done: u64,
    total: u64,
    last: &mut u64,
    end: bool,
) {
    if done - *last >= 512 * 1024 || (end && done != *last) {
        *last = done;
        progress(Progress::Transferring {
            digest: digest.clone(),
            done,
            total,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
        );
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.params["realm"], "https://auth.docker.io/token");
        assert_eq!(c.params["service"], "registry.docker.io");
        assert_eq!(c.params["scope"], "repository:library/busybox:pull");
        let c = parse_challenge(r#"Basic realm="Registry Realm""#);
        assert_eq!(c.scheme, "basic");
        assert_eq!(c.params["realm"], "Registry Realm");
    }

    #[test]
    fn loopback() {
        assert!(is_loopback_host("localhost:5000"));
        assert!(is_loopback_host("127.0.0.1:40000"));
        assert!(is_loopback_host("[::1]:5000"));
        assert!(!is_loopback_host("registry.example.com"));
    }

    #[test]
    fn credentials_debug_hides_password() {
        let c = Credentials {
            username: "u".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
