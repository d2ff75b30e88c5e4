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

/// berth's own runtime.
#[derive(Debug, Clone, Copy)]
pub struct BerthRuntime;

impl BerthRuntime {
    fn fallback() -> runtime::CliRuntime {
        runtime::CliRuntime {
            binary: "runc".into(),
        }
    }
}

impl OciRuntime for BerthRuntime {
    fn launch(&self, req: LaunchRequest<'_>) -> Result<Launched, RuntimeError> {
        Self::fallback().launch(req)
    }
    fn cleanup(&self, id: &str, state_root: &Path, rootfs: &Path) -> Result<(), RuntimeError> {
        Self::fallback().cleanup(id, state_root, rootfs)
    }
    fn exec(
        &self,
        id: &str,
        state_root: &Path,
        bundle: &Path,
        process: &Value,
        stdio: Stdio,
    ) -> Result<Launched, RuntimeError> {
        Self::fallback().exec(id, state_root, bundle, process, stdio)
    }
}

/// The base spec: the runtime's Docker defaults.
pub fn base_spec() -> Value {
    let caps = super::options::DEFAULT_CAPS;
    serde_json::json!({
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": [],
            "env": [],
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1048576u64, "soft": 1048576u64}],
            "noNewPrivileges": false,
        },
        "root": {"path": "rootfs", "readonly": false},
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["ro", "nosuid", "noexec", "nodev", "relatime"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        ],
        "linux": {
            "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}],
            "maskedPaths": ["/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
        },
    })
}

/// cgroup path of a container.
pub fn cgroups_path(id: &str) -> String {
    format!("/berth/{id}")
}

/// The container's rootfs mount point.
pub fn rootfs_dir(lc: &Lifecycle, id: &str) -> PathBuf {
    lc.container_dir(id).join("rootfs")
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
    let lower = if lowers.is_empty() {
        // An image without layers (scratch): an empty lower directory.
        let empty = dir.join("empty");
        fs::create_dir_all(&empty).map_err(ContainerError::io("creating", &empty))?;
        empty.display().to_string()
    } else {
        lowers
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(":")
    };
    Ok(vec![RootfsMountSpec {
        typ: "overlay".into(),
        source: "overlay".into(),
        options: vec![
            format!("lowerdir={lower}"),
            format!("upperdir={}", dir.join("upper").display()),
            format!("workdir={}", dir.join("work").display()),
        ],
    }])
}

/// Builds the runtime spec of `c` from its stored configuration.
pub fn build_spec(lc: &Lifecycle, c: &Container) -> Result<Value> {
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
    for v in &cs.volumes {
        let src = match &v.source {
            Some(s) if s.starts_with('/') => PathBuf::from(s),
            Some(name) => lc.root().join("volumes").join(name).join("_data"),
            None => continue,
        };
        binds.push((src, v.destination.clone(), v.read_only));
    }
    for name in &cs.anonymous_volumes {
        if let Some((n, dest)) = name.split_once(':') {
            binds.push((
                lc.root().join("volumes").join(n).join("_data"),
                dest.to_string(),
                false,
            ));
        }
    }
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
        netns_path: None,
        etc_files: Vec::new(),
    };
    Ok(crate::spec::build(base_spec(), &input)?)
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
}

/// Starts the container's process with `stdio` and records it running, watched by the
/// calling process. The caller must wait for it ([`wait_and_record`]).
pub fn start_process(lc: &Lifecycle, c: &Container, stdio: Stdio) -> Result<Started> {
    let rt = runtime::for_name(&c.spec.host_config.runtime);
    let spec = build_spec(lc, c)?;
    let mounts = rootfs_mounts(lc, c)?;
    let bundle = lc.container_dir(c.id());
    let rootfs = rootfs_dir(lc, c.id());
    let state_root = lc.runroot().join("runtime");
    fs::create_dir_all(&state_root).map_err(ContainerError::io("creating", &state_root))?;
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
    let me = std::process::id() as i64;
    lc.store().update_container(
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
            ..Default::default()
        },
    )?;
    Ok(Started {
        pid: launched.pid,
        pty_master: launched.pty_master,
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
    rt.cleanup(id, &state_root, &rootfs_dir(lc, id))?;
    Ok(())
}
