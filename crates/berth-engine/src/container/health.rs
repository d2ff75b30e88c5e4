//! Health checks without a daemon.
//!
//! Docker's daemon runs a container's probe on a timer. berth has no daemon, so each running
//! container with a healthcheck gets a checker process of its own (`berth _health ID`),
//! started by its monitor right after each start. The checker runs the probe inside the
//! container every interval (through the runtime's exec, as `berth exec` does), keeps
//! Docker's `State.Health` (status, failing streak, the last five results) in
//! `ROOT/containers/ID/health.json` (written to a temporary file, then renamed; removed with the container), and emits
//! a `health_status: ...` event when the status changes. It waits on a pidfd of the
//! container's process, so it leaves the moment the container stops; a flock on the state
//! file keeps one checker per container.
//!
//! `ps` and `inspect` read the file; a container without one shows no health.

use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::runtime::{self, Stdio};
use super::{procfs, Container, Lifecycle};

pub use berth_build::imageconfig::HealthConfig;

/// Docker's defaults: 30 s interval and timeout, 3 retries, no start period, 5 s start interval.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_START_INTERVAL: Duration = Duration::from_secs(5);
const DEFAULT_RETRIES: u64 = 3;
/// Probe output kept per result (Docker keeps 4 KiB).
const MAX_OUTPUT: usize = 4096;
/// Results kept (Docker keeps 5).
const MAX_LOG: usize = 5;

/// One probe's result, as Docker's `State.Health.Log[]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthResult {
    /// RFC 3339 start time.
    pub start: String,
    /// RFC 3339 end time.
    pub end: String,
    /// 0 healthy, 1 unhealthy, -1 the probe could not run or timed out.
    pub exit_code: i32,
    /// The probe's output (stdout and stderr), cut at 4 KiB.
    pub output: String,
}

/// Docker's `State.Health`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthState {
    /// `starting`, `healthy` or `unhealthy`.
    pub status: String,
    /// Consecutive failures.
    pub failing_streak: u64,
    /// The last results, oldest first.
    pub log: Vec<HealthResult>,
}

/// The healthcheck `flags` (`--health-*`) leave in force over the image's `image`: `None`
/// when there is none or it is `NONE`.
pub fn effective(config: Option<&HealthConfig>) -> Option<&HealthConfig> {
    config.filter(|h| !h.test.is_empty() && h.test[0] != "NONE")
}

/// `--health-*` and `--no-healthcheck` as typed.
#[derive(Debug, Clone, Default)]
pub struct HealthFlags {
    /// `--health-cmd` (run with `/bin/sh -c`).
    pub cmd: Option<String>,
    /// `--health-interval`.
    pub interval: Option<String>,
    /// `--health-timeout`.
    pub timeout: Option<String>,
    /// `--health-start-period`.
    pub start_period: Option<String>,
    /// `--health-start-interval`.
    pub start_interval: Option<String>,
    /// `--health-retries`.
    pub retries: Option<String>,
    /// `--no-healthcheck`.
    pub none: bool,
}

