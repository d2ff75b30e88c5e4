//! The distribution API: routing, handlers, and the one place where failures become
//! spec error responses ([`RequestError::code`]).

use std::convert::Infallible;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::sync::Arc;

use berth_oci::{Digest, Hasher};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;

use super::auth::{Action, Decision, Identity, Scope};
use super::body::Body;
use super::storage::{random_id, LinkKind, StorageError, StorageErrorKind};
use super::{tls, CachedManifest, Registry};
use crate::name::{validate_tag, NameError, RepoName};
use crate::protocol::{self, Descriptor, ErrorBody, ErrorCode, ManifestView};

static API_VERSION: HeaderName = HeaderName::from_static("docker-distribution-api-version");
static CONTENT_DIGEST: HeaderName = HeaderName::from_static("docker-content-digest");
static UPLOAD_UUID: HeaderName = HeaderName::from_static("docker-upload-uuid");
static OCI_SUBJECT: HeaderName = HeaderName::from_static("oci-subject");
static OCI_FILTERS: HeaderName = HeaderName::from_static("oci-filters-applied");
static RANGE: HeaderName = HeaderName::from_static("range");
const REGISTRY_V2: HeaderValue = HeaderValue::from_static("registry/2.0");
const JSON: HeaderValue = HeaderValue::from_static("application/json");
const OCTET: HeaderValue = HeaderValue::from_static("application/octet-stream");

/// Blobs up to this size are read in one go; larger ones stream.
const SMALL_BLOB: u64 = 1 << 20;
const STREAM_CHUNK: usize = 256 * 1024;

/// Why a request failed. [`RequestError::code`] maps each to the spec's code and status.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// No route matches the path.
    #[error("no such endpoint")]
    RouteUnknown,
    /// The route exists but not with this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The repository name is not valid.
    #[error(transparent)]
    Name(#[from] NameError),
    /// A tag is not valid.
    #[error("invalid tag")]
    TagInvalid(NameError),
    /// A digest is malformed or unsupported.
    #[error("invalid digest {0:?}")]
    DigestMalformed(String),
    /// Uploaded content does not match its digest.
    #[error("content is {actual}, not {expected}")]
    DigestMismatch {
        /// Announced.
        expected: Digest,
        /// Received.
        actual: Digest,
    },
    /// The blob is not in the repository.
    #[error("blob {0} unknown to repository")]
    BlobUnknown(Digest),
    /// The manifest is not in the repository.
    #[error("manifest {0} unknown to repository")]
    ManifestUnknown(String),
    /// The repository does not exist.
    #[error("repository {0} unknown")]
    NameUnknown(String),
    /// The upload does not exist.
    #[error("upload {0} unknown")]
    UploadUnknown(String),
    /// The upload request is malformed.
    #[error("upload invalid: {0}")]
    UploadInvalid(&'static str),
    /// A chunk does not start where the upload ends, or a read range is out of bounds.
    #[error("range not satisfiable")]
    RangeInvalid {
        /// Bytes held so far (uploads) or the blob size (reads).
        size: u64,
    },
    /// The manifest cannot be accepted.
    #[error("manifest invalid: {0}")]
    ManifestInvalid(String),
    /// The manifest refers to content the repository lacks.
    #[error("manifest refers to unknown blob {0}")]
    ManifestBlobUnknown(Digest),
    /// The manifest is larger than the limit.
    #[error("manifest larger than {0} bytes")]
    ManifestTooLarge(usize),
    /// The request body could not be read.
    #[error("reading request body: {0}")]
    BodyRead(hyper::Error),
    /// Credentials are missing, wrong or insufficient.
    #[error("authentication required")]
    Unauthorized(Scope),
    /// The user may not do this.
    #[error("access denied")]
    Denied,
    /// The storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A blocking task died.
    #[error("blocking task: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// A manifest PUT took longer than the collector's grace period covers.
    #[error("storing the manifest took {0:?}, longer than a collection's grace period covers")]
    Stalled(std::time::Duration),
}

impl RequestError {
    /// The spec's error code for this failure.
    pub fn code(&self) -> ErrorCode {
        match self {
            RequestError::RouteUnknown | RequestError::MethodNotAllowed => ErrorCode::Unsupported,
            RequestError::Name(_) => ErrorCode::NameInvalid,
            RequestError::TagInvalid(_) => ErrorCode::ManifestInvalid,
            RequestError::DigestMalformed(_) | RequestError::DigestMismatch { .. } => {
                ErrorCode::DigestInvalid
            }
            RequestError::BlobUnknown(_) => ErrorCode::BlobUnknown,
            RequestError::ManifestUnknown(_) => ErrorCode::ManifestUnknown,
            RequestError::NameUnknown(_) => ErrorCode::NameUnknown,
            RequestError::UploadUnknown(_) => ErrorCode::BlobUploadUnknown,
            RequestError::UploadInvalid(_) | RequestError::BodyRead(_) => {
                ErrorCode::BlobUploadInvalid
            }
            RequestError::RangeInvalid { .. } => ErrorCode::RangeInvalid,
            RequestError::ManifestInvalid(_) => ErrorCode::ManifestInvalid,
            RequestError::ManifestBlobUnknown(_) => ErrorCode::ManifestBlobUnknown,
            RequestError::ManifestTooLarge(_) => ErrorCode::SizeInvalid,
            RequestError::Unauthorized(_) => ErrorCode::Unauthorized,
            RequestError::Denied => ErrorCode::Denied,
            RequestError::Storage(e) => match e.kind() {
                StorageErrorKind::NotFound => match e {
                    StorageError::UploadNotFound(_) => ErrorCode::BlobUploadUnknown,
                    _ => ErrorCode::BlobUnknown,
                },
                StorageErrorKind::InvalidContent => ErrorCode::DigestInvalid,
                StorageErrorKind::Internal => ErrorCode::Internal,
            },
            RequestError::Task(_) | RequestError::Stalled(_) => ErrorCode::Internal,
        }
    }

    fn status(&self) -> StatusCode {
        let s = match self {
            RequestError::RouteUnknown => 404,
            RequestError::ManifestTooLarge(_) => 413,
            other => other.code().status(),
        };
        StatusCode::from_u16(s).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The message sent to the client: never internal details.
    fn public_message(&self) -> String {
        match self.code() {
            ErrorCode::Internal => ErrorCode::Internal.message().to_owned(),
            _ => self.to_string(),
        }
    }

    fn into_response(self, reg: &Registry, host: Option<&HeaderValue>) -> Response<Body> {
        let code = self.code();
        if code == ErrorCode::Internal {
            log::error!("registry: {self}");
        } else {
            log::debug!("registry: {self}");
        }
        let body =
            serde_json::to_vec(&ErrorBody::one(code, &self.public_message())).unwrap_or_default();
        let mut resp = Response::new(Body::from(body));
        *resp.status_mut() = self.status();
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, JSON);
        h.insert(API_VERSION.clone(), REGISTRY_V2);
        match &self {
            RequestError::Unauthorized(scope) => {
                if let Some(auth) = &reg.auth {
                    let realm = realm(reg, host);
                    if let Ok(v) = HeaderValue::from_str(&auth.challenge(&realm, scope)) {
                        h.insert(header::WWW_AUTHENTICATE, v);
                    }
                }
            }
            RequestError::RangeInvalid { size } if *size > 0 => {
                if let Ok(v) = HeaderValue::from_str(&format!("0-{}", size - 1)) {
                    h.insert(RANGE.clone(), v);
                }
            }
            _ => {}
        }
        resp
    }
}

fn realm(reg: &Registry, host: Option<&HeaderValue>) -> String {
    if let Some(auth) = &reg.auth {
        if let Some(r) = &auth.realm {
            return r.clone();
        }
    }
    // The Host comes from the client: only a plain host[:port] goes into the challenge.
    let host = host
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".:-[]".contains(&b))
        })
        .unwrap_or("localhost");
    let scheme = if reg.tls { "https" } else { "http" };
    format!("{scheme}://{host}/token")
}

