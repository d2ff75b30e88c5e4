//! `berth load`: images from a Docker archive or an OCI-layout tar.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use clap::Args;

use berth_engine::images::{ImportSource, LayerProgress};

use super::images::human_size;
use super::GlobalOpts;

/// `load [OPTIONS]`
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Read from tar archive file, instead of STDIN.
    #[arg(short, long)]
    pub input: Option<PathBuf>,
    /// Suppress the load output.
    #[arg(short, long)]
    pub quiet: bool,
}

/// Runs `load`.
pub fn run(g: &GlobalOpts, a: LoadArgs) -> anyhow::Result<i32> {
    crate::exit::status_1(|| {
        let source = match a.input {
            Some(p) => ImportSource::Path(p),
            None => {
                if std::io::stdin().is_terminal() {
                    anyhow::bail!("requested load from stdin, but stdin is empty");
                }
                ImportSource::Stdin
            }
        };
        let engine = g.engine()?;
        let display = LayerDisplay::new(a.quiet, "Loading layer", false);
        let report = engine.load_with_progress(&source, &|p| display.event(p))?;
        display.finish();
        // As Docker: --quiet hides the progress only; what was loaded is always said, a
        // moved tag first.
        for (id, names) in &report.images {
            if names.is_empty() {
                println!("Loaded image ID: {id}");
            }
            for n in names {
                for (_, old) in report.renamed.iter().filter(|(r, _)| r == n) {
                    println!(
                        "The image {n} already exists, renaming the old one with ID {old} to empty string"
                    );
                }
                println!("Loaded image: {n}");
            }
        }
        Ok(0)
    })
}

/// Renders the layer copies of `load` and `save` as Docker renders `load`'s: on a terminal,
/// one redrawn line per layer (`<id>: Loading layer [====>   ]  1.05MB/5.24MB`); nothing
/// when the stream is not a terminal, or when quiet.
pub(crate) struct LayerDisplay {
    word: &'static str,
    to_stderr: bool,
    enabled: bool,
    rows: Mutex<Rows>,
}

struct Rows {
    order: Vec<String>,
    text: HashMap<String, String>,
    drawn: usize,
    last_draw: Option<Instant>,
}

impl LayerDisplay {
    /// `word` names the copy (`Loading layer`); `to_stderr` draws on stderr (for `save`,
    /// whose archive may go to stdout) instead of stdout.
    pub(crate) fn new(quiet: bool, word: &'static str, to_stderr: bool) -> LayerDisplay {
        let tty = if to_stderr {
            std::io::stderr().is_terminal()
        } else {
            std::io::stdout().is_terminal()
        };
        LayerDisplay {
            word,
            to_stderr,
            enabled: tty && !quiet,
            rows: Mutex::new(Rows {
                order: Vec::new(),
                text: HashMap::new(),
                drawn: 0,
                last_draw: None,
            }),
        }
    }

    /// Takes one progress report (redrawn at most every 100 ms, and when a layer is done).
    pub(crate) fn event(&self, p: LayerProgress) {
        if !self.enabled {
            return;
        }
        let Ok(mut rows) = self.rows.lock() else {
            return;
        };
        let id = p.layer.short().to_owned();
        if !rows.text.contains_key(&id) {
            rows.order.push(id.clone());
        }
        rows.text.insert(
            id,
            format!("{} {}", self.word, progress_bar(p.done, p.total)),
        );
        let due = rows
            .last_draw
            .is_none_or(|t| t.elapsed() >= Duration::from_millis(100));
        if due || p.done >= p.total {
            self.draw(&mut rows);
        }
    }

    fn draw(&self, rows: &mut Rows) {
        let mut text = String::new();
        if rows.drawn > 0 {
            text.push_str(&format!("\x1b[{}A", rows.drawn));
        }
        for id in &rows.order {
            let line = rows.text.get(id).map(String::as_str).unwrap_or("");
            text.push_str(&format!("\x1b[2K{id}: {line}\n"));
        }
        if self.to_stderr {
            let mut err = std::io::stderr().lock();
            let _ = err.write_all(text.as_bytes());
            let _ = err.flush();
        } else {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
        }
        rows.drawn = rows.order.len();
        rows.last_draw = Some(Instant::now());
    }

    /// Draws the final state.
    pub(crate) fn finish(&self) {
        if !self.enabled {
            return;
        }
        if let Ok(mut rows) = self.rows.lock() {
            if !rows.order.is_empty() {
                self.draw(&mut rows);
            }
        }
    }
}

/// `[=====>     ]  1.05MB/5.24MB`, as Docker draws a transfer.
fn progress_bar(done: u64, total: u64) -> String {
    const WIDTH: usize = 50;
    let filled = if total == 0 {
        WIDTH
    } else {
        ((done as f64 / total as f64) * WIDTH as f64) as usize
    }
    .min(WIDTH);
    let mut s = String::from("[");
    for i in 0..WIDTH {
        // The head is the last cell when done: `[=====...=>]`.
        s.push(if i == filled.min(WIDTH - 1) {
            '>'
        } else if i < filled {
            '='
        } else {
            ' '
        });
    }
    s.push(']');
    format!("{s}  {}/{}", human_size(done), human_size(total))
}
