//! [`S3Storage`]: the registry's storage in an S3 bucket, so that any number of
//! `berth registry serve` replicas serve one registry.
//!
//! # The client
//!
//! Requests are signed with `rusty-s3` (a maintained, sans-I/O SigV4 signer and URL builder)
//! and sent with the blocking `ureq` agent berth already links. Compared on two cores:
//! `aws-sdk-s3` pulls in the Smithy runtime, hyper 0.14/1 stacks and aws-lc (hundreds of
//! crates, several minutes to build, tens of MB of RSS for its runtime) and is async-only;
//! `object_store` and `opendal` bring `reqwest` and their own async runtimes and hide the
//! request (no UploadPartCopy or CopyObject headers of our choice in `object_store`, and a
//! large service-agnostic layer in `opendal`); `rust-s3` has neither conditional writes nor
//! ListMultipartUploads. `rusty-s3` adds five small crates (its signer, `jiff`, `url`),
//! leaves every header to us — so multipart uploads, `If-Match`/`If-None-Match`, `Range`,
//! `x-amz-copy-source` and presigned GETs are each one request — and fits the blocking
//! [`Storage`] contract without a second runtime.
//!
//! # Layout under `s3://BUCKET/PREFIX/`
//!
//! ```text
//! blobs/sha256/<hex>                              content, written whole (PUT or copy)
//! touches/<hex>                                   empty; its LastModified is the blob's last touch
//! gc/<hex>.<random>                               a collector judging the blob (see below)
//! uploads/<id>/state                              JSON: owner, size, multipart id, parts
//! uploads/<id>/tail                               bytes below the S3 part minimum, not yet a part
//! uploads/<id>/data                               the multipart upload's key, then its result
//! signing-key                                     hex, created with If-None-Match: *
//! repositories/<name>/_layers/<hex>               as in FsStorage
//! repositories/<name>/_manifests/revisions/<hex>
//! repositories/<name>/_manifests/tags/<tag>
//! repositories/<name>/_referrers/<subject hex[..32]>/<hex[..32]>
//! ```
//!
//! # Uploads
//!
//! A PATCH streams into a buffer that becomes an S3 part each time it reaches
//! [`PART_SIZE`]; at the end of a request what is left is a part when it is at least the S3
//! minimum, else it is kept as `tail` (read back by the next PATCH, on any replica). The
//! session (`state`) is replaced with `If-Match` on its ETag, so two replicas appending to
//! one session at once fail clearly rather than interleave. Nothing but a process's buffer
//! of at most one part is ever held in memory. A commit completes the multipart upload at
//! `uploads/<id>/data` and copies it server-side (CopyObject) to the content-addressed key:
//! the digest is known only at the final PUT, and S3 has no rename, so a copy is needed
//! (blobs of less than one part skip the multipart upload and are PUT straight to their key).
//! A replica killed mid-request leaves parts that no `state` lists; the multipart upload is
//! aborted with its session, or by [`Storage::clean_debris`] when no session names it.
//!
//! # Garbage collection
//!
//! S3 has no rename (the FS collector's "take it out of reach") and a LastModified that only
//! a write moves. So a touch writes `touches/<hex>` (a blob's age is the younger of the two
//! objects), and a collector *announces* a sweep with its own `gc/<hex>.<random>` before it
//! judges the blob's age; a touch writes its marker first, then fails if any announcement
//! exists or the blob is gone. With S3's read-after-write consistency, either the touch's
//! marker is written before the collector judges (the blob is kept) or the touch sees the
//! announcement or the absence (the manifest PUT is not acknowledged). Announcements of a
//! killed collector are removed by [`Storage::clean_debris`].

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use berth_oci::{Digest, Hasher};
use rusty_s3::{Bucket, Method, UrlStyle};
use serde::{Deserialize, Serialize};

use super::storage::{random_id, BlobRead, LinkKind, Storage, StorageError, UploadWrite};
use crate::name::RepoName;

/// Parts are cut at this size while a body streams in.
pub const PART_SIZE: usize = 8 << 20;
/// The S3 minimum for every part but the last.
pub const MIN_PART_SIZE: usize = 5 << 20;
/// Attempts of one request when the store answers 5xx, 429 or not at all.
const ATTEMPTS: u32 = 4;

/// Where and how to reach the bucket.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct S3Config {
    /// The bucket.
    pub bucket: String,
    /// Key prefix inside the bucket (no leading or trailing slash; may be empty).
    pub prefix: String,
    /// Endpoint, e.g. `http://127.0.0.1:9000` (default: AWS's for the region).
    pub endpoint: String,
    /// Region (default `us-east-1`).
    pub region: String,
    /// Access key.
    pub access_key_id: String,
    /// Secret key.
    pub secret_access_key: String,
    /// Session token, if any.
    pub session_token: Option<String>,
    /// Path-style URLs (`endpoint/bucket/key`); `None` picks path style for IP addresses and
    /// `localhost`, virtual-host style otherwise.
    pub path_style: Option<bool>,
    /// Answer blob GETs with a redirect to a presigned URL of the object.
    pub redirect: bool,
    /// Timeout of one request (connect, and each read or write).
    pub timeout: Duration,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("redirect", &self.redirect)
            .finish_non_exhaustive()
    }
}

/// The `[registry.s3]` table of `berth.toml`: the same settings as the AWS environment
/// variables, which take precedence (as they do for AWS's own tools).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3ConfigFile {
    /// `AWS_ENDPOINT_URL`.
    pub endpoint_url: Option<String>,
    /// `AWS_REGION`.
    pub region: Option<String>,
    /// `AWS_ACCESS_KEY_ID`.
    pub access_key_id: Option<String>,
    /// `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key: Option<String>,
    /// `AWS_SESSION_TOKEN`.
    pub session_token: Option<String>,
    /// Force path-style (true) or virtual-host-style (false) URLs.
    pub path_style: Option<bool>,
    /// Redirect blob GETs to presigned URLs.
    pub redirect: Option<bool>,
    /// Timeout of one request, milliseconds (default 30000).
    pub timeout_ms: Option<u64>,
}

/// A storage URL that is not `s3://BUCKET[/PREFIX]`, or settings that do not fit.
#[derive(Debug, thiserror::Error)]
#[error("S3 storage {url}: {reason}")]
pub struct S3ConfigError {
    /// The URL or setting.
    pub url: String,
    /// What is wrong.
    pub reason: String,
}

impl S3Config {
    /// Whether a `--storage` value names S3.
    pub fn is_s3_url(s: &str) -> bool {
        s.starts_with("s3://")
    }

    /// The settings for `s3://BUCKET/PREFIX` from the environment (`AWS_ENDPOINT_URL_S3`,
    /// `AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_DEFAULT_REGION`, `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`), then `file`.
    pub fn from_url(url: &str, file: &S3ConfigFile) -> Result<S3Config, S3ConfigError> {
        Self::from_url_with(url, file, |k| {
            std::env::var(k).ok().filter(|v| !v.is_empty())
        })
    }

