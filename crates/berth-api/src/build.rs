//! `POST /build`: the legacy builder's endpoint (a tar context in the body; `dockerfile`,
//! `t`, `buildargs`, `target`, `nocache`, `pull`, `labels`, `q`; `X-Registry-Config`),
//! streaming progress as Docker's legacy builder does (`{"stream": "Step 1/3 : FROM
//! ..."}`, `{"aux": {"ID": ...}}`, `Successfully built`/`tagged`). BuildKit's `/session`
//! and `/grpc` are not served: the ping's `Builder-Version: 1` sends clients here.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use berth_engine::build::{
    BuildOptions, ContextSource, DockerfileSource, Event, Progress, RuntimeStepRunner,
};
use serde_json::{json, Value};

use crate::http::{self, ApiError, ApiResult};
use crate::images::{spool_body, Lines};
use crate::router::Req;
use crate::system::{use_registry_auth, RegistryAuth};

struct StreamProgress {
    lines: Lines,
    quiet: bool,
}

impl Progress for StreamProgress {
    fn event(&self, ev: Event<'_>) {
        if self.quiet {
            return;
        }
        match ev {
            Event::Step {
                index, total, text, ..
            } => {
                self.lines
                    .send(json!({"stream": format!("Step {index}/{total} : {text}\n")}));
            }
            Event::Cached { .. } => {
                self.lines.send(json!({"stream": " ---> Using cache\n"}));
            }
            Event::Output { bytes, .. } => {
                self.lines
                    .send(json!({"stream": String::from_utf8_lossy(bytes)}));
            }
            Event::Done { .. } | Event::Failed { .. } => {}
        }
    }
}

/// A JSON map parameter (`buildargs`, `labels`) as `K=V` strings; null values are skipped
/// (the client resolves them).
fn map_param(r: &Req, key: &str) -> Result<Vec<String>, ApiError> {
    let Some(raw) = r.query.non_empty(key) else {
        return Ok(Vec::new());
    };
    let m: BTreeMap<String, Option<String>> = serde_json::from_str(raw)
        .map_err(|e| ApiError::bad_request(format!("invalid {key}: {e}")))?;
    Ok(m.into_iter()
        .filter_map(|(k, v)| v.map(|v| format!("{k}={v}")))
        .collect())
}

/// `dockerfile`: a path inside the context.
fn dockerfile_param(v: Option<&str>) -> Result<Option<PathBuf>, ApiError> {
    let Some(v) = v.filter(|v| !v.is_empty() && *v != "Dockerfile") else {
        return Ok(None);
    };
    let p = Path::new(v);
    let inside = p
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if !inside {
        return Err(ApiError::bad_request(format!(
            "invalid dockerfile {v:?}: it must be a path inside the build context"
        )));
    }
    Ok(Some(PathBuf::from(v)))
}

/// `X-Registry-Config`: base64 JSON `{"registry": {"username": ..., "password": ...}}`.
fn registry_config(r: &Req) -> Vec<(String, RegistryAuth)> {
    use base64::Engine as _;
    let Some(raw) = http::header(&r.headers, "x-registry-config") else {
        return Vec::new();
    };
    let Ok(bytes) = base64::engine::general_purpose::URL_SAFE
        .decode(raw.trim())
        .or_else(|_| base64::engine::general_purpose::STANDARD.decode(raw.trim()))
    else {
        return Vec::new();
    };
    let Ok(m) = serde_json::from_slice::<BTreeMap<String, Value>>(&bytes) else {
        return Vec::new();
    };
    m.into_iter()
        .filter_map(|(host, v)| {
            let user = v.get("username")?.as_str()?.to_owned();
            let pass = v.get("password")?.as_str()?.to_owned();
            (!user.is_empty() && !pass.is_empty()).then(|| {
                (
                    host.clone(),
                    RegistryAuth {
                        username: user,
                        password: pass,
                        server: host,
                    },
                )
            })
        })
        .collect()
}

