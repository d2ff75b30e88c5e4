//! The per-container monitor: a small process (no async runtime) that launches a detached
//! container, owns its stdio, writes the json-file log, records the exit, applies the
//! restart policy, and removes the container for `--rm`. It outlives the CLI (own session).

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::Duration;

use berth_store::containers::ContainerUpdate;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::launch::{record_exit, start_process, Started};
use super::logs::{rotated, LogLimits};
use super::runtime::Stdio;
use super::start::report;
use super::{now_nanos, rfc3339, ContainerError, Lifecycle, Result};

/// Longest log line before it is split (Docker's json-file uses 16 KiB).
const MAX_LINE: usize = 16 * 1024;

/// Writes the json-file log: one JSON object per line, rotated by [`LogLimits`] (the live
/// file `LOG` moves to `LOG.1`, `LOG.1` to `LOG.2`, ..., the oldest beyond `max_files` goes).
#[derive(Debug)]
pub struct LogWriter {
    file: File,
    path: std::path::PathBuf,
    limits: LogLimits,
    /// Bytes in the live file.
    size: u64,
}

impl LogWriter {
    /// Opens (appending) the log at `path`, bounded by the default [`LogLimits`].
    pub fn open(path: &std::path::Path) -> Result<LogWriter> {
        Self::open_bounded(path, LogLimits::default())
    }

    /// Opens (appending) the log at `path`, bounded by `limits`.
    pub fn open_bounded(path: &std::path::Path, limits: LogLimits) -> Result<LogWriter> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(ContainerError::io("opening the log", path))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(LogWriter {
            file,
            path: path.to_path_buf(),
            limits,
            size,
        })
    }

    /// The limits as the lean watcher's argument (`rotate:SIZE:FILES`).
    fn limits_arg(&self) -> String {
        format!("rotate:{}:{}", self.limits.max_size, self.limits.max_files)
    }

    /// Appends one entry.
    pub fn write(&mut self, stream: &str, bytes: &[u8]) {
        let entry = serde_json::json!({
            "log": String::from_utf8_lossy(bytes),
            "stream": stream,
            "time": rfc3339(now_nanos()),
        });
        let mut line = serde_json::to_vec(&entry).expect("a JSON value serializes");
        line.push(b'\n');
        let max = self.limits.max_size;
        if max > 0 && self.size > 0 && self.size + line.len() as u64 > max {
            self.rotate();
        }
        if self.file.write_all(&line).is_ok() {
            self.size += line.len() as u64;
        }
    }

    /// Moves the live file to `LOG.1` (and the older ones up, dropping the oldest) and
    /// starts a new one; with one file allowed, the live file starts over. Readers
    /// following the log notice the new file by its inode.
    fn rotate(&mut self) {
        let n = self.limits.max_files.max(1);
        if n > 1 {
            let _ = std::fs::remove_file(rotated(&self.path, n - 1));
            for i in (1..n - 1).rev() {
                let _ = std::fs::rename(rotated(&self.path, i), rotated(&self.path, i + 1));
            }
            let _ = std::fs::rename(&self.path, rotated(&self.path, 1));
        } else {
            let _ = std::fs::remove_file(&self.path);
        }
        if let Ok(f) = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
        {
            self.file = f;
            self.size = 0;
        }
    }
}

/// Splits a stream into log lines.
#[derive(Debug)]
struct LineBuffer {
    stream: &'static str,
    buf: Vec<u8>,
}

impl LineBuffer {
    fn push(&mut self, data: &[u8], log: &mut LogWriter) {
        self.buf.extend_from_slice(data);
        while let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=i).collect();
            log.write(self.stream, &line);
        }
        while self.buf.len() >= MAX_LINE {
            let part: Vec<u8> = self.buf.drain(..MAX_LINE).collect();
            log.write(self.stream, &part);
        }
    }

    fn flush(&mut self, log: &mut LogWriter) {
        if !self.buf.is_empty() {
            let rest = std::mem::take(&mut self.buf);
            log.write(self.stream, &rest);
        }
    }
}