impl HealthFlags {
    /// The container's healthcheck: the image's, with what the flags set replaced (Docker's
    /// messages for bad values).
    pub fn merge(
        &self,
        image: Option<&HealthConfig>,
    ) -> Result<Option<HealthConfig>, super::OptionError> {
        use super::OptionError::Conflict;
        let any_set = self.cmd.is_some()
            || self.interval.is_some()
            || self.timeout.is_some()
            || self.start_period.is_some()
            || self.start_interval.is_some()
            || self.retries.is_some();
        if self.none {
            if any_set {
                return Err(Conflict(
                    "--no-healthcheck conflicts with --health-* options".into(),
                ));
            }
            return Ok(Some(HealthConfig {
                test: vec!["NONE".into()],
                ..Default::default()
            }));
        }
        if !any_set {
            return Ok(image.cloned());
        }
        let mut h = image.cloned().unwrap_or_default();
        if let Some(cmd) = &self.cmd {
            h.test = vec!["CMD-SHELL".into(), cmd.clone()];
        }
        let dur =
            |flag: &'static str, v: &Option<String>| -> Result<Option<u64>, super::OptionError> {
                let Some(v) = v else { return Ok(None) };
                // Go's durations, as the build's HEALTHCHECK flags take them.
                let nanos = berth_build::dockerfile::parse_duration(v).ok_or_else(|| {
                    super::OptionError::BadValue {
                        flag,
                        value: v.clone(),
                        reason: format!("time: invalid duration \"{v}\""),
                    }
                })?;
                let d = Duration::from_nanos(nanos);
                if !d.is_zero() && d < Duration::from_millis(1) {
                    return Err(Conflict(format!(
                        "{flag} in Healthcheck cannot be less than 1ms"
                    )));
                }
                Ok(Some(d.as_nanos() as u64))
            };
        if let Some(n) = dur("--health-interval", &self.interval)? {
            h.interval = n;
        }
        if let Some(n) = dur("--health-timeout", &self.timeout)? {
            h.timeout = n;
        }
        if let Some(n) = dur("--health-start-period", &self.start_period)? {
            h.start_period = n;
        }
        if let Some(n) = dur("--health-start-interval", &self.start_interval)? {
            h.start_interval = n;
        }
        if let Some(v) = &self.retries {
            let n: i64 = v.parse().map_err(|_| super::OptionError::BadValue {
                flag: "--health-retries",
                value: v.clone(),
                reason: format!("strconv.ParseInt: parsing {v:?}: invalid syntax"),
            })?;
            if n < 0 {
                return Err(Conflict("--health-retries cannot be negative".into()));
            }
            h.retries = n as u64;
        }
        if h.test.is_empty() {
            return Err(Conflict(
                "--health-* options need a --health-cmd or an image HEALTHCHECK".into(),
            ));
        }
        Ok(Some(h))
    }
}

fn state_path(lc: &Lifecycle, id: &str) -> PathBuf {
    lc.container_dir(id).join("health.json")
}

