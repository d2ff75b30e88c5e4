//! `logs`: reading the json-file log, with `--tail`, `--since`, `-t` and `-f`.

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::time::Duration;

use super::{Container, ContainerError, Lifecycle, Result};

/// One log entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// `stdout` or `stderr`.
    pub stream: String,
    /// The bytes (with their newline).
    pub log: String,
    /// RFC 3339 time.
    pub time: String,
}

/// Which entries to show.
#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    /// Keep following until the container stops.
    pub follow: bool,
    /// Only the last N entries.
    pub tail: Option<usize>,
    /// Only entries at or after this RFC 3339 time.
    pub since: Option<String>,
}

fn parse_line(line: &str) -> Option<LogEntry> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    Some(LogEntry {
        stream: v["stream"].as_str()?.to_string(),
        log: v["log"].as_str()?.to_string(),
        time: v["time"].as_str().unwrap_or("").to_string(),
    })
}

/// Parses `--since`: RFC 3339, unix seconds, or a duration like `10m` (relative to now).
pub fn parse_since(s: &str, now_nanos: i64) -> Option<String> {
    if let Ok(secs) = s.parse::<f64>() {
        return Some(super::rfc3339((secs * 1e9) as i64));
    }
    if let Ok(d) = humantime::parse_duration(s) {
        return Some(super::rfc3339(now_nanos - d.as_nanos() as i64));
    }
    let nanos = |t: time::OffsetDateTime| {
        super::rfc3339(t.unix_timestamp_nanos().clamp(1, i64::MAX as i128) as i64)
    };
    if let Ok(t) = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339) {
        return Some(nanos(t));
    }
    // Docker's other accepted forms, without a zone (taken as UTC here).
    use time::macros::format_description as fd;
    let full: &[time::format_description::BorrowedFormatItem<'_>] =
        fd!("[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]]");
    let minutes: &[time::format_description::BorrowedFormatItem<'_>] =
        fd!("[year]-[month]-[day]T[hour]:[minute]");
    for f in [full, minutes] {
        if let Ok(t) = time::PrimitiveDateTime::parse(s, &f) {
            return Some(nanos(t.assume_utc()));
        }
    }
    time::Date::parse(s, fd!("[year]-[month]-[day]"))
        .ok()
        .map(|d| nanos(d.midnight().assume_utc()))
}

impl Lifecycle {
    /// Calls `sink` with every entry selected by `opts`, following new ones with `follow`
    /// until the container stops.
    pub fn logs(
        &self,
        c: &Container,
        opts: &LogOptions,
        sink: &mut dyn FnMut(&LogEntry) -> std::io::Result<()>,
    ) -> Result<()> {
        let path = self.log_path(c.id());
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !opts.follow => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::File::create(&path).map_err(ContainerError::io("creating", &path))?;
                File::open(&path).map_err(ContainerError::io("opening", &path))?
            }
            Err(e) => return Err(ContainerError::io("opening", &path)(e)),
        };
        let since = opts.since.clone();
        let keep = |e: &LogEntry| since.as_ref().is_none_or(|s| e.time.as_str() >= s.as_str());
        let mut reader = BufReader::new(file);
        let mut entries = Vec::new();
        let mut line = String::new();
        loop {
            line.clear();
            let n = reader
                .read_line(&mut line)
                .map_err(ContainerError::io("reading", &path))?;
            if n == 0 || !line.ends_with('\n') {
                break;
            }
            if let Some(e) = parse_line(&line) {
                if keep(&e) {
                    entries.push(e);
                }
            }
        }
        let skip = match opts.tail {
            Some(t) => entries.len().saturating_sub(t),
            None => 0,
        };
        for e in &entries[skip..] {
            if sink(e).is_err() {
                return Ok(());
            }
        }
        if !opts.follow {
            return Ok(());
        }
        // Re-read from the end of the last whole line.
        let mut pos = reader
            .stream_position()
            .map_err(ContainerError::io("reading", &path))?
            - line.len() as u64;
        let mut partial = String::new();
        loop {
            let mut f = File::open(&path).map_err(ContainerError::io("opening", &path))?;
            f.seek(SeekFrom::Start(pos))
                .map_err(ContainerError::io("reading", &path))?;
            let mut r = BufReader::new(f);
            loop {
                partial.clear();
                let n = r
                    .read_line(&mut partial)
                    .map_err(ContainerError::io("reading", &path))?;
                if n == 0 || !partial.ends_with('\n') {
                    break;
                }
                pos += n as u64;
                if let Some(e) = parse_line(&partial) {
                    if keep(&e) && sink(&e).is_err() {
                        return Ok(());
                    }
                }
            }
            let now = match self.find(c.id()) {
                Ok(now) => now,
                Err(_) => return Ok(()),
            };
            if !now.status.is_active() {
                // One last read for what was written before the exit.
                let mut f = File::open(&path).map_err(ContainerError::io("opening", &path))?;
                f.seek(SeekFrom::Start(pos))
                    .map_err(ContainerError::io("reading", &path))?;
                for l in BufReader::new(f).lines().map_while(|l| l.ok()) {
                    if let Some(e) = parse_line(&l) {
                        if keep(&e) && sink(&e).is_err() {
                            return Ok(());
                        }
                    }
                }
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Attaches to a running container as `start -a` does: passes its output from now on to
    /// `sink` until it stops, then returns its exit status. (The output is read from the
    /// log, so a container started with `--log-driver none` shows nothing.)
    pub fn attach_output(
        &self,
        c: &Container,
        sink: &mut dyn FnMut(&LogEntry) -> std::io::Result<()>,
    ) -> Result<i64> {
        let opts = LogOptions {
            follow: true,
            tail: Some(0),
            since: None,
        };
        self.logs(c, &opts, sink)?;
        self.wait_exit_code(c)
    }

    /// Blocks until the container is not running any more; returns its exit status.
    pub fn wait_exit_code(&self, c: &Container) -> Result<i64> {
        loop {
            let now = self.find(c.id())?;
            if now.status == super::ContainerStatus::Created {
                // As Docker: waiting on a created container waits for it to run and stop.
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
            if !now.status.is_active() {
                return Ok(now.record.exit_code);
            }
            if now.record.pid > 0 && !super::procfs::is_alive(now.record.pid, now.record.pid_start)
            {
                std::thread::sleep(Duration::from_millis(5));
            } else {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}
