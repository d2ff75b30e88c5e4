//! `berth build`: build an image from a Dockerfile, with Docker's flags and BuildKit-like
//! plain progress (`#N [stage k/n] INSTRUCTION`, output lines with timings, `CACHED`).

use std::collections::HashMap;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

use clap::Args;

use berth_engine::build::{
    BuildOptions, ContextSource, DockerfileSource, Event, Progress, RuntimeStepRunner,
};

use super::GlobalOpts;

/// `build [OPTIONS] PATH | -`
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Name and optionally a tag in the 'name:tag' format (repeatable).
    #[arg(short = 't', long = "tag")]
    pub tags: Vec<String>,
    /// Name of the Dockerfile (default: 'PATH/Dockerfile'); '-' reads it from stdin.
    #[arg(short = 'f', long = "file")]
    pub file: Option<String>,
    /// Set build-time variables (KEY=VALUE, or KEY to take it from the environment).
    #[arg(long = "build-arg")]
    pub build_args: Vec<String>,
    /// Set the target build stage to build.
    #[arg(long)]
    pub target: Option<String>,
    /// Do not use cache when building the image.
    #[arg(long = "no-cache")]
    pub no_cache: bool,
    /// Always attempt to pull a newer version of the base images (`--pull`, or
    /// `--pull=always|missing|never`, `--pull=true|false`).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "always",
          default_value = "missing", value_parser = parse_pull_policy)]
    pub pull: berth_engine::registry::PullPolicy,
    /// Set metadata for an image (KEY=VALUE, repeatable).
    #[arg(long)]
    pub label: Vec<String>,
    /// Write the image ID to the file.
    #[arg(long)]
    pub iidfile: Option<PathBuf>,
    /// Suppress the build output and print the image ID on success.
    #[arg(short, long)]
    pub quiet: bool,
    /// Secret to expose to the build: id=NAME,src=PATH (repeatable).
    #[arg(long)]
    pub secret: Vec<String>,
    /// Networking mode for the RUN instructions: default, none or host.
    #[arg(long)]
    pub network: Option<String>,
    /// Type of progress output: auto, plain, tty, quiet.
    #[arg(long, default_value = "auto")]
    pub progress: String,
    /// Set the target platform (only this machine's platform is supported).
    #[arg(long)]
    pub platform: Option<String>,
    /// Remove intermediate containers (always; accepted for compatibility).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, hide = true)]
    pub rm: bool,
    /// Always remove intermediate containers (accepted for compatibility).
    #[arg(long = "force-rm", hide = true)]
    pub force_rm: bool,
    /// Build context: a directory, or '-' to read a tar or a Dockerfile from stdin.
    pub context: String,
}

/// Prints events as BuildKit's plain progress does, to stderr.
struct PlainProgress {
    start: Instant,
    multi_stage: bool,
    started: Mutex<HashMap<usize, Instant>>,
    partial: Mutex<HashMap<usize, Vec<u8>>>,
    last_id: std::sync::atomic::AtomicUsize,
}

impl PlainProgress {
    fn line(&self, s: &str) {
        let _guard = berth_engine::build::output_lock();
        let mut e = io::stderr().lock();
        let _ = writeln!(e, "{s}");
    }
}

impl Progress for PlainProgress {
    fn event(&self, ev: Event<'_>) {
        match ev {
            Event::Step {
                id,
                stage,
                index,
                total,
                text,
            } => {
                self.last_id
                    .fetch_max(id, std::sync::atomic::Ordering::Relaxed);
                if let Ok(mut m) = self.started.lock() {
                    m.insert(id, Instant::now());
                }
                let label = if self.multi_stage {
                    format!("{stage} {index}/{total}")
                } else {
                    format!("{index}/{total}")
                };
                self.line(&format!("#{id} [{label}] {text}"));
            }
            Event::Cached { id } => self.line(&format!("#{id} CACHED")),
            Event::Output { id, bytes } => {
                // Seconds since the step started, as BuildKit shows them.
                let since = self.since_step(id);
                let mut partial = self.partial.lock().unwrap_or_else(|e| e.into_inner());
                let buf = partial.entry(id).or_default();
                buf.extend_from_slice(bytes);
                while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=pos).collect();
                    let text = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
                    self.line(&format!("#{id} {since:.3} {text}"));
                }
            }
            Event::Done { id, elapsed } => {
                self.flush_partial(id);
                self.line(&format!("#{id} DONE {:.1}s", elapsed.as_secs_f64()));
            }
            Event::Failed { id } => {
                self.flush_partial(id);
                let elapsed = self
                    .started
                    .lock()
                    .ok()
                    .and_then(|m| m.get(&id).map(|t| t.elapsed().as_secs_f64()))
                    .unwrap_or(0.0);
                self.line(&format!("#{id} ERROR {elapsed:.1}s"));
            }
        }
    }
}