    /// [`S3Config::from_url`] with the environment given as a function.
    pub fn from_url_with(
        url: &str,
        file: &S3ConfigFile,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<S3Config, S3ConfigError> {
        let bad = |reason: &str| S3ConfigError {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| bad("expected s3://BUCKET/PREFIX"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty()
            || !bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        {
            return Err(bad(
                "the bucket name is empty or not a valid S3 bucket name",
            ));
        }
        let prefix = prefix.trim_matches('/').to_owned();
        let region = env("AWS_REGION")
            .or_else(|| env("AWS_DEFAULT_REGION"))
            .or(file.region.clone())
            .unwrap_or_else(|| "us-east-1".into());
        let endpoint = env("AWS_ENDPOINT_URL_S3")
            .or_else(|| env("AWS_ENDPOINT_URL"))
            .or(file.endpoint_url.clone())
            .unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"));
        let parsed: url::Url = endpoint
            .parse()
            .map_err(|_| bad(&format!("endpoint {endpoint} is not a URL")))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(bad(&format!("endpoint {endpoint} is not an http(s) URL")));
        }
        let access_key_id = env("AWS_ACCESS_KEY_ID")
            .or(file.access_key_id.clone())
            .ok_or_else(|| {
                bad("no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
            })?;
        let secret_access_key = env("AWS_SECRET_ACCESS_KEY")
            .or(file.secret_access_key.clone())
            .ok_or_else(|| bad("no credentials: AWS_SECRET_ACCESS_KEY is not set"))?;
        Ok(S3Config {
            bucket: bucket.to_owned(),
            prefix,
            endpoint,
            region,
            access_key_id,
            secret_access_key,
            session_token: env("AWS_SESSION_TOKEN").or(file.session_token.clone()),
            path_style: file.path_style,
            redirect: file.redirect.unwrap_or(false),
            timeout: Duration::from_millis(file.timeout_ms.unwrap_or(30_000)),
        })
    }

    /// Whether requests use path-style URLs.
    pub fn uses_path_style(&self) -> bool {
        if let Some(p) = self.path_style {
            return p;
        }
        match self.endpoint.parse::<url::Url>() {
            Ok(u) => {
                matches!(
                    u.host(),
                    Some(url::Host::Ipv4(_)) | Some(url::Host::Ipv6(_)) | None
                ) || u.host_str() == Some("localhost")
            }
            Err(_) => true,
        }
    }
}

/// The S3 backend. Cheap to clone (one shared agent).
#[derive(Clone)]
pub struct S3Storage {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for S3Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Storage")
            .field("config", &self.inner.config)
            .finish()
    }
}

struct Inner {
    config: S3Config,
    bucket: Bucket,
    agent: ureq::Agent,
    stream_agent: ureq::Agent,
}

/// The operation name of a blob's streamed GET.
const STREAM_OP: &str = "GetObject (stream)";

/// What the store answered, when it answered something other than a failure worth retrying.
enum Answer {
    Ok(ureq::Response),
    Status(u16, String),
}

/// One session, as kept in `uploads/<id>/state`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct UploadState {
    owner: String,
    size: u64,
    #[serde(default)]
    multipart: Option<String>,
    #[serde(default)]
    parts: Vec<(u32, String)>,
    #[serde(default)]
    tail: u64,
}

fn backend(op: &str, key: &str, detail: impl Into<String>) -> StorageError {
    StorageError::Backend {
        op: op.to_owned(),
        key: key.to_owned(),
        detail: detail.into(),
    }
}

/// The text of every `<tag>...</tag>` in `xml`, entities decoded.
fn xml_all<'a>(xml: &'a str, tag: &str) -> Vec<&'a str> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find(&open) {
        rest = &rest[i + open.len()..];
        let Some(j) = rest.find(&close) else { break };
        out.push(&rest[..j]);
        rest = &rest[j + close.len()..];
    }
    out
}

fn xml_one(xml: &str, tag: &str) -> Option<String> {
    xml_all(xml, tag).first().map(|s| xml_unescape(s))
}

fn xml_unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#34;", "\"")
        .replace("&amp;", "&")
}

fn parse_iso(s: &str) -> Option<SystemTime> {
    let t: jiff::Timestamp = s.trim().parse().ok()?;
    Some(SystemTime::from(t))
}

fn parse_http_date(s: &str) -> Option<SystemTime> {
    let z = jiff::fmt::rfc2822::parse(s.trim()).ok()?;
    Some(SystemTime::from(z.timestamp()))
}

fn header_time(r: &ureq::Response) -> Option<SystemTime> {
    r.header("last-modified").and_then(parse_http_date)
}

impl S3Storage {
    /// Opens the bucket (creating it when the store says it does not exist).
    pub fn open(config: S3Config) -> Result<S3Storage, StorageError> {
        let endpoint: url::Url = config
            .endpoint
            .parse()
            .map_err(|_| backend("open", &config.endpoint, "endpoint is not a URL"))?;
        let style = if config.uses_path_style() {
            UrlStyle::Path
        } else {
            UrlStyle::VirtualHost
        };
        let bucket = Bucket::new(
            endpoint,
            style,
            config.bucket.clone(),
            config.region.clone(),
        )
        .map_err(|e| backend("open", &config.bucket, e.to_string()))?;
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(config.timeout.min(Duration::from_secs(10)))
            .timeout_read(config.timeout)
            .timeout_write(config.timeout)
            .max_idle_connections_per_host(32)
            .redirects(0)
            .build();
        let stream_agent = ureq::AgentBuilder::new()
            .timeout_connect(config.timeout.min(Duration::from_secs(10)))
            .timeout_read(config.timeout)
            .timeout_write(config.timeout)
            .max_idle_connections(0)
            .redirects(0)
            .build();
        let s = S3Storage {
            inner: Arc::new(Inner {
                config,
                bucket,
                agent,
                stream_agent,
            }),
        };
        match s.call("HeadBucket", Method::Head, None, &[], &[], None)? {
            Answer::Ok(_) => {}
            Answer::Status(404, _) => {
                match s.call("CreateBucket", Method::Put, None, &[], &[], Some(b""))? {
                    Answer::Ok(_) => {}
                    // (another replica made it first)
                    Answer::Status(409, _) => {}
                    Answer::Status(code, body) => {
                        return Err(backend(
                            "CreateBucket",
                            &s.inner.config.bucket,
                            short(code, &body),
                        ))
                    }
                }
            }
            Answer::Status(code, body) => {
                return Err(backend(
                    "HeadBucket",
                    &s.inner.config.bucket,
                    short(code, &body),
                ))
            }
        }
        Ok(s)
    }

    /// The settings.
    pub fn config(&self) -> &S3Config {
        &self.inner.config
    }

    fn key(&self, rel: &str) -> String {
        if self.inner.config.prefix.is_empty() {
            rel.to_owned()
        } else {
            format!("{}/{rel}", self.inner.config.prefix)
        }
    }

