//! Pull: resolve a reference to a manifest (choosing a platform from an index), then fetch
//! the config and layers in parallel into a [`BlobSink`], each checked against its digest
//! and size before the sink sees it, resuming partial downloads and retrying faults.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::sync::Mutex;

use berth_oci::{Digest, Hasher};

use super::{report_transfer, BlobSink, ClientError, Progress, ProgressFn, RequestBody, Session};
use crate::name::RepoName;
use crate::protocol::{self, Descriptor, ManifestView, Platform};
use berth_oci::writeback::WriteBehind;

/// Largest manifest accepted from a registry.
pub const MAX_MANIFEST: u64 = 4 << 20;

/// What to pull.
#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    /// `os/arch[/variant]` to choose from an index; default the host's (linux/amd64 on
    /// x86_64).
    pub platform: Option<String>,
    /// When the reference names an index: fetch every platform's manifest and blobs too (the
    /// chosen platform's layers are the ones unpacked), so the whole index can be pushed on.
    pub all_platforms: bool,
}

/// What a pull fetched.
#[derive(Debug, Clone)]
pub struct PulledImage {
    /// The digest of what the reference named (the index, when it named one).
    pub repo_digest: Digest,
    /// The digest of the image manifest chosen.
    pub manifest_digest: Digest,
    /// Its media type.
    pub media_type: String,
    /// Its bytes.
    pub manifest: Vec<u8>,
    /// The config descriptor.
    pub config: Descriptor,
    /// The layer descriptors, in order.
    pub layers: Vec<Descriptor>,
    /// The index, when the reference named one: (media type, bytes).
    pub index: Option<(String, Vec<u8>)>,
    /// With [`PullOptions::all_platforms`]: the other platforms' manifests (descriptor from
    /// the index, verified bytes); their blobs are in the sink.
    pub other_manifests: Vec<(Descriptor, Vec<u8>)>,
}

/// A sink that only stores: no copy to unpack (the other platforms' layers of an
/// `all_platforms` pull are kept as blobs, not unpacked).
struct StoreOnly<'a>(&'a dyn BlobSink);

impl BlobSink for StoreOnly<'_> {
    fn has_blob(&self, digest: &Digest) -> bool {
        self.0.has_blob(digest)
    }
    fn partial_path(&self, digest: &Digest) -> std::path::PathBuf {
        self.0.partial_path(digest)
    }
    fn ingest_file(
        &self,
        desc: &Descriptor,
        path: &std::path::Path,
    ) -> Result<(), super::BoxError> {
        self.0.ingest_file(desc, path)
    }
}

/// The host's platform in OCI terms.
pub fn host_platform() -> String {
    format!("linux/{}", berth_oci::manifest::host_arch())
}

fn platform_matches(want: &str, p: &Platform) -> bool {
    let mut parts = want.split('/');
    let (os, arch, variant) = (parts.next(), parts.next(), parts.next());
    os == Some(p.os.as_str())
        && arch == Some(p.architecture.as_str())
        && match variant {
            None => true,
            Some(v) => p.variant.as_deref() == Some(v),
        }
}