impl PlainProgress {
    fn since_step(&self, id: usize) -> f64 {
        self.started
            .lock()
            .ok()
            .and_then(|m| m.get(&id).map(|t| t.elapsed().as_secs_f64()))
            .unwrap_or_else(|| self.start.elapsed().as_secs_f64())
    }

    fn flush_partial(&self, id: usize) {
        let rest = self
            .partial
            .lock()
            .ok()
            .and_then(|mut m| m.remove(&id))
            .unwrap_or_default();
        if !rest.is_empty() {
            let since = self.since_step(id);
            self.line(&format!(
                "#{id} {since:.3} {}",
                String::from_utf8_lossy(&rest)
            ));
        }
    }
}

/// Counts stages to label steps the way BuildKit does (`[build 2/3]` only when several).
fn count_from_lines(text: &str) -> usize {
    text.lines()
        .filter(|l| l.trim_start().to_ascii_uppercase().starts_with("FROM "))
        .count()
}

/// Runs `build`.
pub fn run(g: &GlobalOpts, a: BuildArgs) -> anyhow::Result<i32> {
    crate::exit::status_1(|| {
        if !matches!(
            a.progress.as_str(),
            "auto" | "plain" | "tty" | "quiet" | "rawjson"
        ) {
            anyhow::bail!(
                "invalid --progress {:?}: expected auto, plain, tty or quiet",
                a.progress
            );
        }
        if let Some(p) = &a.platform {
            let host = format!("linux/{}", berth_oci::manifest::host_arch());
            if p != &host && p != "linux" {
                anyhow::bail!(
                    "invalid --platform {p:?}: berth builds for this machine only ({host})"
                );
            }
        }
        let c = &a.context;
        if c.starts_with("http://")
            || c.starts_with("https://")
            || c.starts_with("git@")
            || c.starts_with("git://")
        {
            anyhow::bail!("unable to prepare context: {c}: remote build contexts need network access, and berth builds offline here; clone or download it and build the directory");
        }
        // Ctrl-C kills and removes the running step containers, then the build fails.
        // Before any thread starts: they must all block the signals.
        berth_engine::build::cancel_on_interrupt(std::time::Duration::from_secs(10));
        let engine = g.engine()?;
        let stdin_used_by_context = a.context == "-";
        let context = if stdin_used_by_context {
            ContextSource::Stream(Box::new(io::stdin()))
        } else {
            ContextSource::Dir(PathBuf::from(&a.context))
        };
        let dockerfile = match a.file.as_deref() {
            None => DockerfileSource::Default,
            Some("-") => {
                if stdin_used_by_context {
                    anyhow::bail!("invalid argument: can't use stdin for both the build context and the Dockerfile");
                }
                DockerfileSource::Stream(Box::new(io::stdin()))
            }
            Some(p) => DockerfileSource::Path(PathBuf::from(p)),
        };
        // Label stages only for multi-stage files (a cheap look at the Dockerfile when it is a file).
        let multi_stage = match (&dockerfile, &context) {
            (DockerfileSource::Path(p), _) => std::fs::read_to_string(p)
                .map(|t| count_from_lines(&t) > 1)
                .unwrap_or(true),
            (DockerfileSource::Default, ContextSource::Dir(d)) => {
                std::fs::read_to_string(d.join("Dockerfile"))
                    .map(|t| count_from_lines(&t) > 1)
                    .unwrap_or(true)
            }
            _ => true,
        };
        let mut build_args = a.build_args.clone();
        let mut source_date_epoch = std::env::var("SOURCE_DATE_EPOCH").ok();
        for b in &a.build_args {
            if let Some(v) = b.strip_prefix("SOURCE_DATE_EPOCH=") {
                source_date_epoch = Some(v.to_owned());
            }
        }
        build_args.retain(|b| !b.starts_with("SOURCE_DATE_EPOCH="));
        let source_date_epoch = match source_date_epoch.filter(|s| !s.is_empty()) {
            Some(s) => Some(s.parse::<u64>().map_err(|_| {
                anyhow::anyhow!("invalid SOURCE_DATE_EPOCH {s:?}: expected seconds since 1970")
            })?),
            None => None,
        };
        let quiet = a.quiet || a.progress == "quiet";
        let progress = PlainProgress {
            start: Instant::now(),
            multi_stage,
            started: Mutex::new(HashMap::new()),
            partial: Mutex::new(HashMap::new()),
            last_id: Default::default(),
        };
        let runner = RuntimeStepRunner::new(&g.root, &g.runroot);
        let opts = BuildOptions {
            context,
            dockerfile,
            tags: a.tags.clone(),
            build_args,
            target: a.target.clone(),
            no_cache: a.no_cache,
            pull: a.pull,
            labels: a.label.clone(),
            secrets: a.secret.clone(),
            network: a.network.clone(),
            source_date_epoch,
        };
        let started = Instant::now();
        // BuildKit's live view with `--progress tty`, and with `auto` on a terminal.
        let live = (!quiet
            && (a.progress == "tty"
                || (a.progress == "auto" && std::io::IsTerminal::is_terminal(&io::stderr()))))
        .then(|| super::build_tty::TtyProgress::new(multi_stage));
        let result = if quiet {
            engine.build(opts, &runner, &berth_engine::build::NoProgress)
        } else if let Some(view) = &live {
            super::build_tty::with_ticker(view, || engine.build(opts, &runner, view))
        } else {
            engine.build(opts, &runner, &progress)
        };
        if let (Some(view), Err(_)) = (&live, &result) {
            view.finish(&[]);
        }
        let result = match result {
            Ok(r) => r,
            Err(_) if berth_engine::build::cancelled() => {
                eprintln!("Error: failed to solve: canceled");
                return Err(crate::exit::ExitStatus(130).into());
            }
            Err(e @ berth_engine::Error::Build(_)) => {
                // Build errors keep their lines: the offending Dockerfile line under a
                // parse error, the last output lines under a failed RUN.
                let text: String = format!("Error: {e}")
                    .chars()
                    .map(|c| match c {
                        '\n' => '\n',
                        '\r' | '\t' => ' ',
                        c if c.is_control() => '?',
                        c => c,
                    })
                    .collect();
                eprintln!("{text}");
                return Err(crate::exit::ExitStatus(1).into());
            }
            Err(e) => return Err(e.into()),
        };
        if !result.unused_build_args.is_empty() && !quiet {
            progress.line(&format!(
                "[Warning] One or more build-args [{}] were not consumed",
                result.unused_build_args.join(" ")
            ));
        }
        if let Some(path) = &a.iidfile {
            std::fs::write(path, result.id.to_string())
                .map_err(|e| anyhow::anyhow!("writing the image ID to {}: {e}", path.display()))?;
        }
        if quiet {
            println!("{}", result.id);
        } else if let Some(view) = &live {
            let mut extra = vec![
                " => exporting to image".to_owned(),
                format!(" => => writing image {}", result.id),
            ];
            extra.extend(result.tags.iter().map(|t| format!(" => => naming to {t}")));
            view.finish(&extra);
        } else {
            let n = progress.last_id.load(std::sync::atomic::Ordering::Relaxed) + 1;
            progress.line(&format!("#{n} exporting to image"));
            progress.line(&format!("#{n} writing image {} done", result.id));
            for t in &result.tags {
                progress.line(&format!("#{n} naming to {t} done"));
            }
            progress.line(&format!(
                "#{n} DONE {:.1}s ({} built, {} cached)",
                started.elapsed().as_secs_f64(),
                result.built_steps,
                result.cached_steps
            ));
        }
        Ok(0)
    })
}

/// `--pull`'s value, with Docker's message for anything else.
pub(crate) fn parse_pull_policy(s: &str) -> Result<berth_engine::registry::PullPolicy, String> {
    s.parse()
        .map_err(|e: berth_engine::registry::BadPullPolicy| e.to_string())
}
