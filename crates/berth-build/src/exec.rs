//! The step executor: runs the stages a target needs (independent ones concurrently),
//! each instruction in turn, with the cache.
//!
//! The executor touches no store and runs no container itself: images, layers, root file
//! system views and the cache come from a [`BuildBackend`], RUN steps go to a
//! [`StepRunner`]; `berth-engine` implements both, tests use fakes. The result is a config
//! and a list of layers that the caller commits as an image.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use berth_oci::Digest;
use serde::{Deserialize, Serialize};

use crate::cache::{base_key, content_digest_memo, step_key, CacheEntry, DigestMemo};
use crate::context::{BuildContext, ContextError, CopyItem, CopyOptions, ItemKind, SourceTree};
use crate::dockerfile::{
    self, CommandForm, CopySpec, Dockerfile, Healthcheck, Instruction, InstructionKind, Mount,
    ParseError, Stage,
};
use crate::expand::{ExpandError, Expander};
use crate::ignore::IgnoreRules;
use crate::imageconfig::{Empty, HealthConfig, History, ImageConfig};
use crate::layertar::{open_archive, EntryMeta, LayerWriter};

/// A layer as the build refers to it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LayerRef {
    /// Digest of the uncompressed tar.
    pub diff_id: Digest,
    /// Digest of the blob as stored.
    pub digest: Digest,
    /// Size of the blob.
    pub size: u64,
    /// Media type of the blob.
    pub media_type: String,
}

/// An image to build on.
#[derive(Debug, Clone)]
pub struct BaseImage {
    /// Its ID (config digest).
    pub id: Digest,
    /// Its config.
    pub config: ImageConfig,
    /// Its layers, bottom first.
    pub layers: Vec<LayerRef>,
}

/// A failure inside the backend or the runner.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// A named thing does not exist.
    #[error("{what} not found")]
    NotFound {
        /// What was looked for (`image "busybox"`).
        what: String,
    },
    /// A base image is not in the store and was not (or could not be) pulled.
    #[error("{reference}: image not found locally and {why}")]
    ImageNotFound {
        /// The image, fully qualified (`docker.io/library/app:latest`).
        reference: String,
        /// Why it was not pulled, or why the pull failed.
        why: String,
    },
    /// An operation failed.
    #[error("{what}: {source}")]
    Failed {
        /// What was being done.
        what: String,
        /// Why.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl BackendError {
    /// Wraps an error with what was being done.
    pub fn failed(
        what: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        BackendError::Failed {
            what: what.into(),
            source: source.into(),
        }
    }

    /// The kind of failure.
    pub fn kind(&self) -> crate::Kind {
        match self {
            BackendError::NotFound { .. } | BackendError::ImageNotFound { .. } => {
                crate::Kind::NotFound
            }
            BackendError::Failed { .. } => crate::Kind::Io,
        }
    }
}

/// A read-only view of a root file system, released when dropped.
pub trait RootfsView: Send {
    /// The directory holding the merged file system.
    fn path(&self) -> &Path;
}

/// A plain directory as a view (tests, or a rootfs the caller keeps).
pub struct DirView(pub PathBuf);

impl RootfsView for DirView {
    fn path(&self) -> &Path {
        &self.0
    }
}

/// Where a build gets images, stores layers and keeps its cache. Implemented by the engine
/// on the store. Every method may be called from several threads at once.
pub trait BuildBackend: Send + Sync {
    /// The image `reference` names (pulled first when `pull` is set or it is missing and a
    /// registry can be reached).
    fn base_image(&self, reference: &str, pull: bool) -> Result<BaseImage, BackendError>;
    /// A directory for temporary files on the store's file system.
    fn tmp_dir(&self) -> PathBuf;
    /// Stores the uncompressed layer tar at `tar` (which the backend may move) on top of
    /// `parents`.
    fn put_layer(&self, parents: &[LayerRef], tar: &Path) -> Result<LayerRef, BackendError>;
    /// Whether `layer` on top of `parents` is still stored (a cache hit needs it).
    fn has_layer(&self, parents: &[LayerRef], layer: &LayerRef) -> bool;
    /// A read-only view of the file system made by `layers`.
    fn rootfs(&self, layers: &[LayerRef]) -> Result<Box<dyn RootfsView>, BackendError>;
    /// Whether `path` (absolute) exists in the file system made by `layers`. The default
    /// looks through a [`BuildBackend::rootfs`] view.
    fn path_exists(&self, layers: &[LayerRef], path: &str) -> bool {
        match self.rootfs(layers) {
            // Inside the view: its symlinks are the image's and may point anywhere.
            Ok(v) => berth_oci::in_root::open_root(v.path())
                .and_then(|root| berth_oci::in_root::open_in_root_nofollow(&root, path.as_ref()))
                .is_ok(),
            Err(_) => false,
        }
    }
    /// Where to keep the digests of build-context files between builds (an optimisation:
    /// `None` hashes every COPY source each time).
    fn digest_memo_path(&self) -> Option<PathBuf> {
        None
    }
    /// A persistent directory for `RUN --mount=type=cache,id=...`.
    fn cache_mount_dir(&self, id: &str) -> Result<PathBuf, BackendError>;
    /// The cached result of step `key`.
    fn cache_get(&self, key: &Digest) -> Result<Option<CacheEntry>, BackendError>;
    /// Records the result of step `key`.
    fn cache_put(&self, key: &Digest, entry: &CacheEntry) -> Result<(), BackendError>;
}

/// A mount for one RUN step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunMount {
    /// Path inside the container.
    pub target: String,
    /// Host path (file or directory); `None` for a tmpfs.
    pub source: Option<PathBuf>,
    /// Mounted read only.
    pub readonly: bool,
}

/// Network mode of a RUN step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunNetwork {
    /// No network but loopback.
    None,
    /// The host's network namespace.
    Host,
}

/// One RUN step to execute.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// The layers of the root file system, bottom first.
    pub layers: Vec<LayerRef>,
    /// Program and arguments.
    pub argv: Vec<String>,
    /// Environment, `K=V`.
    pub env: Vec<String>,
    /// `USER` (`name`, `uid` or `uid:gid`; empty for root).
    pub user: String,
    /// Working directory (created when missing).
    pub workdir: String,
    /// Network mode.
    pub network: RunNetwork,
    /// Extra mounts (secrets, caches, binds, tmpfs): none of them may appear in the layer.
    pub mounts: Vec<RunMount>,
    /// Clamp for mtimes in the layer (SOURCE_DATE_EPOCH).
    pub mtime_clamp: Option<u64>,
}

/// Runs RUN steps in containers.
pub trait StepRunner: Send + Sync {
    /// Runs `spec` in a fresh container over its layers. Output goes to `output` as it
    /// comes. When the command exits 0, writes the diff of the container's writable layer
    /// as an uncompressed tar to `layer`, excluding the mount points of `spec.mounts`.
    /// Returns the exit status. Leaves no container, mount or process behind.
    fn run(
        &self,
        spec: &RunSpec,
        output: &mut dyn Write,
        layer: &mut dyn Write,
    ) -> Result<i32, BackendError>;
}

/// What a build reports as it goes.
#[derive(Debug)]
pub enum Event<'a> {
    /// A step starts: `#id [stage k/n] TEXT`.
    Step {
        /// Step number in the whole build, from 1.
        id: usize,
        /// The stage's label (`build` or `stage-1`).
        stage: &'a str,
        /// Step within the stage, from 1.
        index: usize,
        /// Steps in the stage.
        total: usize,
        /// The instruction.
        text: &'a str,
    },
    /// The step's result came from the cache.
    Cached {
        /// Step number.
        id: usize,
    },
    /// Output of a RUN step.
    Output {
        /// Step number.
        id: usize,
        /// A chunk of output.
        bytes: &'a [u8],
    },
    /// The step finished.
    Done {
        /// Step number.
        id: usize,
        /// How long it took.
        elapsed: Duration,
    },
    /// The step failed.
    Failed {
        /// Step number.
        id: usize,
    },
}

