//! OCI hooks (runtime spec, `config.md`, "POSIX-platform Hooks"): executables the runtime
//! runs at points of the lifecycle, each with the container's state JSON on its stdin, its
//! own `args` and `env` (nothing inherited), and an optional `timeout` in seconds.
//!
//! | kind | when | where | a failure |
//! |---|---|---|---|
//! | `prestart`, `createRuntime` | `create`, after the namespaces and mounts, before `pivot_root` | runtime's namespaces | stops the container (torn down, `poststop` run), error |
//! | `createContainer` | the same point | the container's namespaces (path resolved in the runtime's mount namespace) | as above |
//! | `startContainer` | `start`, before the command is exec'd | the container, after `pivot_root` | the container stops, error |
//! | `poststart` | `start`, after the exec | runtime's namespaces | a warning |
//! | `poststop` | `delete`, after the container is gone | runtime's namespaces | a warning |
//!
//! The lifecycle calls [`run_hooks`] or [`run_hooks_warning`]; the state passed is
//! [`oci_state`] (the runtime spec's state: `ociVersion`, `id`, `status`, `pid`, `bundle`,
//! `annotations`).

use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::{Hook, Spec};
use serde_json::json;

use crate::container::State;
use crate::error::{Error, HookFailure, Result};

/// The six kinds of hook, in the order of the lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookKind {
    /// Deprecated by the spec, still run (by `create`, before `createRuntime`).
    Prestart,
    /// `create`, in the runtime's namespaces.
    CreateRuntime,
    /// `create`, in the container's namespaces, before `pivot_root`.
    CreateContainer,
    /// `start`, in the container, before its command.
    StartContainer,
    /// `start`, after the command was exec'd.
    Poststart,
    /// `delete`, after the container is gone.
    Poststop,
}

impl HookKind {
    /// The name the spec gives the list (`createRuntime`, ...).
    pub fn name(self) -> &'static str {
        match self {
            HookKind::Prestart => "prestart",
            HookKind::CreateRuntime => "createRuntime",
            HookKind::CreateContainer => "createContainer",
            HookKind::StartContainer => "startContainer",
            HookKind::Poststart => "poststart",
            HookKind::Poststop => "poststop",
        }
    }
}

/// The spec's hooks of `kind` (empty when there are none).
pub fn hooks_of(spec: &Spec, kind: HookKind) -> Vec<Hook> {
    let Some(h) = spec.hooks() else {
        return Vec::new();
    };
    #[allow(deprecated)]
    let list = match kind {
        HookKind::Prestart => h.prestart(),
        HookKind::CreateRuntime => h.create_runtime(),
        HookKind::CreateContainer => h.create_container(),
        HookKind::StartContainer => h.start_container(),
        HookKind::Poststart => h.poststart(),
        HookKind::Poststop => h.poststop(),
    };
    list.clone().unwrap_or_default()
}

/// The hooks of `kind` of the container whose state directory is `state_dir` (from the
/// `config.json` saved there by `create`); none when it cannot be read.
pub fn hooks_in_state_dir(state_dir: &Path, kind: HookKind) -> Vec<Hook> {
    let path = state_dir.join(crate::container::CONFIG_FILE);
    match std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice::<Spec>(&b).ok())
    {
        Some(spec) => hooks_of(&spec, kind),
        None => Vec::new(),
    }
}

/// The runtime spec's state of a container (`state` operation, and a hook's stdin), with
/// `status` as given (`creating` for the create hooks, ...).
pub fn oci_state(state: &State, status: &str) -> Vec<u8> {
    let v = json!({
        "ociVersion": state.oci_version,
        "id": state.id,
        "status": status,
        "pid": state.pid,
        "bundle": state.bundle,
        "annotations": state.annotations,
    });
    serde_json::to_vec(&v).unwrap_or_default()
}

/// Runs `hooks` in order, stopping at the first failure, which is returned.
/// `namespaces`, when given, opens the namespaces each hook joins (`createContainer`).
pub fn run_hooks(
    kind: HookKind,
    hooks: &[Hook],
    state: &[u8],
    namespaces: Option<&dyn Fn() -> Result<Vec<OwnedFd>>>,
) -> Result<()> {
    for (index, hook) in hooks.iter().enumerate() {
        let fds = match namespaces {
            Some(open) => Some(open()?),
            None => None,
        };
        run_hook(hook, state, fds).map_err(|failure| Error::Hook {
            kind: kind.name(),
            index,
            path: hook.path().clone(),
            failure,
        })?;
    }
    Ok(())
}

