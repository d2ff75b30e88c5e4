//! Starting a container's process and recording its end: shared by the foreground `run`
//! (the CLI waits) and the monitor (which waits for detached containers).

use std::fs;
use std::path::{Path, PathBuf};

use berth_oci::Digest;
use berth_store::containers::ContainerUpdate;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use serde_json::Value;

use super::runtime::{
    self, LaunchRequest, Launched, OciRuntime, RootfsMountSpec, RuntimeError, Stdio,
};
use super::{now_nanos, procfs, Container, ContainerError, Lifecycle, Result};

/// berth's own runtime (`berth-runtime`), in-process: the container's init is forked as
/// a child of the caller.
#[derive(Debug, Clone, Copy)]
pub struct BerthRuntime;

fn to_oci<T: serde::de::DeserializeOwned>(
    v: &Value,
    what: &'static str,
) -> Result<T, RuntimeError> {
    serde_json::from_value(v.clone()).map_err(|e| RuntimeError::BadSpec {
        what,
        detail: e.to_string(),
    })
}

fn runtime_stdio(s: Stdio) -> berth_runtime::Stdio {
    berth_runtime::Stdio {
        stdin: s.stdin,
        stdout: s.stdout,
        stderr: s.stderr,
    }
}

impl OciRuntime for BerthRuntime {
    fn launch(&self, req: LaunchRequest<'_>) -> Result<Launched, RuntimeError> {
        let spec: berth_runtime::oci::Spec = to_oci(req.spec, "spec")?;
        let terminal = req.spec["process"]["terminal"] == true;
        let cfg = berth_runtime::ContainerConfig {
            id: req.id.to_string(),
            state_dir: req.state_root.join(req.id),
            bundle: req.bundle.to_path_buf(),
            spec,
            rootfs_mounts: req
                .rootfs_mounts
                .iter()
                .map(|m| berth_runtime::RootfsMount {
                    typ: m.typ.clone(),
                    source: PathBuf::from(&m.source),
                    options: m.options.clone(),
                })
                .collect(),
            stdio: runtime_stdio(req.stdio),
            console: terminal.then_some(berth_runtime::Console::Return),
            pid_file: None,
        };
        let mut c = berth_runtime::run(cfg)?;
        Ok(Launched {
            pid: c.pid().as_raw(),
            pty_master: c.take_pty_master(),
        })
    }

    fn cleanup(&self, id: &str, state_root: &Path, _rootfs: &Path) -> Result<(), RuntimeError> {
        let dir = state_root.join(id);
        match berth_runtime::Container::load(&dir) {
            // The state directory goes to RUNROOT/trash, swept with ROOT/trash
            // ([`Lifecycle::sweep_trash`]): deleting its files waits for the disk here.
            Ok(c) => Ok(c.delete_into_trash(true, &runtime_trash(state_root))?),
            Err(e) if e.kind() == berth_runtime::ErrorKind::NotFound && !dir.exists() => Ok(()),
            Err(e) => {
                // A state directory without a readable state: the process that created the
                // container died half-way (SIGKILL during `run`). What it may have made
                // goes by name: the cgroup (with any process in it), then the directory.
                log::debug!(
                    "removing the half-made runtime state {}: {e}",
                    dir.display()
                );
                if let Some(cg) = crate::build::runner::cgroup_named(id) {
                    cg.destroy().map_err(berth_runtime::Error::from)?;
                }
                std::fs::remove_dir_all(&dir).map_err(|source| RuntimeError::Io {
                    op: "removing",
                    path: dir.clone(),
                    source,
                })
            }
        }
    }

    fn exec(
        &self,
        id: &str,
        state_root: &Path,
        _bundle: &Path,
        process: &Value,
        stdio: Stdio,
    ) -> Result<Launched, RuntimeError> {
        let p: berth_runtime::oci::Process = to_oci(process, "process")?;
        let mut c = berth_runtime::Container::load(&state_root.join(id))?;
        let console = (process["terminal"] == true).then_some(berth_runtime::Console::Return);
        let e = c.exec(&p, runtime_stdio(stdio), console)?;
        Ok(Launched {
            pid: e.pid.as_raw(),
            pty_master: e.pty_master,
        })
    }
}

