//! Image routes: list, inspect, history, create (pull, or import with `fromSrc`), push, tag,
//! delete, prune, get (save) and load. Pulls and pushes stream Docker's JSON progress
//! messages (`{"status": ..., "id": ..., "progressDetail": ...}`, `{"error": ...}`).

use std::io::Write;
use std::sync::Mutex;

use berth_engine::images::{
    ImageFilter, ImageSummary, ImportRequest, ImportSource, PruneFilter, RemoveAction,
};
use berth_engine::registry::{Progress, PullRequest, PushRequest};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use crate::http::{self, json_line, ApiError, ApiResult};
use crate::router::Req;
use crate::system::{registry_auth, use_registry_auth};
use crate::{blocking, State};

/// Docker's `ImageSummary` documents for the images passing `filters`.
pub fn summaries(
    engine: &berth_engine::Engine,
    filters: &[ImageFilter],
) -> Result<Vec<Value>, ApiError> {
    let list = engine.list_images(&berth_engine::images::ListOptions {
        all: false,
        filters: filters.to_vec(),
    })?;
    Ok(list.iter().map(summary).collect())
}

fn summary(i: &ImageSummary) -> Value {
    json!({
        "Id": i.id.to_string(),
        "ParentId": "",
        "RepoTags": i.tags,
        "RepoDigests": i.repo_digests,
        "Created": i.created_unix,
        "Size": i.size,
        "SharedSize": -1,
        "VirtualSize": i.size,
        "Labels": {},
        "Containers": i.containers,
    })
}

/// `GET /images/json`.
pub(crate) async fn list(r: Req) -> ApiResult {
    let mut filters = Vec::new();
    for (k, v) in r.query.filters()? {
        let f = ImageFilter::parse(&format!("{k}={v}"))
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        filters.push(f);
    }
    if let Some(name) = r.query.non_empty("filter") {
        filters.push(ImageFilter::Reference(name.to_owned()));
    }
    let st = r.state.clone();
    let list = blocking(move || summaries(&st.engine()?, &filters)).await?;
    http::ok_json(&Value::Array(list))
}

/// `GET /images/{name}/json`.
pub(crate) async fn inspect(r: Req, name: &str) -> ApiResult {
    let st = r.state.clone();
    let name = name.to_owned();
    let doc = blocking(move || Ok(st.engine()?.inspect_image(&name)?)).await?;
    http::ok_json(&doc)
}

/// `GET /images/{name}/history`.
pub(crate) async fn history(r: Req, name: &str) -> ApiResult {
    let st = r.state.clone();
    let name = name.to_owned();
    let rows = blocking(move || Ok(st.engine()?.history(&name)?)).await?;
    let out: Vec<Value> = rows
        .iter()
        .map(|h| {
            json!({
                "Id": h.id.as_ref().map_or("<missing>".to_owned(), |d| d.to_string()),
                "Created": h.created_unix,
                "CreatedBy": h.created_by,
                "Tags": if h.tags.is_empty() { Value::Null } else { json!(h.tags) },
                "Size": h.size,
                "Comment": h.comment,
            })
        })
        .collect();
    http::ok_json(&Value::Array(out))
}

/// `POST /images/{name}/tag?repo=&tag=`.
pub(crate) async fn tag(r: Req, name: &str) -> ApiResult {
    let repo = r
        .query
        .non_empty("repo")
        .ok_or_else(|| ApiError::bad_request("repo is required"))?
        .to_owned();
    let target = match r.query.non_empty("tag") {
        Some(t) => format!("{repo}:{t}"),
        None => repo,
    };
    let st = r.state.clone();
    let name = name.to_owned();
    blocking(move || Ok(st.engine()?.tag(&name, &target)?)).await?;
    let mut resp = http::with_type(hyper::StatusCode::CREATED, "text/plain", http::Body::Empty);
    resp.headers_mut().remove(hyper::header::CONTENT_TYPE);
    Ok(resp)
}