fn short_id(id: &str) -> String {
    id.trim_start_matches("sha256:").chars().take(12).collect()
}

/// `POST /build`.
pub(crate) async fn build(r: Req) -> ApiResult {
    if r.query.non_empty("remote").is_some() {
        return Err(ApiError::bad_request(
            "remote build contexts are not supported by berth: send the context as a tar",
        ));
    }
    let tags = r
        .query
        .all("t")
        .into_iter()
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>();
    let build_args = map_param(&r, "buildargs")?;
    let labels = map_param(&r, "labels")?;
    let dockerfile = dockerfile_param(r.query.get("dockerfile"))?;
    let target = r.query.non_empty("target").map(str::to_owned);
    let no_cache = r.query.bool("nocache", false)?;
    let pull = r
        .query
        .get("pull")
        .is_some_and(|p| !p.is_empty() && p != "0" && p != "false");
    let quiet = r.query.bool("q", false)?;
    let network = r
        .query
        .non_empty("networkmode")
        .filter(|n| *n != "default")
        .map(str::to_owned);
    let creds = registry_config(&r);
    for t in &tags {
        berth_oci::reference::ImageRef::parse(t)
            .map_err(|e| ApiError::bad_request(format!("invalid reference format: {t}: {e}")))?;
    }
    let st = r.state.clone();
    let context = spool_body(&st, r.body).await?;
    let (tx, resp) = http::stream("application/json");
    let lines = Lines(tx);
    tokio::task::spawn_blocking(move || {
        let run = || -> Result<(), ApiError> {
            let engine = st.engine()?;
            for (host, a) in &creds {
                let host = host
                    .trim_start_matches("https://")
                    .trim_start_matches("http://")
                    .trim_end_matches('/');
                let _ = use_registry_auth(&engine, host, a);
            }
            let file = std::fs::File::open(context.path())
                .map_err(|e| ApiError::internal(format!("reading the context: {e}")))?;
            let runner = RuntimeStepRunner::new(&st.config.root, &st.config.runroot);
            let progress = StreamProgress {
                lines: lines.clone(),
                quiet,
            };
            let result = engine.build(
                BuildOptions {
                    context: ContextSource::Stream(Box::new(file)),
                    dockerfile: match dockerfile {
                        Some(p) => DockerfileSource::Path(p),
                        None => DockerfileSource::Default,
                    },
                    tags,
                    build_args,
                    target,
                    no_cache,
                    pull: if pull {
                        berth_engine::registry::PullPolicy::Always
                    } else {
                        berth_engine::registry::PullPolicy::Missing
                    },
                    labels,
                    secrets: Vec::new(),
                    network,
                    source_date_epoch: None,
                },
                &runner,
                &progress,
            )?;
            let id = result.id.to_string();
            lines.send(json!({"aux": {"ID": id}}));
            if quiet {
                lines.send(json!({"stream": format!("{id}\n")}));
                return Ok(());
            }
            if !result.unused_build_args.is_empty() {
                lines.send(json!({"stream": format!(
                    "[Warning] One or more build-args {:?} were not consumed\n",
                    result.unused_build_args
                )}));
            }
            lines.send(json!({"stream": format!("Successfully built {}\n", short_id(&id))}));
            for t in &result.tags {
                lines.send(json!({"stream": format!(
                    "Successfully tagged {}\n",
                    berth_engine::images::familiar(t)
                )}));
            }
            Ok(())
        };
        if let Err(e) = run() {
            lines.error(&e.message);
        }
        drop(context);
    });
    Ok(resp)
}

/// `POST /build/prune`: empties the build cache.
pub(crate) async fn prune(r: Req) -> ApiResult {
    let st = r.state.clone();
    let report = crate::blocking(move || Ok(st.engine()?.builder_prune()?)).await?;
    let _ = &report;
    http::ok_json(&json!({"CachesDeleted": [], "SpaceReclaimed": 0}))
}
