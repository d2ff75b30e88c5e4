//! Push: every blob of a manifest that the registry lacks (checked with HEAD, mounted from
//! another repository when possible), in parallel, then the manifest. Uncompressed layers
//! can be gzipped on the way, on every core ([`super::gzip`]), which rewrites the manifest.
//! An index (a multi-platform image) is pushed as every child manifest by digest, then the
//! index itself.

use std::collections::VecDeque;
use std::io::Read;
use std::sync::Mutex;

use berth_oci::{Digest, DigestReader};

use super::gzip::ParallelGzip;
use super::{report_transfer, BlobSource, ClientError, Progress, ProgressFn, RequestBody, Session};
use crate::name::RepoName;
use crate::protocol::{self, Descriptor, ManifestView};

/// How to push.
#[derive(Debug, Clone)]
pub struct PushOptions {
    /// Gzip uncompressed layers on the way (the manifest is rewritten to match).
    pub compress: bool,
    /// Gzip level (1 fastest .. 9 smallest, libdeflate's). With the default, 2, a 200 MB
    /// rootfs becomes 47 MB at about 230 MB/s per core (level 1: 49 MB at 290 MB/s, level 6:
    /// 44 MB at 135 MB/s; Go's default level, which skopeo uses, 46 MB). `push
    /// --compression-level` picks another.
    pub gzip_level: u32,
    /// Threads for gzip.
    pub gzip_workers: usize,
    /// Repositories of the same registry to try mounting blobs from.
    pub mount_from: Vec<RepoName>,
}

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions {
            compress: true,
            gzip_level: 2,
            gzip_workers: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            mount_from: Vec::new(),
        }
    }
}

/// What a push sent.
#[derive(Debug, Clone)]
pub struct PushedImage {
    /// Digest of the manifest as pushed.
    pub digest: Digest,
    /// Its size.
    pub size: u64,
    /// Its media type.
    pub media_type: String,
    /// Its bytes (rewritten when layers were compressed).
    pub manifest: Vec<u8>,
    /// The layers as pushed.
    pub layers: Vec<Descriptor>,
}

fn is_uncompressed_layer(mt: &str) -> bool {
    mt == protocol::OCI_LAYER_TAR || mt == "application/vnd.docker.image.rootfs.diff.tar"
}

fn gzip_type_for(mt: &str, manifest_type: &str) -> &'static str {
    if mt.starts_with("application/vnd.docker") || manifest_type == protocol::DOCKER_MANIFEST {
        protocol::DOCKER_LAYER_GZIP
    } else {
        protocol::OCI_LAYER_GZIP
    }
}

/// Joins a `Location` header with the digest parameter.
fn with_digest(location: &str, digest: &Digest) -> String {
    let sep = if location.contains('?') { '&' } else { '?' };
    format!(
        "{location}{sep}digest={}",
        super::encode(&digest.to_string())
    )
}

fn location(reply: &super::Reply) -> Result<String, ClientError> {
    let loc = reply
        .header("location")
        .ok_or_else(|| ClientError::Protocol {
            url: reply.url.clone(),
            reason: "upload answer without Location".into(),
        })?;
    if loc.starts_with("http://") || loc.starts_with("https://") {
        return Ok(loc.to_owned());
    }
    // Relative to the URL that answered.
    let url = &reply.url;
    let origin_end = url
        .find("://")
        .and_then(|i| url[i + 3..].find('/').map(|j| i + 3 + j))
        .unwrap_or(url.len());
    Ok(format!("{}{}", &url[..origin_end], loc))
}