/// `DELETE /images/{name}?force=`.
pub(crate) async fn remove(r: Req, name: &str) -> ApiResult {
    let force = r.query.bool("force", false)?;
    let st = r.state.clone();
    let name = name.to_owned();
    let actions = blocking(move || Ok(st.engine()?.remove_image(&name, force)?)).await?;
    http::ok_json(&Value::Array(actions.iter().map(action).collect()))
}

fn action(a: &RemoveAction) -> Value {
    match a {
        RemoveAction::Untagged(n) => json!({"Untagged": n}),
        RemoveAction::Deleted(d) => json!({"Deleted": d.to_string()}),
    }
}

/// `POST /images/prune`.
pub(crate) async fn prune(r: Req) -> ApiResult {
    let now = berth_engine::container::now_nanos() / 1_000_000_000;
    let mut filters = Vec::new();
    for (k, v) in r.query.filters()? {
        filters.push(
            PruneFilter::parse(&format!("{k}={v}"), now)
                .map_err(|e| ApiError::bad_request(e.to_string()))?,
        );
    }
    let st = r.state.clone();
    let report = blocking(move || Ok(st.engine()?.prune_images_filtered(false, &filters)?)).await?;
    let deleted: Vec<Value> = report.actions.iter().map(action).collect();
    http::ok_json(&json!({
        "ImagesDeleted": if deleted.is_empty() { Value::Null } else { Value::Array(deleted) },
        "SpaceReclaimed": report.reclaimed,
    }))
}

/// Streams the request body into a file in the store's staging area.
pub(crate) async fn spool_body(
    st: &State,
    mut body: Incoming,
) -> Result<tempfile::NamedTempFile, ApiError> {
    let dir = st.config.root.join("tmp");
    let _ = std::fs::create_dir_all(&dir);
    let tmp = tempfile::Builder::new()
        .prefix("api-upload-")
        .tempfile_in(&dir)
        .map_err(|e| ApiError::internal(format!("creating a file in {}: {e}", dir.display())))?;
    let std_file = tmp
        .as_file()
        .try_clone()
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let mut f = tokio::fs::File::from_std(std_file);
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| ApiError::bad_request(format!("reading the request body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            f.write_all(&data)
                .await
                .map_err(|e| ApiError::internal(format!("writing the upload: {e}")))?;
        }
    }
    f.flush()
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(tmp)
}

/// Sends progress lines from a blocking worker; false once the client is gone.
#[derive(Clone)]
pub(crate) struct Lines(pub mpsc::Sender<Bytes>);

impl Lines {
    pub fn send(&self, v: Value) -> bool {
        self.0.blocking_send(json_line(&v)).is_ok()
    }

    pub fn error(&self, message: &str) {
        self.send(json!({"errorDetail": {"message": message}, "error": message}));
    }
}

fn short(d: &berth_oci::Digest) -> String {
    d.to_string()
        .split_once(':')
        .map(|(_, h)| h.chars().take(12).collect())
        .unwrap_or_default()
}

/// Docker's progress message of a registry event.
fn progress_line(p: &Progress, pull: bool) -> Option<Value> {
    Some(match p {
        Progress::Waiting(d) => json!({"status": "Waiting", "progressDetail": {}, "id": short(d)}),
        Progress::AlreadyExists(d) => {
            json!({"status": "Already exists", "progressDetail": {}, "id": short(d)})
        }
        Progress::Transferring {
            digest,
            done,
            total,
        } => json!({
            "status": if pull { "Downloading" } else { "Pushing" },
            "progressDetail": {"current": done, "total": total},
            "id": short(digest),
        }),
        Progress::PullComplete(d) => {
            json!({"status": "Pull complete", "progressDetail": {}, "id": short(d)})
        }
        Progress::LayerExists(d) => {
            json!({"status": "Layer already exists", "progressDetail": {}, "id": short(d)})
        }
        Progress::Mounted { digest, from } => json!({
            "status": format!("Mounted from {from}"), "progressDetail": {}, "id": short(digest),
        }),
        Progress::Pushed(d) => json!({"status": "Pushed", "progressDetail": {}, "id": short(d)}),
        _ => return None,
    })
}