/// Pumps the container's output into the log until both streams close and `pid` exits;
/// returns the exit status.
pub(crate) fn pump(
    pid: i32,
    outputs: Vec<(OwnedFd, &'static str)>,
    log: &mut LogWriter,
    echo: bool,
) -> i32 {
    let files = outputs
        .into_iter()
        .map(|(fd, s)| (File::from(fd), s))
        .collect();
    pump_files(pid, files, log, echo)
}

/// [`pump`] over open files.
fn pump_files(
    pid: i32,
    outputs: Vec<(File, &'static str)>,
    log: &mut LogWriter,
    echo: bool,
) -> i32 {
    let mut open: Vec<(File, LineBuffer)> = outputs
        .into_iter()
        .map(|(file, stream)| {
            (
                file,
                LineBuffer {
                    stream,
                    buf: Vec::new(),
                },
            )
        })
        .collect();
    let mut exit: Option<i32> = None;
    let mut chunk = vec![0u8; 32 * 1024];
    loop {
        // Reap: the container's process, and anything re-parented to us (subreaper).
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(p, code)) if p.as_raw() == pid => exit = Some(code),
                Ok(WaitStatus::Signaled(p, sig, _)) if p.as_raw() == pid => {
                    exit = Some(128 + sig as i32)
                }
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => continue,
            }
        }
        if open.is_empty() {
            if let Some(code) = exit {
                return code;
            }
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        let timeout = if exit.is_some() { 50u16 } else { 500u16 };
        let mut fds: Vec<PollFd> = open
            .iter()
            .map(|(f, _)| PollFd::new(f.as_fd(), PollFlags::POLLIN))
            .collect();
        let n = poll(&mut fds, PollTimeout::from(timeout)).unwrap_or(0);
        let ready: Vec<bool> = fds
            .iter()
            .map(|p| p.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        if n == 0 {
            if exit.is_some() {
                // The process is gone and nothing more came: a leftover writer holds the
                // pipe; stop reading.
                for (_, lb) in &mut open {
                    lb.flush(log);
                }
                open.clear();
            }
            continue;
        }
        let mut closed = Vec::new();
        for (i, is_ready) in ready.iter().enumerate() {
            if !is_ready {
                continue;
            }
            let (f, lb) = &mut open[i];
            match f.read(&mut chunk) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Ok(0) | Err(_) => {
                    lb.flush(log);
                    closed.push(i);
                }
                Ok(k) => {
                    if echo {
                        echo_out(lb.stream, &chunk[..k]);
                    }
                    lb.push(&chunk[..k], log)
                }
            }
        }
        for i in closed.into_iter().rev() {
            open.remove(i);
        }
    }
}

fn echo_out(stream: &str, data: &[u8]) {
    if stream == "stderr" {
        let mut e = std::io::stderr().lock();
        let _ = e.write_all(data);
        let _ = e.flush();
    } else {
        let mut o = std::io::stdout().lock();
        let _ = o.write_all(data);
        let _ = o.flush();
    }
}

pub(crate) fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(ContainerError::sys("creating a pipe"))
}