/// Receives [`Event`]s; called from several threads.
pub trait Progress: Sync {
    /// One event.
    fn event(&self, e: Event<'_>);
}

/// Discards events.
pub struct NoProgress;

impl Progress for NoProgress {
    fn event(&self, _e: Event<'_>) {}
}

/// What to build.
pub struct BuildRequest<'a> {
    /// The parsed Dockerfile.
    pub dockerfile: Dockerfile,
    /// Its name in messages.
    pub file_name: String,
    /// The context.
    pub context: &'a BuildContext,
    /// `--build-arg` values (a `None` value takes the variable from the environment).
    pub build_args: BTreeMap<String, String>,
    /// `--target`.
    pub target: Option<String>,
    /// `--no-cache`.
    pub no_cache: bool,
    /// `--pull`.
    pub pull: bool,
    /// `--label`.
    pub labels: BTreeMap<String, String>,
    /// `--secret id=...,src=...`.
    pub secrets: BTreeMap<String, PathBuf>,
    /// `--network` for RUN steps: `default`, `none` or `host`.
    pub network: Option<String>,
    /// SOURCE_DATE_EPOCH: every timestamp is clamped to it.
    pub source_date_epoch: Option<u64>,
}

/// The result of a build.
#[derive(Debug, Clone)]
pub struct BuildOutput {
    /// The image config.
    pub config: ImageConfig,
    /// Its canonical bytes.
    pub config_bytes: Vec<u8>,
    /// The image ID (digest of `config_bytes`).
    pub id: Digest,
    /// The layers, bottom first.
    pub layers: Vec<LayerRef>,
    /// Steps whose layer was built now.
    pub built_steps: usize,
    /// Steps served from the cache.
    pub cached_steps: usize,
    /// `--build-arg`s that no ARG of the built stages declared (Docker warns about them).
    pub unused_build_args: Vec<String>,
}

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The Dockerfile does not parse.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// A word of an instruction does not expand.
    #[error("{file}:{line}: {text}: {source}")]
    Expand {
        /// The Dockerfile.
        file: String,
        /// Line of the instruction.
        line: usize,
        /// The instruction.
        text: String,
        /// Why.
        source: ExpandError,
    },
    /// A COPY/ADD source problem.
    #[error("{file}:{line}: {text}: {source}")]
    Context {
        /// The Dockerfile.
        file: String,
        /// Line of the instruction.
        line: usize,
        /// The instruction.
        text: String,
        /// Why.
        source: ContextError,
    },
    /// An instruction's value is not valid once expanded.
    #[error("{file}:{line}: {text}: {message}")]
    Invalid {
        /// The Dockerfile.
        file: String,
        /// Line of the instruction.
        line: usize,
        /// The instruction.
        text: String,
        /// What is wrong.
        message: String,
    },
    /// ADD of a URL or git repository.
    #[error("{file}:{line}: ADD {url}: remote sources need network access, and berth builds offline here; download the file and COPY it instead")]
    RemoteSource {
        /// The Dockerfile.
        file: String,
        /// Line.
        line: usize,
        /// The URL.
        url: String,
    },
    /// A RUN step exited non-zero.
    #[error("{file}:{line}: {text}: the command exited with status {status}{output}")]
    StepFailed {
        /// The Dockerfile.
        file: String,
        /// Line of the RUN.
        line: usize,
        /// The instruction.
        text: String,
        /// The exit status.
        status: i32,
        /// The last lines of output, prefixed with a newline, or empty.
        output: String,
    },
    /// `--target` names no stage.
    #[error("target stage {0:?} could not be found")]
    UnknownTarget(String),
    /// `--secret` required but not given.
    #[error(
        "{file}:{line}: secret {id:?} is required but was not given with --secret id={id},src=PATH"
    )]
    MissingSecret {
        /// The Dockerfile.
        file: String,
        /// Line.
        line: usize,
        /// Secret id.
        id: String,
    },
    /// The backend or runner failed.
    #[error("{file}:{line}: {text}: {source}")]
    Backend {
        /// The Dockerfile.
        file: String,
        /// Line of the instruction (0 for the build as a whole).
        line: usize,
        /// The instruction.
        text: String,
        /// Why.
        source: BackendError,
    },
    /// A file operation of the executor failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why.
        source: io::Error,
    },
    /// A stage this one needs failed (its own error is reported).
    #[error("stage {0} was not built because a stage it needs failed")]
    DependencyFailed(String),
}

impl BuildError {
    /// The kind of failure.
    pub fn kind(&self) -> crate::Kind {
        match self {
            BuildError::StepFailed { .. } => crate::Kind::StepFailed,
            BuildError::Context { source, .. } => source.kind(),
            BuildError::Backend { source, .. } => source.kind(),
            BuildError::RemoteSource { .. } => crate::Kind::Unsupported,
            BuildError::Io { .. } => crate::Kind::Io,
            BuildError::UnknownTarget(_) => crate::Kind::NotFound,
            _ => crate::Kind::InvalidArgument,
        }
    }
}

const PROXY_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// The state of a stage after some steps.
#[derive(Debug, Clone)]
struct StageState {
    key: Digest,
    layers: Vec<LayerRef>,
    config: ImageConfig,
    created: String,
}

type Slot = (Mutex<Option<Result<Arc<StageState>, String>>>, Condvar);

struct Shared<'a> {
    req: &'a BuildRequest<'a>,
    backend: &'a dyn BuildBackend,
    runner: &'a dyn StepRunner,
    progress: &'a dyn Progress,
    global_args: BTreeMap<String, Option<String>>,
    slots: Vec<Slot>,
    step_counter: Mutex<usize>,
    counts: Mutex<(usize, usize)>,
    first_error: Mutex<Option<BuildError>>,
    memo: DigestMemo,
}