/// Runs every hook of `hooks` (`poststart`, `poststop`): a failure is logged and returned
/// as a warning, and the next hook still runs.
pub fn run_hooks_warning(kind: HookKind, hooks: &[Hook], state: &[u8]) -> Vec<String> {
    let mut warnings = Vec::new();
    for (index, hook) in hooks.iter().enumerate() {
        if let Err(failure) = run_hook(hook, state, None) {
            let e = Error::Hook {
                kind: kind.name(),
                index,
                path: hook.path().clone(),
                failure,
            };
            log::warn!("{e}");
            warnings.push(e.to_string());
        }
    }
    warnings
}

impl crate::Container {
    /// Whether the container has `poststart` hooks (its start then waits for the exec).
    pub(crate) fn has_poststart_hooks(&self) -> bool {
        !hooks_in_state_dir(&self.state_dir, HookKind::Poststart).is_empty()
    }

    /// Runs the `poststart` hooks of a container just started (a failure is a warning).
    pub(crate) fn run_poststart_hooks(&mut self) {
        let hooks = hooks_in_state_dir(&self.state_dir, HookKind::Poststart);
        if !hooks.is_empty() {
            let state = oci_state(&self.state, "running");
            let w = run_hooks_warning(HookKind::Poststart, &hooks, &state);
            self.warnings.extend(w);
        }
    }

    /// The `poststop` hooks, read before `delete` removes the state directory that holds
    /// the spec; [`PendingPoststop::run`] once the container is gone.
    pub(crate) fn poststop_hooks(&self) -> PendingPoststop {
        PendingPoststop {
            hooks: hooks_in_state_dir(&self.state_dir, HookKind::Poststop),
            state: oci_state(&self.state, "stopped"),
        }
    }
}

/// `poststop` hooks waiting for the container's deletion.
pub(crate) struct PendingPoststop {
    hooks: Vec<Hook>,
    state: Vec<u8>,
}

impl PendingPoststop {
    /// Runs them; failures are logged warnings (the spec's).
    pub(crate) fn run(self) {
        if !self.hooks.is_empty() {
            run_hooks_warning(HookKind::Poststop, &self.hooks, &self.state);
        }
    }
}

/// Opens `/proc/PID/ns/NAME` for each of `names` (`/proc/PID/ns` names), the user namespace
/// first and the mount namespace last, for a hook to join.
pub fn namespace_fds(pid: i32, names: &[String]) -> Result<Vec<OwnedFd>> {
    let mut ordered: Vec<&str> = names.iter().map(String::as_str).collect();
    ordered.sort_by_key(|n| match *n {
        "user" => 0,
        "mnt" => 2,
        _ => 1,
    });
    ordered
        .into_iter()
        .map(|name| {
            let path = format!("/proc/{pid}/ns/{name}");
            std::fs::File::open(&path)
                .map(OwnedFd::from)
                .map_err(|e| Error::io("open namespace", path, e))
        })
        .collect()
}

/// How much of a hook's output an error keeps (the end of it).
const OUTPUT_KEPT: usize = 4096;

