//! `logs`: reading the json-file log, with `--tail`, `--since`, `-t` and `-f`.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
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

/// How large a container's json-file log may grow: `max-size` bytes per file, `max-file`
/// files (the live one and its rotated predecessors `LOG.1`, `LOG.2`, ..., oldest last).
/// Unbounded logs filled disks: the default is Docker's `local` driver's, 20 MB times 5.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogLimits {
    /// Bytes per file; 0: unbounded (one file that grows for ever).
    pub max_size: u64,
    /// Files kept, the live one included (at least 1).
    pub max_files: u32,
}

impl Default for LogLimits {
    fn default() -> Self {
        LogLimits {
            max_size: 20 * 1024 * 1024,
            max_files: 5,
        }
    }
}

/// Why a log option is refused.
#[derive(Debug, thiserror::Error)]
#[error("invalid log option {key}={value:?}: {reason}")]
pub struct LogOptionError {
    /// `max-size` or `max-file`.
    pub key: String,
    /// The value given.
    pub value: String,
    /// What was expected.
    pub reason: &'static str,
}

impl LogLimits {
    /// The limits of a container: its own `LogConfig` options (`max-size`, `max-file`, as
    /// Docker's `--log-opt`), else `[log]` of `ROOT/berth.toml`, else the default. A
    /// `max-size` of `-1` (or `0`) lifts the bound.
    pub fn of(spec: &super::ContainerSpec, root: &Path) -> LogLimits {
        let opts = &spec.host_config.log_config.config;
        let mut limits = Self::from_toml(root).unwrap_or_default();
        if let Some(v) = opts.get("max-size") {
            if let Ok(n) = parse_max_size(v) {
                limits.max_size = n;
            }
        }
        if let Some(v) = opts.get("max-file") {
            if let Ok(n) = parse_max_file(v) {
                limits.max_files = n;
            }
        }
        limits
    }

    /// `[log]` of `ROOT/berth.toml` (`max-size = "20m"`, `max-file = 5`), when present and
    /// valid.
    fn from_toml(root: &Path) -> Option<LogLimits> {
        let text = std::fs::read_to_string(root.join("berth.toml")).ok()?;
        let doc: toml::Table = text.parse().ok()?;
        let log = doc.get("log")?.as_table()?;
        let mut limits = LogLimits::default();
        let text_of = |v: &toml::Value| match v {
            toml::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        if let Some(v) = log.get("max-size") {
            limits.max_size = parse_max_size(&text_of(v)).ok()?;
        }
        if let Some(v) = log.get("max-file") {
            limits.max_files = parse_max_file(&text_of(v)).ok()?;
        }
        Some(limits)
    }
}

/// `max-size`: a size with an optional unit (`k`, `m`, `g`, as Docker's), `-1` or `0` for
/// unbounded.
pub fn parse_max_size(v: &str) -> std::result::Result<u64, LogOptionError> {
    let bad = || LogOptionError {
        key: "max-size".into(),
        value: v.into(),
        reason: "expected a size such as 20m, or -1 for no limit",
    };
    let t = v.trim().to_ascii_lowercase();
    if t == "-1" {
        return Ok(0);
    }
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1u64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    let n: u64 = num.parse().map_err(|_| bad())?;
    n.checked_mul(mult).ok_or_else(bad)
}

/// `max-file`: a count of at least 1.
pub fn parse_max_file(v: &str) -> std::result::Result<u32, LogOptionError> {
    match v.trim().parse::<u32>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(LogOptionError {
            key: "max-file".into(),
            value: v.into(),
            reason: "expected a count of at least 1",
        }),
    }
}