    fn rel<'a>(&self, key: &'a str) -> &'a str {
        let p = &self.inner.config.prefix;
        if p.is_empty() {
            key
        } else {
            key.strip_prefix(p.as_str())
                .and_then(|k| k.strip_prefix('/'))
                .unwrap_or(key)
        }
    }

    /// A signed URL for `method` on `key` (the bucket when `None`) with sorted query and
    /// headers, valid for `expires`.
    fn sign(
        &self,
        method: Method,
        key: Option<&str>,
        query: &[(&str, &str)],
        headers: &[(&str, &str)],
        expires: Duration,
    ) -> url::Url {
        let c = &self.inner.config;
        let url = match key {
            Some(k) => self.inner.bucket.object_url(k),
            None => self.inner.bucket.base_url().clone(),
        };
        let mut q: Vec<(&str, &str)> = query.to_vec();
        q.sort();
        let mut h: Vec<(&str, &str)> = headers.to_vec();
        h.sort();
        rusty_s3::signing::sign(
            &jiff::Timestamp::now(),
            method,
            url,
            &c.access_key_id,
            &c.secret_access_key,
            c.session_token.as_deref(),
            &c.region,
            expires.as_secs(),
            q.into_iter(),
            h.into_iter(),
        )
    }

    /// One request, retried with backoff on transport errors, 5xx and 429.
    fn call(
        &self,
        op: &str,
        method: Method,
        key: Option<&str>,
        query: &[(&str, &str)],
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<Answer, StorageError> {
        let shown = key.unwrap_or(&self.inner.config.bucket).to_owned();
        let mut last = String::new();
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                std::thread::sleep(Duration::from_millis(100 << (2 * (attempt - 1))));
            }
            let url = self.sign(method, key, query, headers, Duration::from_secs(900));
            // ureq drops the read timeout of a pooled connection: requests with a bounded
            // answer get a deadline (kept on reused connections); a blob's stream has no
            // such bound, so it goes on a fresh connection of its own with the read timeout.
            let mut req = if op == STREAM_OP {
                self.inner.stream_agent.request_url(method.to_str(), &url)
            } else {
                self.inner
                    .agent
                    .request_url(method.to_str(), &url)
                    .timeout(self.inner.config.timeout)
            };
            for (k, v) in headers {
                req = req.set(k, v);
            }
            let res = match body {
                Some(b) => req.send_bytes(b),
                None => req.call(),
            };
            match res {
                Ok(r) => return Ok(Answer::Ok(r)),
                Err(ureq::Error::Status(code, r)) => {
                    let text = r.into_string().unwrap_or_default();
                    // (501: the store lacks the call, asking again will not help)
                    if (code >= 500 && code != 501) || code == 429 {
                        last = short(code, &text);
                        continue;
                    }
                    return Ok(Answer::Status(code, text));
                }
                Err(ureq::Error::Transport(t)) => {
                    last = t.to_string();
                    continue;
                }
            }
        }
        Err(backend(
            op,
            &shown,
            format!(
                "{} failed {ATTEMPTS} times, last: {last}",
                self.inner.config.endpoint
            ),
        ))
    }

    /// A request that must succeed (2xx); `Ok(None)` on 404.
    fn call_ok(
        &self,
        op: &str,
        method: Method,
        key: &str,
        query: &[(&str, &str)],
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<Option<ureq::Response>, StorageError> {
        match self.call(op, method, Some(key), query, headers, body)? {
            Answer::Ok(r) => Ok(Some(r)),
            Answer::Status(404, _) => Ok(None),
            Answer::Status(code, text) => Err(backend(op, key, short(code, &text))),
        }
    }

    fn head(&self, rel: &str) -> Result<Option<ureq::Response>, StorageError> {
        self.call_ok("HeadObject", Method::Head, &self.key(rel), &[], &[], None)
    }

    fn get_bytes(&self, rel: &str) -> Result<Option<(Vec<u8>, Option<String>)>, StorageError> {
        let key = self.key(rel);
        let Some(r) = self.call_ok("GetObject", Method::Get, &key, &[], &[], None)? else {
            return Ok(None);
        };
        let etag = r.header("etag").map(str::to_owned);
        let mut buf = Vec::new();
        r.into_reader()
            .read_to_end(&mut buf)
            .map_err(|e| backend("GetObject", &key, e.to_string()))?;
        Ok(Some((buf, etag)))
    }

    fn put(&self, rel: &str, bytes: &[u8]) -> Result<(), StorageError> {
        let key = self.key(rel);
        self.call_ok("PutObject", Method::Put, &key, &[], &[], Some(bytes))?
            .ok_or_else(|| backend("PutObject", &key, "404 (no such bucket)"))?;
        Ok(())
    }

    /// A PUT with a precondition; `Ok(false)` when the precondition failed (412, or 409 of a
    /// concurrent conditional write).
    fn put_if(&self, rel: &str, bytes: &[u8], cond: (&str, &str)) -> Result<bool, StorageError> {
        let key = self.key(rel);
        match self.call(
            "PutObject",
            Method::Put,
            Some(&key),
            &[],
            &[cond],
            Some(bytes),
        )? {
            Answer::Ok(_) => Ok(true),
            Answer::Status(412 | 409, _) => Ok(false),
            Answer::Status(code, text) => Err(backend("PutObject", &key, short(code, &text))),
        }
    }

    fn delete(&self, rel: &str) -> Result<bool, StorageError> {
        let key = self.key(rel);
        // S3 answers 204 whether or not the key existed: ask first for the boolean.
        let existed = self.head(rel)?.is_some();
        match self.call("DeleteObject", Method::Delete, Some(&key), &[], &[], None)? {
            Answer::Ok(_) | Answer::Status(404, _) => Ok(existed),
            Answer::Status(code, text) => Err(backend("DeleteObject", &key, short(code, &text))),
        }
    }

    /// Every key under `rel_prefix` (relative keys) with its LastModified and size.
    fn list(&self, rel_prefix: &str) -> Result<Vec<(String, SystemTime, u64)>, StorageError> {
        let prefix = self.key(rel_prefix);
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut q: Vec<(&str, &str)> = vec![("list-type", "2"), ("prefix", &prefix)];
            if let Some(t) = &token {
                q.push(("continuation-token", t));
            }
            let r = match self.call("ListObjectsV2", Method::Get, None, &q, &[], None)? {
                Answer::Ok(r) => r,
                Answer::Status(code, text) => {
                    return Err(backend("ListObjectsV2", &prefix, short(code, &text)))
                }
            };
            let text = r
                .into_string()
                .map_err(|e| backend("ListObjectsV2", &prefix, e.to_string()))?;
            for c in xml_all(&text, "Contents") {
                let Some(key) = xml_one(c, "Key") else {
                    continue;
                };
                let modified = xml_one(c, "LastModified")
                    .and_then(|t| parse_iso(&t))
                    .unwrap_or_else(SystemTime::now);
                let size = xml_one(c, "Size").and_then(|s| s.parse().ok()).unwrap_or(0);
                out.push((self.rel(&key).to_owned(), modified, size));
            }
            let truncated = xml_one(&text, "IsTruncated").as_deref() == Some("true");
            token = xml_one(&text, "NextContinuationToken");
            if !truncated || token.is_none() {
                break;
            }
        }
        Ok(out)
    }

    fn blob_key(d: &Digest) -> String {
        format!("blobs/sha256/{}", d.hex())
    }

    fn repo_key(repo: &RepoName) -> String {
        format!("repositories/{}", repo.as_str())
    }

    fn link_key(repo: &RepoName, kind: LinkKind, d: &Digest) -> String {
        match kind {
            LinkKind::Layer => format!("{}/_layers/{}", Self::repo_key(repo), d.hex()),
            LinkKind::Manifest => {
                format!("{}/_manifests/revisions/{}", Self::repo_key(repo), d.hex())
            }
        }
    }

    /// Digests shortened to 128 bits here: s3s-fs keeps each key's metadata in a file named
    /// after the whole key, which two full digests push past 255 bytes.
    fn referrer_key(repo: &RepoName, subject: &Digest, referrer: &Digest) -> String {
        format!(
            "{}/_referrers/{}/{}",
            Self::repo_key(repo),
            &subject.hex()[..32],
            &referrer.hex()[..32]
        )
    }

    fn tag_key(repo: &RepoName, tag: &str) -> String {
        format!("{}/_manifests/tags/{tag}", Self::repo_key(repo))
    }

    fn check_upload_id(id: &str) -> Result<(), StorageError> {
        if id.is_empty()
            || id.len() > 64
            || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(StorageError::UploadNotFound(id.chars().take(80).collect()));
        }
        Ok(())
    }

    fn load_state(&self, id: &str) -> Result<Option<(UploadState, Option<String>)>, StorageError> {
        Self::check_upload_id(id)?;
        let rel = format!("uploads/{id}/state");
        let Some((bytes, etag)) = self.get_bytes(&rel)? else {
            return Ok(None);
        };
        let state = serde_json::from_slice(&bytes)
            .map_err(|e| backend("GetObject", &self.key(&rel), format!("bad session: {e}")))?;
        Ok(Some((state, etag)))
    }

    fn save_state(
        &self,
        id: &str,
        state: &UploadState,
        etag: Option<&str>,
    ) -> Result<(), StorageError> {
        let rel = format!("uploads/{id}/state");
        let bytes = serde_json::to_vec(state).unwrap_or_default();
        let ok = match etag {
            Some(e) => self.put_if(&rel, &bytes, ("if-match", e))?,
            None => {
                self.put(&rel, &bytes)?;
                true
            }
        };
        if !ok {
            return Err(backend(
                "PutObject",
                &self.key(&rel),
                "the upload session was changed by another request at the same time",
            ));
        }
        Ok(())
    }

    fn create_multipart(&self, id: &str) -> Result<String, StorageError> {
        let key = self.key(&format!("uploads/{id}/data"));
        let r = self
            .call_ok(
                "CreateMultipartUpload",
                Method::Post,
                &key,
                &[("uploads", "")],
                &[],
                Some(b""),
            )?
            .ok_or_else(|| backend("CreateMultipartUpload", &key, "404"))?;
        let text = r
            .into_string()
            .map_err(|e| backend("CreateMultipartUpload", &key, e.to_string()))?;
        xml_one(&text, "UploadId")
            .ok_or_else(|| backend("CreateMultipartUpload", &key, "no UploadId in the answer"))
    }

    fn upload_part(
        &self,
        id: &str,
        multipart: &str,
        n: u32,
        bytes: &[u8],
    ) -> Result<String, StorageError> {
        let key = self.key(&format!("uploads/{id}/data"));
        let num = n.to_string();
        let r = self
            .call_ok(
                "UploadPart",
                Method::Put,
                &key,
                &[("partNumber", &num), ("uploadId", multipart)],
                &[],
                Some(bytes),
            )?
            .ok_or_else(|| StorageError::UploadNotFound(id.to_owned()))?;
        r.header("etag")
            .map(str::to_owned)
            .ok_or_else(|| backend("UploadPart", &key, "no ETag in the answer"))
    }

    fn abort_multipart(&self, key: &str, multipart: &str) -> Result<(), StorageError> {
        match self.call(
            "AbortMultipartUpload",
            Method::Delete,
            Some(key),
            &[("uploadId", multipart)],
            &[],
            None,
        )? {
            Answer::Ok(_) | Answer::Status(404, _) => Ok(()),
            Answer::Status(code, text) => {
                Err(backend("AbortMultipartUpload", key, short(code, &text)))
            }
        }
    }

    fn complete_multipart(&self, id: &str, state: &UploadState) -> Result<(), StorageError> {
        let key = self.key(&format!("uploads/{id}/data"));
        let Some(mp) = &state.multipart else {
            return Ok(());
        };
        let mut body = String::from("<CompleteMultipartUpload>");
        for (n, etag) in &state.parts {
            body.push_str(&format!(
                "<Part><PartNumber>{n}</PartNumber><ETag>{}</ETag></Part>",
                etag.replace('&', "&amp;").replace('"', "&quot;")
            ));
        }
        body.push_str("</CompleteMultipartUpload>");
        let r = self
            .call_ok(
                "CompleteMultipartUpload",
                Method::Post,
                &key,
                &[("uploadId", mp)],
                &[],
                Some(body.as_bytes()),
            )?
            .ok_or_else(|| StorageError::UploadNotFound(id.to_owned()))?;
        // S3 may answer 200 and put the error in the body.
        let text = r.into_string().unwrap_or_default();
        if text.contains("<Error>") {
            return Err(backend("CompleteMultipartUpload", &key, short(200, &text)));
        }
        Ok(())
    }

    fn copy(&self, from_rel: &str, to_rel: &str) -> Result<(), StorageError> {
        let to = self.key(to_rel);
        let source = format!(
            "/{}/{}",
            self.inner.config.bucket,
            percent_encode_key(&self.key(from_rel))
        );
        let r = self
            .call_ok(
                "CopyObject",
                Method::Put,
                &to,
                &[],
                &[("x-amz-copy-source", &source)],
                Some(b""),
            )?
            .ok_or_else(|| backend("CopyObject", &to, "source not found"))?;
        let text = r.into_string().unwrap_or_default();
        if text.contains("<Error>") {
            return Err(backend("CopyObject", &to, short(200, &text)));
        }
        Ok(())
    }

    /// Removes every object of a session and aborts its multipart upload.
    fn drop_session(&self, id: &str, state: Option<&UploadState>) -> Result<(), StorageError> {
        if let Some(mp) = state.and_then(|s| s.multipart.as_deref()) {
            self.abort_multipart(&self.key(&format!("uploads/{id}/data")), mp)?;
        }
        for f in ["tail", "data", "state"] {
            let key = self.key(&format!("uploads/{id}/{f}"));
            match self.call("DeleteObject", Method::Delete, Some(&key), &[], &[], None)? {
                Answer::Ok(_) | Answer::Status(404, _) => {}
                Answer::Status(code, text) => {
                    return Err(backend("DeleteObject", &key, short(code, &text)))
                }
            }
        }
        Ok(())
    }

    /// Whether any collector has announced a sweep of `d`.
    fn sweep_announced(&self, d: &Digest) -> Result<bool, StorageError> {
        Ok(!self.list(&format!("gc/{}.", d.hex()))?.is_empty())
    }

    /// Hashes an object by streaming it.
    fn hash_object(&self, rel: &str) -> Result<(Digest, u64), StorageError> {
        let mut r = self.reader(rel, None)?;
        let mut h = Hasher::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = r
                .read(&mut buf)
                .map_err(|e| backend("GetObject", &self.key(rel), e.to_string()))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        let len = h.len();
        Ok((h.finish(), len))
    }

    fn reader(&self, rel: &str, size: Option<u64>) -> Result<ObjectReader, StorageError> {
        let size = match size {
            Some(s) => s,
            None => {
                let r = self
                    .head(rel)?
                    .ok_or_else(|| backend("HeadObject", &self.key(rel), "not found"))?;
                content_length(&r)
            }
        };
        Ok(ObjectReader {
            storage: self.clone(),
            key: self.key(rel),
            size,
            pos: 0,
            body: None,
        })
    }

    /// The multipart uploads in progress under the prefix: (key, upload id); `None` when
    /// the store does not list them (s3s-fs answers 501).
    pub fn multipart_uploads(&self) -> Result<Option<Vec<(String, String)>>, StorageError> {
        let prefix = self.key("");
        let answer = self.call(
            "ListMultipartUploads",
            Method::Get,
            None,
            &[("uploads", ""), ("prefix", &prefix)],
            &[],
            None,
        )?;
        let text = match answer {
            Answer::Ok(r) => r.into_string().unwrap_or_default(),
            Answer::Status(501, _) => return Ok(None),
            Answer::Status(code, text) => {
                return Err(backend("ListMultipartUploads", &prefix, short(code, &text)))
            }
        };
        Ok(Some(
            xml_all(&text, "Upload")
                .into_iter()
                .filter_map(|u| Some((xml_one(u, "Key")?, xml_one(u, "UploadId")?)))
                .collect(),
        ))
    }

    /// A presigned GET of a blob, valid for 20 minutes (for redirects).
    pub fn presigned_blob_url(&self, d: &Digest) -> String {
        self.sign(
            Method::Get,
            Some(&self.key(&Self::blob_key(d))),
            &[],
            &[],
            Duration::from_secs(1200),
        )
        .to_string()
    }
}

