//! `build --progress tty` (and `auto` on a terminal): BuildKit's live view, redrawn in place
//! on stderr: a `[+] Building 1.2s (2/3)` header, one line per step with its time, and the
//! last lines of output under each running step.

use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use berth_engine::build::{Event, Progress};

/// Output lines shown under a running step.
const TAIL: usize = 6;

#[derive(Debug)]
enum StepState {
    Running,
    Cached,
    Done(Duration),
    Failed(Duration),
}

#[derive(Debug)]
struct Step {
    id: usize,
    label: String,
    started: Instant,
    state: StepState,
    tail: Vec<String>,
    partial: Vec<u8>,
}

#[derive(Debug, Default)]
struct View {
    steps: Vec<Step>,
    /// Lines of the last frame, to move the cursor back over.
    drawn: usize,
    finished: bool,
}

/// The live view; draw it with [`TtyProgress::redraw`] (a ticker does, every 100 ms).
#[derive(Debug)]
pub struct TtyProgress {
    start: Instant,
    multi_stage: bool,
    view: Mutex<View>,
}

impl TtyProgress {
    /// A view for a build that started now.
    pub fn new(multi_stage: bool) -> TtyProgress {
        TtyProgress {
            start: Instant::now(),
            multi_stage,
            view: Mutex::new(View::default()),
        }
    }

    fn view(&self) -> std::sync::MutexGuard<'_, View> {
        self.view.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Redraws the view over the previous frame.
    pub fn redraw(&self) {
        let mut v = self.view();
        if v.finished {
            return;
        }
        self.draw(&mut v);
    }

    /// Draws the last frame (without output tails: a failed step's last lines are in the
    /// error) and stops redrawing; `extra` lines (exporting, naming) follow.
    pub fn finish(&self, extra: &[String]) {
        let mut v = self.view();
        if v.finished {
            return;
        }
        v.finished = true;
        self.draw(&mut v);
        let _guard = berth_engine::build::output_lock();
        let mut e = std::io::stderr().lock();
        for l in extra {
            let _ = writeln!(e, "{l}");
        }
        let _ = e.flush();
    }

    fn draw(&self, v: &mut View) {
        let width = berth_engine::container::tty::caller_size()
            .map_or(80, |(_, cols)| usize::from(cols))
            .max(20);
        let done = v
            .steps
            .iter()
            .filter(|s| !matches!(s.state, StepState::Running))
            .count();
        let mut lines = vec![format!(
            "[+] Building {:.1}s ({done}/{}){}",
            self.start.elapsed().as_secs_f64(),
            v.steps.len(),
            if v.finished { " FINISHED" } else { "" }
        )];
        for s in &v.steps {
            let (prefix, secs) = match s.state {
                StepState::Running => ("", s.started.elapsed()),
                StepState::Cached => ("CACHED ", Duration::ZERO),
                StepState::Done(d) => ("", d),
                StepState::Failed(d) => ("ERROR ", d),
            };
            let time = format!("{:.1}s", secs.as_secs_f64());
            let text = fit(&format!(" => {prefix}{}", s.label), width - time.len() - 1);
            let pad = width - time.len() - text.chars().count();
            lines.push(format!("{text}{}{time}", " ".repeat(pad)));
            if matches!(s.state, StepState::Running) && !v.finished {
                for l in &s.tail {
                    lines.push(fit(&format!(" => => # {l}"), width));
                }
            }
        }
        let _guard = berth_engine::build::output_lock();
        let mut e = std::io::stderr().lock();
        let mut out = String::new();
        if v.drawn > 0 {
            out.push_str(&format!("\x1b[{}A", v.drawn));
        }
        for l in &lines {
            out.push_str("\r\x1b[2K");
            out.push_str(l);
            out.push('\n');
        }
        // The previous frame was longer: clear what is left of it.
        if v.drawn > lines.len() {
            for _ in lines.len()..v.drawn {
                out.push_str("\x1b[2K\n");
            }
            out.push_str(&format!("\x1b[{}A", v.drawn - lines.len()));
        }
        let _ = e.write_all(out.as_bytes());
        let _ = e.flush();
        v.drawn = lines.len();
    }
}

/// `s` cut to `width` characters.
fn fit(s: &str, width: usize) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(width)
        .collect()
}

impl Progress for TtyProgress {
    fn event(&self, ev: Event<'_>) {
        {
            let mut v = self.view();
            match ev {
                Event::Step {
                    id,
                    stage,
                    index,
                    total,
                    text,
                } => {
                    let label = if self.multi_stage {
                        format!("[{stage} {index}/{total}] {text}")
                    } else {
                        format!("[{index}/{total}] {text}")
                    };
                    v.steps.push(Step {
                        id,
                        label,
                        started: Instant::now(),
                        state: StepState::Running,
                        tail: Vec::new(),
                        partial: Vec::new(),
                    });
                }
                Event::Cached { id } => {
                    if let Some(s) = v.steps.iter_mut().find(|s| s.id == id) {
                        s.state = StepState::Cached;
                    }
                }
                Event::Output { id, bytes } => {
                    if let Some(s) = v.steps.iter_mut().find(|s| s.id == id) {
                        s.partial.extend_from_slice(bytes);
                        while let Some(pos) = s.partial.iter().position(|b| *b == b'\n') {
                            let line: Vec<u8> = s.partial.drain(..=pos).collect();
                            let text =
                                String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
                            s.tail.push(text);
                            if s.tail.len() > TAIL {
                                s.tail.remove(0);
                            }
                        }
                    }
                }
                Event::Done { id, elapsed } => {
                    if let Some(s) = v.steps.iter_mut().find(|s| s.id == id) {
                        if !matches!(s.state, StepState::Cached) {
                            s.state = StepState::Done(elapsed);
                        }
                    }
                }
                Event::Failed { id } => {
                    if let Some(s) = v.steps.iter_mut().find(|s| s.id == id) {
                        s.state = StepState::Failed(s.started.elapsed());
                    }
                }
            }
        }
        self.redraw();
    }
}

/// Runs `build` with `progress` redrawn every 100 ms until it returns.
pub fn with_ticker<T>(progress: &TtyProgress, build: impl FnOnce() -> T) -> T {
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                progress.redraw();
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        let out = build();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        out
    })
}