fn registry_of(reference: &str) -> Option<String> {
    let r = berth_oci::reference::ImageRef::parse(reference).ok()?;
    Some(r.domain().to_owned())
}

/// `POST /images/create`: `fromImage` pulls (with `X-Registry-Auth`), `fromSrc` imports
/// (`-` for the body), streaming progress.
pub(crate) async fn create(r: Req) -> ApiResult {
    if let Some(src) = r.query.non_empty("fromSrc").map(str::to_owned) {
        return import(r, src).await;
    }
    let image = r
        .query
        .non_empty("fromImage")
        .ok_or_else(|| ApiError::bad_request("fromImage or fromSrc is required"))?
        .to_owned();
    let reference = match r.query.non_empty("tag") {
        Some(t) if t.starts_with("sha256:") => format!("{image}@{t}"),
        Some(t) => format!("{image}:{t}"),
        None if image.contains('@') || has_tag(&image) => image.clone(),
        None => format!("{image}:latest"),
    };
    let parsed = berth_oci::reference::ImageRef::parse(&reference)
        .map_err(|e| ApiError::bad_request(format!("invalid reference format: {e}")))?;
    let platform = r.query.non_empty("platform").map(str::to_owned);
    let auth = registry_auth(&r.headers);
    let st = r.state.clone();
    let (tx, resp) = http::stream("application/json");
    let lines = Lines(tx);
    let tag = match (parsed.digest(), parsed.tag()) {
        (Some(d), _) => d.to_string(),
        (None, Some(t)) => t.to_owned(),
        (None, None) => "latest".to_owned(),
    };
    let path = parsed.path().to_owned();
    tokio::task::spawn_blocking(move || {
        let run = || -> Result<(), ApiError> {
            let engine = st.engine()?;
            if let (Some(a), Some(host)) = (&auth, registry_of(&reference)) {
                use_registry_auth(&engine, &host, a)?;
            }
            lines.send(json!({"status": format!("Pulling from {path}"), "id": tag}));
            let l = Mutex::new(lines.clone());
            let report = engine.pull(
                &PullRequest {
                    reference: reference.clone(),
                    platform,
                    ..Default::default()
                },
                &|p| {
                    if let (Some(v), Ok(l)) = (progress_line(&p, true), l.lock()) {
                        l.send(v);
                    }
                },
            )?;
            lines.send(json!({"status": format!("Digest: {}", report.digest)}));
            let status = if report.up_to_date {
                format!("Status: Image is up to date for {}", report.familiar)
            } else {
                format!("Status: Downloaded newer image for {}", report.familiar)
            };
            lines.send(json!({"status": status}));
            Ok(())
        };
        if let Err(e) = run() {
            lines.error(&e.message);
        }
    });
    Ok(resp)
}

/// Whether the last path component carries a `:tag`.
fn has_tag(image: &str) -> bool {
    image
        .rsplit('/')
        .next()
        .is_some_and(|last| last.contains(':'))
}

async fn import(r: Req, src: String) -> ApiResult {
    if src != "-" {
        return Err(ApiError::bad_request(
            "fromSrc must be \"-\" (the request body): berth does not fetch URLs",
        ));
    }
    let reference = match (r.query.non_empty("repo"), r.query.non_empty("tag")) {
        (Some(repo), Some(t)) => Some(format!("{repo}:{t}")),
        (Some(repo), None) => Some(repo.to_owned()),
        _ => None,
    };
    let changes = r.query.all("changes");
    let message = r.query.non_empty("message").map(str::to_owned);
    let st = r.state.clone();
    let tmp = spool_body(&st, r.body).await?;
    let id = blocking(move || {
        let id = st.engine()?.import(&ImportRequest {
            source: ImportSource::Path(tmp.path().to_path_buf()),
            reference,
            changes,
            message,
        })?;
        drop(tmp);
        Ok(id)
    })
    .await?;
    http::ok_json(&json!({"status": id.to_string()}))
}