/// The health of container `id`, when it has a checker's state.
pub fn read_state(lc: &Lifecycle, id: &str) -> Option<HealthState> {
    let bytes = std::fs::read(state_path(lc, id)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// `ps`'s suffix: ` (healthy)`, ` (unhealthy)`, ` (health: starting)`, or nothing.
pub fn status_suffix(state: Option<&HealthState>) -> String {
    match state.map(|s| s.status.as_str()) {
        Some("starting") => " (health: starting)".into(),
        Some(s) => format!(" ({s})"),
        None => String::new(),
    }
}

/// Starts the checker of `c` (running as `pid`) when it has a healthcheck: `exe _health ID`
/// in a session of its own, detached from every stdio.
pub fn spawn_checker(lc: &Lifecycle, c: &Container) {
    if effective(c.spec.config.healthcheck.as_ref()).is_none() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("--root")
        .arg(lc.root())
        .arg("--runroot")
        .arg(lc.runroot())
        .args(["_health", c.id()])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    use std::os::unix::process::CommandExt;
    cmd.process_group(0);
    if let Ok(mut child) = cmd.spawn() {
        // The checker outlives this call; reap it from a thread so it never lingers as a
        // zombie of a long-lived monitor.
        let _ = std::thread::Builder::new()
            .name("health-reaper".into())
            .spawn(move || {
                let _ = child.wait();
            });
    }
}

fn rfc3339_now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The checker's main (`_health ID`): probes until the container's process ends.
pub fn run_checker(lc: &Lifecycle, id: &str) -> i32 {
    let Ok(c) = lc.find(id) else { return 1 };
    let Some(h) = effective(c.spec.config.healthcheck.as_ref()).cloned() else {
        return 0;
    };
    let (pid, pid_start) = (c.record.pid, c.record.pid_start);
    if !procfs::is_alive(pid, pid_start) {
        return 0;
    }
    // One checker per container: the lock lives as long as this process.
    let lock_path = lc.container_dir(id).join("health.lock");
    let Ok(lock) = std::fs::File::create(&lock_path) else {
        return 1;
    };
    if rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
        return 0;
    }
    let Ok(pidfd) = rustix::process::pidfd_open(
        rustix::process::Pid::from_raw(pid as i32).expect("a live PID is positive"),
        rustix::process::PidfdFlags::empty(),
    ) else {
        return 1;
    };
    if !procfs::is_alive(pid, pid_start) {
        return 0; // the PID was reused between the check and the pidfd
    }
    let nanos = |n: u64, d: Duration| {
        if n == 0 {
            d
        } else {
            Duration::from_nanos(n)
        }
    };
    let interval = nanos(h.interval, DEFAULT_INTERVAL);
    let timeout = nanos(h.timeout, DEFAULT_TIMEOUT);
    let start_interval = nanos(h.start_interval, DEFAULT_START_INTERVAL);
    let start_period = Duration::from_nanos(h.start_period);
    let retries = if h.retries == 0 {
        DEFAULT_RETRIES
    } else {
        h.retries
    };
    let started = Instant::now();
    let mut state = HealthState {
        status: "starting".into(),
        failing_streak: 0,
        log: Vec::new(),
    };
    write_state(lc, id, &state);
    loop {
        let in_start = started.elapsed() < start_period;
        let wait = if in_start && h.start_interval > 0 {
            start_interval
        } else {
            interval
        };
        if exited_within(&pidfd, wait) {
            break;
        }
        let result = probe(lc, &c, &h.test, timeout);
        let ok = result.exit_code == 0;
        let before = state.status.clone();
        if ok {
            state.failing_streak = 0;
            state.status = "healthy".into();
        } else if !(in_start && state.status == "starting") {
            state.failing_streak += 1;
            if state.failing_streak >= retries {
                state.status = "unhealthy".into();
            }
        }
        state.log.push(result);
        if state.log.len() > MAX_LOG {
            state.log.remove(0);
        }
        if !procfs::is_alive(pid, pid_start) {
            break;
        }
        write_state(lc, id, &state);
        if state.status != before {
            crate::events::emit_container(
                lc.root(),
                &c,
                &format!("health_status: {}", state.status),
                &[],
            );
        }
    }
    0
}

/// Whether the process behind `pidfd` ends within `wait`.
fn exited_within(pidfd: &OwnedFd, wait: Duration) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let deadline = Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        let ms =
            PollTimeout::try_from(left.as_millis().min(60_000) as i32).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, ms) {
            Ok(0) => continue,
            Ok(_) => return true,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return true,
        }
    }
}

fn write_state(lc: &Lifecycle, id: &str, state: &HealthState) {
    let path = state_path(lc, id);
    let tmp = path.with_extension(format!("json.{}", std::process::id()));
    if let Ok(bytes) = serde_json::to_vec(state) {
        if std::fs::write(&tmp, bytes).is_ok() && std::fs::rename(&tmp, &path).is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }
}