/// Whether the registry has the blob in `repo`.
pub fn blob_exists(s: &Session, repo: &RepoName, digest: &Digest) -> Result<bool, ClientError> {
    let scope = format!("repository:{repo}:pull,push");
    match s.request(
        "HEAD",
        &format!("/v2/{repo}/blobs/{digest}"),
        &scope,
        &[],
        &mut || RequestBody::Empty,
    ) {
        Ok(_) => Ok(true),
        Err(ClientError::Status { status: 404, .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Tries a cross-repository mount; `true` when the registry mounted the blob.
pub fn mount(
    s: &Session,
    repo: &RepoName,
    from: &RepoName,
    digest: &Digest,
) -> Result<bool, ClientError> {
    let scope = format!("repository:{repo}:pull,push repository:{from}:pull");
    let reply = s.request(
        "POST",
        &format!(
            "/v2/{repo}/blobs/uploads/?mount={}&from={}",
            super::encode(&digest.to_string()),
            super::encode(from.as_str())
        ),
        &scope,
        &[("Content-Length", "0".to_owned())],
        &mut || RequestBody::Empty,
    )?;
    if reply.status == 201 {
        return Ok(true);
    }
    // 202: the registry started an upload instead; cancel it.
    if let Ok(loc) = location(&reply) {
        let _ = s.request(
            "DELETE",
            &loc,
            &format!("repository:{repo}:pull,push"),
            &[],
            &mut || RequestBody::Empty,
        );
    }
    Ok(false)
}

/// Counts bytes read and reports them as progress.
struct Counted<'a, R> {
    inner: R,
    digest: Digest,
    done: u64,
    total: u64,
    last: u64,
    progress: ProgressFn<'a>,
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        let (done, total) = (self.done, self.total);
        report_transfer(
            self.progress,
            &self.digest,
            done,
            total,
            &mut self.last,
            n == 0,
        );
        Ok(n)
    }
}

/// Opens an upload session (an empty POST) and returns its location.
fn start_upload(s: &Session, repo: &RepoName, scope: &str) -> Result<String, ClientError> {
    let start = s.request(
        "POST",
        &format!("/v2/{repo}/blobs/uploads/"),
        scope,
        &[("Content-Length", "0".to_owned())],
        &mut || RequestBody::Empty,
    )?;
    location(&start)
}

/// Sends `PUT url` with the file as its body by `sendfile(2)` over plain HTTP; `Some(())`
/// when the registry answered 201. Anything else (another status, a fault, TLS) is `None`:
/// the caller uploads the ordinary way, which also words any error.
fn put_by_sendfile(
    s: &Session,
    url: &str,
    scope: &str,
    file: &std::fs::File,
    desc: &Descriptor,
    progress: ProgressFn<'_>,
) -> Option<()> {
    use std::io::Write;
    let rest = url.strip_prefix("http://")?;
    let (authority, path) = rest.split_at(rest.find('/')?);
    let auth = s.auth_headers(scope, url).ok()?;
    let mut stream = std::net::TcpStream::connect(authority).ok()?;
    let mut head = format!(
        "PUT {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: berth\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n",
        desc.size
    );
    for (k, v) in &auth {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).ok()?;
    let mut offset = 0u64;
    let mut last = 0u64;
    while offset < desc.size {
        let want = (desc.size - offset).min(8 << 20) as usize;
        let n = rustix::fs::sendfile(&stream, file, Some(&mut offset), want).ok()?;
        if n == 0 {
            return None;
        }
        let end = offset == desc.size;
        report_transfer(progress, &desc.digest, offset, desc.size, &mut last, end);
    }
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") && answer.len() < 64 * 1024 {
        let n = stream.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
    }
    let status_line = answer.split(|&b| b == b'\n').next()?;
    let status = std::str::from_utf8(status_line)
        .ok()?
        .split_whitespace()
        .nth(1)?;
    (status == "201").then_some(())
}

/// Uploads a blob whose digest and size are known: POST, then one PUT with the bytes.
pub fn upload_known(
    s: &Session,
    repo: &RepoName,
    desc: &Descriptor,
    source: &dyn BlobSource,
    progress: ProgressFn<'_>,
) -> Result<(), ClientError> {
    let scope = format!("repository:{repo}:pull,push");
    let plain_http = s.ping()?.starts_with("http://");
    if let Some(file) = source.blob_file(&desc.digest).filter(|_| plain_http) {
        let loc = start_upload(s, repo, &scope)?;
        let url = with_digest(&loc, &desc.digest);
        if url.starts_with("http://")
            && put_by_sendfile(s, &url, &scope, &file, desc, progress).is_some()
        {
            return Ok(());
        }
        // Not sent that way: cancel the session (best effort) and upload as usual.
        let _ = s.request("DELETE", &loc, &scope, &[], &mut || RequestBody::Empty);
    }
    let loc = start_upload(s, repo, &scope)?;
    let mut opened: Option<Box<dyn Read + Send>> = Some(source.open_blob(&desc.digest).map_err(
        |source| ClientError::Source {
            digest: desc.digest.clone(),
            source,
        },
    )?);
    let size = desc.size;
    s.request(
        "PUT",
        &with_digest(&loc, &desc.digest),
        &scope,
        &[("Content-Type", "application/octet-stream".to_owned())],
        &mut || match opened.take() {
            Some(r) => RequestBody::Reader(
                Box::new(Counted {
                    inner: r.take(size),
                    digest: desc.digest.clone(),
                    done: 0,
                    total: size,
                    last: 0,
                    progress,
                }),
                Some(size),
            ),
            None => RequestBody::Empty,
        },
    )?;
    Ok(())
}

/// Uploads a stream of unknown digest: POST, PATCH with the stream, PUT with the digest
/// computed on the way. Returns (digest, size).
pub fn upload_stream<'a>(
    s: &Session,
    repo: &RepoName,
    reader: Box<dyn Read + Send + 'a>,
) -> Result<(Digest, u64), ClientError> {
    let scope = format!("repository:{repo}:pull,push");
    let loc = start_upload(s, repo, &scope)?;
    let hashed = std::sync::Arc::new(Mutex::new(None::<(Digest, u64)>));
    let out = hashed.clone();
    struct Tee<R: Read> {
        inner: Option<DigestReader<R>>,
        out: std::sync::Arc<Mutex<Option<(Digest, u64)>>>,
    }
    impl<R: Read> Read for Tee<R> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let Some(r) = self.inner.as_mut() else {
                return Ok(0);
            };
            let n = r.read(buf)?;
            if n == 0 && !buf.is_empty() {
                if let Some(r) = self.inner.take() {
                    if let Ok(mut o) = self.out.lock() {
                        *o = Some(r.finish());
                    }
                }
            }
            Ok(n)
        }
    }
    let mut body: Option<Box<dyn Read + Send + 'a>> = Some(Box::new(Tee {
        inner: Some(DigestReader::new(reader)),
        out,
    }));
    let patched = s.request(
        "PATCH",
        &loc,
        &scope,
        &[("Content-Type", "application/octet-stream".to_owned())],
        &mut || match body.take() {
            Some(r) => RequestBody::Reader(r, None),
            None => RequestBody::Empty,
        },
    )?;
    let loc = location(&patched)?;
    let (digest, size) =
        hashed
            .lock()
            .ok()
            .and_then(|g| g.clone())
            .ok_or_else(|| ClientError::Protocol {
                url: loc.clone(),
                reason: "upload stream was not read to its end".into(),
            })?;
    s.request(
        "PUT",
        &with_digest(&loc, &digest),
        &scope,
        &[("Content-Length", "0".to_owned())],
        &mut || RequestBody::Empty,
    )?;
    Ok((digest, size))
}