/// A started container, the read ends of its output pipes (with the stream names) and
/// its pty master.
type PipedLaunch = (Started, Vec<(OwnedFd, &'static str)>, Option<OwnedFd>);

/// One run of the container with its streams piped into the log.
fn launch_piped(lc: &Lifecycle, c: &super::Container, from: &[&str]) -> Result<PipedLaunch> {
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let (stdin, keep) = if c.spec.config.open_stdin {
        let (r, w) = pipe()?;
        (r, Some(w))
    } else {
        let null = File::open("/dev/null").map_err(ContainerError::io("opening", "/dev/null"))?;
        (OwnedFd::from(null), None)
    };
    let started = start_process(
        lc,
        c,
        Stdio {
            stdin: Some(stdin),
            stdout: Some(out_w),
            stderr: Some(err_w),
        },
        from,
    )?;
    let mut outputs = Vec::new();
    if let Some(m) = started.pty_master.as_ref().and_then(|m| m.try_clone().ok()) {
        outputs.push((m, "stdout"));
    } else {
        outputs.push((out_r, "stdout"));
        outputs.push((err_r, "stderr"));
    }
    Ok((started, outputs, keep))
}

/// The lean watcher's side of the hand-off: after the start, the monitor re-executes the
/// small `berth-monitor` binary (no SQLite, no CLI parser: its resident set stays near
/// 1 MB) which pumps the output into the log until the process exits, then executes the
/// full monitor again (`_monitor ID --exited CODE`) to record the exit and apply the restart
/// policy. The process stays the container's parent across both executions.
///
/// Arguments: `PID LOG-PATH out:FD err:FD -- EXE ARGS...`.
pub fn run_lean(args: &[String]) -> i32 {
    if args.first().map(String::as_str) == Some("--sweep") {
        return sweep(&args[1..]);
    }
    if args.first().map(String::as_str) == Some("--rm-guard") {
        return rm_guard(&args[1..]);
    }
    let Some(sep) = args.iter().position(|a| a == "--") else {
        return 2;
    };
    let (head, cont) = (&args[..sep], &args[sep + 1..]);
    let (Some(pid), Some(log_path)) = (
        head.first().and_then(|p| p.parse::<i32>().ok()),
        head.get(1),
    ) else {
        return 2;
    };
    let mut limits = LogLimits::default();
    for spec in &head[2..] {
        if let Some(r) = spec.strip_prefix("rotate:") {
            if let Some((size, files)) = r.split_once(':') {
                limits.max_size = size.parse().unwrap_or(limits.max_size);
                limits.max_files = files.parse().unwrap_or(limits.max_files);
            }
        }
    }
    let Ok(mut log) = LogWriter::open_bounded(std::path::Path::new(log_path), limits) else {
        return 2;
    };
    let mut outputs = Vec::new();
    for spec in &head[2..] {
        if spec.starts_with("rotate:") {
            continue;
        }
        let Some((stream, fd)) = spec.split_once(':') else {
            continue;
        };
        let stream: &'static str = if stream == "err" { "stderr" } else { "stdout" };
        // Re-open the inherited pipe by its /proc name: a File of our own, non-blocking so
        // that opening never waits for a writer that is already gone.
        use std::os::unix::fs::OpenOptionsExt;
        if let Ok(f) = OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NONBLOCK)
            .open(format!("/proc/self/fd/{fd}"))
        {
            outputs.push((f, stream));
        }
    }
    let code = pump_files(pid, outputs, &mut log, false);
    let Some(exe) = cont.first() else {
        return code;
    };
    let mut argv: Vec<std::ffi::CString> = Vec::new();
    for a in cont
        .iter()
        .chain(["--exited".to_string(), code.to_string()].iter())
    {
        if let Ok(c) = std::ffi::CString::new(a.as_str()) {
            argv.push(c);
        }
    }
    if let Ok(path) = std::ffi::CString::new(exe.as_str()) {
        let _ = nix::unistd::execv(&path, &argv);
    }
    code
}

/// Hands the watching over to the lean binary `lean` (see [`run_lean`]); returns only when
/// that is not possible (then the caller keeps watching itself).
#[allow(clippy::too_many_arguments)]
fn hand_off(
    lc: &Lifecycle,
    c: &super::Container,
    log: &LogWriter,
    lean: &std::path::Path,
    pid: i32,
    outputs: &[(OwnedFd, &'static str)],
    keep: Option<&OwnedFd>,
    delay: Duration,
) {
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let inherit = |fd: i32| {
        nix::fcntl::fcntl(
            fd,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
        )
        .is_ok()
    };
    let mut args: Vec<String> = vec![
        lean.display().to_string(),
        pid.to_string(),
        lc.log_path(c.id()).display().to_string(),
        log.limits_arg(),
    ];
    for (fd, stream) in outputs {
        if !inherit(fd.as_raw_fd()) {
            return;
        }
        args.push(format!(
            "{}:{}",
            if *stream == "stderr" { "err" } else { "out" },
            fd.as_raw_fd()
        ));
    }
    if let Some(k) = keep {
        if !inherit(k.as_raw_fd()) {
            return;
        }
    }
    args.extend([
        "--".to_string(),
        exe.display().to_string(),
        "--root".into(),
        lc.root().display().to_string(),
        "--runroot".into(),
        lc.runroot().display().to_string(),
        "_monitor".into(),
        c.id().to_string(),
        "--delay".into(),
        delay.as_millis().to_string(),
    ]);
    let argv: Vec<std::ffi::CString> = args
        .iter()
        .filter_map(|a| std::ffi::CString::new(a.as_str()).ok())
        .collect();
    if let Ok(path) = std::ffi::CString::new(lean.display().to_string()) {
        let _ = nix::unistd::execv(&path, &argv);
    }
}

/// `berth-monitor --sweep DIR...`: deletes what is in each trash directory, then exits.
/// The `run --rm` that starts it exits at once; this process finishes the job (a thread
/// of the CLI would die with it and leave the trash growing under back-to-back runs).
/// One sweeper at a time: the others leave at once.
fn sweep(dirs: &[String]) -> i32 {
    let Some(first) = dirs.first() else {
        return 2;
    };
    let Ok(lock) = File::open(first) else {
        return 0;
    };
    if lock.try_lock().is_err() {
        return 0;
    }
    // Until nothing is left: runs that end meanwhile add more.
    for _ in 0..100 {
        let entries: Vec<std::path::PathBuf> = dirs
            .iter()
            .filter_map(|d| std::fs::read_dir(d).ok())
            .flat_map(|rd| rd.flatten().map(|e| e.path()))
            .collect();
        if entries.is_empty() {
            break;
        }
        for e in entries {
            let _ = std::fs::remove_dir_all(e);
        }
    }
    0
}

/// `berth-monitor --rm-guard -- BERTH ARGS...`: the owner of a foreground `run --rm`
/// should its CLI die. Its stdin is the read end of a pipe whose write end only the CLI
/// holds: a byte means the CLI removed the container itself (the guard leaves); end of file
/// means the CLI died with the container still in the store, and the guard executes
/// `BERTH ARGS...` (`_monitor ID --adopt PID:START`), which waits for the container's end
/// and removes it, as Docker's daemon does for a client that went away. The guard runs in
/// a session of its own, so the terminal's Ctrl-C or a killed process group leaves it.
fn rm_guard(args: &[String]) -> i32 {
    let _ = nix::unistd::setsid();
    let Some(sep) = args.iter().position(|a| a == "--") else {
        return 2;
    };
    let cont = &args[sep + 1..];
    let mut byte = [0u8; 1];
    let finished = loop {
        match std::io::stdin().read(&mut byte) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Ok(n) => break n > 0,
            Err(_) => break false,
        }
    };
    if finished {
        return 0;
    }
    exec(cont)
}

/// Replaces this process with `argv` (argv[0] is the program); 2 when that fails.
fn exec(argv: &[String]) -> i32 {
    let Some(exe) = argv.first() else {
        return 2;
    };
    let cargs: Vec<std::ffi::CString> = argv
        .iter()
        .filter_map(|a| std::ffi::CString::new(a.as_str()).ok())
        .collect();
    if let Ok(path) = std::ffi::CString::new(exe.as_str()) {
        let _ = nix::unistd::execv(&path, &cargs);
    }
    2
}

/// The guard of a foreground `run --rm` (`berth-monitor --rm-guard`, see [`run_lean`]),
/// started once the container runs. Dropping it (or calling [`RmGuard::release`]) tells the guard that the CLI finished the
/// job itself. Needs the lean binary (`berth-monitor`) next to `berth`.
#[derive(Debug)]
pub struct RmGuard {
    done: Option<OwnedFd>,
}

impl RmGuard {
    /// Starts the guard of container `id`, whose process is `pid`; `None` when it cannot be
    /// started (the run goes on unguarded, as before).
    pub fn spawn(lc: &Lifecycle, id: &str, pid: i32) -> Option<RmGuard> {
        let exe = std::env::current_exe().ok()?;
        let (r, w) = pipe().ok()?;
        let start = super::procfs::start_time(pid as i64).unwrap_or(0);
        let mut cmd = std::process::Command::new(lean_binary()?);
        cmd.arg("--rm-guard")
            .arg("--")
            .arg(&exe)
            .arg("--root")
            .arg(lc.root())
            .arg("--runroot")
            .arg(lc.runroot())
            .arg("_monitor")
            .arg(id)
            .arg("--adopt")
            .arg(format!("{pid}:{start}"))
            .stdin(std::process::Stdio::from(r))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        // Not waited for: it exits on its own once released (or outlives us).
        cmd.spawn().ok()?;
        Some(RmGuard { done: Some(w) })
    }

    /// Tells the guard that the container was removed by the CLI.
    pub fn release(&mut self) {
        if let Some(w) = self.done.take() {
            let _ = File::from(w).write_all(b"x");
        }
    }
}

impl Drop for RmGuard {
    fn drop(&mut self) {
        self.release();
    }
}

/// `_monitor ID --adopt PID:START`: the CLI of a foreground `run --rm` died (see
/// [`RmGuard`]); this process becomes the container's watcher, waits for its process to
/// end and removes the container. Returns this process's exit status (0).
pub fn adopt_orphan(lc: &Lifecycle, id: &str, pid: i32, start: i64) -> i32 {
    let me = std::process::id() as i64;
    // Recorded as the watcher first, so that the next command does not take the container
    // for one whose watcher died (and kill it).
    let _ = lc.store().update_container(
        id,
        &ContainerUpdate {
            monitor: Some((me, super::procfs::start_time(me).unwrap_or(0))),
            only_if_status: vec!["running".into()],
            ..Default::default()
        },
    );
    if super::procfs::is_alive(pid as i64, start) {
        if let Ok(pidfd) = berth_runtime::sys::pidfd_open(Pid::from_raw(pid)) {
            // A pidfd turns readable when the process exits, child of ours or not.
            loop {
                let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
                match poll(&mut fds, PollTimeout::NONE) {
                    Ok(n) if n > 0 => break,
                    Err(nix::Error::EINTR) | Ok(_) => continue,
                    Err(_) => break,
                }
            }
        }
    }
    let Ok(c) = lc.find(id) else {
        return 0; // removed meanwhile
    };
    if c.status.is_active() {
        // The exit status of a process that is not our child is not ours to read.
        let _ = record_exit(lc, &c, 0);
    }
    if let Ok(fresh) = lc.find(id) {
        let _ = lc.remove_container(&fresh, true, true);
    }
    0
}

/// The lean watcher next to `berth`, when installed.
pub fn lean_binary() -> Option<std::path::PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let lean = exe.parent()?.join("berth-monitor");
    lean.is_file().then_some(lean)
}

/// The monitor's main: launches container `id`, reports `OK <pid>` or `ERR <code> <msg>`
/// on stdout, then watches it to the end (handing the quiet part to the lean binary when
/// it can). With `exited`, it is called back by the lean binary: the process ended with
/// that status, and `delay` is the next restart back-off.
pub fn run_monitor(lc: &Lifecycle, id: &str, exited: Option<i32>, delay_ms: Option<u64>) -> i32 {
    let first_start = exited.is_none();
    if first_start {
        let _ = nix::unistd::setsid();
    }
    let _ = nix::sys::prctl::set_child_subreaper(true);
    let c = match lc.find(id) {
        Ok(c) => c,
        Err(e) => {
            if first_start {
                report(&mut std::io::stdout(), &Err(e));
            }
            return 1;
        }
    };
    let limits = LogLimits::of(&c.spec, lc.root());
    let mut log = match LogWriter::open_bounded(&lc.log_path(c.id()), limits) {
        Ok(l) => l,
        Err(e) => {
            if first_start {
                report(&mut std::io::stdout(), &Err(e));
            }
            return 1;
        }
    };
    let lean = lean_binary();
    let me = std::process::id() as i64;
    let mut delay = Duration::from_millis(delay_ms.unwrap_or(100));
    let mut pending = exited;
    let mut reported = !first_start;
    loop {
        if let Some(code) = pending.take() {
            let oom = record_exit(lc, &c, code).unwrap_or(false);
            crate::events::emit_exit(lc.root(), &c, code, oom);
            let Ok(now) = lc.store().container(c.id()) else {
                return 0; // removed meanwhile
            };
            let policy = &c.spec.host_config.restart_policy;
            if !policy.should_restart(code, now.restart_count, now.stopped_by_user) {
                break;
            }
            let _ = lc.store().update_container(
                c.id(),
                &ContainerUpdate {
                    status: Some("restarting".into()),
                    restart_count: Some(now.restart_count + 1),
                    // Still watched: a `ps` during the back-off must not take us for dead.
                    monitor: Some((me, super::procfs::start_time(me).unwrap_or(0))),
                    only_if_status: vec!["exited".into()],
                    ..Default::default()
                },
            );
            std::thread::sleep(delay);
            delay = (delay * 2).min(Duration::from_secs(60));
            // A `stop` or `rm` during the pause wins.
            match lc.store().container(c.id()) {
                Ok(r) if r.status == "restarting" && !r.stopped_by_user => {}
                Ok(r) if r.status == "restarting" => {
                    let _ = lc.store().update_container(
                        c.id(),
                        &ContainerUpdate {
                            status: Some("exited".into()),
                            monitor: Some((0, 0)),
                            only_if_status: vec!["restarting".into()],
                            ..Default::default()
                        },
                    );
                    break;
                }
                _ => break,
            }
        }
        let (mut started, outputs, keep_stdin) = match launch_piped(
            lc,
            &c,
            if reported {
                &["restarting"]
            } else {
                &["created", "exited"]
            },
        ) {
            Ok(x) => x,
            Err(e) => {
                if !reported {
                    // Nothing ran: the container stays as created, with its error recorded.
                    report(&mut std::io::stdout(), &Err(e));
                    if c.spec.host_config.auto_remove {
                        let _ = lc.remove_container(&c, true, true);
                    }
                    return 1;
                }
                log.write("stderr", format!("restart failed: {e}\n").as_bytes());
                let _ = lc.store().update_container(
                    c.id(),
                    &ContainerUpdate {
                        status: Some("exited".into()),
                        error: Some(e.to_string()),
                        ..Default::default()
                    },
                );
                break;
            }
        };
        // Recorded before the report: a `berth events` sees the start when `run -d` returns.
        crate::events::emit_container(lc.root(), &c, "start", &[]);
        if !reported {
            report(&mut std::io::stdout(), &Ok(started.pid));
            reported = true;
            // From here on nobody reads our stdout.
            if let Ok(null) = OpenOptions::new().write(true).open("/dev/null") {
                let _ = nix::unistd::dup2(null.as_raw_fd(), 1);
            }
        }
        // Published ports need the forwarder's threads here, and a pty master cannot be
        // re-opened by name: only then does this process keep watching itself.
        if let Some(lean) = &lean {
            if started.network.forwarder.is_none() && started.pty_master.is_none() {
                hand_off(
                    lc,
                    &c,
                    &log,
                    lean,
                    started.pid,
                    &outputs,
                    keep_stdin.as_ref(),
                    delay,
                );
            }
        }
        let code = pump(started.pid, outputs, &mut log, false);
        // The host ports must be free before a restart binds them again.
        drop(started.network.forwarder.take());
        drop(keep_stdin);
        pending = Some(code);
    }
    if c.spec.host_config.auto_remove {
        if let Ok(fresh) = lc.find(c.id()) {
            let _ = lc.remove_container(&fresh, true, true);
        }
    }
    0
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_are_json_with_stream_and_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let mut log = LogWriter::open(&path).unwrap();
        let mut lb = LineBuffer {
            stream: "stdout",
            buf: Vec::new(),
        };
        lb.push(b"one\ntw", &mut log);
        lb.push(b"o\n", &mut log);
        lb.push(&vec![b'x'; MAX_LINE + 10], &mut log);
        lb.flush(&mut log);
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0]["log"], "one\n");
        assert_eq!(lines[1]["log"], "two\n");
        assert_eq!(lines[2]["log"].as_str().unwrap().len(), MAX_LINE);
        assert_eq!(lines[3]["log"].as_str().unwrap().len(), 10);
        assert_eq!(lines[0]["stream"], "stdout");
        assert!(lines[0]["time"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn logs_rotate_within_their_bound() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let limits = LogLimits {
            max_size: 1000,
            max_files: 3,
        };
        let mut log = LogWriter::open_bounded(&path, limits).unwrap();
        for i in 0..500 {
            log.write("stdout", format!("line {i}\n").as_bytes());
        }
        let sizes: Vec<u64> = (0..4)
            .map(|n| std::fs::metadata(rotated(&path, n)).map_or(0, |m| m.len()))
            .collect();
        assert!(sizes[..3].iter().all(|s| *s > 0 && *s <= 1000), "{sizes:?}");
        assert_eq!(sizes[3], 0, "a fourth file");
        // The newest line is last in the live file, the older ones in LOG.1.
        let live = std::fs::read_to_string(&path).unwrap();
        assert!(live.contains("line 499"), "{live}");
        assert!(std::fs::read_to_string(rotated(&path, 1))
            .unwrap()
            .contains("line"));
        // Reopened (the lean watcher takes over), the live file's size is counted.
        let mut again = LogWriter::open_bounded(&path, limits).unwrap();
        again.write("stdout", &[b'x'; 900]);
        assert!(std::fs::metadata(&path).unwrap().len() <= 1000);
    }

    #[test]
    fn one_file_logs_start_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let limits = LogLimits {
            max_size: 500,
            max_files: 1,
        };
        let mut log = LogWriter::open_bounded(&path, limits).unwrap();
        for i in 0..100 {
            log.write("stdout", format!("line {i}\n").as_bytes());
        }
        assert!(std::fs::metadata(&path).unwrap().len() <= 500);
        assert!(!rotated(&path, 1).exists());
    }
}