/// Runs the build.
pub fn build(
    req: &BuildRequest<'_>,
    backend: &dyn BuildBackend,
    runner: &dyn StepRunner,
    progress: &dyn Progress,
) -> Result<BuildOutput, BuildError> {
    let df = &req.dockerfile;
    let target = match &req.target {
        Some(t) => {
            let t_lower = t.to_ascii_lowercase();
            df.stages
                .iter()
                .position(|s| s.name.as_deref() == Some(t_lower.as_str()))
                .or_else(|| t.parse::<usize>().ok().filter(|i| *i < df.stages.len()))
                .ok_or_else(|| BuildError::UnknownTarget(t.clone()))?
        }
        None => df.stages.len() - 1,
    };
    // Global ARGs: defaults expanded in order, overridden by --build-arg.
    let mut global_args: BTreeMap<String, Option<String>> = BTreeMap::new();
    for (k, v) in platform_args() {
        global_args.insert(k, Some(v));
    }
    for instr in &df.global_args {
        if let InstructionKind::Arg(args) = &instr.kind {
            for (name, default) in args {
                let value = match req.build_args.get(name) {
                    Some(v) => Some(v.clone()),
                    None => match default {
                        Some(d) => {
                            let lookup = |n: &str| global_args.get(n).cloned().flatten();
                            Some(
                                Expander::new(df.directives.escape, &lookup)
                                    .word(d)
                                    .map_err(|source| expand_err(req, instr, source))?,
                            )
                        }
                        None => None,
                    },
                };
                global_args.insert(name.clone(), value);
            }
        }
    }
    // Which stages the target needs.
    let deps: Vec<BTreeSet<usize>> = df
        .stages
        .iter()
        .map(|s| stage_deps(df, s, &global_args, req))
        .collect();
    let mut needed = BTreeSet::new();
    let mut todo = vec![target];
    while let Some(i) = todo.pop() {
        if needed.insert(i) {
            todo.extend(deps[i].iter().copied());
        }
    }
    let shared = Shared {
        req,
        backend,
        runner,
        progress,
        global_args,
        slots: df
            .stages
            .iter()
            .map(|_| (Mutex::new(None), Condvar::new()))
            .collect(),
        step_counter: Mutex::new(0),
        counts: Mutex::new((0, 0)),
        first_error: Mutex::new(None),
        memo: backend
            .digest_memo_path()
            .map(DigestMemo::load)
            .unwrap_or_default(),
    };
    let finish = |shared: &Shared<'_>, i: usize, result: Result<StageState, BuildError>| {
        let (lock, cv) = &shared.slots[i];
        let label = stage_label(&shared.req.dockerfile.stages[i]);
        let value = match result {
            Ok(state) => Ok(Arc::new(state)),
            Err(e) => {
                if let Ok(mut first) = shared.first_error.lock() {
                    if first.is_none() && !matches!(e, BuildError::DependencyFailed(_)) {
                        *first = Some(e);
                    }
                }
                Err(label)
            }
        };
        if let Ok(mut slot) = lock.lock() {
            *slot = Some(value);
        }
        cv.notify_all();
    };
    if needed.len() == 1 {
        // One stage: run it on this thread (RUN steps fork; a single-threaded process is
        // the safest parent for that).
        finish(&shared, target, run_stage(&shared, target, &deps[target]));
    } else {
        std::thread::scope(|scope| {
            for &i in &needed {
                let shared = &shared;
                let deps = &deps[i];
                let finish = &finish;
                scope.spawn(move || finish(shared, i, run_stage(shared, i, deps)));
            }
        });
    }
    shared.memo.save();
    if let Some(e) = shared.first_error.lock().ok().and_then(|mut e| e.take()) {
        return Err(e);
    }
    let state = wait_stage(&shared, target).map_err(BuildError::DependencyFailed)?;
    let (built_steps, cached_steps) = shared.counts.lock().map(|c| *c).unwrap_or((0, 0));
    let mut config = state.config.clone();
    for (k, v) in &req.labels {
        config.config.labels.insert(k.clone(), v.clone());
    }
    config.created = Some(state.created.clone());
    config.rootfs.diff_ids = state.layers.iter().map(|l| l.diff_id.to_string()).collect();
    let config_bytes = config.to_bytes();
    Ok(BuildOutput {
        id: Digest::of(&config_bytes),
        config,
        config_bytes,
        layers: state.layers.clone(),
        built_steps,
        cached_steps,
        unused_build_args: unused_build_args(req, &needed),
    })
}

/// The `--build-arg` names no ARG declares in the global scope or a built stage.
fn unused_build_args(req: &BuildRequest<'_>, built: &BTreeSet<usize>) -> Vec<String> {
    let df = &req.dockerfile;
    let declared: BTreeSet<&str> = df
        .global_args
        .iter()
        .chain(
            df.stages
                .iter()
                .filter(|s| built.contains(&s.index))
                .flat_map(|s| s.instructions.iter()),
        )
        .filter_map(|i| match &i.kind {
            InstructionKind::Arg(args) => Some(args.iter().map(|(n, _)| n.as_str())),
            _ => None,
        })
        .flatten()
        .collect();
    req.build_args
        .keys()
        .filter(|k| !declared.contains(k.as_str()) && !PROXY_ARGS.contains(&k.as_str()))
        .cloned()
        .collect()
}

fn platform_args() -> Vec<(String, String)> {
    let arch = berth_oci::manifest::host_arch();
    let platform = format!("linux/{arch}");
    vec![
        ("TARGETPLATFORM".into(), platform.clone()),
        ("TARGETOS".into(), "linux".into()),
        ("TARGETARCH".into(), arch.into()),
        ("TARGETVARIANT".into(), String::new()),
        ("BUILDPLATFORM".into(), platform),
        ("BUILDOS".into(), "linux".into()),
        ("BUILDARCH".into(), arch.into()),
        ("BUILDVARIANT".into(), String::new()),
    ]
}

fn stage_label(s: &Stage) -> String {
    s.name
        .clone()
        .unwrap_or_else(|| format!("stage-{}", s.index))
}

fn expand_err(req: &BuildRequest<'_>, instr: &Instruction, source: ExpandError) -> BuildError {
    BuildError::Expand {
        file: req.file_name.clone(),
        line: instr.line,
        text: instr.text.clone(),
        source,
    }
}

/// Finds the stage that `name` refers to (a name, or an index for COPY --from) before `before`.
fn find_stage(df: &Dockerfile, name: &str, before: usize, allow_index: bool) -> Option<usize> {
    let lower = name.to_ascii_lowercase();
    if let Some(i) = df.stages[..before]
        .iter()
        .position(|s| s.name.as_deref() == Some(lower.as_str()))
    {
        return Some(i);
    }
    if allow_index {
        if let Ok(i) = name.parse::<usize>() {
            if i < before {
                return Some(i);
            }
        }
    }
    None
}

fn expanded_base(
    df: &Dockerfile,
    s: &Stage,
    global: &BTreeMap<String, Option<String>>,
) -> Result<String, ExpandError> {
    let lookup = |n: &str| global.get(n).cloned().flatten();
    Expander::new(df.directives.escape, &lookup).word(&s.base)
}

fn stage_deps(
    df: &Dockerfile,
    s: &Stage,
    global: &BTreeMap<String, Option<String>>,
    _req: &BuildRequest<'_>,
) -> BTreeSet<usize> {
    let mut out = BTreeSet::new();
    if let Ok(base) = expanded_base(df, s, global) {
        if let Some(i) = find_stage(df, &base, s.index, false) {
            out.insert(i);
        }
    }
    for instr in &s.instructions {
        let from = match &instr.kind {
            InstructionKind::Copy(c) => c.from.clone(),
            InstructionKind::Run(r) => {
                for m in &r.mounts {
                    if let Mount::Bind { from: Some(f), .. } = m {
                        if let Some(i) = find_stage(df, f, s.index, true) {
                            out.insert(i);
                        }
                    }
                }
                None
            }
            _ => None,
        };
        if let Some(f) = from {
            let lookup = |n: &str| global.get(n).cloned().flatten();
            let f = Expander::new(df.directives.escape, &lookup)
                .word(&f)
                .unwrap_or(f);
            if let Some(i) = find_stage(df, &f, s.index, true) {
                out.insert(i);
            }
        }
    }
    out
}

fn wait_stage(shared: &Shared<'_>, i: usize) -> Result<Arc<StageState>, String> {
    let (lock, cv) = &shared.slots[i];
    let mut guard = match lock.lock() {
        Ok(g) => g,
        Err(_) => return Err(format!("stage-{i}")),
    };
    loop {
        if let Some(r) = guard.as_ref() {
            return r.clone();
        }
        guard = match cv.wait(guard) {
            Ok(g) => g,
            Err(_) => return Err(format!("stage-{i}")),
        };
    }
}

fn now_rfc3339(epoch: Option<u64>) -> String {
    let t = match epoch {
        Some(e) => time::OffsetDateTime::from_unix_timestamp(e as i64)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
        None => time::OffsetDateTime::now_utc(),
    };
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}

/// Per-stage execution.
struct StageRun<'s, 'a> {
    shared: &'s Shared<'a>,
    stage: &'s Stage,
    label: String,
    state: StageState,
    /// ARGs declared in this stage, with their values.
    args: BTreeMap<String, Option<String>>,
    /// Whether CMD was set in this stage (ENTRYPOINT resets an inherited CMD only).
    cmd_set: bool,
    escape: char,
}

