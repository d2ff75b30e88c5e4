//! `berth pull`: download an image from a registry. Also holds the transfer progress
//! display that `push` shares: a line per blob, redrawn in place on a terminal, plain
//! Docker-style lines otherwise.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use berth_engine::registry::{Progress, PullRequest};
use clap::{ArgAction, Args};

use super::GlobalOpts;

/// `pull [OPTIONS] NAME[:TAG|@DIGEST]`
#[derive(Debug, Args)]
pub struct PullArgs {
    /// The image to pull.
    pub image: String,
    /// Platform to choose from a multi-platform image (`os/arch[/variant]`).
    #[arg(long)]
    pub platform: Option<String>,
    /// Keep every platform of a multi-platform image (only the chosen one is unpacked), so
    /// that `push` sends the whole index on.
    #[arg(long = "all-platforms")]
    pub all_platforms: bool,
    /// Require HTTPS and verify certificates (`--tls-verify=false` allows plain HTTP).
    #[arg(long = "tls-verify", num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set)]
    pub tls_verify: Option<bool>,
    /// Suppress verbose output.
    #[arg(short, long)]
    pub quiet: bool,
    /// Download all tagged images in the repository.
    #[arg(short = 'a', long = "all-tags")]
    pub all_tags: bool,
}

/// Runs `pull` (of one reference, or of every tag of a repository with `-a`).
pub fn run(g: &GlobalOpts, a: PullArgs) -> anyhow::Result<i32> {
    let engine = g.engine()?;
    // A bad reference is refused before anything is printed about pulling it.
    let parsed = match berth_oci::reference::ImageRef::parse(&a.image) {
        Ok(r) => r,
        Err(e) => return Ok(daemon_error(&anyhow::Error::from(e))),
    };
    if !a.all_tags {
        return pull_one(&engine, &a, &a.image, &parsed, true);
    }
    let named = berth_oci::reference::ImageRef::parse_no_default(&a.image).ok();
    if named
        .as_ref()
        .is_some_and(|r| r.tag().is_some() || r.digest().is_some())
    {
        eprintln!("tag can't be used with --all-tags/-a");
        return Ok(1);
    }
    let repository = parsed.repository();
    let tags = match engine.remote_tags(&repository, a.tls_verify) {
        Ok(t) => t,
        Err(e) => return Ok(daemon_error(&anyhow::Error::from(e))),
    };
    for tag in &tags {
        let image = format!("{repository}:{tag}");
        let one = berth_oci::reference::ImageRef::parse(&image)?;
        let code = pull_one(&engine, &a, &image, &one, false)?;
        if code != 0 {
            return Ok(code);
        }
    }
    if !a.quiet {
        println!("Status: Downloaded newer image for {}", parsed.familiar());
    }
    println!("{repository}");
    Ok(0)
}

/// Pulls `image` with Docker's lines; `last` prints the closing status and reference.
fn pull_one(
    engine: &berth_engine::Engine,
    a: &PullArgs,
    image: &str,
    parsed: &berth_oci::reference::ImageRef,
    last: bool,
) -> anyhow::Result<i32> {
    let progress = TransferDisplay::new(a.quiet, Verb::Pull);
    if !a.quiet {
        // Docker's first line: the tag (or digest) and the path on the registry
        // (`library/` only for Docker Hub's official images).
        let tag = match (parsed.digest(), parsed.tag()) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.to_owned(),
            (None, None) => "latest".to_owned(),
        };
        println!("{tag}: Pulling from {}", parsed.path());
    }
    let result = engine.pull(
        &PullRequest {
            reference: image.to_owned(),
            platform: a.platform.clone(),
            all_platforms: a.all_platforms,
            tls_verify: a.tls_verify,
        },
        &|p| progress.event(p),
    );
    progress.finish();
    match result {
        Ok(r) => {
            if !a.quiet {
                println!("Digest: {}", r.digest);
                if last && r.up_to_date {
                    println!("Status: Image is up to date for {}", r.familiar);
                } else if last {
                    println!("Status: Downloaded newer image for {}", r.familiar);
                }
            }
            if last {
                println!("{}", r.reference);
            }
            Ok(0)
        }
        Err(e) => Ok(daemon_error(&anyhow::Error::from(e))),
    }
}

/// `run`/`create` of an image that is not here: pull it first, with Docker's lines on
/// stderr (stdout belongs to the container). Callers ask [`pullable`] first: only a named
/// registry is tried (Docker Hub cannot be reached from here, so a bare `busybox` stays
/// "Unable to find image").
pub(crate) fn pull_missing(
    g: &GlobalOpts,
    image: &str,
    platform: Option<&str>,
) -> anyhow::Result<()> {
    let parsed = berth_oci::reference::ImageRef::parse(image)?;
    let tag = match (parsed.digest(), parsed.tag()) {
        (Some(d), _) => d.to_string(),
        (None, Some(t)) => t.to_owned(),
        (None, None) => "latest".to_owned(),
    };
    // Docker says "Pulling from" once the registry answered: an unreachable one gets the
    // error line alone.
    let heading = std::sync::Once::new();
    let say_heading = || heading.call_once(|| eprintln!("{tag}: Pulling from {}", parsed.path()));
    let progress = TransferDisplay::new(true, Verb::Pull);
    let report = g.engine()?.pull(
        &PullRequest {
            reference: image.to_owned(),
            platform: platform.map(str::to_owned),
            ..Default::default()
        },
        &|p| {
            say_heading();
            progress.event(p)
        },
    );
    progress.finish();
    let r = report?;
    say_heading();
    eprintln!("Digest: {}", r.digest);
    eprintln!("Status: Downloaded newer image for {}", r.familiar);
    Ok(())
}