type Result<T, E = RequestError> = std::result::Result<T, E>;

/// Accepts connections until the listener fails for good.
pub async fn accept_loop(
    listener: tokio::net::TcpListener,
    reg: Arc<Registry>,
    acceptor: Option<tls::Acceptor>,
) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                log::warn!("registry: accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let reg = reg.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            match acceptor {
                Some(acc) => match acc.accept(stream).await {
                    Ok(s) => serve_conn(s, reg).await,
                    Err(e) => log::debug!("registry: TLS handshake: {e}"),
                },
                None => serve_conn(stream, reg).await,
            }
        });
    }
}

/// The largest read of a connection (and the limit of a request head).
const READ_BUF: usize = 1 << 20;

async fn serve_conn<S>(s: S, reg: Arc<Registry>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |req| {
        let reg = reg.clone();
        async move { Ok::<_, Infallible>(handle(reg, req).await) }
    });
    if let Err(e) = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        // Reads of up to READ_BUF bytes (hyper's default stops near 400 KiB): an upload body
        // then arrives in a few large chunks instead of hundreds of small ones.
        .max_buf_size(READ_BUF)
        .serve_connection(TokioIo::new(s), svc)
        .await
    {
        log::debug!("registry: connection: {e}");
    }
}

/// The routes of the API.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Ping,
    Catalog,
    Token,
    Tags(String),
    Manifest(String, String),
    Blob(String, String),
    UploadStart(String),
    Upload(String, String),
    Referrers(String, String),
}

fn percent_decode(s: &str) -> String {
    if !s.contains('%') && !s.contains('+') {
        return s.to_owned();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => match u8::from_str_radix(&s[i + 1..i + 3], 16) {
                Ok(v) => {
                    out.push(v);
                    i += 3;
                    continue;
                }
                Err(_) => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Route {
    fn parse(path: &str) -> Option<Route> {
        if path == "/token" {
            return Some(Route::Token);
        }
        let rest = path.strip_prefix("/v2/")?;
        if rest.is_empty() {
            return Some(Route::Ping);
        }
        if rest == "_catalog" {
            return Some(Route::Catalog);
        }
        if let Some(name) = rest.strip_suffix("/tags/list") {
            return Some(Route::Tags(name.to_owned()));
        }
        if let Some(name) = rest.strip_suffix("/blobs/uploads/") {
            return Some(Route::UploadStart(name.to_owned()));
        }
        if let Some(name) = rest.strip_suffix("/blobs/uploads") {
            return Some(Route::UploadStart(name.to_owned()));
        }
        let split = |marker: &str| -> Option<(String, String)> {
            let at = rest.rfind(marker)?;
            let last = &rest[at + marker.len()..];
            if last.is_empty() || last.contains('/') {
                return None;
            }
            Some((rest[..at].to_owned(), percent_decode(last)))
        };
        if let Some((n, id)) = split("/blobs/uploads/") {
            return Some(Route::Upload(n, id));
        }
        if let Some((n, d)) = split("/blobs/") {
            return Some(Route::Blob(n, d));
        }
        if let Some((n, r)) = split("/manifests/") {
            return Some(Route::Manifest(n, r));
        }
        if let Some((n, d)) = split("/referrers/") {
            return Some(Route::Referrers(n, d));
        }
        None
    }
}

fn query(req: &Request<Incoming>) -> Vec<(String, String)> {
    req.uri().query().map(parse_pairs).unwrap_or_default()
}

/// `a=1&b=2` (a query string or an `application/x-www-form-urlencoded` body).
fn parse_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (percent_decode(k), percent_decode(v)),
            None => (percent_decode(p), String::new()),
        })
        .collect()
}

fn param<'a>(q: &'a [(String, String)], key: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn parse_digest(s: &str) -> Result<Digest> {
    s.parse()
        .map_err(|_| RequestError::DigestMalformed(s.chars().take(100).collect()))
}

fn repo(name: &str) -> Result<RepoName> {
    Ok(RepoName::new(name)?)
}

/// Handles one request; never fails (errors become responses).
pub async fn handle(reg: Arc<Registry>, req: Request<Incoming>) -> Response<Body> {
    // Only the Host is needed after the request is consumed (for a challenge's realm).
    let host = req.headers().get(header::HOST).cloned();
    // Request lines only when asked for (`--log-level debug`): the hot path stays lean.
    let logged = log::log_enabled!(log::Level::Debug)
        .then(|| (req.method().clone(), req.uri().path().to_owned()));
    let resp = match route(&reg, req).await {
        Ok(mut resp) => {
            resp.headers_mut().insert(API_VERSION.clone(), REGISTRY_V2);
            resp
        }
        Err(e) => e.into_response(&reg, host.as_ref()),
    };
    if let Some((method, path)) = logged {
        log::debug!("{method} {path} {}", resp.status().as_u16());
    }
    resp
}