/// Fetches a manifest by tag or digest: (bytes, media type, digest), the digest verified
/// when the reference is one.
pub fn fetch_manifest(
    s: &Session,
    repo: &RepoName,
    reference: &str,
) -> Result<(Vec<u8>, String, Digest), ClientError> {
    let scope = format!("repository:{repo}:pull");
    let reply = s
        .request(
            "GET",
            &format!("/v2/{repo}/manifests/{reference}"),
            &scope,
            &[("Accept", protocol::MANIFEST_ACCEPT.to_owned())],
            &mut || RequestBody::Empty,
        )
        .map_err(|e| match e {
            ClientError::Status {
                status: 404,
                message,
                ..
            } => ClientError::ManifestNotFound {
                reference: if reference.contains(':') {
                    format!("{}/{repo}@{reference}", s.host())
                } else {
                    format!("{}/{repo}:{reference}", s.host())
                },
                message: if message.is_empty() {
                    "manifest unknown".into()
                } else {
                    message
                },
            },
            e => e,
        })?;
    let header_type = reply
        .header("content-type")
        .map(|t| t.split(';').next().unwrap_or("").trim().to_owned());
    let url = reply.url.clone();
    let bytes = reply.into_bytes(MAX_MANIFEST + 1)?;
    if bytes.len() as u64 > MAX_MANIFEST {
        return Err(ClientError::ManifestInvalid {
            reference: reference.to_owned(),
            reason: "larger than 4 MiB".into(),
        });
    }
    let digest = Digest::of(&bytes);
    if reference.contains(':') {
        let want: Digest = reference
            .parse()
            .map_err(|_| ClientError::ManifestInvalid {
                reference: reference.to_owned(),
                reason: "invalid digest".into(),
            })?;
        if want != digest {
            return Err(ClientError::DigestMismatch {
                what: format!("manifest {url}"),
                expected: want,
                actual: digest,
            });
        }
    }
    let view: ManifestView =
        serde_json::from_slice(&bytes).map_err(|e| ClientError::ManifestInvalid {
            reference: reference.to_owned(),
            reason: e.to_string(),
        })?;
    let media_type = match (header_type, view.media_type) {
        (Some(h), _) if protocol::is_manifest_type(&h) => h,
        (_, Some(b)) if protocol::is_manifest_type(&b) => b,
        _ if view.manifests.is_some() => protocol::OCI_INDEX.to_owned(),
        _ if view.config.is_some() => protocol::OCI_MANIFEST.to_owned(),
        (h, b) => {
            return Err(ClientError::ManifestInvalid {
                reference: reference.to_owned(),
                reason: format!(
                    "unsupported media type {}",
                    b.or(h).unwrap_or_else(|| "(none)".into())
                ),
            })
        }
    };
    Ok((bytes, media_type, digest))
}