/// Runs the probe `test` (`CMD ...` or `CMD-SHELL ...`) in `c` as its user, output captured,
/// killed after `timeout`.
fn probe(lc: &Lifecycle, c: &Container, test: &[String], timeout: Duration) -> HealthResult {
    let start = rfc3339_now();
    let fail = |output: String| HealthResult {
        start: start.clone(),
        end: rfc3339_now(),
        exit_code: -1,
        output,
    };
    let args: Vec<String> = match test.first().map(String::as_str) {
        Some("CMD") => test[1..].to_vec(),
        Some("CMD-SHELL") => vec!["/bin/sh".into(), "-c".into(), test[1..].join(" ")],
        _ => return fail(format!("unknown healthcheck test {test:?}")),
    };
    let caps = &c.spec.capabilities;
    let process = json!({
        "terminal": false,
        "args": args,
        "env": c.spec.config.env,
        "cwd": if c.spec.config.working_dir.is_empty() { "/" } else { &c.spec.config.working_dir },
        "user": {"uid": c.spec.uid, "gid": c.spec.gid, "additionalGids": c.spec.additional_gids},
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
        "noNewPrivileges": c.spec.security.no_new_privileges,
    });
    let (Ok(null), Ok((out_r, out_w))) = (std::fs::File::open("/dev/null"), nix::unistd::pipe())
    else {
        return fail("cannot make the probe's pipes".into());
    };
    let Ok(err_w) = out_w.try_clone() else {
        return fail("cannot make the probe's pipes".into());
    };
    let rt = runtime::for_name(&c.spec.host_config.runtime);
    let launched = rt.exec(
        c.id(),
        &lc.runroot().join("runtime"),
        &lc.container_dir(c.id()),
        &process,
        Stdio {
            stdin: Some(null.into()),
            stdout: Some(out_w),
            stderr: Some(err_w),
        },
    );
    let launched = match launched {
        Ok(l) => l,
        Err(e) => return fail(format!("OCI runtime exec failed: {e}")),
    };
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let mut f = std::fs::File::from(out_r);
        let mut chunk = [0u8; 4096];
        while let Ok(n) = f.read(&mut chunk) {
            if n == 0 {
                break;
            }
            if buf.len() < MAX_OUTPUT {
                let take = n.min(MAX_OUTPUT - buf.len());
                buf.extend_from_slice(&chunk[..take]);
            }
        }
        buf
    });
    let deadline = Instant::now() + timeout;
    let pid = nix::unistd::Pid::from_raw(launched.pid);
    let code = loop {
        use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => break Some(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => break Some(128 + sig as i32),
            Ok(_) if Instant::now() >= deadline => {
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
                let _ = waitpid(pid, None);
                break None;
            }
            Ok(_) => std::thread::sleep(Duration::from_millis(20)),
            Err(nix::errno::Errno::EINTR) => {}
            Err(_) => break Some(-1),
        }
    };
    let output = String::from_utf8_lossy(&reader.join().unwrap_or_default()).into_owned();
    match code {
        Some(code) => HealthResult {
            start,
            end: rfc3339_now(),
            exit_code: if code == 0 { 0 } else { 1 },
            output,
        },
        None => fail(format!(
            "Health check exceeded timeout ({})",
            humantime::format_duration(timeout)
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_image_and_are_checked() {
        let image = HealthConfig {
            test: vec!["CMD".into(), "true".into()],
            interval: 5_000_000_000,
            ..Default::default()
        };
        let merged = HealthFlags {
            cmd: Some("wget -q localhost".into()),
            retries: Some("2".into()),
            ..Default::default()
        }
        .merge(Some(&image))
        .unwrap()
        .unwrap();
        assert_eq!(merged.test, ["CMD-SHELL", "wget -q localhost"]);
        assert_eq!((merged.interval, merged.retries), (5_000_000_000, 2));
        let none = HealthFlags {
            none: true,
            ..Default::default()
        }
        .merge(Some(&image))
        .unwrap();
        assert!(effective(none.as_ref()).is_none());
        assert_eq!(
            HealthFlags {
                none: true,
                cmd: Some("true".into()),
                ..Default::default()
            }
            .merge(None)
            .unwrap_err()
            .to_string(),
            "--no-healthcheck conflicts with --health-* options"
        );
        assert!(HealthFlags {
            interval: Some("soon".into()),
            cmd: Some("true".into()),
            ..Default::default()
        }
        .merge(None)
        .is_err());
        assert_eq!(status_suffix(None), "");
        let s = HealthState {
            status: "starting".into(),
            failing_streak: 0,
            log: vec![],
        };
        assert_eq!(status_suffix(Some(&s)), " (health: starting)");
    }
}