/// Who made a request, as far as upload sessions care: the user (or a token's subject);
/// empty for anonymous requests and when auth is off.
type Subject = String;

/// Checks that the request may act on `scope`; returns its subject.
fn authorize(reg: &Registry, req: &Request<Incoming>, scope: Scope) -> Result<Subject> {
    let Some(auth) = &reg.auth else {
        return Ok(Subject::new());
    };
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let id = auth.identify(value);
    match auth.decide(&id, &scope) {
        Decision::Allow => Ok(match id {
            Identity::User(u) => u,
            Identity::Token(c) => c.sub,
            Identity::Anonymous | Identity::Invalid => Subject::new(),
        }),
        Decision::Challenge => Err(RequestError::Unauthorized(scope)),
        Decision::Deny => Err(RequestError::Denied),
    }
}

async fn route(reg: &Arc<Registry>, req: Request<Incoming>) -> Result<Response<Body>> {
    let route = Route::parse(req.uri().path()).ok_or(RequestError::RouteUnknown)?;
    let m = req.method().clone();
    match route {
        Route::Ping => {
            authorize(reg, &req, Scope::Ping)?;
            Ok(json_response(StatusCode::OK, b"{}".to_vec()))
        }
        Route::Token => token(reg, req).await,
        Route::Catalog => {
            authorize(reg, &req, Scope::Catalog)?;
            catalog(reg, &req).await
        }
        Route::Tags(name) => {
            authorize(reg, &req, Scope::repo(&name, &[Action::Pull]))?;
            tags_list(reg, &req, repo(&name)?).await
        }
        Route::Manifest(name, reference) => {
            let action = match m {
                Method::GET | Method::HEAD => Action::Pull,
                Method::PUT => Action::Push,
                Method::DELETE => Action::Delete,
                _ => return Err(RequestError::MethodNotAllowed),
            };
            authorize(reg, &req, Scope::repo(&name, &[action]))?;
            let name = repo(&name)?;
            match m {
                Method::GET | Method::HEAD => {
                    get_manifest(reg, &name, &reference, m == Method::HEAD).await
                }
                Method::PUT => put_manifest(reg, name, reference, req).await,
                _ => delete_manifest(reg, name, reference).await,
            }
        }
        Route::Blob(name, digest) => {
            let action = match m {
                Method::GET | Method::HEAD => Action::Pull,
                Method::DELETE => Action::Delete,
                _ => return Err(RequestError::MethodNotAllowed),
            };
            authorize(reg, &req, Scope::repo(&name, &[action]))?;
            let name = repo(&name)?;
            let digest = parse_digest(&digest)?;
            match m {
                Method::DELETE => delete_blob(reg, name, digest).await,
                _ => get_blob(reg, name, digest, &req).await,
            }
        }
        Route::UploadStart(name) => {
            if m != Method::POST {
                return Err(RequestError::MethodNotAllowed);
            }
            let subject = authorize(reg, &req, Scope::repo(&name, &[Action::Pull, Action::Push]))
                .or_else(|_| authorize(reg, &req, Scope::repo(&name, &[Action::Push])))?;
            let name = repo(&name)?;
            let owner = upload_owner(&name, &subject);
            start_upload(reg, name, &owner, req).await
        }
        Route::Upload(name, id) => {
            let subject = authorize(reg, &req, Scope::repo(&name, &[Action::Push]))?;
            let name = repo(&name)?;
            // The session answers only to the repository and subject that opened it.
            let owner = upload_owner(&name, &subject);
            match m {
                Method::PATCH => patch_upload(reg, name, id, &owner, req).await,
                Method::PUT => put_upload(reg, name, id, &owner, req).await,
                Method::GET => upload_status(reg, name, id, &owner).await,
                Method::DELETE => cancel_upload(reg, id, &owner).await,
                _ => Err(RequestError::MethodNotAllowed),
            }
        }
        Route::Referrers(name, digest) => {
            if m != Method::GET {
                return Err(RequestError::MethodNotAllowed);
            }
            authorize(reg, &req, Scope::repo(&name, &[Action::Pull]))?;
            let name = repo(&name)?;
            let digest = parse_digest(&digest)?;
            referrers(reg, name, digest, &req).await
        }
    }
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response<Body> {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, JSON);
    r
}

fn hv(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or(HeaderValue::from_static(""))
}

fn empty(status: StatusCode) -> Response<Body> {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    r
}

/// Runs blocking storage work off the async threads.
async fn blocking<T, F>(f: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f).await?
}

/// The token service: `GET` with basic auth (Docker's token flow), or the OAuth2 form `POST`
/// with `grant_type=password` or `refresh_token`. A refresh token is issued when asked for
/// as Docker's client asks at login: `offline_token=true` (GET), `access_type=offline` (POST).
async fn token(reg: &Arc<Registry>, req: Request<Incoming>) -> Result<Response<Body>> {
    let Some(auth) = &reg.auth else {
        return Err(RequestError::RouteUnknown);
    };
    let (id, scopes, offline) = if req.method() == Method::GET && auth.token_get {
        let q = query(&req);
        let value = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        // Docker's token flow asks for a refresh token with offline_token=true.
        let offline = param(&q, "offline_token") == Some("true");
        (auth.identify(value), scope_params(&q), offline)
    } else if req.method() == Method::POST {
        let body = read_limited(req.into_body(), 64 * 1024).await?;
        let form = parse_pairs(&String::from_utf8_lossy(&body));
        let id = match param(&form, "grant_type") {
            Some("password") => match (param(&form, "username"), param(&form, "password")) {
                (Some(u), Some(p)) if auth.check_password(u, p) => Identity::User(u.to_owned()),
                _ => Identity::Invalid,
            },
            Some("refresh_token") => {
                auth.refresh_identity(param(&form, "refresh_token").unwrap_or(""))
            }
            _ => Identity::Invalid,
        };
        (
            id,
            scope_params(&form),
            param(&form, "access_type") == Some("offline"),
        )
    } else {
        return Err(RequestError::MethodNotAllowed);
    };
    match auth.issue_token(&id, &scopes) {
        Some(mut t) => {
            if offline {
                t.refresh_token = auth.issue_refresh_token(&id);
            }
            Ok(json_response(
                StatusCode::OK,
                serde_json::to_vec(&t).unwrap_or_default(),
            ))
        }
        None => Err(RequestError::Unauthorized(Scope::Ping)),
    }
}