/// Where berth's runtime leaves deleted state directories: `RUNROOT/trash` beside
/// `RUNROOT/runtime` (`state_root`).
pub(crate) fn runtime_trash(state_root: &Path) -> PathBuf {
    state_root.with_file_name("trash")
}

/// The base spec: the runtime's Docker defaults.
pub fn base_spec() -> Value {
    let mut v = serde_json::to_value(berth_runtime::spec::default_spec(&[])).unwrap_or(Value::Null);
    // Never ask for more than the hard limit: CAP_SYS_RESOURCE may be absent (runc does not
    // clamp).
    let nofile = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map(|(_, hard)| hard.min(1048576))
        .unwrap_or(1024);
    if let Some(limits) = v["process"]["rlimits"].as_array_mut() {
        for l in limits {
            if l["type"] == "RLIMIT_NOFILE" {
                l["hard"] = nofile.into();
                l["soft"] = nofile.into();
            }
        }
    }
    v
}

/// cgroup path of a container.
pub fn cgroups_path(id: &str) -> String {
    format!("/berth/{id}")
}

/// The container's rootfs mount point.
pub fn rootfs_dir(lc: &Lifecycle, id: &str) -> PathBuf {
    lc.container_dir(id).join("rootfs")
}

/// Overlayfs's `lowerdir=` value for `lowers` (top layer first): the paths joined with `:`,
/// or `None` when there are none (overlayfs needs at least one; callers give an empty one).
pub(crate) fn lowerdir_option(lowers: &[PathBuf]) -> Option<String> {
    if lowers.is_empty() {
        return None;
    }
    Some(
        lowers
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(":"),
    )
}

/// The overlay that makes up the rootfs: the image's layers under the container's rw layer.
pub fn rootfs_mounts(lc: &Lifecycle, c: &Container) -> Result<Vec<RootfsMountSpec>> {
    let image: Digest = c
        .record
        .image_id
        .parse()
        .map_err(|_| ContainerError::ImageNotFound(c.record.image_ref.clone()))?;
    let lowers = lc.store().image_lowerdirs(&image)?;
    let dir = lc.container_dir(c.id());
    // Made by create after the row; missing when its creator died in between.
    for sub in ["upper", "work", "rootfs"] {
        let d = dir.join(sub);
        fs::create_dir_all(&d).map_err(ContainerError::io("creating", &d))?;
    }
    let lower = match lowerdir_option(&lowers) {
        Some(lower) => lower,
        None => {
            // An image without layers (scratch): an empty lower directory.
            let empty = dir.join("empty");
            fs::create_dir_all(&empty).map_err(ContainerError::io("creating", &empty))?;
            empty.display().to_string()
        }
    };
    Ok(vec![RootfsMountSpec {
        typ: "overlay".into(),
        source: "overlay".into(),
        options: {
            let mut o = vec![
                format!("lowerdir={lower}"),
                format!("upperdir={}", dir.join("upper").display()),
                format!("workdir={}", dir.join("work").display()),
            ];
            // A --rm container's rw layer is thrown away: skip the sync of the upper file
            // system that unmounting the overlay would otherwise do (it can take longer
            // than the whole run on a busy disk).
            if c.spec.host_config.auto_remove && overlay_supports_volatile() {
                o.push("volatile".into());
            }
            o
        },
    }])
}

/// overlayfs takes `volatile` from Linux 5.10 on.
fn overlay_supports_volatile() -> bool {
    let Ok(u) = nix::sys::utsname::uname() else {
        return false;
    };
    let release = u.release().to_string_lossy().to_string();
    let mut it = release
        .split(['.', '-'])
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (it.next().unwrap_or(0), it.next().unwrap_or(0));
    (major, minor) >= (5, 10)
}