fn run_stage(
    shared: &Shared<'_>,
    i: usize,
    deps: &BTreeSet<usize>,
) -> Result<StageState, BuildError> {
    for &d in deps {
        wait_stage(shared, d).map_err(BuildError::DependencyFailed)?;
    }
    let req = shared.req;
    let df = &req.dockerfile;
    let stage = &df.stages[i];
    let label = stage_label(stage);
    let base =
        expanded_base(df, stage, &shared.global_args).map_err(|source| BuildError::Expand {
            file: req.file_name.clone(),
            line: stage.line,
            text: stage.text.clone(),
            source,
        })?;
    let total = stage.instructions.len() + 1;
    let id = next_step(shared);
    let from_text = format!("FROM {base}");
    shared.progress.event(Event::Step {
        id,
        stage: &label,
        index: 1,
        total,
        text: &from_text,
    });
    let started = Instant::now();
    let state = if base.eq_ignore_ascii_case("scratch") {
        StageState {
            key: base_key("scratch"),
            layers: Vec::new(),
            config: ImageConfig::scratch(),
            created: now_rfc3339(req.source_date_epoch.or(Some(0))),
        }
    } else if let Some(d) = find_stage(df, &base, i, false) {
        let s = wait_stage(shared, d).map_err(BuildError::DependencyFailed)?;
        (*s).clone()
    } else {
        let img = shared
            .backend
            .base_image(&base, req.pull)
            .map_err(|source| BuildError::Backend {
                file: req.file_name.clone(),
                line: stage.line,
                text: stage.text.clone(),
                source,
            })?;
        let mut config = img.config.clone();
        // A base image's config may lack fields a builder relies on.
        if config.os.is_empty() {
            config.os = "linux".into();
        }
        let created = config
            .created
            .clone()
            .unwrap_or_else(|| now_rfc3339(Some(0)));
        StageState {
            key: base_key(&format!("image {}", img.id)),
            layers: img.layers,
            config,
            created,
        }
    };
    let mut state = state;
    state.config.ensure_path();
    shared.progress.event(Event::Done {
        id,
        elapsed: started.elapsed(),
    });
    let mut run = StageRun {
        shared,
        stage,
        label,
        state,
        args: BTreeMap::new(),
        cmd_set: false,
        escape: df.directives.escape,
    };
    // ONBUILD triggers of an image base run first, then are cleared.
    if let Some(triggers) = run.state.config.config.on_build.take() {
        if find_stage(df, &base, i, false).is_none() {
            for t in triggers {
                let parsed = dockerfile::parse(&format!("FROM scratch\n{t}\n"), &req.file_name)?;
                for mut instr in parsed.stages[0].instructions.clone() {
                    instr.line = stage.line;
                    run.step(&instr, 0, total)?;
                }
            }
        }
    }
    for (n, instr) in stage.instructions.iter().enumerate() {
        run.step(instr, n + 2, total)?;
    }
    Ok(run.state)
}

fn next_step(shared: &Shared<'_>) -> usize {
    let mut c = shared
        .step_counter
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    *c += 1;
    *c
}

struct OutputTee<'p> {
    progress: &'p dyn Progress,
    id: usize,
    tail: Vec<u8>,
}