fn scope_params(q: &[(String, String)]) -> Vec<String> {
    q.iter()
        .filter(|(k, _)| k == "scope")
        .map(|(_, v)| v.clone())
        .collect()
}

fn paginate(items: Vec<String>, q: &[(String, String)]) -> (Vec<String>, bool) {
    let last = param(q, "last");
    let n = param(q, "n").and_then(|n| n.parse::<usize>().ok());
    let mut it: Vec<String> = match last {
        Some(l) => items.into_iter().filter(|t| t.as_str() > l).collect(),
        None => items,
    };
    let mut more = false;
    if let Some(n) = n {
        if it.len() > n {
            it.truncate(n);
            more = true;
        }
    }
    (it, more)
}

fn link_next(resp: &mut Response<Body>, base: &str, n: Option<&str>, last: Option<&String>) {
    if let (Some(n), Some(last)) = (n, last) {
        let v = format!("<{base}?n={n}&last={last}>; rel=\"next\"");
        resp.headers_mut().insert(header::LINK, hv(&v));
    }
}

async fn catalog(reg: &Arc<Registry>, req: &Request<Incoming>) -> Result<Response<Body>> {
    let storage = reg.storage.clone();
    let all = blocking(move || Ok(storage.repositories()?)).await?;
    let q = query(req);
    let (repos, more) = paginate(all, &q);
    let body = serde_json::json!({ "repositories": repos });
    let mut r = json_response(StatusCode::OK, body.to_string().into_bytes());
    if more {
        link_next(&mut r, "/v2/_catalog", param(&q, "n"), repos.last());
    }
    Ok(r)
}

async fn tags_list(
    reg: &Arc<Registry>,
    req: &Request<Incoming>,
    name: RepoName,
) -> Result<Response<Body>> {
    let storage = reg.storage.clone();
    let n2 = name.clone();
    let all = blocking(move || {
        storage
            .tags(&n2)?
            .ok_or_else(|| RequestError::NameUnknown(n2.to_string()))
    })
    .await?;
    let q = query(req);
    let (tags, more) = paginate(all, &q);
    let body = serde_json::json!({ "name": name.as_str(), "tags": tags });
    let mut r = json_response(StatusCode::OK, body.to_string().into_bytes());
    if more {
        link_next(
            &mut r,
            &format!("/v2/{name}/tags/list"),
            param(&q, "n"),
            tags.last(),
        );
    }
    Ok(r)
}

fn cached_manifest(bytes: Vec<u8>, media_type: &str, digest: &Digest) -> CachedManifest {
    CachedManifest {
        length_header: HeaderValue::from(bytes.len()),
        bytes: Bytes::from(bytes),
        media_type: hv(media_type),
        digest_header: hv(&digest.to_string()),
    }
}

async fn get_manifest(
    reg: &Arc<Registry>,
    name: &RepoName,
    reference: &str,
    head: bool,
) -> Result<Response<Body>> {
    let by_digest = reference.contains(':');
    let digest = if by_digest {
        parse_digest(reference)?
    } else {
        // No manifest is known by a tag that could never be pushed: 404 as for any other
        // unknown reference (the spec's answer; only a PUT is told the tag is invalid).
        if validate_tag(reference).is_err() {
            return Err(RequestError::ManifestUnknown(
                reference.chars().take(128).collect(),
            ));
        }
        match reg.cache.tag(name.as_str(), reference, reg.tag_cache) {
            Some(d) => d,
            None => {
                let storage = reg.storage.clone();
                let (n, t) = (name.clone(), reference.to_owned());
                let d =
                    blocking(move || storage.tag(&n, &t)?.ok_or(RequestError::ManifestUnknown(t)))
                        .await?;
                reg.cache.put_tag(name.as_str(), reference, &d);
                d
            }
        }
    };
    // Membership: a tag of the repository implies it; a digest is checked each time.
    let cached = if by_digest {
        None
    } else {
        reg.cache.manifest(&digest)
    };
    let m = match cached {
        Some(m) => m,
        None => {
            let storage = reg.storage.clone();
            let (n, d) = (name.clone(), digest.clone());
            let m = blocking(move || {
                let meta = storage
                    .linked(&n, LinkKind::Manifest, &d)?
                    .ok_or_else(|| RequestError::ManifestUnknown(d.to_string()))?;
                let bytes = storage.read_blob(&d).map_err(|e| match e.kind() {
                    StorageErrorKind::NotFound => RequestError::ManifestUnknown(d.to_string()),
                    _ => e.into(),
                })?;
                let mt = String::from_utf8_lossy(&meta).into_owned();
                Ok(Arc::new(cached_manifest(bytes, &mt, &d)))
            })
            .await?;
            reg.cache.put_manifest(&digest, m.clone());
            m
        }
    };
    let body = if head {
        Body::empty()
    } else {
        Body::Full(Some(m.bytes.clone()))
    };
    let mut r = Response::new(body);
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, m.media_type.clone());
    h.insert(header::CONTENT_LENGTH, m.length_header.clone());
    h.insert(CONTENT_DIGEST.clone(), m.digest_header.clone());
    Ok(r)
}