#[allow(clippy::too_many_arguments)] // one blob's whole context; a struct would only rename it
fn push_blob(
    s: &Session,
    repo: &RepoName,
    desc: &Descriptor,
    manifest_type: &str,
    source: &dyn BlobSource,
    opts: &PushOptions,
    is_layer: bool,
    progress: ProgressFn<'_>,
) -> Result<Descriptor, ClientError> {
    if opts.compress && is_layer && is_uncompressed_layer(&desc.media_type) {
        if let Some(known) = source.compressed_form(&desc.digest) {
            if blob_exists(s, repo, &known.digest)? {
                progress(Progress::LayerExists(desc.digest.clone()));
                return Ok(known);
            }
        }
        let r = source
            .open_blob(&desc.digest)
            .map_err(|source| ClientError::Source {
                digest: desc.digest.clone(),
                source,
            })?;
        let gz = ParallelGzip::new(r, opts.gzip_workers, opts.gzip_level);
        // The compressed size is unknown until the end: progress counts compressed bytes.
        let counted = Counted {
            inner: gz,
            digest: desc.digest.clone(),
            done: 0,
            total: 0,
            last: 0,
            progress,
        };
        let (digest, size) = upload_stream(s, repo, Box::new(counted))?;
        progress(Progress::Pushed(desc.digest.clone()));
        let mut out = desc.clone();
        out.media_type = gzip_type_for(&desc.media_type, manifest_type).to_owned();
        out.digest = digest;
        out.size = size;
        source.remember_compressed(&desc.digest, &out);
        return Ok(out);
    }
    if blob_exists(s, repo, &desc.digest)? {
        progress(Progress::LayerExists(desc.digest.clone()));
        return Ok(desc.clone());
    }
    for from in &opts.mount_from {
        if from == repo {
            continue;
        }
        if mount(s, repo, from, &desc.digest).unwrap_or(false) {
            progress(Progress::Mounted {
                digest: desc.digest.clone(),
                from: from.to_string(),
            });
            return Ok(desc.clone());
        }
    }
    upload_known(s, repo, desc, source, progress)?;
    progress(Progress::Pushed(desc.digest.clone()));
    Ok(desc.clone())
}

