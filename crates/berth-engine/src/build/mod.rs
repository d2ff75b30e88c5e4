//! `build`, `builder prune` and `image analyze`: the builder of `berth-build` joined to the
//! store (layers, images, the build cache table) and to the runtime (RUN steps).
//!
//! [`Engine::build`] reads the context and the Dockerfile, checks every tag before anything
//! runs, builds, stores the image and moves the tags; on any error no image is stored.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use berth_build::analyze::AnalyzeError;
use berth_build::context::{BuildContext, ContextError};
use berth_build::dockerfile::ParseError;
use berth_build::exec::{self, BackendError, BuildError, BuildRequest, StepRunner};
use berth_build::imageconfig::ImageConfig;
use berth_oci::{Digest, ImageRef};
use berth_store::{BlobReader, BuildCachePrune};

use crate::{Engine, Error, ErrorKind};

pub mod backend;
pub mod runner;

pub use backend::StoreBackend;
pub use berth_build::analyze::{parse_size, Analysis};
pub use berth_build::exec::{Event, NoProgress, Progress};
pub use runner::{cancel, cancel_on_interrupt, cancelled, output_lock, RuntimeStepRunner};

/// Why a build, a prune or an analysis failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildFailure {
    /// The build itself failed (parse, step, source...).
    #[error(transparent)]
    Build(#[from] BuildError),
    /// The context could not be read.
    #[error(transparent)]
    Context(#[from] ContextError),
    /// The store or runtime failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// An image could not be analyzed.
    #[error(transparent)]
    Analyze(#[from] AnalyzeError),
    /// The Dockerfile could not be read.
    #[error("unable to read the Dockerfile {path}: {source}")]
    Dockerfile {
        /// Where it was looked for.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A `--secret` value is malformed or its file unreadable.
    #[error("invalid --secret {value:?}: {reason}")]
    Secret {
        /// The flag's value.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// A `--label` or other flag value is malformed.
    #[error("invalid {flag} {value:?}: {reason}")]
    Flag {
        /// The flag.
        flag: &'static str,
        /// Its value.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// A stored blob is not a valid config.
    #[error("the config of image {id} is not valid JSON: {source}")]
    BadConfig {
        /// The image.
        id: Digest,
        /// Why.
        source: serde_json::Error,
    },
}

impl BuildFailure {
    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        use berth_build::Kind as K;
        let k = match self {
            BuildFailure::Build(e) => e.kind(),
            BuildFailure::Context(e) => e.kind(),
            BuildFailure::Backend(e) => e.kind(),
            BuildFailure::Analyze(e) => e.kind(),
            BuildFailure::Dockerfile { source, .. } if source.kind() == io::ErrorKind::NotFound => {
                K::NotFound
            }
            BuildFailure::Dockerfile { .. } | BuildFailure::BadConfig { .. } => K::Io,
            BuildFailure::Secret { .. } | BuildFailure::Flag { .. } => K::InvalidArgument,
        };
        match k {
            K::InvalidArgument | K::StepFailed => ErrorKind::InvalidArgument,
            K::NotFound => ErrorKind::NotFound,
            K::Unsupported => ErrorKind::Unsupported,
            K::Io => ErrorKind::Internal,
        }
    }
}

impl From<ParseError> for BuildFailure {
    fn from(e: ParseError) -> Self {
        BuildFailure::Build(BuildError::Parse(e))
    }
}

/// Where the context comes from.
pub enum ContextSource {
    /// A directory.
    Dir(PathBuf),
    /// A stream (stdin): a tar (plain, gzip, zstd) of the context, or a Dockerfile alone.
    Stream(Box<dyn Read>),
}

/// Where the Dockerfile comes from.
pub enum DockerfileSource {
    /// `Dockerfile` in the context (or `-f` relative to it when not found from the cwd).
    Default,
    /// `-f PATH`.
    Path(PathBuf),
    /// `-f -`: read from this stream.
    Stream(Box<dyn Read>),
}

/// What `build` is asked to do.
pub struct BuildOptions {
    /// The context.
    pub context: ContextSource,
    /// The Dockerfile.
    pub dockerfile: DockerfileSource,
    /// `-t`, as typed.
    pub tags: Vec<String>,
    /// `--build-arg K=V` or `K`.
    pub build_args: Vec<String>,
    /// `--target`.
    pub target: Option<String>,
    /// `--no-cache`.
    pub no_cache: bool,
    /// `--pull`: `Always` pulls every base image; `Never` builds only from the store.
    pub pull: crate::registry::PullPolicy,
    /// `--label K=V`.
    pub labels: Vec<String>,
    /// `--secret id=X,src=PATH` (also `type=file`, `source=`, `env=`).
    pub secrets: Vec<String>,
    /// `--network`.
    pub network: Option<String>,
    /// SOURCE_DATE_EPOCH.
    pub source_date_epoch: Option<u64>,
}

/// What `build` produced.
#[derive(Debug, Clone)]
pub struct BuildResult {
    /// The image ID.
    pub id: Digest,
    /// The tags now pointing at it (full references).
    pub tags: Vec<String>,
    /// Steps built now.
    pub built_steps: usize,
    /// Steps from the cache.
    pub cached_steps: usize,
    /// `--build-arg`s no ARG declared.
    pub unused_build_args: Vec<String>,
}

fn read_stream(mut r: impl Read, what: &str) -> Result<Vec<u8>, BuildFailure> {
    let mut v = Vec::new();
    r.read_to_end(&mut v)
        .map_err(|source| BuildFailure::Dockerfile {
            path: PathBuf::from(what),
            source,
        })?;
    Ok(v)
}

/// Parses `--secret` values into id -> file. `env=NAME` secrets are written to a private
/// temporary file under `tmp` (kept alive by the returned guards).
fn parse_secrets(
    values: &[String],
    tmp: &Path,
) -> Result<(BTreeMap<String, PathBuf>, Vec<tempfile::NamedTempFile>), BuildFailure> {
    let mut out = BTreeMap::new();
    let mut guards = Vec::new();
    for value in values {
        let bad = |reason: &str| BuildFailure::Secret {
            value: value.clone(),
            reason: reason.to_owned(),
        };
        let mut id = None;
        let mut src = None;
        let mut env = None;
        for field in value.split(',') {
            let (k, v) = field
                .split_once('=')
                .ok_or_else(|| bad("expected id=NAME,src=PATH"))?;
            match k.trim() {
                "id" => id = Some(v.to_owned()),
                "src" | "source" => src = Some(v.to_owned()),
                "env" => env = Some(v.to_owned()),
                "type" if v == "file" || v == "env" => {}
                _ => {
                    return Err(bad(&format!(
                        "unknown key {k:?}: expected id, src, env or type"
                    )))
                }
            }
        }
        let id = id
            .or_else(|| {
                src.as_ref().and_then(|s| {
                    Path::new(s)
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                })
            })
            .or_else(|| env.clone())
            .ok_or_else(|| bad("id= is required"))?;
        let path = match (src, env) {
            (Some(s), _) => {
                let p = PathBuf::from(s);
                fs::metadata(&p).map_err(|e| bad(&format!("{}: {e}", p.display())))?;
                p
            }
            (None, Some(name)) => {
                let v = std::env::var(&name)
                    .map_err(|_| bad(&format!("environment variable {name} is not set")))?;
                fs::create_dir_all(tmp).map_err(|e| bad(&e.to_string()))?;
                let mut f = tempfile::Builder::new()
                    .prefix("build-secret-")
                    .tempfile_in(tmp)
                    .map_err(|e| bad(&e.to_string()))?;
                io::Write::write_all(&mut f, v.as_bytes()).map_err(|e| bad(&e.to_string()))?;
                let p = f.path().to_owned();
                guards.push(f);
                p
            }
            (None, None) => return Err(bad("src=PATH (or env=NAME) is required")),
        };
        out.insert(id, path);
    }
    Ok((out, guards))
}

impl Engine {
    /// Builds an image; see [`BuildOptions`]. `runner` runs RUN steps (normally a
    /// [`RuntimeStepRunner`]); `progress` receives step events.
    pub fn build(
        &self,
        opts: BuildOptions,
        runner: &dyn StepRunner,
        progress: &dyn Progress,
    ) -> Result<BuildResult, Error> {
        // Tags first: a bad one fails before any work.
        let mut names = Vec::new();
        for t in &opts.tags {
            let r = ImageRef::parse(t)?;
            if r.digest().is_some() {
                return Err(Error::InvalidArgument(format!(
                    "invalid tag {t:?}: a tag can not contain a digest"
                )));
            }
            names.push(r.to_string());
        }
        let mut labels = BTreeMap::new();
        for l in &opts.labels {
            let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
            if k.is_empty() {
                return Err(BuildFailure::Flag {
                    flag: "--label",
                    value: l.clone(),
                    reason: "expected KEY=VALUE".into(),
                }
                .into());
            }
            labels.insert(k.to_owned(), v.to_owned());
        }
        if let Some(n) = &opts.network {
            if !matches!(n.as_str(), "default" | "none" | "host") {
                return Err(BuildFailure::Flag {
                    flag: "--network",
                    value: n.clone(),
                    reason: "expected default, none or host".into(),
                }
                .into());
            }
        }
        // Steps of builds that died (SIGKILL) are killed and removed before this one runs.
        runner::sweep_dead_steps(&self.config.runroot);
        let backend = StoreBackend::open(&self.config)?.with_pull_policy(opts.pull);
        // Everything this build writes under ROOT/tmp is in its own scratch directory.
        let tmp = berth_build::exec::BuildBackend::tmp_dir(&backend);
        let (secrets, _secret_files) = parse_secrets(&opts.secrets, &tmp)?;
        let (context, dockerfile_text, file_name) =
            self.load_context(opts.context, opts.dockerfile, &tmp)?;
        let dockerfile = berth_build::dockerfile::parse(&dockerfile_text, &file_name)
            .map_err(BuildFailure::from)?;
        let req = BuildRequest {
            dockerfile,
            file_name,
            context: &context,
            build_args: exec::parse_build_args(&opts.build_args),
            target: opts.target,
            no_cache: opts.no_cache,
            pull: opts.pull == crate::registry::PullPolicy::Always,
            labels,
            secrets,
            network: opts.network,
            source_date_epoch: opts.source_date_epoch,
        };
        let out = exec::build(&req, &backend, runner, progress).map_err(BuildFailure::from)?;
        let created = out.config.created.clone().unwrap_or_default();
        let id = backend.commit_image(&out.config_bytes, &out.layers, &created, &names)?;
        Ok(BuildResult {
            id,
            tags: names,
            built_steps: out.built_steps,
            cached_steps: out.cached_steps,
            unused_build_args: out.unused_build_args,
        })
    }

    fn load_context(
        &self,
        context: ContextSource,
        dockerfile: DockerfileSource,
        tmp: &Path,
    ) -> Result<(BuildContext, String, String), BuildFailure> {
        let read_file = |p: &Path| {
            fs::read(p).map_err(|source| BuildFailure::Dockerfile {
                path: p.to_owned(),
                source,
            })
        };
        let (ctx, default_text): (BuildContext, Option<Vec<u8>>) = match context {
            ContextSource::Dir(dir) => {
                // `<Dockerfile>.dockerignore` next to the Dockerfile wins over .dockerignore.
                let df_path = match &dockerfile {
                    DockerfileSource::Path(p) => Some(p.clone()),
                    DockerfileSource::Default => Some(dir.join("Dockerfile")),
                    DockerfileSource::Stream(_) => None,
                };
                (BuildContext::from_dir(&dir, df_path.as_deref())?, None)
            }
            ContextSource::Stream(mut r) => {
                let mut head = Vec::new();
                (&mut r)
                    .take(512)
                    .read_to_end(&mut head)
                    .map_err(|e| BuildFailure::Context(ContextError::BadTar(e)))?;
                let kind = berth_build::layertar::detect(&head);
                let stream = io::Cursor::new(head).chain(r);
                if matches!(kind, berth_build::layertar::ArchiveKind::NotArchive) {
                    // A Dockerfile on stdin with no context.
                    (BuildContext::empty(tmp)?, Some(read_stream(stream, "-")?))
                } else {
                    (BuildContext::from_tar(stream, tmp)?, None)
                }
            }
        };
        let (bytes, name) = match (dockerfile, default_text) {
            (DockerfileSource::Stream(r), _) => (read_stream(r, "-")?, "-".to_owned()),
            (_, Some(text)) => (text, "-".to_owned()),
            (DockerfileSource::Path(p), None) => {
                let direct = if p.is_absolute() || p.exists() {
                    p.clone()
                } else {
                    ctx.root().join(&p)
                };
                (read_file(&direct)?, p.display().to_string())
            }
            (DockerfileSource::Default, None) => {
                let upper = ctx.root().join("Dockerfile");
                let lower = ctx.root().join("dockerfile");
                let p = if upper.exists() || !lower.exists() {
                    upper
                } else {
                    lower
                };
                (read_file(&p)?, "Dockerfile".to_owned())
            }
        };
        let text = String::from_utf8(bytes).map_err(|e| BuildFailure::Dockerfile {
            path: PathBuf::from(&name),
            source: io::Error::new(io::ErrorKind::InvalidData, e),
        })?;
        Ok((ctx, text, name))
    }

    /// `builder prune`: empties the build cache; returns what it removed.
    pub fn builder_prune(&self) -> Result<BuildCachePrune, Error> {
        runner::sweep_dead_steps(&self.config.runroot);
        let p = self.store().build_cache_prune()?;
        let mounts = self.config.root.join("build-cache-mounts");
        if mounts.exists() {
            let _ = fs::remove_dir_all(&mounts);
        }
        Ok(p)
    }

    /// `image analyze`: layer figures, wasted bytes and secrets of an image.
    pub fn analyze_image(&self, input: &str) -> Result<(Digest, Analysis), Error> {
        let id = self.resolve_image(input)?;
        let bytes = self.store().blobs().read_blob(&id)?;
        let config = ImageConfig::from_bytes(&bytes).map_err(|source| BuildFailure::BadConfig {
            id: id.clone(),
            source,
        })?;
        let layers = self.store().image_layers(&id)?;
        let mut streams: Vec<(String, Box<dyn Read>)> = Vec::new();
        for l in &layers {
            let f = self.store().blobs().open_blob(&l.blob_digest)?;
            let mut buffered = io::BufReader::with_capacity(1 << 20, f);
            let head = io::BufRead::fill_buf(&mut buffered)
                .map(|b| b[..b.len().min(512)].to_vec())
                .unwrap_or_default();
            let kind = berth_build::layertar::detect(&head);
            let reader = berth_build::layertar::open_archive(kind, buffered).map_err(|source| {
                BuildFailure::Analyze(AnalyzeError::Layer {
                    index: streams.len(),
                    digest: l.diff_id.to_string(),
                    source,
                })
            })?;
            streams.push((l.diff_id.to_string(), reader));
        }
        let analysis =
            berth_build::analyze::analyze(&config, streams).map_err(BuildFailure::from)?;
        Ok((id, analysis))
    }
}