async fn read_limited(body: Incoming, limit: usize) -> Result<Vec<u8>> {
    let mut body = body;
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(RequestError::BodyRead)?;
        if let Ok(data) = frame.into_data() {
            if out.len() + data.len() > limit {
                return Err(RequestError::ManifestTooLarge(limit));
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(out)
}

async fn put_manifest(
    reg: &Arc<Registry>,
    name: RepoName,
    reference: String,
    req: Request<Incoming>,
) -> Result<Response<Body>> {
    let header_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.split(';').next().unwrap_or("").trim().to_owned());
    if let Some(len) = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
    {
        if len > reg.max_manifest_size {
            return Err(RequestError::ManifestTooLarge(reg.max_manifest_size));
        }
    }
    let bytes = read_limited(req.into_body(), reg.max_manifest_size).await?;
    let view: ManifestView = serde_json::from_slice(&bytes)
        .map_err(|e| RequestError::ManifestInvalid(format!("not a manifest: {e}")))?;
    let media_type = match (&header_type, &view.media_type) {
        (Some(h), Some(b)) if protocol::is_manifest_type(h) && h != b => {
            return Err(RequestError::ManifestInvalid(format!(
                "Content-Type {h} differs from mediaType {b}"
            )))
        }
        (Some(h), _) if protocol::is_manifest_type(h) => h.clone(),
        (_, Some(b)) if protocol::is_manifest_type(b) => b.clone(),
        (_, _) if view.manifests.is_some() => protocol::OCI_INDEX.to_owned(),
        (_, _) if view.config.is_some() => protocol::OCI_MANIFEST.to_owned(),
        _ => {
            return Err(RequestError::ManifestInvalid(
                "unknown manifest media type".into(),
            ))
        }
    };
    if view.schema_version != 2 {
        return Err(RequestError::ManifestInvalid(
            "schemaVersion must be 2".into(),
        ));
    }
    let is_index = protocol::is_index(&media_type);
    if is_index && view.manifests.is_none() {
        return Err(RequestError::ManifestInvalid(
            "index without manifests".into(),
        ));
    }
    if !is_index && view.config.is_none() {
        return Err(RequestError::ManifestInvalid(
            "manifest without config".into(),
        ));
    }
    let digest = Digest::of(&bytes);
    let tag = if reference.contains(':') {
        let want = parse_digest(&reference)?;
        if want != digest {
            return Err(RequestError::DigestMismatch {
                expected: want,
                actual: digest,
            });
        }
        None
    } else {
        validate_tag(&reference).map_err(RequestError::TagInvalid)?;
        Some(reference)
    };
    let storage = reg.storage.clone();
    let auth_on = reg.auth.is_some();
    let (n, d, mt) = (name.clone(), digest.clone(), media_type.clone());
    let tag2 = tag.clone();
    let bytes2 = bytes.clone();
    let subject = view.subject.clone();
    let subject_digest = subject.as_ref().map(|s| s.digest.clone());
    let deadline = reg.manifest_put_deadline;
    blocking(move || {
        // Every blob referenced is touched, and so proven to exist, before the manifest is
        // written, and the whole PUT stays within MANIFEST_PUT_DEADLINE: the collector's
        // side of the bargain is in gc.rs.
        let started = std::time::Instant::now();
        for child in view.manifests.iter().flatten() {
            if !storage.touch_blob(&child.digest)?
                || storage
                    .linked(&n, LinkKind::Manifest, &child.digest)?
                    .is_none()
            {
                return Err(RequestError::ManifestBlobUnknown(child.digest.clone()));
            }
        }
        for blob in view.blobs() {
            if !storage.touch_blob(&blob.digest)? {
                return Err(RequestError::ManifestBlobUnknown(blob.digest.clone()));
            }
            if storage.linked(&n, LinkKind::Layer, &blob.digest)?.is_some() {
                continue;
            }
            // With auth off every blob is everyone's; link it so pulls find it.
            if auth_on {
                return Err(RequestError::ManifestBlobUnknown(blob.digest.clone()));
            }
            storage.link(&n, LinkKind::Layer, &blob.digest, b"")?;
        }
        storage.put_blob(&d, &bytes2)?;
        storage.link(&n, LinkKind::Manifest, &d, mt.as_bytes())?;
        if let Some(subject) = &subject {
            let desc = Descriptor {
                media_type: mt.clone(),
                digest: d.clone(),
                size: bytes2.len() as u64,
                platform: None,
                artifact_type: view
                    .artifact_type
                    .clone()
                    .or_else(|| view.config.as_ref().map(|c| c.media_type.clone())),
                annotations: view.annotations.clone(),
            };
            let json = serde_json::to_vec(&desc).unwrap_or_default();
            storage.add_referrer(&n, &subject.digest, &d, &json)?;
        }
        if let Some(t) = &tag2 {
            storage.set_tag(&n, t, &d)?;
        }
        // A touch that resolved a blob's path just before a collector took it out can
        // land after the collector judged it (and deleted it): every blob must still be
        // in place now that the manifest is linked, or the PUT is not acknowledged.
        for blob in view.references() {
            if storage.blob_size(&blob.digest)?.is_none() {
                return Err(RequestError::ManifestBlobUnknown(blob.digest.clone()));
            }
        }
        // Too slow to be covered by the collector's grace period: not acknowledged (the
        // client's retry touches everything again).
        let took = started.elapsed();
        if took > deadline {
            return Err(RequestError::Stalled(took));
        }
        Ok(())
    })
    .await?;
    reg.cache.put_manifest(
        &digest,
        Arc::new(cached_manifest(bytes, &media_type, &digest)),
    );
    if let Some(t) = &tag {
        reg.cache.put_tag(name.as_str(), t, &digest);
    }
    let mut r = empty(StatusCode::CREATED);
    let h = r.headers_mut();
    h.insert(
        header::LOCATION,
        hv(&format!("/v2/{name}/manifests/{digest}")),
    );
    h.insert(CONTENT_DIGEST.clone(), hv(&digest.to_string()));
    if let Some(s) = &subject_digest {
        h.insert(OCI_SUBJECT.clone(), hv(&s.to_string()));
    }
    Ok(r)
}

fn view_subject_digest(bytes: &[u8]) -> Option<Digest> {
    let v: ManifestView = serde_json::from_slice(bytes).ok()?;
    v.subject.map(|s| s.digest)
}

async fn delete_manifest(
    reg: &Arc<Registry>,
    name: RepoName,
    reference: String,
) -> Result<Response<Body>> {
    let storage = reg.storage.clone();
    let n = name.clone();
    let r2 = reference.clone();
    blocking(move || {
        if !r2.contains(':') {
            if validate_tag(&r2).is_err() {
                return Err(RequestError::ManifestUnknown(
                    r2.chars().take(128).collect(),
                ));
            }
            if !storage.delete_tag(&n, &r2)? {
                return Err(RequestError::ManifestUnknown(r2));
            }
            return Ok(());
        }
        let d = parse_digest(&r2)?;
        if storage.linked(&n, LinkKind::Manifest, &d)?.is_none() {
            return Err(RequestError::ManifestUnknown(r2));
        }
        if let Ok(bytes) = storage.read_blob(&d) {
            if let Some(subject) = view_subject_digest(&bytes) {
                storage.remove_referrer(&n, &subject, &d)?;
            }
        }
        for t in storage.tags(&n)?.unwrap_or_default() {
            // (one step where the backend can: a tag another replica moved meanwhile stays)
            storage.delete_tag_if(&n, &t, &d)?;
        }
        storage.unlink(&n, LinkKind::Manifest, &d)?;
        Ok(())
    })
    .await?;
    reg.cache.forget_repo(name.as_str());
    Ok(empty(StatusCode::ACCEPTED))
}

fn parse_range(value: &str, size: u64) -> Result<(u64, u64)> {
    let bad = RequestError::RangeInvalid { size };
    let spec = value
        .trim()
        .strip_prefix("bytes=")
        .ok_or(RequestError::RangeInvalid { size })?;
    if spec.contains(',') {
        return Err(bad);
    }
    let (a, b) = spec
        .split_once('-')
        .ok_or(RequestError::RangeInvalid { size })?;
    let (start, end) = if a.is_empty() {
        let n: u64 = b.parse().map_err(|_| RequestError::RangeInvalid { size })?;
        (size.saturating_sub(n), size.saturating_sub(1))
    } else {
        let s: u64 = a.parse().map_err(|_| RequestError::RangeInvalid { size })?;
        let e = if b.is_empty() {
            size.saturating_sub(1)
        } else {
            b.parse::<u64>()
                .map_err(|_| RequestError::RangeInvalid { size })?
                .min(size.saturating_sub(1))
        };
        (s, e)
    };
    if size == 0 || start > end || start >= size {
        return Err(bad);
    }
    Ok((start, end))
}

async fn get_blob(
    reg: &Arc<Registry>,
    name: RepoName,
    digest: Digest,
    req: &Request<Incoming>,
) -> Result<Response<Body>> {
    let head = req.method() == Method::HEAD;
    let storage = reg.storage.clone();
    let d = digest.clone();
    let size = blocking(move || {
        if storage.linked(&name, LinkKind::Layer, &d)?.is_none()
            && storage.linked(&name, LinkKind::Manifest, &d)?.is_none()
        {
            return Err(RequestError::BlobUnknown(d));
        }
        // A HEAD is how a push learns it need not upload the blob: touched, so the
        // collector keeps it for the manifest that is coming.
        if head && !storage.touch_blob(&d)? {
            return Err(RequestError::BlobUnknown(d));
        }
        storage.blob_size(&d)?.ok_or(RequestError::BlobUnknown(d))
    })
    .await?;
    if !head {
        let storage = reg.storage.clone();
        let d = digest.clone();
        if let Some(url) = blocking(move || Ok(storage.blob_redirect(&d))).await? {
            let mut r = empty(StatusCode::TEMPORARY_REDIRECT);
            r.headers_mut().insert(header::LOCATION, hv(&url));
            r.headers_mut()
                .insert(CONTENT_DIGEST.clone(), hv(&digest.to_string()));
            return Ok(r);
        }
    }
    let range = match req
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
    {
        Some(v) if !head => Some(parse_range(v, size)?),
        _ => None,
    };
    let (start, end) = range.unwrap_or((0, size.saturating_sub(1)));
    let len = if size == 0 { 0 } else { end - start + 1 };
    let body = if head || len == 0 {
        Body::empty()
    } else if len <= SMALL_BLOB {
        let storage = reg.storage.clone();
        let d = digest.clone();
        let bytes = blocking(move || {
            let mut f = storage.open_blob(&d)?;
            let mut buf = vec![0u8; len as usize];
            f.seek(SeekFrom::Start(start))
                .and_then(|_| f.read_exact(&mut buf))
                .map_err(|source| StorageError::Io {
                    path: d.to_string().into(),
                    source,
                })?;
            Ok(buf)
        })
        .await?;
        Body::from(bytes)
    } else {
        let storage = reg.storage.clone();
        let mut f = {
            let d = digest.clone();
            blocking(move || Ok(storage.open_blob(&d)?)).await?
        };
        let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(8);
        tokio::task::spawn_blocking(move || {
            if let Err(e) = f.seek(SeekFrom::Start(start)) {
                let _ = tx.blocking_send(Err(e));
                return;
            }
            let mut left = len;
            while left > 0 {
                let want = left.min(STREAM_CHUNK as u64) as usize;
                let mut buf = vec![0u8; want];
                match f.read_exact(&mut buf) {
                    Ok(()) => {
                        left -= want as u64;
                        if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = tx.blocking_send(Err(e));
                        return;
                    }
                }
            }
        });
        Body::Stream(rx)
    };
    let mut r = Response::new(body);
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, OCTET);
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(CONTENT_DIGEST.clone(), hv(&digest.to_string()));
    if range.is_some() {
        h.insert(
            header::CONTENT_RANGE,
            hv(&format!("bytes {start}-{end}/{size}")),
        );
        *r.status_mut() = StatusCode::PARTIAL_CONTENT;
    }
    Ok(r)
}