/// Builds the runtime spec of `c` from its stored configuration.
pub fn build_spec(
    lc: &Lifecycle,
    c: &Container,
    net: &crate::network_container::AttachedNetwork,
) -> Result<Value> {
    let cs = &c.spec;
    let mut env = cs.config.env.clone();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", home_of(cs)));
    }
    if cs.config.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".into());
    }
    let mut args = vec![cs.path.clone()];
    args.extend(cs.args.iter().cloned());
    let mut binds = Vec::new();
    if cs.host_config.init {
        let (init_binds, init_args) = super::init::init_mounts(&args)?;
        binds.extend(init_binds);
        args = init_args;
    }
    let mounts = crate::volume::plan::oci_mounts(lc.store(), cs)?;
    let rootfs = rootfs_dir(lc, c.id());
    let input = crate::spec::SpecInput {
        spec: cs,
        rootfs: &rootfs,
        env,
        args,
        cwd: if cs.config.working_dir.is_empty() {
            "/".into()
        } else {
            cs.config.working_dir.clone()
        },
        cgroups_path: cgroups_path(c.id()),
        init_binary: None,
        binds,
        mounts,
        netns_path: net.netns.clone(),
        etc_files: net.etc_mounts.clone(),
    };
    let mut spec = crate::spec::build(base_spec(), &input)?;
    super::isolation::apply(
        &mut spec,
        &cs.host_config.isolation,
        super::isolation::HostSupport::probe(),
        &Joinable(lc),
    )
    .map_err(ContainerError::Isolation)?;
    Ok(spec)
}

/// `--pid container:NAME` and `--ipc container:NAME`: the named container's running init.
struct Joinable<'a>(&'a Lifecycle);

impl super::isolation::NamespaceSource for Joinable<'_> {
    fn pid_of(&self, name: &str) -> std::result::Result<i32, String> {
        let other = self.0.find(name).map_err(|e| e.to_string())?;
        let r = &other.record;
        if other.status.is_active() && super::procfs::is_alive(r.pid, r.pid_start) {
            Ok(r.pid as i32)
        } else {
            Err(format!(
                "cannot join container {name}'s namespaces: container {} is not running",
                other.id()
            ))
        }
    }
}

fn home_of(cs: &super::ContainerSpec) -> String {
    if cs.home.is_empty() {
        "/".into()
    } else {
        cs.home.clone()
    }
}

/// A started process, not yet waited for.
#[derive(Debug)]
pub struct Started {
    /// Host PID.
    pub pid: i32,
    /// pty master for `-t`.
    pub pty_master: Option<std::os::fd::OwnedFd>,
    /// The network (its port forwarder runs while this lives).
    pub network: crate::network_container::AttachedNetwork,
}