/// Pulls `reference` (a tag or digest) of `repo` into `sink`.
pub fn pull(
    s: &Session,
    repo: &RepoName,
    reference: &str,
    opts: &PullOptions,
    sink: &dyn BlobSink,
    progress: ProgressFn<'_>,
) -> Result<PulledImage, ClientError> {
    let (bytes, media_type, digest) = fetch_manifest(s, repo, reference)?;
    let repo_digest = digest.clone();
    let mut others = Vec::new();
    let (bytes, media_type, digest, index) = if protocol::is_index(&media_type) {
        let view: ManifestView =
            serde_json::from_slice(&bytes).map_err(|e| ClientError::ManifestInvalid {
                reference: reference.to_owned(),
                reason: e.to_string(),
            })?;
        let want = opts.platform.clone().unwrap_or_else(host_platform);
        let children = view.manifests.unwrap_or_default();
        let chosen = children
            .iter()
            .find(|d| {
                d.platform
                    .as_ref()
                    .is_some_and(|p| platform_matches(&want, p))
            })
            .ok_or_else(|| ClientError::NoPlatform {
                platform: want.clone(),
                available: children
                    .iter()
                    .filter_map(|d| d.platform.as_ref())
                    .map(|p| match &p.variant {
                        Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
                        None => format!("{}/{}", p.os, p.architecture),
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        let (b, mt, d) = fetch_manifest(s, repo, &chosen.digest.to_string())?;
        if protocol::is_index(&mt) {
            return Err(ClientError::ManifestInvalid {
                reference: reference.to_owned(),
                reason: "an index inside an index".into(),
            });
        }
        if opts.all_platforms {
            let mut extra_blobs = Vec::new();
            for child in children.iter().filter(|c| c.digest != chosen.digest) {
                let (cb, cmt, _) = fetch_manifest(s, repo, &child.digest.to_string())?;
                let cv: ManifestView =
                    serde_json::from_slice(&cb).map_err(|e| ClientError::ManifestInvalid {
                        reference: child.digest.to_string(),
                        reason: e.to_string(),
                    })?;
                if protocol::is_index(&cmt) {
                    return Err(ClientError::ManifestInvalid {
                        reference: reference.to_owned(),
                        reason: "an index inside an index".into(),
                    });
                }
                extra_blobs.extend(cv.config);
                extra_blobs.extend(cv.layers.unwrap_or_default());
                others.push((child.clone(), cb));
            }
            fetch_blobs(s, repo, &extra_blobs, &StoreOnly(sink), &|_| {})?;
        }
        (b, mt, d, Some((media_type, bytes)))
    } else {
        (bytes, media_type, digest, None)
    };
    let view: ManifestView =
        serde_json::from_slice(&bytes).map_err(|e| ClientError::ManifestInvalid {
            reference: reference.to_owned(),
            reason: e.to_string(),
        })?;
    let config = view
        .config
        .clone()
        .ok_or_else(|| ClientError::ManifestInvalid {
            reference: reference.to_owned(),
            reason: "no config".into(),
        })?;
    let layers = view.layers.clone().unwrap_or_default();
    // The config first and silently, as Docker shows only layers.
    fetch_blobs(s, repo, std::slice::from_ref(&config), sink, &|_| {})?;
    fetch_blobs(s, repo, &layers, sink, progress)?;
    Ok(PulledImage {
        repo_digest,
        manifest_digest: digest,
        media_type,
        manifest: bytes,
        config,
        layers,
        index,
        other_manifests: others,
    })
}

/// Fetches blobs in parallel (the session's `parallel` threads) into `sink`.
pub fn fetch_blobs(
    s: &Session,
    repo: &RepoName,
    blobs: &[Descriptor],
    sink: &dyn BlobSink,
    progress: ProgressFn<'_>,
) -> Result<(), ClientError> {
    let mut seen = std::collections::HashSet::new();
    let queue: Mutex<VecDeque<&Descriptor>> = Mutex::new(
        blobs
            .iter()
            .filter(|d| seen.insert(d.digest.clone()))
            .collect(),
    );
    if let Ok(q) = queue.lock() {
        for d in q.iter() {
            progress(Progress::Waiting(d.digest.clone()));
        }
    }
    let first_error: Mutex<Option<ClientError>> = Mutex::new(None);
    let workers = s.options().parallel.max(1);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                if first_error.lock().map(|e| e.is_some()).unwrap_or(true) {
                    return;
                }
                let Some(desc) = queue.lock().ok().and_then(|mut q| q.pop_front()) else {
                    return;
                };
                if let Err(e) = fetch_one(s, repo, desc, sink, progress) {
                    if let Ok(mut slot) = first_error.lock() {
                        slot.get_or_insert(e);
                    }
                    return;
                }
            });
        }
    });
    match first_error.into_inner() {
        Ok(Some(e)) => Err(e),
        _ => Ok(()),
    }
}