async fn delete_blob(
    reg: &Arc<Registry>,
    name: RepoName,
    digest: Digest,
) -> Result<Response<Body>> {
    let storage = reg.storage.clone();
    blocking(move || {
        if storage.unlink(&name, LinkKind::Layer, &digest)? {
            Ok(())
        } else {
            Err(RequestError::BlobUnknown(digest))
        }
    })
    .await?;
    Ok(empty(StatusCode::ACCEPTED))
}

fn upload_location(name: &RepoName, id: &str) -> HeaderValue {
    hv(&format!("/v2/{name}/blobs/uploads/{id}"))
}

fn blob_created(name: &RepoName, digest: &Digest) -> Response<Body> {
    let mut r = empty(StatusCode::CREATED);
    let h = r.headers_mut();
    h.insert(header::LOCATION, hv(&format!("/v2/{name}/blobs/{digest}")));
    h.insert(CONTENT_DIGEST.clone(), hv(&digest.to_string()));
    r
}

fn upload_accepted(status: StatusCode, name: &RepoName, id: &str, size: u64) -> Response<Body> {
    let mut r = empty(status);
    let h = r.headers_mut();
    h.insert(header::LOCATION, upload_location(name, id));
    h.insert(UPLOAD_UUID.clone(), hv(id));
    let range = if size == 0 {
        "0-0".to_owned()
    } else {
        format!("0-{}", size - 1)
    };
    h.insert(RANGE.clone(), hv(&range));
    r
}