impl Write for OutputTee<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.progress.event(Event::Output {
            id: self.id,
            bytes: buf,
        });
        self.tail.extend_from_slice(buf);
        if self.tail.len() > 8192 {
            let cut = self.tail.len() - 4096;
            self.tail.drain(..cut);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl StageRun<'_, '_> {
    fn file(&self) -> String {
        self.shared.req.file_name.clone()
    }

    /// Variables visible to expansion: ENV wins over ARG.
    fn lookup_value(&self, name: &str) -> Option<String> {
        if let Some(v) = self.state.config.config.env_get(name) {
            return Some(v.to_owned());
        }
        if let Some(v) = self.args.get(name) {
            return v.clone();
        }
        None
    }

    fn word(&self, instr: &Instruction, w: &str) -> Result<String, BuildError> {
        let lookup = |n: &str| self.lookup_value(n);
        Expander::new(self.escape, &lookup)
            .word(w)
            .map_err(|source| expand_err(self.shared.req, instr, source))
    }

    fn words(&self, instr: &Instruction, w: &str) -> Result<Vec<String>, BuildError> {
        let lookup = |n: &str| self.lookup_value(n);
        Expander::new(self.escape, &lookup)
            .words(w)
            .map_err(|source| expand_err(self.shared.req, instr, source))
    }

    fn invalid(&self, instr: &Instruction, message: impl Into<String>) -> BuildError {
        BuildError::Invalid {
            file: self.file(),
            line: instr.line,
            text: instr.text.clone(),
            message: message.into(),
        }
    }

    fn backend_err(&self, instr: &Instruction, source: BackendError) -> BuildError {
        BuildError::Backend {
            file: self.file(),
            line: instr.line,
            text: instr.text.clone(),
            source,
        }
    }

    fn shell(&self) -> Vec<String> {
        self.state
            .config
            .config
            .shell
            .clone()
            .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()])
    }

    fn argv(&self, c: &CommandForm) -> Vec<String> {
        match c {
            CommandForm::Exec(v) => v.clone(),
            CommandForm::Shell(s) => {
                let mut v = self.shell();
                v.push(s.clone());
                v
            }
        }
    }

    /// The ARGs with values that RUN sees as environment (not recorded in the config).
    fn run_args(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .args
            .iter()
            .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
            .filter(|(k, _)| self.state.config.config.env_get(k).is_none())
            .collect();
        for p in PROXY_ARGS {
            if let Some(v) = self.shared.req.build_args.get(*p) {
                if !self.args.contains_key(*p) {
                    out.push(((*p).to_owned(), v.clone()));
                }
            }
        }
        out
    }

    fn history(&mut self, created_by: String, empty_layer: bool, created: String) {
        self.state.config.history.push(History {
            created: Some(created),
            created_by: Some(created_by),
            comment: Some("buildkit.dockerfile.v0".into()),
            empty_layer,
            ..Default::default()
        });
    }

    fn step(&mut self, instr: &Instruction, index: usize, total: usize) -> Result<(), BuildError> {
        let shared = self.shared;
        let id = next_step(shared);
        let label = self.label.clone();
        shared.progress.event(Event::Step {
            id,
            stage: &label,
            index,
            total,
            text: &instr.text,
        });
        let started = Instant::now();
        let result = self.step_inner(instr, id);
        match &result {
            Ok(()) => shared.progress.event(Event::Done {
                id,
                elapsed: started.elapsed(),
            }),
            Err(_) => shared.progress.event(Event::Failed { id }),
        }
        result
    }

    fn meta_step(&mut self, instr: &Instruction, canonical: &[u8]) {
        let cfg = serde_json::to_vec(&self.state.config.config).unwrap_or_default();
        self.state.key = step_key(
            &self.state.key,
            &[instr.kind.keyword().as_bytes(), canonical, &cfg],
        );
        let created = self.state.created.clone();
        self.history(
            format!(
                "{} {}",
                instr.kind.keyword(),
                String::from_utf8_lossy(canonical)
            ),
            true,
            created,
        );
    }

    fn step_inner(&mut self, instr: &Instruction, id: usize) -> Result<(), BuildError> {
        match &instr.kind {
            InstructionKind::From { .. } => Err(self.invalid(instr, "FROM inside a stage")),
            InstructionKind::Arg(args) => {
                let mut canon = Vec::new();
                for (name, default) in args {
                    let value = if let Some(v) = self.shared.req.build_args.get(name) {
                        Some(v.clone())
                    } else if let Some(d) = default {
                        Some(self.word(instr, d)?)
                    } else {
                        self.shared.global_args.get(name).cloned().flatten()
                    };
                    canon.push(format!("{name}={}", value.clone().unwrap_or_default()));
                    self.args.insert(name.clone(), value);
                }
                // ARG values are part of the key (they reach RUN's environment) but are
                // not written to the history text beyond the name.
                let cfg = serde_json::to_vec(&self.state.config.config).unwrap_or_default();
                self.state.key =
                    step_key(&self.state.key, &[b"ARG", canon.join(" ").as_bytes(), &cfg]);
                let names: Vec<String> = args
                    .iter()
                    .map(|(n, d)| match d {
                        Some(d) => format!("{n}={d}"),
                        None => n.clone(),
                    })
                    .collect();
                let created = self.state.created.clone();
                self.history(format!("ARG {}", names.join(" ")), true, created);
                Ok(())
            }
            InstructionKind::Env(pairs) => {
                // Every value sees the environment from before the instruction, as in
                // Docker: `ENV a=new b=$a` gives b the old a.
                let mut set = Vec::new();
                for (k, v) in pairs {
                    let k = self.word(instr, k)?;
                    let v = self.word(instr, v)?;
                    if k.is_empty() {
                        return Err(self.invalid(instr, "ENV names can not be blank"));
                    }
                    set.push((k, v));
                }
                let mut canon = Vec::new();
                for (k, v) in set {
                    canon.push(format!("{k}={v}"));
                    self.state.config.config.env_set(&k, &v);
                }
                self.meta_step(instr, canon.join(" ").as_bytes());
                Ok(())
            }
            InstructionKind::Label(pairs) => {
                let mut canon = Vec::new();
                for (k, v) in pairs {
                    let k = self.word(instr, k)?;
                    let v = self.word(instr, v)?;
                    canon.push(format!("{k}={v}"));
                    self.state.config.config.labels.insert(k, v);
                }
                self.meta_step(instr, canon.join(" ").as_bytes());
                Ok(())
            }
            InstructionKind::Maintainer(m) => {
                self.state.config.author = Some(m.clone());
                self.meta_step(instr, m.as_bytes());
                Ok(())
            }
            InstructionKind::Expose(ports) => {
                let mut canon = Vec::new();
                for p in ports {
                    for w in self.words(instr, p)? {
                        let (port, proto) = match w.split_once('/') {
                            Some((p, pr)) => (p.to_owned(), pr.to_ascii_lowercase()),
                            None => (w.clone(), "tcp".to_owned()),
                        };
                        if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
                            return Err(self.invalid(instr, format!("invalid protocol {proto:?} in {w:?}: expected tcp, udp or sctp")));
                        }
                        let range: Vec<&str> = port.split('-').collect();
                        let nums: Result<Vec<u16>, _> =
                            range.iter().map(|r| r.parse::<u16>()).collect();
                        let nums = match nums {
                            Ok(n) if !n.is_empty() && n.len() <= 2 && n.iter().all(|x| *x > 0) => n,
                            _ => return Err(self.invalid(instr, format!("invalid port {w:?}: expected PORT[/PROTO] or START-END[/PROTO]"))),
                        };
                        let (a, b) = (nums[0], *nums.last().unwrap_or(&nums[0]));
                        if b < a {
                            return Err(self.invalid(instr, format!("invalid port range {w:?}")));
                        }
                        for n in a..=b {
                            let key = format!("{n}/{proto}");
                            canon.push(key.clone());
                            self.state.config.config.exposed_ports.insert(key, Empty {});
                        }
                    }
                }
                self.meta_step(instr, canon.join(" ").as_bytes());
                Ok(())
            }
            InstructionKind::Volume(vols) => {
                let mut canon = Vec::new();
                for v in vols {
                    let v = self.word(instr, v)?;
                    if v.trim().is_empty() {
                        return Err(self.invalid(instr, "VOLUME paths can not be empty"));
                    }
                    canon.push(v.clone());
                    self.state.config.config.volumes.insert(v, Empty {});
                }
                self.meta_step(instr, format!("{canon:?}").as_bytes());
                Ok(())
            }
            InstructionKind::User(u) => {
                let u = self.word(instr, u)?;
                self.state.config.config.user = u.clone();
                self.meta_step(instr, u.as_bytes());
                Ok(())
            }
            InstructionKind::Workdir(w) => {
                let w = self.word(instr, w)?;
                let cur = self.state.config.config.working_dir.clone();
                let joined = if w.starts_with('/') {
                    w.clone()
                } else {
                    format!("{}/{}", if cur.is_empty() { "" } else { cur.as_str() }, w)
                };
                let c = crate::ignore::clean(&joined);
                let cleaned = if c == "." {
                    "/".to_owned()
                } else {
                    format!("/{c}")
                };
                self.state.config.config.working_dir = cleaned.clone();
                if cleaned == "/"
                    || self
                        .shared
                        .backend
                        .path_exists(&self.state.layers, &cleaned)
                {
                    self.meta_step(instr, cleaned.as_bytes());
                    return Ok(());
                }
                // The directory is missing: WORKDIR creates it, in a layer of its own.
                let created_by = format!("WORKDIR {cleaned} # buildkit");
                let cfg = serde_json::to_vec(&self.state.config.config).unwrap_or_default();
                let key = step_key(&self.state.key, &[b"WORKDIR", cleaned.as_bytes(), &cfg]);
                if self.try_cache(instr, &key, id, &created_by)? {
                    return Ok(());
                }
                let tmp = self.tmp_file()?;
                let write = || -> io::Result<()> {
                    let meta = EntryMeta {
                        mode: 0o755,
                        uid: 0,
                        gid: 0,
                        mtime: self.shared.req.source_date_epoch.unwrap_or(0),
                    };
                    let mut w = LayerWriter::new(io::BufWriter::new(tmp.as_file()), None);
                    w.parents(&cleaned, meta)?;
                    w.dir(&cleaned, meta)?;
                    w.finish()?.flush()
                };
                write().map_err(|source| BuildError::Io {
                    what: format!("writing the layer of {:?}", instr.text),
                    source,
                })?;
                self.commit_layer(instr, &key, tmp.path(), &created_by)
            }
            InstructionKind::Stopsignal(s) => {
                let s = self.word(instr, s)?;
                let valid = s.parse::<u32>().is_ok()
                    || s.to_ascii_uppercase().starts_with("SIG")
                    || s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '-');
                if !valid {
                    return Err(self.invalid(instr, format!("invalid signal {s:?}")));
                }
                self.state.config.config.stop_signal = s.clone();
                self.meta_step(instr, s.as_bytes());
                Ok(())
            }
            InstructionKind::Shell(v) => {
                self.state.config.config.shell = Some(v.clone());
                self.meta_step(instr, format!("{v:?}").as_bytes());
                Ok(())
            }
            InstructionKind::Cmd(c) => {
                let argv = self.argv(c);
                self.state.config.config.cmd = Some(argv.clone());
                self.cmd_set = true;
                self.meta_step(instr, format!("{argv:?}").as_bytes());
                Ok(())
            }
            InstructionKind::Entrypoint(c) => {
                let argv = self.argv(c);
                self.state.config.config.entrypoint = Some(argv.clone());
                if !self.cmd_set {
                    self.state.config.config.cmd = None;
                }
                self.meta_step(instr, format!("{argv:?}").as_bytes());
                Ok(())
            }
            InstructionKind::Onbuild(t) => {
                self.state
                    .config
                    .config
                    .on_build
                    .get_or_insert_with(Vec::new)
                    .push(t.clone());
                self.meta_step(instr, t.as_bytes());
                Ok(())
            }
            InstructionKind::Healthcheck(h) => {
                let hc = match h {
                    Healthcheck::None => HealthConfig {
                        test: vec!["NONE".into()],
                        ..Default::default()
                    },
                    Healthcheck::Cmd {
                        command,
                        interval,
                        timeout,
                        start_period,
                        start_interval,
                        retries,
                    } => HealthConfig {
                        test: match command {
                            CommandForm::Exec(v) => {
                                let mut t = vec!["CMD".to_owned()];
                                t.extend(v.iter().cloned());
                                t
                            }
                            CommandForm::Shell(s) => vec!["CMD-SHELL".into(), s.clone()],
                        },
                        interval: interval.unwrap_or(0),
                        timeout: timeout.unwrap_or(0),
                        start_period: start_period.unwrap_or(0),
                        start_interval: start_interval.unwrap_or(0),
                        retries: retries.map(u64::from).unwrap_or(0),
                    },
                };
                let canon = serde_json::to_vec(&hc).unwrap_or_default();
                self.state.config.config.healthcheck = Some(hc);
                self.meta_step(instr, &canon);
                Ok(())
            }
            InstructionKind::Run(r) => self.run_step(instr, r, id),
            InstructionKind::Copy(c) => self.copy_step(instr, c, false, id),
            InstructionKind::Add(c) => self.copy_step(instr, c, true, id),
        }
    }

    /// Looks up the cache for `key`; on a hit, applies it and returns true.
    fn try_cache(
        &mut self,
        instr: &Instruction,
        key: &Digest,
        id: usize,
        created_by: &str,
    ) -> Result<bool, BuildError> {
        if self.shared.req.no_cache {
            return Ok(false);
        }
        let entry = self
            .shared
            .backend
            .cache_get(key)
            .map_err(|e| self.backend_err(instr, e))?;
        let Some(entry) = entry else { return Ok(false) };
        if !self
            .shared
            .backend
            .has_layer(&self.state.layers, &entry.layer)
        {
            return Ok(false);
        }
        self.shared.progress.event(Event::Cached { id });
        self.state.layers.push(entry.layer);
        self.state.created = entry.created.clone();
        self.state.key = key.clone();
        self.history(created_by.to_owned(), false, entry.created);
        if let Ok(mut c) = self.shared.counts.lock() {
            c.1 += 1;
        }
        Ok(true)
    }

    fn commit_layer(
        &mut self,
        instr: &Instruction,
        key: &Digest,
        tar: &Path,
        created_by: &str,
    ) -> Result<(), BuildError> {
        let layer = self
            .shared
            .backend
            .put_layer(&self.state.layers, tar)
            .map_err(|e| self.backend_err(instr, e))?;
        let created = now_rfc3339(self.shared.req.source_date_epoch);
        self.shared
            .backend
            .cache_put(
                key,
                &CacheEntry {
                    layer: layer.clone(),
                    created: created.clone(),
                },
            )
            .map_err(|e| self.backend_err(instr, e))?;
        self.state.layers.push(layer);
        self.state.created = created.clone();
        self.state.key = key.clone();
        self.history(created_by.to_owned(), false, created);
        if let Ok(mut c) = self.shared.counts.lock() {
            c.0 += 1;
        }
        Ok(())
    }

    fn tmp_file(&self) -> Result<tempfile::NamedTempFile, BuildError> {
        let dir = self.shared.backend.tmp_dir();
        fs::create_dir_all(&dir).map_err(|source| BuildError::Io {
            what: format!("creating {}", dir.display()),
            source,
        })?;
        tempfile::Builder::new()
            .prefix("build-layer-")
            .tempfile_in(&dir)
            .map_err(|source| BuildError::Io {
                what: format!("creating a file in {}", dir.display()),
                source,
            })
    }

    fn run_step(
        &mut self,
        instr: &Instruction,
        r: &dockerfile::Run,
        id: usize,
    ) -> Result<(), BuildError> {
        let req = self.shared.req;
        let mut argv = self.argv(&r.command);
        // `RUN <<EOF` whose body starts with `#!`: the body is a script run by its own
        // interpreter, mounted read only at /dev/pipes/<name> for this step only.
        let mut script: Option<(String, tempfile::TempPath)> = None;
        if let ([h], CommandForm::Shell(body)) = (r.heredocs.as_slice(), &r.command) {
            if body == &h.content && h.content.starts_with("#!") {
                let target = format!("/dev/pipes/{}", h.name);
                let mut f = self.tmp_file()?;
                let written = f
                    .write_all(h.content.as_bytes())
                    .and_then(|_| f.flush())
                    .and_then(|_| {
                        use std::os::unix::fs::PermissionsExt;
                        fs::set_permissions(f.path(), fs::Permissions::from_mode(0o755))
                    });
                written.map_err(|source| BuildError::Io {
                    what: "writing the heredoc script".into(),
                    source,
                })?;
                argv = vec![target.clone()];
                // Closed before the step runs: exec refuses a file open for writing.
                script = Some((target, f.into_temp_path()));
            }
        }
        let args = self.run_args();
        let mut env = self.state.config.config.env.clone();
        if self.state.config.config.env_get("PATH").is_none() {
            env.push("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
        }
        for (k, v) in &args {
            env.push(format!("{k}={v}"));
        }
        let network = match r.network.as_deref().or(req.network.as_deref()) {
            Some("none") => RunNetwork::None,
            Some("host") => RunNetwork::Host,
            // The default network of a build step: the host's, as BuildKit's default
            // sandbox has no bridge of its own here.
            _ => RunNetwork::Host,
        };
        let mut mounts = Vec::new();
        let mut mount_canon = Vec::new();
        // Views of other stages bound into this step, kept until it ends.
        let mut views: Vec<Box<dyn RootfsView>> = Vec::new();
        if let Some((target, f)) = &script {
            mount_canon.push(format!("script:{target}"));
            mounts.push(RunMount {
                target: target.clone(),
                source: Some(f.to_path_buf()),
                readonly: true,
            });
        }
        for m in &r.mounts {
            match m {
                Mount::Secret {
                    id: sid,
                    target,
                    required,
                    ..
                } => {
                    mount_canon.push(format!("secret:{sid}:{target}"));
                    match req.secrets.get(sid) {
                        Some(src) => mounts.push(RunMount {
                            target: target.clone(),
                            source: Some(src.clone()),
                            readonly: true,
                        }),
                        None if *required => {
                            return Err(BuildError::MissingSecret {
                                file: self.file(),
                                line: instr.line,
                                id: sid.clone(),
                            })
                        }
                        None => {}
                    }
                }
                Mount::Cache {
                    target,
                    id: cid,
                    readonly,
                    mode,
                    uid,
                    gid,
                    ..
                } => {
                    mount_canon.push(format!("cache:{cid}:{target}:{readonly}"));
                    let dir = self
                        .shared
                        .backend
                        .cache_mount_dir(cid)
                        .map_err(|e| self.backend_err(instr, e))?;
                    // A new (empty) cache directory gets the mode and owner asked for.
                    let empty = fs::read_dir(&dir)
                        .map(|mut d| d.next().is_none())
                        .unwrap_or(false);
                    if empty {
                        use std::os::unix::fs::PermissionsExt;
                        let _ = fs::set_permissions(&dir, fs::Permissions::from_mode(*mode));
                        let _ = std::os::unix::fs::chown(&dir, Some(*uid), Some(*gid));
                    }
                    mounts.push(RunMount {
                        target: target.clone(),
                        source: Some(dir),
                        readonly: *readonly,
                    });
                }
                Mount::Tmpfs { target } => {
                    mount_canon.push(format!("tmpfs:{target}"));
                    mounts.push(RunMount {
                        target: target.clone(),
                        source: None,
                        readonly: false,
                    });
                }
                Mount::Bind {
                    target,
                    source,
                    from,
                    rw,
                } => {
                    // Binds are always read only: a writable bind would change the user's
                    // context or a stage's snapshot (BuildKit discards such writes instead).
                    let _ = rw;
                    mount_canon.push(format!("bind:{source}:{target}:{from:?}"));
                    let host = match from {
                        None => {
                            let tree = req.context.source();
                            let items = tree
                                .plan(std::slice::from_ref(source), "/m", &CopyOptions::default())
                                .map_err(|e| self.ctx_err(instr, e))?;
                            let digest = content_digest_memo(&items, Some(&self.shared.memo))
                                .map_err(|source| BuildError::Io {
                                    what: format!("reading {source:?} of the context"),
                                    source,
                                })?;
                            mount_canon.push(digest.to_string());
                            tree.host_path(source).map_err(|e| self.ctx_err(instr, e))?
                        }
                        Some(f) => {
                            let f = self.word(instr, f)?;
                            let (layers, place) =
                                match find_stage(&req.dockerfile, &f, self.stage.index, true) {
                                    Some(i) => {
                                        let s = wait_stage(self.shared, i)
                                            .map_err(BuildError::DependencyFailed)?;
                                        (s.layers.clone(), format!("stage {f}"))
                                    }
                                    None => {
                                        let img = self
                                            .shared
                                            .backend
                                            .base_image(&f, req.pull)
                                            .map_err(|e| self.backend_err(instr, e))?;
                                        (img.layers, format!("image {f}"))
                                    }
                                };
                            for l in &layers {
                                mount_canon.push(l.diff_id.to_string());
                            }
                            let view = self
                                .shared
                                .backend
                                .rootfs(&layers)
                                .map_err(|e| self.backend_err(instr, e))?;
                            let tree = SourceTree {
                                root: view.path(),
                                ignore: None,
                                place,
                                is_context: false,
                            };
                            let p = tree.host_path(source).map_err(|e| self.ctx_err(instr, e))?;
                            views.push(view);
                            p
                        }
                    };
                    mounts.push(RunMount {
                        target: target.clone(),
                        source: Some(host),
                        readonly: true,
                    });
                }
            }
        }
        let arg_prefix = if args.is_empty() {
            String::new()
        } else {
            let kv: Vec<String> = args.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("|{} {} ", args.len(), kv.join(" "))
        };
        let created_by = format!("RUN {arg_prefix}{} # buildkit", argv.join(" "));
        let cfg = serde_json::to_vec(&self.state.config.config).unwrap_or_default();
        let key = step_key(
            &self.state.key,
            &[
                b"RUN",
                serde_json::to_string(&argv).unwrap_or_default().as_bytes(),
                env.join("\n").as_bytes(),
                mount_canon.join("\n").as_bytes(),
                format!("{network:?}").as_bytes(),
                &cfg,
            ],
        );
        if self.try_cache(instr, &key, id, &created_by)? {
            return Ok(());
        }
        let spec = RunSpec {
            layers: self.state.layers.clone(),
            argv,
            env,
            user: self.state.config.config.user.clone(),
            workdir: if self.state.config.config.working_dir.is_empty() {
                "/".into()
            } else {
                self.state.config.config.working_dir.clone()
            },
            network,
            mounts,
            mtime_clamp: req.source_date_epoch,
        };
        let tmp = self.tmp_file()?;
        let mut out = OutputTee {
            progress: self.shared.progress,
            id,
            tail: Vec::new(),
        };
        let status = {
            let mut w = io::BufWriter::new(tmp.as_file());
            let status = self
                .shared
                .runner
                .run(&spec, &mut out, &mut w)
                .map_err(|e| self.backend_err(instr, e))?;
            w.flush().map_err(|source| BuildError::Io {
                what: "writing the layer".into(),
                source,
            })?;
            status
        };
        if status != 0 {
            let text = String::from_utf8_lossy(&out.tail);
            let lines: Vec<&str> = text.lines().collect();
            let last = &lines[lines.len().saturating_sub(10)..];
            let output = if last.is_empty() {
                String::new()
            } else {
                format!("\n{}", last.join("\n"))
            };
            return Err(BuildError::StepFailed {
                file: self.file(),
                line: instr.line,
                text: instr.text.clone(),
                status,
                output,
            });
        }
        drop(views);
        drop(script);
        self.commit_layer(instr, &key, tmp.path(), &created_by)
    }

    fn ctx_err(&self, instr: &Instruction, source: ContextError) -> BuildError {
        BuildError::Context {
            file: self.file(),
            line: instr.line,
            text: instr.text.clone(),
            source,
        }
    }

    /// Resolves `--chown` (`user[:group]`, names looked up in the stage's /etc files).
    fn resolve_chown(&self, instr: &Instruction, spec: &str) -> Result<(u32, u32), BuildError> {
        let (u, g) = match spec.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (spec, None),
        };
        let need_lookup = u.parse::<u32>().is_err() || g.is_some_and(|g| g.parse::<u32>().is_err());
        let (passwd, group) = if need_lookup {
            let view = self
                .shared
                .backend
                .rootfs(&self.state.layers)
                .map_err(|e| self.backend_err(instr, e))?;
            // Read inside the view: its /etc or /etc/passwd may be a symlink to a host file.
            let read = |file: &str| {
                berth_oci::in_root::open_root(view.path())
                    .and_then(|root| {
                        berth_oci::in_root::read_in_root(&root, Path::new(file), 16 << 20)
                    })
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default()
            };
            (read("/etc/passwd"), read("/etc/group"))
        } else {
            (String::new(), String::new())
        };
        let find = |db: &str, name: &str, field: usize| -> Option<(u32, u32)> {
            db.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                if f.first() == Some(&name) && f.len() > field {
                    let id = f[2].parse().ok()?;
                    let gid = f.get(3).and_then(|x| x.parse().ok()).unwrap_or(id);
                    Some((id, gid))
                } else {
                    None
                }
            })
        };
        let (uid, primary) = match u.parse::<u32>() {
            Ok(n) => (n, n),
            Err(_) => find(&passwd, u, 3).ok_or_else(|| {
                self.invalid(
                    instr,
                    format!("unable to find user {u:?} in the image's /etc/passwd"),
                )
            })?,
        };
        let gid = match g {
            None => primary,
            Some(g) => match g.parse::<u32>() {
                Ok(n) => n,
                Err(_) => find(&group, g, 2).map(|x| x.0).ok_or_else(|| {
                    self.invalid(
                        instr,
                        format!("unable to find group {g:?} in the image's /etc/group"),
                    )
                })?,
            },
        };
        Ok((uid, gid))
    }

    fn copy_step(
        &mut self,
        instr: &Instruction,
        c: &CopySpec,
        is_add: bool,
        id: usize,
    ) -> Result<(), BuildError> {
        let req = self.shared.req;
        let df = &req.dockerfile;
        let mut sources = Vec::new();
        for s in &c.sources {
            let s = self.word(instr, s)?;
            if is_add && (s.contains("://") || s.starts_with("git@")) {
                return Err(BuildError::RemoteSource {
                    file: self.file(),
                    line: instr.line,
                    url: s,
                });
            }
            sources.push(s);
        }
        let dest_raw = self.word(instr, &c.dest)?;
        let workdir = self.state.config.config.working_dir.clone();
        let dest = if dest_raw.starts_with('/') {
            dest_raw.clone()
        } else {
            let base = if workdir.is_empty() {
                "/".to_owned()
            } else {
                workdir.clone()
            };
            format!("{}/{}", base.trim_end_matches('/'), dest_raw)
        };
        let chown = match &c.chown {
            Some(s) => Some(self.resolve_chown(instr, &self.word(instr, s)?)?),
            None => None,
        };
        let chmod = match &c.chmod {
            Some(s) => {
                let s = self.word(instr, s)?;
                Some(
                    u32::from_str_radix(&s, 8)
                        .ok()
                        .filter(|m| *m <= 0o7777)
                        .ok_or_else(|| {
                            self.invalid(
                                instr,
                                format!("invalid --chmod={s}: expected an octal mode like 0755"),
                            )
                        })?,
                )
            }
            None => None,
        };
        let mut excludes = Vec::new();
        for e in &c.exclude {
            excludes.push(self.word(instr, e)?);
        }
        let opts = CopyOptions {
            chown,
            chmod,
            exclude: IgnoreRules::from_patterns(&excludes)
                .map_err(|e| self.ctx_err(instr, ContextError::Ignore(e)))?,
            parents: c.parents,
            extract_archives: is_add,
        };
        // The tree to read from: the context, another stage or an image.
        let mut _view: Option<Box<dyn RootfsView>> = None;
        let mut items: Vec<CopyItem> = if sources.is_empty() {
            Vec::new()
        } else if let Some(from) = &c.from {
            let from = self.word(instr, from)?;
            let from_desc;
            let layers = match find_stage(df, &from, self.stage.index, true) {
                Some(i) => {
                    let s = wait_stage(self.shared, i).map_err(BuildError::DependencyFailed)?;
                    from_desc = format!("stage {}", stage_label(&df.stages[i]));
                    s.layers.clone()
                }
                None => {
                    let img = self
                        .shared
                        .backend
                        .base_image(&from, req.pull)
                        .map_err(|e| self.backend_err(instr, e))?;
                    from_desc = format!("image {from}");
                    img.layers
                }
            };
            let view = self
                .shared
                .backend
                .rootfs(&layers)
                .map_err(|e| self.backend_err(instr, e))?;
            let tree = SourceTree {
                root: view.path(),
                ignore: None,
                place: from_desc.clone(),
                is_context: false,
            };
            let items = tree
                .plan(&sources, &dest, &opts)
                .map_err(|e| self.ctx_err(instr, e))?;
            _view = Some(view);
            items
        } else {
            req.context
                .source()
                .plan(&sources, &dest, &opts)
                .map_err(|e| self.ctx_err(instr, e))?
        };
        for h in &c.heredocs {
            let content = if h.expand {
                self.word(instr, &format!("\"{}\"", h.content.replace('"', "\\\"")))
                    .unwrap_or_else(|_| h.content.clone())
            } else {
                h.content.clone()
            };
            let target = if dest.ends_with('/') {
                format!("{}{}", dest.trim_start_matches('/'), h.name)
            } else {
                dest.trim_start_matches('/').to_owned()
            };
            items.push(CopyItem {
                dest: crate::ignore::clean(&target),
                size: content.len() as u64,
                kind: ItemKind::Inline(content.into_bytes()),
                meta: EntryMeta {
                    mode: chmod.unwrap_or(0o644),
                    uid: chown.map(|c| c.0).unwrap_or(0),
                    gid: chown.map(|c| c.1).unwrap_or(0),
                    mtime: req.source_date_epoch.unwrap_or(0),
                },
            });
        }
        let digest = content_digest_memo(&items, Some(&self.shared.memo)).map_err(|source| {
            BuildError::Io {
                what: format!("reading the sources of {:?}", instr.text),
                source,
            }
        })?;
        let keyword = if is_add { "ADD" } else { "COPY" };
        let from_part = c
            .from
            .as_deref()
            .map(|f| format!("--from={f} "))
            .unwrap_or_default();
        let created_by = format!(
            "{keyword} {from_part}{} {dest_raw} # buildkit",
            sources.join(" ")
        );
        let cfg = serde_json::to_vec(&self.state.config.config).unwrap_or_default();
        let key = step_key(
            &self.state.key,
            &[
                keyword.as_bytes(),
                dest.as_bytes(),
                digest.to_string().as_bytes(),
                format!("{chown:?}{chmod:?}{}{}", c.link, c.parents).as_bytes(),
                &cfg,
            ],
        );
        if self.try_cache(instr, &key, id, &created_by)? {
            return Ok(());
        }
        let tmp = self.tmp_file()?;
        self.write_copy_layer(&items, tmp.as_file())
            .map_err(|source| BuildError::Io {
                what: format!("writing the layer of {:?}", instr.text),
                source,
            })?;
        drop(_view);
        self.commit_layer(instr, &key, tmp.path(), &created_by)
    }

    fn write_copy_layer(&self, items: &[CopyItem], out: &fs::File) -> io::Result<()> {
        let clamp = self.shared.req.source_date_epoch;
        let mut w = LayerWriter::new(io::BufWriter::with_capacity(1 << 20, out), clamp);
        let parent_meta = EntryMeta {
            mode: 0o755,
            uid: 0,
            gid: 0,
            mtime: clamp.unwrap_or(0),
        };
        let mut sorted: Vec<&CopyItem> = items.iter().collect();
        sorted.sort_by(|a, b| a.dest.cmp(&b.dest));
        for item in sorted {
            w.parents(&item.dest, parent_meta)?;
            match &item.kind {
                ItemKind::Dir => w.dir(&item.dest, item.meta)?,
                ItemKind::File(p) => {
                    let f = fs::File::open(p)?;
                    let size = f.metadata()?.len();
                    w.file(&item.dest, item.meta, size, f)?
                }
                ItemKind::Inline(b) => w.file(&item.dest, item.meta, b.len() as u64, &b[..])?,
                ItemKind::Symlink(t) => w.symlink(&item.dest, t, item.meta)?,
                ItemKind::Archive(p, kind) => {
                    if !item.dest.is_empty() {
                        w.dir(&item.dest, parent_meta)?;
                    }
                    let f = fs::File::open(p)?;
                    let mut ar = tar::Archive::new(open_archive(*kind, io::BufReader::new(f))?);
                    for entry in ar.entries()? {
                        let mut entry = entry?;
                        let name = entry.path()?.to_string_lossy().into_owned();
                        let cleaned = crate::ignore::clean(&format!("/{name}"));
                        if cleaned == "." {
                            continue;
                        }
                        let dest = crate::context::join_rel(&item.dest, &cleaned);
                        let h = entry.header();
                        let meta = EntryMeta {
                            mode: h.mode().unwrap_or(0o644),
                            uid: h.uid().unwrap_or(0) as u32,
                            gid: h.gid().unwrap_or(0) as u32,
                            mtime: h.mtime().unwrap_or(0),
                        };
                        let kind = h.entry_type();
                        w.parents(&dest, parent_meta)?;
                        if kind.is_dir() {
                            w.dir(&dest, meta)?;
                        } else if kind.is_symlink() {
                            let t = entry
                                .link_name()?
                                .map(|t| t.to_string_lossy().into_owned())
                                .unwrap_or_default();
                            w.symlink(&dest, &t, meta)?;
                        } else if kind.is_hard_link() {
                            let t = entry
                                .link_name()?
                                .map(|t| t.to_string_lossy().into_owned())
                                .unwrap_or_default();
                            let t = crate::context::join_rel(
                                &item.dest,
                                &crate::ignore::clean(&format!("/{t}")),
                            );
                            w.hardlink(&dest, &t, meta)?;
                        } else if kind.is_file() {
                            let size = entry.size();
                            let mut data = Vec::new();
                            (&mut entry).take(size).read_to_end(&mut data)?;
                            w.file(&dest, meta, size, &data[..])?;
                        }
                    }
                }
            }
        }
        let mut bw = w.finish()?;
        bw.flush()?;
        Ok(())
    }
}

/// The secrets given to a build must appear nowhere in its result; this checks a blob.
pub fn contains_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Reads `--build-arg` values: `K=V`, or `K` alone taking the value from the environment.
pub fn parse_build_args(args: &[String]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for a in args {
        match a.split_once('=') {
            Some((k, v)) => {
                out.insert(k.to_owned(), v.to_owned());
            }
            None => {
                if let Ok(v) = std::env::var(a) {
                    out.insert(a.clone(), v);
                }
            }
        }
    }
    out
}

/// Helper for callers mapping stage names: all stage labels in order.
pub fn stage_labels(df: &Dockerfile) -> HashMap<usize, String> {
    df.stages
        .iter()
        .map(|s| (s.index, stage_label(s)))
        .collect()
}

#[cfg(test)]
mod tests;