fn fetch_one(
    s: &Session,
    repo: &RepoName,
    desc: &Descriptor,
    sink: &dyn BlobSink,
    progress: ProgressFn<'_>,
) -> Result<(), ClientError> {
    if sink.has_blob(&desc.digest) {
        progress(Progress::AlreadyExists(desc.digest.clone()));
        return Ok(());
    }
    let mut delay = s.options().backoff;
    let mut attempt = 0;
    loop {
        attempt += 1;
        match download(s, repo, desc, sink, progress) {
            Ok(()) => {
                progress(Progress::PullComplete(desc.digest.clone()));
                return Ok(());
            }
            // A mismatch after resuming may come from a stale partial file (removed by
            // now): one fresh attempt.
            Err(e @ ClientError::DigestMismatch { .. }) if attempt == 1 => {
                progress(Progress::Retrying {
                    digest: desc.digest.clone(),
                    reason: e.to_string(),
                });
            }
            Err(e) if e.is_retryable() && attempt < s.options().attempts.max(1) + 2 => {
                progress(Progress::Retrying {
                    digest: desc.digest.clone(),
                    reason: e.to_string(),
                });
                std::thread::sleep(delay);
                delay *= 2;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Downloads one blob to the sink's partial file, resuming what is there, verifies it and
/// hands it over.
fn download(
    s: &Session,
    repo: &RepoName,
    desc: &Descriptor,
    sink: &dyn BlobSink,
    progress: ProgressFn<'_>,
) -> Result<(), ClientError> {
    let path = sink.partial_path(&desc.digest);
    let io = |source| ClientError::Io {
        path: path.clone(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let mut file: File = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io)?;
    let mut have = file.metadata().map_err(io)?.len();
    if have > desc.size {
        file.set_len(0).map_err(io)?;
        have = 0;
    }
    // Re-hash what an earlier attempt left.
    let mut hasher = Hasher::new();
    if have > 0 {
        let mut buf = vec![0u8; 1 << 20];
        let mut left = have;
        while left > 0 {
            let n = file
                .read(&mut buf[..left.min(1 << 20) as usize])
                .map_err(io)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            left -= n as u64;
        }
    }
    let mut tee_whole = false;
    if have < desc.size || desc.size == 0 {
        let scope = format!("repository:{repo}:pull");
        let mut headers = Vec::new();
        if have > 0 {
            headers.push(("Range", format!("bytes={have}-")));
        }
        let reply = s.request(
            "GET",
            &format!("/v2/{repo}/blobs/{}", desc.digest),
            &scope,
            &headers,
            &mut || RequestBody::Empty,
        )?;
        if have > 0 && reply.status != 206 {
            // The registry ignored the range: start over.
            file.set_len(0).map_err(io)?;
            have = 0;
            hasher = Hasher::new();
        }
        file.seek(SeekFrom::Start(have)).map_err(io)?;
        // Sent to the disk while it arrives, so the fsync below is short; its pages are
        // dropped (the unpacker reads the stream, not the file).
        let mut out = WriteBehind::dropping(file);
        // A copy of a whole fresh download for the sink (to unpack while it arrives); any
        // failure below drops it, which the sink sees as a cut stream.
        let mut tee = if have == 0 { sink.tee(desc) } else { None };
        let teed = tee.is_some();
        let url = reply.url.clone();
        let mut body = reply.into_reader();
        let mut buf = vec![0u8; 256 * 1024];
        let mut last_report = 0u64;
        loop {
            let n = match body.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(ClientError::BodyRead { url, source: e });
                }
            };
            have += n as u64;
            if have > desc.size {
                drop(out);
                let _ = std::fs::remove_file(&path);
                return Err(ClientError::SizeMismatch {
                    digest: desc.digest.clone(),
                    expected: desc.size,
                    actual: have,
                });
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n]).map_err(io)?;
            if let Some(t) = tee.as_mut() {
                if t.write_all(&buf[..n]).is_err() {
                    // The consumer gave up; the download goes on without it.
                    tee = None;
                }
            }
            let end = have == desc.size;
            report_transfer(
                progress,
                &desc.digest,
                have,
                desc.size,
                &mut last_report,
                end,
            );
        }
        file = out.finish().map_err(io)?;
        // The copy ends here; whether it was whole is told after the verification below.
        tee_whole = teed && tee.is_some() && have == desc.size;
        drop(tee);
        if have < desc.size {
            // The connection ended early: keep the partial file and retry.
            return Err(ClientError::BodyRead {
                url,
                source: std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("body ended after {have} of {} bytes", desc.size),
                ),
            });
        }
    }
    let actual = hasher.finish();
    if actual != desc.digest {
        drop(file);
        let _ = std::fs::remove_file(&path);
        return Err(ClientError::DigestMismatch {
            what: format!("blob {}", desc.digest),
            expected: desc.digest.clone(),
            actual,
        });
    }
    file.sync_all().map_err(io)?;
    drop(file);
    if tee_whole {
        sink.tee_verified(desc);
    }
    sink.ingest_file(desc, &path)
        .map_err(|source| ClientError::Sink {
            digest: desc.digest.clone(),
            source,
        })?;
    let _ = std::fs::remove_file(&path);
    Ok(())
}