/// Bytes of body chunks handed on (written with one writev, hashed) at a time.
const BATCH: usize = 1 << 20;

/// Body chunks in order, shared by the writer and the hasher.
type Batch = Arc<Vec<Bytes>>;

/// Writes `chunks` in order with vectored writes.
fn write_batch(w: &mut dyn Write, chunks: &[Bytes]) -> io::Result<()> {
    let mut slices: Vec<io::IoSlice<'_>> = chunks.iter().map(|c| io::IoSlice::new(c)).collect();
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        match w.write_vectored(rest) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => io::IoSlice::advance_slices(&mut rest, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Streams a request body into an upload, hashing as it goes (the hashing and the writing on
/// two threads, so that each chunk costs the slower of the two, not their sum); returns the
/// upload's size.
async fn receive(reg: &Arc<Registry>, id: &str, body: Incoming) -> Result<u64> {
    let state = reg.uploads.lock().ok().and_then(|mut m| m.remove(id));
    let storage = reg.storage.clone();
    let id2 = id.to_owned();
    let w = blocking(move || Ok(storage.append_upload(&id2)?)).await?;
    let start = w.len();
    let hasher = match state {
        Some(h) if h.len() == start => Some(h),
        None if start == 0 => Some(Hasher::new()),
        // The hash state was lost (restart, other replica): commit re-reads.
        _ => None,
    };
    // Body chunks (hyper's own buffers, a few hundred KiB each) go to the writer and the
    // hasher in batches of about BATCH bytes, shared: fewer wake-ups, no copies.
    let (tx, mut rx) = mpsc::channel::<Batch>(8);
    let id2 = id.to_owned();
    let writer = tokio::task::spawn_blocking(move || -> Result<u64> {
        let io_err = |source| StorageError::Io {
            path: format!("uploads/{id2}").into(),
            source,
        };
        let mut w = w;
        while let Some(batch) = rx.blocking_recv() {
            write_batch(&mut *w, &batch).map_err(io_err)?;
        }
        let len = w.len();
        w.finish().map_err(io_err)?;
        Ok(len)
    });
    let (htx, hashing) = match hasher {
        Some(mut h) => {
            let (htx, mut hrx) = mpsc::channel::<Batch>(8);
            let task = tokio::task::spawn_blocking(move || {
                while let Some(batch) = hrx.blocking_recv() {
                    for chunk in batch.iter() {
                        h.update(chunk);
                    }
                }
                h
            });
            (Some(htx), Some(task))
        }
        None => (None, None),
    };
    let mut body = body;
    let mut failed = None;
    let mut pending: Vec<Bytes> = Vec::new();
    let mut pending_len = 0usize;
    loop {
        let frame = body.frame().await;
        let end = !matches!(frame, Some(Ok(_)));
        match frame {
            Some(Ok(f)) => {
                if let Ok(data) = f.into_data() {
                    pending_len += data.len();
                    pending.push(data);
                }
            }
            Some(Err(e)) => failed = Some(e),
            None => {}
        }
        // (at most 256 chunks: one writev takes up to 1024 slices)
        if (end && !pending.is_empty()) || pending_len >= BATCH || pending.len() >= 256 {
            let batch: Batch = Arc::new(std::mem::take(&mut pending));
            pending_len = 0;
            if let Some(h) = &htx {
                let _ = h.send(batch.clone()).await;
            }
            if tx.send(batch).await.is_err() {
                break;
            }
        }
        if end {
            break;
        }
    }
    drop(tx);
    drop(htx);
    let len = writer.await??;
    let hasher = match hashing {
        Some(task) => Some(task.await?),
        None => None,
    };
    if let Some(e) = failed {
        return Err(RequestError::BodyRead(e));
    }
    if let (Some(h), Ok(mut m)) = (hasher, reg.uploads.lock()) {
        // Only a hash of exactly the bytes written is kept (commit re-reads otherwise).
        if h.len() == len {
            m.insert(id.to_owned(), h);
        }
    }
    Ok(len)
}

async fn commit(reg: &Arc<Registry>, name: &RepoName, id: &str, digest: &Digest) -> Result<()> {
    let hashed = reg.uploads.lock().ok().and_then(|mut m| m.remove(id));
    let storage = reg.storage.clone();
    let (n, id2, d) = (name.clone(), id.to_owned(), digest.clone());
    blocking(move || {
        match storage.commit_upload(&id2, &d, hashed) {
            Ok(_) => {}
            Err(StorageError::DigestMismatch {
                expected, actual, ..
            }) => return Err(RequestError::DigestMismatch { expected, actual }),
            Err(StorageError::UploadNotFound(id)) => return Err(RequestError::UploadUnknown(id)),
            Err(e) => return Err(e.into()),
        }
        storage.link(&n, LinkKind::Layer, &d, b"")?;
        Ok(())
    })
    .await
}

/// The owner recorded with an upload session: the repository and subject that opened it.
fn upload_owner(name: &RepoName, subject: &str) -> String {
    format!("{name}\n{subject}")
}

async fn start_upload(
    reg: &Arc<Registry>,
    name: RepoName,
    owner: &str,
    req: Request<Incoming>,
) -> Result<Response<Body>> {
    let q = query(&req);
    if let (Some(mount), Some(from)) = (param(&q, "mount"), param(&q, "from")) {
        let digest = parse_digest(mount)?;
        if let Ok(from) = RepoName::new(from) {
            let allowed = authorize(reg, &req, Scope::repo(from.as_str(), &[Action::Pull])).is_ok();
            let storage = reg.storage.clone();
            let (n, d) = (name.clone(), digest.clone());
            let mounted = allowed
                && blocking(move || {
                    // Touched: the push that mounts it is about to reference it.
                    if storage.linked(&from, LinkKind::Layer, &d)?.is_some()
                        && storage.touch_blob(&d)?
                    {
                        storage.link(&n, LinkKind::Layer, &d, b"")?;
                        Ok(true)
                    } else {
                        Ok(false)
                    }
                })
                .await?;
            if mounted {
                return Ok(blob_created(&name, &digest));
            }
        }
    }
    // 128 random bits from a CSPRNG (rand's ThreadRng): not to be guessed.
    let id = random_id();
    {
        let storage = reg.storage.clone();
        let (id2, owner) = (id.clone(), owner.to_owned());
        blocking(move || Ok(storage.start_upload(&id2, &owner)?)).await?;
    }
    if let Some(d) = param(&q, "digest") {
        // Monolithic upload: the body is the blob.
        let digest = parse_digest(d)?;
        let result = async {
            receive(reg, &id, req.into_body()).await?;
            commit(reg, &name, &id, &digest).await
        }
        .await;
        if result.is_err() {
            cleanup_upload(reg, &id).await;
        }
        result?;
        return Ok(blob_created(&name, &digest));
    }
    Ok(upload_accepted(StatusCode::ACCEPTED, &name, &id, 0))
}

async fn cleanup_upload(reg: &Arc<Registry>, id: &str) {
    if let Ok(mut m) = reg.uploads.lock() {
        m.remove(id);
    }
    let storage = reg.storage.clone();
    let id = id.to_owned();
    let _ = blocking(move || Ok(storage.cancel_upload(&id)?)).await;
}

/// The size of an upload that `owner` opened; any other owner is told it does not exist.
async fn upload_size(reg: &Arc<Registry>, id: &str, owner: &str) -> Result<u64> {
    let storage = reg.storage.clone();
    let (id2, owner) = (id.to_owned(), owner.to_owned());
    blocking(move || {
        let unknown = || RequestError::UploadUnknown(id2.clone());
        // A store that fails is a 500, not a session that is gone (a client would restart).
        let known = |e: StorageError| match e.kind() {
            StorageErrorKind::NotFound => unknown(),
            _ => RequestError::Storage(e),
        };
        if storage.upload_owner(&id2).map_err(known)?.as_deref() != Some(owner.as_str()) {
            return Err(unknown());
        }
        storage
            .upload_size(&id2)
            .map_err(known)?
            .ok_or_else(unknown)
    })
    .await
}

async fn patch_upload(
    reg: &Arc<Registry>,
    name: RepoName,
    id: String,
    owner: &str,
    req: Request<Incoming>,
) -> Result<Response<Body>> {
    let size = upload_size(reg, &id, owner).await?;
    if let Some(cr) = req
        .headers()
        .get(header::CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
    {
        let spec = cr
            .trim()
            .trim_start_matches("bytes")
            .trim_start_matches([' ', '=']);
        let start = spec
            .split('-')
            .next()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .ok_or(RequestError::UploadInvalid("malformed Content-Range"))?;
        if start != size {
            return Err(RequestError::RangeInvalid { size });
        }
    }
    let size = receive(reg, &id, req.into_body()).await?;
    Ok(upload_accepted(StatusCode::ACCEPTED, &name, &id, size))
}

async fn put_upload(
    reg: &Arc<Registry>,
    name: RepoName,
    id: String,
    owner: &str,
    req: Request<Incoming>,
) -> Result<Response<Body>> {
    upload_size(reg, &id, owner).await?;
    let q = query(&req);
    let digest = parse_digest(
        param(&q, "digest").ok_or(RequestError::UploadInvalid("digest parameter missing"))?,
    )?;
    receive(reg, &id, req.into_body()).await?;
    let result = commit(reg, &name, &id, &digest).await;
    if result.is_err() {
        cleanup_upload(reg, &id).await;
    }
    result?;
    Ok(blob_created(&name, &digest))
}

async fn upload_status(
    reg: &Arc<Registry>,
    name: RepoName,
    id: String,
    owner: &str,
) -> Result<Response<Body>> {
    let size = upload_size(reg, &id, owner).await?;
    Ok(upload_accepted(StatusCode::NO_CONTENT, &name, &id, size))
}

async fn cancel_upload(reg: &Arc<Registry>, id: String, owner: &str) -> Result<Response<Body>> {
    upload_size(reg, &id, owner).await?;
    cleanup_upload(reg, &id).await;
    Ok(empty(StatusCode::NO_CONTENT))
}

async fn referrers(
    reg: &Arc<Registry>,
    name: RepoName,
    subject: Digest,
    req: &Request<Incoming>,
) -> Result<Response<Body>> {
    let storage = reg.storage.clone();
    let list = blocking(move || Ok(storage.referrers(&name, &subject)?)).await?;
    let q = query(req);
    let filter = param(&q, "artifactType");
    let mut manifests: Vec<Descriptor> = list
        .iter()
        .filter_map(|b| serde_json::from_slice::<Descriptor>(b).ok())
        .collect();
    if let Some(f) = filter {
        manifests.retain(|d| d.artifact_type.as_deref() == Some(f));
    }
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": protocol::OCI_INDEX,
        "manifests": manifests,
    });
    let mut r = json_response(StatusCode::OK, index.to_string().into_bytes());
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(protocol::OCI_INDEX),
    );
    if filter.is_some() {
        r.headers_mut().insert(
            OCI_FILTERS.clone(),
            HeaderValue::from_static("artifactType"),
        );
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(Route::parse("/v2/"), Some(Route::Ping));
        assert_eq!(
            Route::parse("/v2/a/b/manifests/latest"),
            Some(Route::Manifest("a/b".into(), "latest".into()))
        );
        assert_eq!(
            Route::parse("/v2/a/blobs/uploads/"),
            Some(Route::UploadStart("a".into()))
        );
        assert_eq!(
            Route::parse("/v2/a/blobs/uploads/xyz"),
            Some(Route::Upload("a".into(), "xyz".into()))
        );
        assert_eq!(
            Route::parse("/v2/a/blobs/sha256%3Aab"),
            Some(Route::Blob("a".into(), "sha256:ab".into()))
        );
        assert_eq!(
            Route::parse("/v2/a/tags/list"),
            Some(Route::Tags("a".into()))
        );
        assert_eq!(Route::parse("/v3/"), None);
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100).unwrap(), (0, 9));
        assert_eq!(parse_range("bytes=90-", 100).unwrap(), (90, 99));
        assert_eq!(parse_range("bytes=-10", 100).unwrap(), (90, 99));
        assert_eq!(parse_range("bytes=50-500", 100).unwrap(), (50, 99));
        assert!(parse_range("bytes=100-", 100).is_err());
        assert!(parse_range("bytes=5-2", 100).is_err());
    }
}