/// Runs one hook: `path` with `args` (`args[0]` is its argv[0]) and exactly `env`, the state
/// on stdin (a memfd), stdout and stderr captured for the error, killed after `timeout` seconds.
pub fn run_hook(
    hook: &Hook,
    state: &[u8],
    namespaces: Option<Vec<OwnedFd>>,
) -> Result<(), HookFailure> {
    let args = hook.args().clone().unwrap_or_default();
    let mut cmd = Command::new(hook.path());
    if let Some((first, rest)) = args.split_first() {
        cmd.arg0(first).args(rest);
    }
    cmd.env_clear();
    for e in hook.env().iter().flatten() {
        match e.split_once('=') {
            Some((k, v)) => cmd.env(k, v),
            None => cmd.env(e, ""),
        };
    }
    let (out_r, out_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| HookFailure::Spawn(e.into()))?;
    let err_w = out_w.try_clone().map_err(HookFailure::Spawn)?;
    let stdin = crate::sys::memfd_holding(state).map_err(HookFailure::Spawn)?;
    cmd.stdin(Stdio::from(stdin))
        .stdout(Stdio::from(out_w))
        .stderr(Stdio::from(err_w));
    if let Some(fds) = namespaces {
        crate::sys::join_namespaces_before_exec(&mut cmd, fds);
    }
    let mut child = cmd.spawn().map_err(HookFailure::Spawn)?;
    // Dropping the Command closes our copies of the write ends: end of file once it exits.
    drop(cmd);
    crate::sys::set_nonblocking(&out_r).map_err(HookFailure::Spawn)?;
    let mut out = std::fs::File::from(out_r);
    let mut output = Vec::new();
    let mut drain = |output: &mut Vec<u8>| {
        let mut buf = [0u8; 4096];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 {
                break;
            }
            output.extend_from_slice(&buf[..n]);
            if output.len() > 2 * OUTPUT_KEPT {
                output.drain(..output.len() - OUTPUT_KEPT);
            }
        }
    };
    let deadline = hook
        .timeout()
        .filter(|t| *t > 0)
        .map(|t| (t, Instant::now() + Duration::from_secs(t as u64)));
    let mut pause = Duration::from_micros(200);
    let status = loop {
        drain(&mut output);
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(e) => return Err(HookFailure::Spawn(e)),
        }
        if let Some((seconds, at)) = deadline {
            if Instant::now() >= at {
                let _ = child.kill();
                let _ = child.wait();
                return Err(HookFailure::TimedOut { seconds });
            }
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(10));
    };
    drain(&mut output);
    let start = output.len().saturating_sub(OUTPUT_KEPT);
    let output = String::from_utf8_lossy(&output[start..]).into_owned();
    match (status.code(), status.signal()) {
        (Some(0), _) => Ok(()),
        (Some(code), _) => Err(HookFailure::Exited { code, output }),
        (None, Some(signal)) => Err(HookFailure::Signaled { signal, output }),
        (None, None) => Err(HookFailure::Exited { code: -1, output }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use oci_spec::runtime::HookBuilder;

    fn hook(script: &str, timeout: Option<i64>) -> Hook {
        let mut b = HookBuilder::default()
            .path("/bin/sh")
            .args(vec!["sh".to_string(), "-c".into(), script.into()])
            .env(vec!["HOOKVAR=x y".to_string()]);
        if let Some(t) = timeout {
            b = b.timeout(t);
        }
        b.build().unwrap()
    }

    #[test]
    fn a_hook_reads_the_state_on_stdin_with_its_own_env_only() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let script = format!(
            "cat > {0}; echo \"$HOOKVAR|${{HOME:-nohome}}|$0\" >> {0}",
            out.display()
        );
        run_hook(&hook(&script, None), b"{\"id\":\"c1\"}", None).unwrap();
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "{\"id\":\"c1\"}x y|nohome|sh\n"
        );
    }

    #[test]
    fn a_failing_hook_reports_its_status_and_output() {
        match run_hook(&hook("echo broken >&2; exit 3", None), b"{}", None) {
            Err(HookFailure::Exited { code: 3, output }) => assert_eq!(output.trim(), "broken"),
            other => panic!("{other:?}"),
        }
        let e = run_hooks(
            HookKind::CreateRuntime,
            &[hook("exit 0", None), hook("exit 1", None)],
            b"{}",
            None,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "createRuntime hook #1 (/bin/sh): exited with status 1"
        );
    }

    #[test]
    fn a_hook_past_its_timeout_is_killed() {
        let t = Instant::now();
        match run_hook(&hook("sleep 5", Some(1)), b"{}", None) {
            Err(HookFailure::TimedOut { seconds: 1 }) => {}
            other => panic!("{other:?}"),
        }
        assert!(t.elapsed() < Duration::from_secs(3));
    }

    #[test]
    fn warning_hooks_all_run() {
        let w = run_hooks_warning(
            HookKind::Poststop,
            &[hook("exit 2", None), hook("exit 0", None)],
            b"{}",
        );
        assert_eq!(w.len(), 1);
        assert!(w[0].starts_with("poststop hook #0"), "{w:?}");
    }
}