/// The rotated file `n` of the log at `path` (`LOG.n`; 0 is the live file).
pub fn rotated(path: &Path, n: u32) -> PathBuf {
    if n == 0 {
        return path.to_path_buf();
    }
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

/// The files of the log at `path` that exist, oldest first (the live one last).
fn log_files(path: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut n = 1;
    while rotated(path, n).exists() {
        files.push(rotated(path, n));
        n += 1;
    }
    files.reverse();
    files.push(path.to_path_buf());
    files
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

/// Reads the whole lines of `file` from byte `from`, passing each entry to `each` until it
/// returns false; returns the offset after the last whole line read.
fn read_entries(
    file: File,
    from: u64,
    path: &Path,
    each: &mut dyn FnMut(LogEntry) -> bool,
) -> Result<u64> {
    let mut reader = BufReader::new(file);
    reader
        .seek(SeekFrom::Start(from))
        .map_err(ContainerError::io("reading", path))?;
    let mut pos = from;
    let mut line = String::new();
    loop {
        line.clear();
        let n = reader
            .read_line(&mut line)
            .map_err(ContainerError::io("reading", path))?;
        if n == 0 || !line.ends_with('\n') {
            return Ok(pos);
        }
        pos += n as u64;
        if let Some(e) = parse_line(&line) {
            if !each(e) {
                return Ok(pos);
            }
        }
    }
}

/// The offset after the last whole line of `file` (a line still being written is read
/// once it is complete), found from the end without reading the whole file.
fn whole_lines_end(mut file: File, path: &Path) -> Result<u64> {
    const BLOCK: u64 = 4096;
    let mut end = file
        .seek(SeekFrom::End(0))
        .map_err(ContainerError::io("reading", path))?;
    let mut buf = vec![0u8; BLOCK as usize];
    while end > 0 {
        let start = end.saturating_sub(BLOCK);
        let len = (end - start) as usize;
        file.seek(SeekFrom::Start(start))
            .map_err(ContainerError::io("reading", path))?;
        file.read_exact(&mut buf[..len])
            .map_err(ContainerError::io("reading", path))?;
        if let Some(nl) = buf[..len].iter().rposition(|&b| b == b'\n') {
            return Ok(start + nl as u64 + 1);
        }
        end = start;
    }
    Ok(0)
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
        if !path.exists() {
            if !opts.follow {
                return Ok(());
            }
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(ContainerError::io("creating", &path))?;
        }
        let since = opts.since.clone();
        let keep = |e: &LogEntry| since.as_ref().is_none_or(|s| e.time.as_str() >= s.as_str());
        let mut entries = Vec::new();
        // The live file's identity and how far it was read, for following it across a
        // rotation.
        let mut live: Option<(u64, u64)> = None;
        let files = log_files(&path);
        // Newest file first: with --tail, the older files are not read once enough entries
        // were found (the rotated files hold up to max-file x max-size of JSON).
        let mut chunks: Vec<Vec<LogEntry>> = Vec::new();
        let mut found = 0;
        let last = files.len() - 1;
        for (i, f) in files.iter().enumerate().rev() {
            let enough = opts.tail.is_some_and(|t| found >= t);
            if enough && i != last {
                break;
            }
            let file = match File::open(f) {
                Ok(file) => file,
                // Rotated away meanwhile: its entries are in the next file read.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(ContainerError::io("opening", f)(e)),
            };
            let ino = file.metadata().map(|m| m.ino()).unwrap_or(0);
            if enough {
                // `--tail 0` (and `start -a`, attach): nothing old is shown, but following
                // must start at the live file's end, not at its start (which replayed the
                // output written before the attach).
                live = Some((ino, whole_lines_end(file, f)?));
                continue;
            }
            let mut chunk = Vec::new();
            let read = read_entries(file, 0, f, &mut |e| {
                if keep(&e) {
                    chunk.push(e);
                }
                true
            })?;
            if i == last {
                live = Some((ino, read));
            }
            found += chunk.len();
            chunks.push(chunk);
        }
        entries.extend(chunks.into_iter().rev().flatten());
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
        let (mut ino, mut pos) = live.unwrap_or((0, 0));
        let mut emit = |e: LogEntry| !keep(&e) || sink(&e).is_ok();
        loop {
            let stopped = match self.find(c.id()) {
                Ok(now) => !now.status.is_active(),
                Err(_) => return Ok(()),
            };
            // Rotated since the last read: the rest of the old file is now LOG.1.
            let file = File::open(&path).map_err(ContainerError::io("opening", &path))?;
            let now_ino = file.metadata().map(|m| m.ino()).unwrap_or(0);
            if now_ino != ino {
                let old = rotated(&path, 1);
                if let Ok(f) = File::open(&old) {
                    if f.metadata().map(|m| m.ino()).unwrap_or(0) == ino {
                        let mut go = true;
                        read_entries(f, pos, &old, &mut |e| {
                            go = go && emit(e);
                            go
                        })?;
                        if !go {
                            return Ok(());
                        }
                    }
                }
                ino = now_ino;
                pos = 0;
            }
            let mut go = true;
            pos = read_entries(file, pos, &path, &mut |e| {
                go = go && emit(e);
                go
            })?;
            if !go || stopped {
                // Stopped: what was written before the exit has just been read.
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_end_of_whole_lines_skips_a_line_being_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let end = |text: &[u8]| {
            std::fs::write(&path, text).unwrap();
            whole_lines_end(File::open(&path).unwrap(), &path).unwrap()
        };
        assert_eq!(end(b""), 0);
        assert_eq!(end(b"no newline yet"), 0);
        assert_eq!(end(b"one\n"), 4);
        assert_eq!(end(b"one\ntwo\npart"), 8);
        // The last newline more than a block before the end.
        let mut long = b"a\n".to_vec();
        long.extend(std::iter::repeat_n(b'x', 10_000));
        assert_eq!(end(&long), 2);
    }

    #[test]
    fn log_options_parse_as_docker_words_them() {
        assert_eq!(parse_max_size("20m").unwrap(), 20 << 20);
        assert_eq!(parse_max_size("64k").unwrap(), 64 << 10);
        assert_eq!(parse_max_size("1g").unwrap(), 1 << 30);
        assert_eq!(parse_max_size("100").unwrap(), 100);
        assert_eq!(parse_max_size("-1").unwrap(), 0);
        assert!(parse_max_size("lots").is_err());
        assert_eq!(parse_max_file("5").unwrap(), 5);
        assert!(parse_max_file("0").is_err());
    }

    #[test]
    fn limits_come_from_the_container_then_berth_toml_then_the_default() {
        let root = tempfile::tempdir().unwrap();
        let mut spec = crate::container::ContainerSpec::default();
        assert_eq!(LogLimits::of(&spec, root.path()), LogLimits::default());
        std::fs::write(
            root.path().join("berth.toml"),
            "[log]\nmax-size = \"1m\"\nmax-file = 2\n",
        )
        .unwrap();
        assert_eq!(
            LogLimits::of(&spec, root.path()),
            LogLimits {
                max_size: 1 << 20,
                max_files: 2
            }
        );
        spec.host_config
            .log_config
            .config
            .insert("max-size".into(), "-1".into());
        assert_eq!(LogLimits::of(&spec, root.path()).max_size, 0);
    }
}