/// Pushes an image manifest and its blobs to `repo`, tagging it `tag` when given.
#[allow(clippy::too_many_arguments)]
pub fn push(
    s: &Session,
    repo: &RepoName,
    tag: Option<&str>,
    manifest: &[u8],
    media_type: &str,
    source: &dyn BlobSource,
    opts: &PushOptions,
    progress: ProgressFn<'_>,
) -> Result<PushedImage, ClientError> {
    let bad = |reason: String| ClientError::ManifestInvalid {
        reference: format!("{repo}:{}", tag.unwrap_or("")),
        reason,
    };
    if protocol::is_index(media_type) {
        return push_index(s, repo, tag, manifest, media_type, source, opts, progress);
    }
    let view: ManifestView = serde_json::from_slice(manifest).map_err(|e| bad(e.to_string()))?;
    let config = view.config.clone().ok_or_else(|| bad("no config".into()))?;
    let layers = view.layers.clone().unwrap_or_default();

    // Jobs: index 0 is the config, then the layers.
    let jobs: Vec<(usize, Descriptor)> = std::iter::once(config.clone())
        .chain(layers.iter().cloned())
        .enumerate()
        .collect();
    // Docker shows layers only: the config's events are not passed on.
    let silent = |_: Progress| {};
    for (_, d) in jobs.iter().skip(1) {
        progress(Progress::Waiting(d.digest.clone()));
    }
    let queue = Mutex::new(jobs.into_iter().collect::<VecDeque<_>>());
    let results: Mutex<Vec<Option<Descriptor>>> = Mutex::new(vec![None; layers.len() + 1]);
    let first_error: Mutex<Option<ClientError>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..s.options().parallel.max(1) {
            scope.spawn(|| loop {
                if first_error.lock().map(|e| e.is_some()).unwrap_or(true) {
                    return;
                }
                let Some((i, desc)) = queue.lock().ok().and_then(|mut q| q.pop_front()) else {
                    return;
                };
                let mut delay = s.options().backoff;
                let mut attempt = 0;
                let r = loop {
                    attempt += 1;
                    let p: ProgressFn<'_> = if i == 0 { &silent } else { progress };
                    match push_blob(s, repo, &desc, media_type, source, opts, i > 0, p) {
                        Err(e) if e.is_retryable() && attempt < s.options().attempts.max(1) => {
                            p(Progress::Retrying {
                                digest: desc.digest.clone(),
                                reason: e.to_string(),
                            });
                            std::thread::sleep(delay);
                            delay *= 2;
                        }
                        other => break other,
                    }
                };
                match r {
                    Ok(d) => {
                        if let Ok(mut res) = results.lock() {
                            res[i] = Some(d);
                        }
                    }
                    Err(e) => {
                        if let Ok(mut slot) = first_error.lock() {
                            slot.get_or_insert(e);
                        }
                        return;
                    }
                }
            });
        }
    });
    if let Ok(Some(e)) = first_error.into_inner() {
        return Err(e);
    }
    let pushed: Vec<Descriptor> = results
        .into_inner()
        .unwrap_or_default()
        .into_iter()
        .skip(1)
        .map(|d| d.ok_or_else(|| bad("a layer was not pushed".into())))
        .collect::<Result<_, _>>()?;

    // Rewrite the manifest when compression changed layers, keeping every other field.
    let manifest: Vec<u8> = if pushed != layers {
        let mut doc: serde_json::Value =
            serde_json::from_slice(manifest).map_err(|e| bad(e.to_string()))?;
        if let Some(arr) = doc.get_mut("layers").and_then(|l| l.as_array_mut()) {
            for (slot, d) in arr.iter_mut().zip(&pushed) {
                slot["mediaType"] = serde_json::Value::String(d.media_type.clone());
                slot["digest"] = serde_json::Value::String(d.digest.to_string());
                slot["size"] = serde_json::Value::from(d.size);
            }
        }
        serde_json::to_vec(&doc).map_err(|e| bad(e.to_string()))?
    } else {
        manifest.to_vec()
    };
    let digest = put_manifest(s, repo, tag, &manifest, media_type, "manifest")?;
    Ok(PushedImage {
        digest,
        size: manifest.len() as u64,
        media_type: media_type.to_owned(),
        manifest,
        layers: pushed,
    })
}