/// Whether `pull_missing` would try: a valid reference (Docker Hub's included, as Docker;
/// `berth.toml`'s `docker-hub` may name the host that serves them).
pub(crate) fn pullable(image: &str) -> bool {
    berth_oci::reference::ImageRef::parse(image).is_ok()
}

/// Prints a registry failure as Docker does and returns status 1.
pub(crate) fn daemon_error(err: &anyhow::Error) -> i32 {
    eprintln!("{}", crate::exit::cause_line("Error: ", err));
    1
}

/// Which transfer the display shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verb {
    /// Downloads.
    Pull,
    /// Uploads.
    Push,
}

struct Rows {
    order: Vec<String>,
    text: HashMap<String, String>,
    drawn: usize,
    last_draw: Instant,
}

/// Renders transfer events: a redrawn block of lines on a terminal, plain lines otherwise.
pub(crate) struct TransferDisplay {
    quiet: bool,
    tty: bool,
    verb: Verb,
    rows: Mutex<Rows>,
}

fn bar(done: u64, total: u64) -> String {
    if total == 0 {
        return human(done);
    }
    let width = 50usize;
    let filled = if total == 0 {
        0
    } else {
        ((done as f64 / total as f64) * width as f64) as usize
    }
    .min(width);
    let mut s = String::from("[");
    for i in 0..width {
        s.push(if i < filled {
            '='
        } else if i == filled {
            '>'
        } else {
            ' '
        });
    }
    s.push(']');
    format!("{s}  {}/{}", human(done), human(total))
}

fn human(n: u64) -> String {
    let f = n as f64;
    if f >= 1e9 {
        format!("{:.3}GB", f / 1e9)
    } else if f >= 1e6 {
        format!("{:.2}MB", f / 1e6)
    } else if f >= 1e3 {
        format!("{:.1}kB", f / 1e3)
    } else {
        format!("{n}B")
    }
}

impl TransferDisplay {
    pub(crate) fn new(quiet: bool, verb: Verb) -> TransferDisplay {
        TransferDisplay {
            quiet,
            tty: std::io::stdout().is_terminal(),
            verb,
            rows: Mutex::new(Rows {
                order: Vec::new(),
                text: HashMap::new(),
                drawn: 0,
                last_draw: Instant::now(),
            }),
        }
    }

    /// Handles one event (from any transfer thread).
    pub(crate) fn event(&self, p: Progress) {
        if self.quiet {
            return;
        }
        let (digest, status, plain) = match (&p, self.verb) {
            (Progress::Waiting(d), Verb::Pull) => (d, "Pulling fs layer".to_owned(), true),
            (Progress::Waiting(d), Verb::Push) => (d, "Preparing".to_owned(), true),
            (Progress::AlreadyExists(d), _) => (d, "Already exists".to_owned(), true),
            (
                Progress::Transferring {
                    digest,
                    done,
                    total,
                },
                v,
            ) => {
                let word = if v == Verb::Pull {
                    "Downloading"
                } else {
                    "Pushing"
                };
                (digest, format!("{word} {}", bar(*done, *total)), false)
            }
            (Progress::PullComplete(d), _) => (d, "Pull complete".to_owned(), true),
            (Progress::LayerExists(d), _) => (d, "Layer already exists".to_owned(), true),
            (Progress::Mounted { digest, from }, _) => {
                (digest, format!("Mounted from {from}"), true)
            }
            (Progress::Pushed(d), _) => (d, "Pushed".to_owned(), true),
            (Progress::Retrying { digest, reason }, _) => {
                (digest, format!("Retrying ({reason})"), true)
            }
        };
        let id = digest.short().to_owned();
        let Ok(mut rows) = self.rows.lock() else {
            return;
        };
        if !rows.text.contains_key(&id) {
            rows.order.push(id.clone());
        }
        rows.text.insert(id.clone(), status.clone());
        if self.tty {
            let force = plain;
            if force || rows.last_draw.elapsed() >= Duration::from_millis(100) {
                Self::draw(&mut rows);
            }
        } else if plain {
            println!("{id}: {status}");
        }
    }

    fn draw(rows: &mut Rows) {
        let mut out = std::io::stdout().lock();
        if rows.drawn > 0 {
            let _ = write!(out, "\x1b[{}A", rows.drawn);
        }
        for id in &rows.order {
            let _ = writeln!(
                out,
                "\x1b[2K{id}: {}",
                rows.text.get(id).map(String::as_str).unwrap_or("")
            );
        }
        let _ = out.flush();
        rows.drawn = rows.order.len();
        rows.last_draw = Instant::now();
    }

    /// Draws the final state.
    pub(crate) fn finish(&self) {
        if self.quiet || !self.tty {
            return;
        }
        if let Ok(mut rows) = self.rows.lock() {
            Self::draw(&mut rows);
        }
    }
}