/// Starts the container's process with `stdio` and records it running, watched by the
/// calling process. The caller must wait for it ([`wait_and_record`]).
///
/// The start is recorded only while the container is still in one of `from` (a `stop` or
/// `rm` racing with a restart wins: the new process is killed again).
pub fn start_process(
    lc: &Lifecycle,
    c: &Container,
    stdio: Stdio,
    from: &[&str],
) -> Result<Started> {
    let rt = runtime::for_name(&c.spec.host_config.runtime);
    let mounts = rootfs_mounts(lc, c)?;
    // Before the network: a runroot that cannot hold the runtime's state fails here with
    // nothing to undo.
    let state_root = lc.runroot().join("runtime");
    fs::create_dir_all(&state_root).map_err(ContainerError::io("creating", &state_root))?;
    let mut net = crate::network_container::attach(lc, c)?;
    let spec = match build_spec(lc, c, &net) {
        Ok(s) => s,
        Err(e) => {
            drop(net);
            let _ = crate::network_container::detach(lc, c.id(), false);
            return Err(e);
        }
    };
    let bundle = lc.container_dir(c.id());
    let rootfs = rootfs_dir(lc, c.id());
    // A previous run may have left runtime state (the monitor was killed).
    let _ = rt.cleanup(c.id(), &state_root, &rootfs);
    let launched = rt.launch(LaunchRequest {
        id: c.id(),
        bundle: &bundle,
        state_root: &state_root,
        spec: &spec,
        rootfs: &rootfs,
        rootfs_mounts: &mounts,
        stdio,
    });
    let launched = match launched {
        Ok(l) => l,
        Err(e) => {
            let _ = lc.store().update_container(
                c.id(),
                &ContainerUpdate {
                    error: Some(e.to_string()),
                    exit_code: Some(match e.kind() {
                        super::ErrorKind::CommandNotFound => 127,
                        super::ErrorKind::CommandNotExecutable => 126,
                        _ => 128,
                    }),
                    ..Default::default()
                },
            );
            return Err(e.into());
        }
    };
    // Kills the new process and undoes what its start made (the network goes with `net`).
    let abandon = |net: crate::network_container::AttachedNetwork| {
        let _ = nix::sys::signal::kill(
            Pid::from_raw(launched.pid),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = wait_exit(launched.pid);
        drop(net);
        let _ = cleanup_after_exit(lc, c.id(), Some(&c.spec.host_config.runtime));
    };
    // The published ports were bound by attach; forwarding starts now that the runtime has
    // forked (single-threaded, its fast path).
    if let Err(e) = net.start_forwarding() {
        abandon(net);
        return Err(e.into());
    }
    let me = std::process::id() as i64;
    let recorded = lc.store().update_container(
        c.id(),
        &ContainerUpdate {
            status: Some("running".into()),
            pid: Some((
                launched.pid as i64,
                procfs::start_time(launched.pid as i64).unwrap_or(0),
            )),
            monitor: Some((me, procfs::start_time(me).unwrap_or(0))),
            started_at: Some(now_nanos()),
            finished_at: Some(0),
            exit_code: Some(0),
            oom_killed: Some(false),
            error: Some(String::new()),
            // A (re)start clears an earlier `stop`: the restart policy applies again.
            stopped_by_user: Some(false),
            only_if_status: from.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        },
    )?;
    if !recorded {
        abandon(net);
        let _ = crate::network_container::detach(lc, c.id(), false);
        return Err(ContainerError::BadStatus(format!(
            "container {} was stopped or removed while it was starting",
            c.id()
        )));
    }
    super::health::spawn_checker(lc, c);
    Ok(Started {
        pid: launched.pid,
        pty_master: launched.pty_master,
        network: net,
    })
}

/// Waits for `pid` (retrying on EINTR) and returns its exit status as a shell would show it.
pub fn wait_exit(pid: i32) -> i32 {
    loop {
        match waitpid(Pid::from_raw(pid), None) {
            Ok(WaitStatus::Exited(_, code)) => return code,
            Ok(WaitStatus::Signaled(_, sig, _)) => return 128 + sig as i32,
            Ok(_) => continue,
            Err(nix::Error::EINTR) => continue,
            Err(_) => return 255,
        }
    }
}

/// Whether the container's cgroup saw an OOM kill (v1 `memory.oom_control`, v2
/// `memory.events`).
pub fn oom_killed(id: &str) -> bool {
    let rel = cgroups_path(id);
    let rel = rel.trim_start_matches('/');
    let files = [
        format!("/sys/fs/cgroup/memory/{rel}/memory.oom_control"),
        format!("/sys/fs/cgroup/{rel}/memory.events"),
        format!("/sys/fs/cgroup/unified/{rel}/memory.events"),
    ];
    files.iter().any(|f| {
        fs::read_to_string(f).is_ok_and(|t| {
            t.lines().any(|l| {
                let mut it = l.split_whitespace();
                it.next() == Some("oom_kill") && it.next().is_some_and(|n| n != "0")
            })
        })
    })
}

/// Records the end of a run: exit status, OOM, finish time; releases runtime state.
pub fn record_exit(lc: &Lifecycle, c: &Container, code: i32) -> Result<bool> {
    let oom = oom_killed(c.id());
    let cleanup = cleanup_after_exit(lc, c.id(), Some(&c.spec.host_config.runtime));
    lc.store().update_container(
        c.id(),
        &ContainerUpdate {
            status: Some("exited".into()),
            pid: Some((0, 0)),
            monitor: Some((0, 0)),
            exit_code: Some(code as i64),
            oom_killed: Some(oom),
            finished_at: Some(now_nanos()),
            ..Default::default()
        },
    )?;
    cleanup?;
    Ok(oom)
}

/// Releases the runtime's state and host mounts of a container whose process ended.
pub fn cleanup_after_exit(lc: &Lifecycle, id: &str, runtime_name: Option<&str>) -> Result<()> {
    let name = match runtime_name {
        Some(n) => n.to_string(),
        None => lc
            .store()
            .container(id)
            .ok()
            .and_then(|r| serde_json::from_str::<super::ContainerSpec>(&r.config).ok())
            .map(|s| s.host_config.runtime)
            .unwrap_or_default(),
    };
    let rt = runtime::for_name(&name);
    let state_root = lc.runroot().join("runtime");
    let net = crate::network_container::detach(lc, id, false);
    rt.cleanup(id, &state_root, &rootfs_dir(lc, id))?;
    net?;
    Ok(())
}