/// Pushes an index (OCI image index or Docker manifest list): every child manifest with its
/// blobs, by digest, then the index under `tag`. Children are pushed as they are (no
/// recompression: the index names their digests); the source must hold them all.
#[allow(clippy::too_many_arguments)]
pub fn push_index(
    s: &Session,
    repo: &RepoName,
    tag: Option<&str>,
    index: &[u8],
    media_type: &str,
    source: &dyn BlobSource,
    opts: &PushOptions,
    progress: ProgressFn<'_>,
) -> Result<PushedImage, ClientError> {
    let bad = |reason: String| ClientError::ManifestInvalid {
        reference: format!("{repo}:{}", tag.unwrap_or("")),
        reason,
    };
    let view: ManifestView = serde_json::from_slice(index).map_err(|e| bad(e.to_string()))?;
    let children = view
        .manifests
        .ok_or_else(|| bad("an index without manifests".into()))?;
    let child_opts = PushOptions {
        compress: false,
        ..opts.clone()
    };
    for child in &children {
        if protocol::is_index(&child.media_type) {
            return Err(bad("an index inside an index".into()));
        }
        let mut bytes = Vec::new();
        source
            .open_blob(&child.digest)
            .and_then(|mut r| {
                r.read_to_end(&mut bytes)?;
                Ok(())
            })
            .map_err(|source| ClientError::Source {
                digest: child.digest.clone(),
                source,
            })?;
        let actual = Digest::of(&bytes);
        if actual != child.digest {
            return Err(ClientError::DigestMismatch {
                what: format!("manifest {}", child.digest),
                expected: child.digest.clone(),
                actual,
            });
        }
        push(
            s,
            repo,
            None,
            &bytes,
            &child.media_type,
            source,
            &child_opts,
            progress,
        )?;
    }
    let digest = put_manifest(s, repo, tag, index, media_type, "index")?;
    Ok(PushedImage {
        digest,
        size: index.len() as u64,
        media_type: media_type.to_owned(),
        manifest: index.to_vec(),
        layers: Vec::new(),
    })
}

/// PUTs a manifest or an index under `tag` (by its digest when none) and checks the digest
/// the registry answers with; returns the digest.
fn put_manifest(
    s: &Session,
    repo: &RepoName,
    tag: Option<&str>,
    body: &[u8],
    media_type: &str,
    what: &str,
) -> Result<Digest, ClientError> {
    let digest = Digest::of(body);
    let reference = tag.map(str::to_owned).unwrap_or_else(|| digest.to_string());
    let scope = format!("repository:{repo}:pull,push");
    let reply = s.request(
        "PUT",
        &format!("/v2/{repo}/manifests/{reference}"),
        &scope,
        &[("Content-Type", media_type.to_owned())],
        &mut || RequestBody::Bytes(body),
    )?;
    if let Some(d) = reply.header("docker-content-digest") {
        if let Ok(d) = d.parse::<Digest>() {
            if d != digest {
                return Err(ClientError::DigestMismatch {
                    what: format!("{what} accepted by the registry"),
                    expected: digest,
                    actual: d,
                });
            }
        }
    }
    Ok(digest)
}