fn short(code: u16, body: &str) -> String {
    let what = xml_one(body, "Code").unwrap_or_default();
    let msg = xml_one(body, "Message").unwrap_or_default();
    let mut s = format!("HTTP {code}");
    if !what.is_empty() {
        s.push_str(&format!(" {what}"));
    }
    if !msg.is_empty() {
        s.push_str(&format!(": {msg}"));
    }
    s
}

fn content_length(r: &ureq::Response) -> u64 {
    r.header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn percent_encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A blob read with ranged GETs from the current position; a broken stream is resumed from
/// where it broke.
struct ObjectReader {
    storage: S3Storage,
    key: String,
    size: u64,
    pos: u64,
    body: Option<Box<dyn Read + Send + Sync>>,
}

impl ObjectReader {
    fn open_at(&mut self) -> io::Result<()> {
        let range = format!("bytes={}-", self.pos);
        match self.storage.call(
            STREAM_OP,
            Method::Get,
            Some(&self.key),
            &[],
            &[("range", &range)],
            None,
        ) {
            Ok(Answer::Ok(r)) => {
                self.body = Some(r.into_reader());
                Ok(())
            }
            Ok(Answer::Status(code, text)) => Err(io::Error::other(format!(
                "object store: GetObject {}: {}",
                self.key,
                short(code, &text)
            ))),
            Err(e) => Err(io::Error::other(e.to_string())),
        }
    }
}

impl Read for ObjectReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.size || buf.is_empty() {
            return Ok(0);
        }
        let mut retried = 0;
        loop {
            if self.body.is_none() {
                self.open_at()?;
            }
            let Some(body) = self.body.as_mut() else {
                return Ok(0);
            };
            match body.read(buf) {
                Ok(0) if self.pos < self.size && retried < 2 => {
                    self.body = None;
                    retried += 1;
                }
                Ok(n) => {
                    self.pos += n as u64;
                    return Ok(n);
                }
                Err(_) if retried < 2 => {
                    self.body = None;
                    retried += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

impl Seek for ObjectReader {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let new = match to {
            SeekFrom::Start(p) => p as i128,
            SeekFrom::End(o) => self.size as i128 + o as i128,
            SeekFrom::Current(o) => self.pos as i128 + o as i128,
        };
        if new < 0 {
            return Err(io::ErrorKind::InvalidInput.into());
        }
        if new as u64 != self.pos {
            self.pos = new as u64;
            self.body = None;
        }
        Ok(self.pos)
    }
}

/// Bytes of one PATCH: parts go out as the buffer fills; the session is saved at the end.
struct S3Upload {
    storage: S3Storage,
    id: String,
    state: UploadState,
    etag: Option<String>,
    buf: Vec<u8>,
    failed: Option<io::Error>,
}

impl S3Upload {
    fn flush_part(&mut self) -> Result<(), StorageError> {
        if self.state.multipart.is_none() {
            self.state.multipart = Some(self.storage.create_multipart(&self.id)?);
        }
        let mp = self.state.multipart.clone().unwrap_or_default();
        let n = self.state.parts.last().map(|p| p.0 + 1).unwrap_or(1);
        let etag = self.storage.upload_part(&self.id, &mp, n, &self.buf)?;
        self.state.parts.push((n, etag));
        self.buf.clear();
        Ok(())
    }
}

impl Write for S3Upload {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if let Some(e) = &self.failed {
            return Err(io::Error::new(e.kind(), e.to_string()));
        }
        let room = PART_SIZE - self.buf.len();
        let n = data.len().min(room);
        self.buf.extend_from_slice(&data[..n]);
        self.state.size += n as u64;
        if self.buf.len() >= PART_SIZE {
            if let Err(e) = self.flush_part() {
                let err = io::Error::other(e.to_string());
                self.failed = Some(io::Error::other(e.to_string()));
                return Err(err);
            }
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl UploadWrite for S3Upload {
    fn len(&self) -> u64 {
        self.state.size
    }
    fn finish(mut self: Box<Self>) -> io::Result<()> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        let res = (|| {
            if self.buf.len() >= MIN_PART_SIZE {
                self.flush_part()?;
            }
            let tail_rel = format!("uploads/{}/tail", self.id);
            if !self.buf.is_empty() {
                self.storage.put(&tail_rel, &self.buf)?;
            }
            self.state.tail = self.buf.len() as u64;
            let etag = self.etag.clone();
            self.storage
                .save_state(&self.id, &self.state, etag.as_deref())
        })();
        res.map_err(|e| io::Error::other(e.to_string()))
    }
}

impl Storage for S3Storage {
    fn blob_size(&self, digest: &Digest) -> Result<Option<u64>, StorageError> {
        Ok(self
            .head(&Self::blob_key(digest))?
            .map(|r| content_length(&r)))
    }

    fn open_blob(&self, digest: &Digest) -> Result<Box<dyn BlobRead>, StorageError> {
        let rel = Self::blob_key(digest);
        let size = self
            .head(&rel)?
            .map(|r| content_length(&r))
            .ok_or_else(|| StorageError::BlobNotFound(digest.clone()))?;
        Ok(Box::new(self.reader(&rel, Some(size))?))
    }

    fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>, StorageError> {
        self.get_bytes(&Self::blob_key(digest))?
            .map(|(b, _)| b)
            .ok_or_else(|| StorageError::BlobNotFound(digest.clone()))
    }

    fn put_blob(&self, digest: &Digest, bytes: &[u8]) -> Result<(), StorageError> {
        self.put(&Self::blob_key(digest), bytes)
    }

    fn delete_blob(&self, digest: &Digest) -> Result<bool, StorageError> {
        let existed = self.delete(&Self::blob_key(digest))?;
        let _ = self.delete(&format!("touches/{}", digest.hex()));
        Ok(existed)
    }

    fn list_blobs(&self) -> Result<Vec<Digest>, StorageError> {
        Ok(self
            .list("blobs/sha256/")?
            .into_iter()
            .filter_map(|(k, _, _)| k.rsplit('/').next().and_then(|h| Digest::from_hex(h).ok()))
            .collect())
    }

    fn blob_modified(&self, digest: &Digest) -> Option<SystemTime> {
        let blob = header_time(&self.head(&Self::blob_key(digest)).ok()??)?;
        let touched = self
            .head(&format!("touches/{}", digest.hex()))
            .ok()
            .flatten()
            .and_then(|r| header_time(&r));
        // LastModified is whole seconds: rounded up, so that a touch never looks older
        // than it was (the young side is the safe one).
        Some(touched.map_or(blob, |t| t.max(blob)) + Duration::from_secs(1))
    }

    fn touch_blob(&self, digest: &Digest) -> Result<bool, StorageError> {
        // The marker first, then the checks: see the module's reasoning.
        self.put(&format!("touches/{}", digest.hex()), b"")?;
        if self.sweep_announced(digest)? {
            return Ok(false);
        }
        Ok(self.head(&Self::blob_key(digest))?.is_some())
    }

    fn sweep_blob(&self, digest: &Digest, cutoff: SystemTime) -> Result<Option<u64>, StorageError> {
        let mark = format!("gc/{}.{}", digest.hex(), random_id());
        self.put(&mark, b"")?;
        let res = (|| {
            let Some(modified) = self.blob_modified(digest) else {
                return Ok(None);
            };
            if modified >= cutoff {
                return Ok(None);
            }
            let size = self.blob_size(digest)?.unwrap_or(0);
            if !self.delete(&Self::blob_key(digest))? {
                return Ok(None);
            }
            let _ = self.delete(&format!("touches/{}", digest.hex()));
            Ok(Some(size))
        })();
        // The announcement goes last, whatever happened (a leftover is debris).
        let _ = self.delete(&mark);
        res
    }

    fn start_upload(&self, id: &str, owner: &str) -> Result<(), StorageError> {
        Self::check_upload_id(id)?;
        let state = UploadState {
            owner: owner.to_owned(),
            ..Default::default()
        };
        let rel = format!("uploads/{id}/state");
        let bytes = serde_json::to_vec(&state).unwrap_or_default();
        if !self.put_if(&rel, &bytes, ("if-none-match", "*"))? {
            return Err(backend(
                "PutObject",
                &self.key(&rel),
                "upload id already in use",
            ));
        }
        Ok(())
    }

    fn upload_owner(&self, id: &str) -> Result<Option<String>, StorageError> {
        Ok(self.load_state(id)?.map(|(s, _)| s.owner))
    }

    fn upload_size(&self, id: &str) -> Result<Option<u64>, StorageError> {
        Ok(self.load_state(id)?.map(|(s, _)| s.size))
    }

    fn append_upload(&self, id: &str) -> Result<Box<dyn UploadWrite>, StorageError> {
        let (state, etag) = self
            .load_state(id)?
            .ok_or_else(|| StorageError::UploadNotFound(id.to_owned()))?;
        let mut buf = Vec::with_capacity(PART_SIZE.min(1 << 20));
        if state.tail > 0 {
            let (tail, _) = self
                .get_bytes(&format!("uploads/{id}/tail"))?
                .ok_or_else(|| backend("GetObject", id, "the session's tail is missing"))?;
            if tail.len() as u64 != state.tail {
                return Err(backend(
                    "GetObject",
                    id,
                    "the session's tail does not match its state (a concurrent append?)",
                ));
            }
            buf = tail;
        }
        Ok(Box::new(S3Upload {
            storage: self.clone(),
            id: id.to_owned(),
            state,
            etag,
            buf,
            failed: None,
        }))
    }

    fn commit_upload(
        &self,
        id: &str,
        digest: &Digest,
        hashed: Option<Hasher>,
    ) -> Result<u64, StorageError> {
        let (mut state, _) = self
            .load_state(id)?
            .ok_or_else(|| StorageError::UploadNotFound(id.to_owned()))?;
        let mismatch = |actual: Digest| StorageError::DigestMismatch {
            id: id.to_owned(),
            expected: digest.clone(),
            actual,
        };
        let known = hashed.filter(|h| h.len() == state.size).map(Hasher::finish);
        if let Some(actual) = &known {
            if actual != digest {
                self.drop_session(id, Some(&state))?;
                return Err(mismatch(actual.clone()));
            }
        }
        let tail = if state.tail > 0 {
            self.get_bytes(&format!("uploads/{id}/tail"))?
                .map(|(b, _)| b)
                .ok_or_else(|| backend("GetObject", id, "the session's tail is missing"))?
        } else {
            Vec::new()
        };
        if state.multipart.is_none() {
            // Less than one part: one PUT to the content-addressed key, no copy.
            let actual = Digest::of(&tail);
            if &actual != digest {
                self.drop_session(id, Some(&state))?;
                return Err(mismatch(actual));
            }
            self.put(&Self::blob_key(digest), &tail)?;
            self.drop_session(id, Some(&state))?;
            return Ok(tail.len() as u64);
        }
        if !tail.is_empty() {
            let mp = state.multipart.clone().unwrap_or_default();
            let n = state.parts.last().map(|p| p.0 + 1).unwrap_or(1);
            let etag = self.upload_part(id, &mp, n, &tail)?;
            state.parts.push((n, etag));
        }
        self.complete_multipart(id, &state)?;
        let data = format!("uploads/{id}/data");
        if known.is_none() {
            // The hash state is in another process (or lost): read the bytes back.
            let (actual, _) = self.hash_object(&data)?;
            if &actual != digest {
                state.multipart = None;
                self.drop_session(id, Some(&state))?;
                return Err(mismatch(actual));
            }
        }
        self.copy(&data, &Self::blob_key(digest))?;
        state.multipart = None;
        self.drop_session(id, Some(&state))?;
        Ok(state.size)
    }

    fn cancel_upload(&self, id: &str) -> Result<bool, StorageError> {
        let Some((state, _)) = self.load_state(id)? else {
            return Ok(false);
        };
        self.drop_session(id, Some(&state))?;
        Ok(true)
    }

    fn list_uploads(&self) -> Result<Vec<(String, SystemTime)>, StorageError> {
        Ok(self
            .list("uploads/")?
            .into_iter()
            .filter_map(|(k, t, _)| {
                let id = k.strip_prefix("uploads/")?.strip_suffix("/state")?;
                Some((id.to_owned(), t))
            })
            .collect())
    }

    fn link(
        &self,
        repo: &RepoName,
        kind: LinkKind,
        digest: &Digest,
        meta: &[u8],
    ) -> Result<(), StorageError> {
        self.put(&Self::link_key(repo, kind, digest), meta)
    }

    fn linked(
        &self,
        repo: &RepoName,
        kind: LinkKind,
        digest: &Digest,
    ) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self
            .get_bytes(&Self::link_key(repo, kind, digest))?
            .map(|(b, _)| b))
    }

    fn unlink(
        &self,
        repo: &RepoName,
        kind: LinkKind,
        digest: &Digest,
    ) -> Result<bool, StorageError> {
        self.delete(&Self::link_key(repo, kind, digest))
    }

    fn list_links(&self, repo: &RepoName, kind: LinkKind) -> Result<Vec<Digest>, StorageError> {
        let prefix = match kind {
            LinkKind::Layer => format!("{}/_layers/", Self::repo_key(repo)),
            LinkKind::Manifest => format!("{}/_manifests/revisions/", Self::repo_key(repo)),
        };
        Ok(self
            .list(&prefix)?
            .into_iter()
            .filter_map(|(k, _, _)| k.rsplit('/').next().and_then(|h| Digest::from_hex(h).ok()))
            .collect())
    }

    fn set_tag(&self, repo: &RepoName, tag: &str, digest: &Digest) -> Result<(), StorageError> {
        // Compare-and-swap on the tag's ETag: every move is applied on top of the one it
        // read, none is overwritten unseen (a store without conditional writes ignores the
        // headers and this is a plain PUT).
        let rel = Self::tag_key(repo, tag);
        let value = digest.to_string();
        for _ in 0..16 {
            let cond = match self.get_bytes(&rel)? {
                Some((_, Some(etag))) => ("if-match", etag),
                Some((_, None)) => {
                    self.put(&rel, value.as_bytes())?;
                    return Ok(());
                }
                None => ("if-none-match", "*".to_owned()),
            };
            if self.put_if(&rel, value.as_bytes(), (cond.0, &cond.1))? {
                return Ok(());
            }
        }
        Err(backend(
            "PutObject",
            &self.key(&rel),
            "the tag kept changing under 16 attempts to move it",
        ))
    }

    fn tag(&self, repo: &RepoName, tag: &str) -> Result<Option<Digest>, StorageError> {
        Ok(self
            .get_bytes(&Self::tag_key(repo, tag))?
            .and_then(|(b, _)| String::from_utf8(b).ok())
            .and_then(|s| s.trim().parse().ok()))
    }

    fn delete_tag(&self, repo: &RepoName, tag: &str) -> Result<bool, StorageError> {
        self.delete(&Self::tag_key(repo, tag))
    }

    fn delete_tag_if(
        &self,
        repo: &RepoName,
        tag: &str,
        digest: &Digest,
    ) -> Result<bool, StorageError> {
        let rel = Self::tag_key(repo, tag);
        let Some((bytes, etag)) = self.get_bytes(&rel)? else {
            return Ok(false);
        };
        if String::from_utf8_lossy(&bytes).trim() != digest.to_string() {
            return Ok(false);
        }
        let key = self.key(&rel);
        let conds: Vec<(&str, &str)> = etag
            .as_deref()
            .map(|e| ("if-match", e))
            .into_iter()
            .collect();
        match self.call(
            "DeleteObject",
            Method::Delete,
            Some(&key),
            &[],
            &conds,
            None,
        )? {
            Answer::Ok(_) | Answer::Status(404, _) => Ok(true),
            // Moved meanwhile: the newer tag stays.
            Answer::Status(412, _) => Ok(false),
            Answer::Status(code, text) => Err(backend("DeleteObject", &key, short(code, &text))),
        }
    }

    fn tags(&self, repo: &RepoName) -> Result<Option<Vec<String>>, StorageError> {
        let base = Self::repo_key(repo);
        let tags_prefix = format!("{base}/_manifests/tags/");
        let mut tags: Vec<String> = self
            .list(&tags_prefix)?
            .into_iter()
            .filter_map(|(k, _, _)| k.strip_prefix(&tags_prefix).map(str::to_owned))
            .filter(|t| !t.contains('/'))
            .collect();
        if tags.is_empty() {
            let any = !self.list(&format!("{base}/_layers/"))?.is_empty()
                || !self.list(&format!("{base}/_manifests/"))?.is_empty();
            if !any {
                return Ok(None);
            }
        }
        tags.sort();
        Ok(Some(tags))
    }

    fn repositories(&self) -> Result<Vec<String>, StorageError> {
        let mut out: Vec<String> = Vec::new();
        for (k, _, _) in self.list("repositories/")? {
            let Some(rest) = k.strip_prefix("repositories/") else {
                continue;
            };
            let name = ["/_layers/", "/_manifests/"]
                .iter()
                .filter_map(|m| rest.find(m).map(|i| &rest[..i]))
                .min_by_key(|s| s.len());
            if let Some(n) = name {
                if out.last().map(String::as_str) != Some(n) {
                    out.push(n.to_owned());
                }
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    fn add_referrer(
        &self,
        repo: &RepoName,
        subject: &Digest,
        referrer: &Digest,
        descriptor: &[u8],
    ) -> Result<(), StorageError> {
        self.put(&Self::referrer_key(repo, subject, referrer), descriptor)
    }

    fn remove_referrer(
        &self,
        repo: &RepoName,
        subject: &Digest,
        referrer: &Digest,
    ) -> Result<(), StorageError> {
        self.delete(&Self::referrer_key(repo, subject, referrer))?;
        Ok(())
    }

    fn referrers(&self, repo: &RepoName, subject: &Digest) -> Result<Vec<Vec<u8>>, StorageError> {
        let prefix = format!(
            "{}/_referrers/{}/",
            Self::repo_key(repo),
            &subject.hex()[..32]
        );
        let mut out = Vec::new();
        for (k, _, _) in self.list(&prefix)? {
            if let Some((b, _)) = self.get_bytes(&k)? {
                out.push(b);
            }
        }
        Ok(out)
    }

    fn signing_key(&self) -> Result<Vec<u8>, StorageError> {
        let read = |s: &S3Storage| -> Result<Option<Vec<u8>>, StorageError> {
            let Some((text, _)) = s.get_bytes("signing-key")? else {
                return Ok(None);
            };
            match hex::decode(String::from_utf8_lossy(&text).trim()) {
                Ok(k) if k.len() >= 32 => Ok(Some(k)),
                _ => Err(backend(
                    "GetObject",
                    &s.key("signing-key"),
                    "not a signing key (64 hex characters); remove it to make a new one",
                )),
            }
        };
        if read(self)?.is_none() {
            // Created only if absent: of replicas starting at once, every one reads the first.
            let key: [u8; 32] = rand::random();
            self.put_if(
                "signing-key",
                hex::encode(key).as_bytes(),
                ("if-none-match", "*"),
            )?;
        }
        // Some S3 servers (s3s-fs) do not make If-None-Match atomic: two replicas starting at
        // once may both write, the later winning. Read until two reads 50 ms apart agree, so
        // every replica holds the key that stayed (called once, at start).
        let mut last = read(self)?;
        for _ in 0..100 {
            std::thread::sleep(Duration::from_millis(50));
            let now = read(self)?;
            if now == last {
                break;
            }
            last = now;
        }
        last.ok_or_else(|| backend("GetObject", &self.key("signing-key"), "vanished"))
    }

    fn clean_debris(&self, max_age: Duration) -> Result<usize, StorageError> {
        let cutoff = SystemTime::now()
            .checked_sub(max_age)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let mut n = 0;
        // Announcements of collectors that were killed before withdrawing them.
        for (k, t, _) in self.list("gc/")? {
            if t < cutoff {
                self.delete(&k)?;
                n += 1;
            }
        }
        // Multipart uploads that no session names (a replica killed while starting one, a
        // session removed while its abort failed).
        let prefix = self.key("uploads/");
        let answer = self.call(
            "ListMultipartUploads",
            Method::Get,
            None,
            &[("uploads", ""), ("prefix", &prefix)],
            &[],
            None,
        )?;
        let text = match answer {
            Answer::Ok(r) => r.into_string().unwrap_or_default(),
            // (a store without the call: nothing to clean this way)
            Answer::Status(code, _) if code == 501 || code == 405 || code == 400 => String::new(),
            Answer::Status(code, text) => {
                return Err(backend("ListMultipartUploads", &prefix, short(code, &text)))
            }
        };
        for u in xml_all(&text, "Upload") {
            let (Some(key), Some(mp)) = (xml_one(u, "Key"), xml_one(u, "UploadId")) else {
                continue;
            };
            let initiated = xml_one(u, "Initiated").and_then(|t| parse_iso(&t));
            if initiated.is_some_and(|t| t >= cutoff) {
                continue;
            }
            let Some(id) = self
                .rel(&key)
                .strip_prefix("uploads/")
                .and_then(|r| r.strip_suffix("/data"))
                .map(str::to_owned)
            else {
                continue;
            };
            let named = match self.load_state(&id) {
                Ok(Some((s, _))) => s.multipart.as_deref() == Some(mp.as_str()),
                Ok(None) => false,
                Err(_) => true,
            };
            if !named {
                self.abort_multipart(&key, &mp)?;
                n += 1;
            }
        }
        Ok(n)
    }

    fn blob_redirect(&self, digest: &Digest) -> Option<String> {
        self.inner
            .config
            .redirect
            .then(|| self.presigned_blob_url(digest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn config_from_url_env_and_file() {
        let file = S3ConfigFile {
            endpoint_url: Some("http://file.example:9000".into()),
            region: Some("eu-west-1".into()),
            access_key_id: Some("filekey".into()),
            secret_access_key: Some("filesecret".into()),
            ..Default::default()
        };
        let c = S3Config::from_url_with(
            "s3://bucket/some/prefix/",
            &file,
            env(&[
                ("AWS_ENDPOINT_URL", "http://127.0.0.1:9000"),
                ("AWS_ACCESS_KEY_ID", "envkey"),
            ]),
        )
        .unwrap();
        assert_eq!(c.bucket, "bucket");
        assert_eq!(c.prefix, "some/prefix");
        assert_eq!(c.endpoint, "http://127.0.0.1:9000");
        assert_eq!(c.region, "eu-west-1");
        assert_eq!(c.access_key_id, "envkey");
        assert_eq!(c.secret_access_key, "filesecret");
        assert!(c.uses_path_style());
        // AWS_ENDPOINT_URL_S3 wins over AWS_ENDPOINT_URL.
        let c = S3Config::from_url_with(
            "s3://b",
            &file,
            env(&[
                ("AWS_ENDPOINT_URL", "http://127.0.0.1:1"),
                ("AWS_ENDPOINT_URL_S3", "https://s3.example.com"),
            ]),
        )
        .unwrap();
        assert_eq!(c.endpoint, "https://s3.example.com");
        assert!(!c.uses_path_style());
        assert_eq!(c.prefix, "");
        let c = S3Config::from_url_with(
            "s3://b/p",
            &file,
            env(&[("AWS_ENDPOINT_URL", "http://localhost:9")]),
        )
        .unwrap();
        assert!(c.uses_path_style());
        for bad in ["s3://", "s3://Bad_Bucket/x", "file:///x"] {
            assert!(
                S3Config::from_url_with(bad, &file, env(&[])).is_err(),
                "{bad}"
            );
        }
        let err =
            S3Config::from_url_with("s3://b", &S3ConfigFile::default(), env(&[])).unwrap_err();
        assert!(err.to_string().contains("AWS_ACCESS_KEY_ID"), "{err}");
    }

    #[test]
    fn xml_bits() {
        let x = "<R><Contents><Key>a&amp;b</Key><Size>3</Size></Contents><Contents><Key>c</Key></Contents><IsTruncated>false</IsTruncated></R>";
        let all = xml_all(x, "Contents");
        assert_eq!(all.len(), 2);
        assert_eq!(xml_one(all[0], "Key").as_deref(), Some("a&b"));
        assert!(parse_http_date("Fri, 04 Dec 2026 23:00:00 GMT").is_some());
        assert!(parse_iso("2026-12-04T23:00:00.000Z").is_some());
    }
}