/// `POST /images/{name}/push?tag=`, with `X-Registry-Auth`.
pub(crate) async fn push(r: Req, name: &str) -> ApiResult {
    let reference = match r.query.non_empty("tag") {
        Some(t) => format!("{name}:{t}"),
        None => name.to_owned(),
    };
    let auth = registry_auth(&r.headers);
    let st = r.state.clone();
    let repo = name.to_owned();
    // A missing image is a 404 before the stream starts, as Docker's.
    {
        let st = st.clone();
        let reference = reference.clone();
        blocking(move || Ok(st.engine()?.resolve_image(&reference)?)).await?;
    }
    let (tx, resp) = http::stream("application/json");
    let lines = Lines(tx);
    tokio::task::spawn_blocking(move || {
        let run = || -> Result<(), ApiError> {
            let engine = st.engine()?;
            if let (Some(a), Some(host)) = (&auth, registry_of(&reference)) {
                use_registry_auth(&engine, &host, a)?;
            }
            lines.send(json!({"status": format!("The push refers to repository [{repo}]")}));
            let l = Mutex::new(lines.clone());
            let report = engine.push(
                &PushRequest {
                    reference: reference.clone(),
                    ..Default::default()
                },
                &|p| {
                    if let (Some(v), Ok(l)) = (progress_line(&p, false), l.lock()) {
                        l.send(v);
                    }
                },
            )?;
            lines.send(json!({"status": format!(
                "{}: digest: {} size: {}", report.tag, report.digest, report.size
            )}));
            lines.send(json!({"progressDetail": {}, "aux": {
                "Tag": report.tag, "Digest": report.digest.to_string(), "Size": report.size,
            }}));
            Ok(())
        };
        if let Err(e) = run() {
            lines.error(&e.message);
        }
    });
    Ok(resp)
}

/// A writer into a response stream (for `save`).
struct ChannelWriter(mpsc::Sender<Bytes>);

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .blocking_send(Bytes::copy_from_slice(buf))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client gone"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `GET /images/get?names=...` and `GET /images/{name}/get`: a docker-archive tar.
pub(crate) async fn get(r: Req, names: Vec<String>) -> ApiResult {
    if names.is_empty() {
        return Err(ApiError::bad_request("no image to save"));
    }
    let st = r.state.clone();
    {
        let st = st.clone();
        let names = names.clone();
        blocking(move || {
            let engine = st.engine()?;
            for n in &names {
                engine.resolve_image(n)?;
            }
            Ok(())
        })
        .await?;
    }
    let (tx, resp) = http::stream("application/x-tar");
    tokio::task::spawn_blocking(move || {
        let engine = match st.engine() {
            Ok(e) => e,
            Err(_) => return,
        };
        let out = std::io::BufWriter::with_capacity(256 * 1024, ChannelWriter(tx));
        if let Err(e) = engine.save(&names, berth_oci::archive::ArchiveFormat::Docker, out) {
            log::warn!("save: {e}");
        }
    });
    Ok(resp)
}

/// `POST /images/load?quiet=`: a docker-archive or OCI-layout tar in the body.
pub(crate) async fn load(r: Req) -> ApiResult {
    let st = r.state.clone();
    let tmp = spool_body(&st, r.body).await?;
    let report = blocking(move || {
        let rep = st
            .engine()?
            .load(&ImportSource::Path(tmp.path().to_path_buf()))?;
        drop(tmp);
        Ok(rep)
    })
    .await?;
    let (tx, resp) = http::stream("application/json");
    let mut out = Vec::new();
    for (id, names) in &report.images {
        if names.is_empty() {
            out.push(json!({"stream": format!("Loaded image ID: {id}\n")}));
        }
        for n in names {
            out.push(json!({"stream": format!("Loaded image: {n}\n")}));
        }
    }
    tokio::spawn(async move {
        for v in out {
            if tx.send(json_line(&v)).await.is_err() {
                break;
            }
        }
    });
    Ok(resp)
}
