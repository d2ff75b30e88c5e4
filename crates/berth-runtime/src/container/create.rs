//! `create` and `run`: set up a container's process; `create` leaves it waiting on the exec
//! fifo for `start`, `run` lets it exec right away.

use std::fs;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use super::init::{InitContext, ProcessAttrs};
use super::{read_sync, Container, State, Status, CONFIG_FILE, FIFO_FILE};
use crate::cgroups::{cgroup_relative_path, Cgroup, CgroupLayout};
use crate::error::{Error, Result};
use crate::hooks::{self, HookKind};
use crate::mounts::{MountPlan, RootfsMount};
use crate::process::{Console, ProcessPlan, Stdio};

/// What to create: the spec and where things go.
#[derive(Debug)]
pub struct ContainerConfig {
    /// Container ID (`[A-Za-z0-9_.-]+`).
    pub id: String,
    /// This container's state directory (e.g. `RUNROOT/runtime/<id>`); must not exist yet.
    pub state_dir: PathBuf,
    /// The bundle directory: a relative `root.path` is taken from here.
    pub bundle: PathBuf,
    /// The OCI runtime spec.
    pub spec: Spec,
    /// Mounts making up the rootfs (e.g. the image's overlay); empty: the rootfs as is.
    pub rootfs_mounts: Vec<RootfsMount>,
    /// The process's stdio when it has no terminal.
    pub stdio: Stdio,
    /// Where the pty master goes when `process.terminal` is true.
    pub console: Option<Console>,
    /// Write the init's host pid here.
    pub pid_file: Option<PathBuf>,
}

impl ContainerConfig {
    /// A config with inherited stdio, no console and no pid file.
    pub fn new(
        id: impl Into<String>,
        state_dir: impl Into<PathBuf>,
        bundle: impl Into<PathBuf>,
        spec: Spec,
    ) -> ContainerConfig {
        ContainerConfig {
            id: id.into(),
            state_dir: state_dir.into(),
            bundle: bundle.into(),
            spec,
            rootfs_mounts: Vec::new(),
            stdio: Stdio::default(),
            console: None,
            pid_file: None,
        }
    }
}

/// Creates a container: namespaces, cgroup, filesystem, user and security settings are in
/// place and the process waits for [`Container::start`] before exec'ing its command.
pub fn create(cfg: ContainerConfig) -> Result<Container> {
    launch(cfg, true)
}

/// Creates and starts a container in one go (the fast path: no fifo, no second process).
/// Returns once the command has been exec'd; errors before exec (including a missing or
/// non-executable command) are returned and leave nothing behind.
pub fn run(cfg: ContainerConfig) -> Result<Container> {
    launch(cfg, false)
}

fn ns_flag(t: LinuxNamespaceType) -> Result<(CloneFlags, &'static str)> {
    Ok(match t {
        LinuxNamespaceType::Pid => (CloneFlags::CLONE_NEWPID, "pid"),
        LinuxNamespaceType::Network => (CloneFlags::CLONE_NEWNET, "net"),
        LinuxNamespaceType::Mount => (CloneFlags::CLONE_NEWNS, "mnt"),
        LinuxNamespaceType::Ipc => (CloneFlags::CLONE_NEWIPC, "ipc"),
        LinuxNamespaceType::Uts => (CloneFlags::CLONE_NEWUTS, "uts"),
        LinuxNamespaceType::User => (CloneFlags::CLONE_NEWUSER, "user"),
        LinuxNamespaceType::Cgroup => (CloneFlags::CLONE_NEWCGROUP, "cgroup"),
        LinuxNamespaceType::Time => return Err(Error::spec("time namespaces are not supported")),
    })
}

/// Undoes a half-made container: collects errors and keeps going.
struct Cleanup<'a> {
    state_dir: &'a Path,
    cgroup: Option<Cgroup>,
    child: Option<nix::unistd::Pid>,
    armed: bool,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Some(pid) = self.child {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(pid, None);
        }
        if let Some(cg) = &self.cgroup {
            if let Err(e) = cg.destroy() {
                log::warn!("cleanup: {e}");
            }
        }
        if let Err(e) = fs::remove_dir_all(self.state_dir) {
            log::warn!("cleanup: remove {}: {e}", self.state_dir.display());
        }
    }
}

fn launch(cfg: ContainerConfig, wait_for_start: bool) -> Result<Container> {
    super::validate_id(&cfg.id)?;
    let spec = &cfg.spec;
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| Error::spec("root is missing"))?;
    let rootfs = if root.path().is_absolute() {
        root.path().clone()
    } else {
        cfg.bundle.join(root.path())
    };
    if !rootfs.is_dir() {
        return Err(Error::io(
            "open rootfs",
            &rootfs,
            std::io::Error::from_raw_os_error(libc::ENOENT),
        ));
    }
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| Error::spec("process is missing"))?;
    let linux = spec.linux().as_ref();

    // Namespaces: new ones are clone flags, ones with a path are joined by the child (the
    // user namespace first: the others may belong to it).
    let mut clone_flags = CloneFlags::empty();
    let mut join = Vec::new();
    let mut ns_names = Vec::new();
    let mut cgroupns = false;
    for ns in linux
        .and_then(|l| l.namespaces().as_ref())
        .into_iter()
        .flatten()
    {
        let (flag, name) = ns_flag(ns.typ())?;
        if ns_names.iter().any(|n| n == name) {
            return Err(Error::spec(format!("the {name} namespace is given twice")));
        }
        match ns.path() {
            Some(p) if !p.as_os_str().is_empty() => {
                let fd = fs::File::open(p).map_err(|e| Error::io("open namespace", p, e))?;
                join.push((OwnedFd::from(fd), flag));
                // Joined namespaces are the container's too: `exec` must enter them.
                ns_names.push(name.to_string());
            }
            _ => {
                ns_names.push(name.to_string());
                if flag == CloneFlags::CLONE_NEWCGROUP {
                    cgroupns = true;
                } else {
                    clone_flags |= flag;
                }
            }
        }
    }
    join.sort_by_key(|(_, f)| *f != CloneFlags::CLONE_NEWUSER);
    let joined = |flag: CloneFlags| join.iter().any(|(_, f)| *f == flag);
    let join_userns = joined(CloneFlags::CLONE_NEWUSER);
    // With a joined user namespace, the new namespaces are made after joining it (so that
    // they belong to it), by unshare; a new pid namespace then needs one more fork, as a
    // pid namespace joined by path does.
    let late_unshare = if join_userns {
        std::mem::replace(&mut clone_flags, CloneFlags::empty())
    } else {
        CloneFlags::empty()
    };
    let fork_after_join =
        joined(CloneFlags::CLONE_NEWPID) || late_unshare.contains(CloneFlags::CLONE_NEWPID);
    let new_mntns = clone_flags.contains(CloneFlags::CLONE_NEWNS)
        || late_unshare.contains(CloneFlags::CLONE_NEWNS);
    let has_mntns = new_mntns || joined(CloneFlags::CLONE_NEWNS);
    let userns = clone_flags.contains(CloneFlags::CLONE_NEWUSER);
    let uts = ns_names.iter().any(|n| n == "uts");
    if spec.hostname().as_deref().is_some_and(|h| !h.is_empty()) && !uts {
        return Err(Error::spec(
            "hostname is set but the container has no UTS namespace",
        ));
    }
    let layout = CgroupLayout::detect()?;
    let mut plan = MountPlan::from_spec(
        spec,
        &rootfs,
        &cfg.rootfs_mounts,
        layout.mount_layout(),
        userns || join_userns,
    )?;
    if !has_mntns {
        refuse_mounts_without_mntns(spec, &cfg.rootfs_mounts)?;
        plan.no_mount_ns = true;
        plan.devices.clear();
    }
    let attrs = process_attrs(process, linux)?;
    let create_hooks: Vec<(HookKind, Vec<oci_spec::runtime::Hook>)> = [
        HookKind::Prestart,
        HookKind::CreateRuntime,
        HookKind::CreateContainer,
    ]
    .into_iter()
    .map(|k| (k, hooks::hooks_of(spec, k)))
    .filter(|(_, h)| !h.is_empty())
    .collect();
    let start_hooks = hooks::hooks_of(spec, HookKind::StartContainer);
    let proc_plan = ProcessPlan::from_spec(process, linux.and_then(|l| l.seccomp().as_ref()))?;
    if proc_plan.terminal && cfg.console.is_none() {
        return Err(Error::spec(
            "process.terminal is true but no console socket was given",
        ));
    }
    let sysctl: Vec<(PathBuf, String)> = linux
        .and_then(|l| l.sysctl().as_ref())
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            if k.contains('/') || k.split('.').any(|p| p.is_empty() || p == "..") {
                Err(Error::spec(format!("bad sysctl name {k:?}")))
            } else {
                Ok((Path::new("/proc/sys").join(k.replace('.', "/")), v.clone()))
            }
        })
        .collect::<Result<_>>()?;

    // From here on, everything made is undone on failure.
    if let Some(parent) = cfg.state_dir.parent() {
        fs::create_dir_all(parent).map_err(|e| Error::io("create", parent, e))?;
    }
    match fs::DirBuilder::new().mode(0o711).create(&cfg.state_dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(Error::AlreadyExists { id: cfg.id.clone() })
        }
        Err(e) => return Err(Error::io("create", &cfg.state_dir, e)),
    }
    let mut cleanup = Cleanup {
        state_dir: &cfg.state_dir,
        cgroup: None,
        child: None,
        armed: true,
    };
    let rel = cgroup_relative_path(linux.and_then(|l| l.cgroups_path().as_deref()), &cfg.id);
    let cgroup = Cgroup::create(&layout, &rel)?;
    cleanup.cgroup = Some(cgroup.clone());
    // Without a cgroup namespace, v1 shows the container its own cgroup directories (bind
    // mounts, as runc); v2 gets a cgroup2 mount as runc does.
    if !cgroupns {
        if let crate::mounts::CgroupMountLayout::V1 { hierarchies, .. } = layout.mount_layout() {
            plan.cgroup_binds = hierarchies
                .into_iter()
                .map(|(name, _)| name)
                .zip(cgroup.dirs.iter().cloned())
                .collect();
        }
    }
    // A v2 device program is loaded (~0.5 ms) while the init mounts, before it says go.
    let (warnings, devices) = match linux.and_then(|l| l.resources().as_ref()) {
        Some(res) => cgroup.apply_deferring_devices(res)?,
        None => (Vec::new(), None),
    };
    let config_path = cfg.state_dir.join(CONFIG_FILE);
    let config = serde_json::to_vec(spec).map_err(|source| Error::State {
        path: config_path.clone(),
        source,
    })?;
    fs::write(&config_path, config).map_err(|e| Error::io("write", &config_path, e))?;

    let fifo = if wait_for_start {
        let path = cfg.state_dir.join(FIFO_FILE);
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o622))
            .map_err(|e| Error::io("mkfifo", &path, e.into()))?;
        // Read-write, so opening never blocks; `start` writes the byte the init waits for.
        let f = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(&path)
            .map_err(|e| Error::io("open", &path, e))?;
        Some(OwnedFd::from(f))
    } else {
        None
    };
    let (sync_r, sync_w) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| Error::sys("pipe", e))?;
    // Without a user namespace the init moves itself into the v1 hierarchies (no global
    // lock, see `SelfJoin`) and sets its own oom_score_adj, and clone3 makes it in the v2
    // cgroup; only when clone3 could not (the fork() path), the parent moves it there while
    // it mounts (that waits for an RCU grace period) and then says go. With a user
    // namespace, the parent writes the id maps, the cgroup and oom_score_adj (the init may
    // not) and then says go.
    let self_join = (!userns).then(|| cgroup.self_join());
    let go =
        if userns || devices.is_some() || self_join.as_ref().is_some_and(|j| j.v2_dir.is_some()) {
            Some(nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| Error::sys("pipe", e))?)
        } else {
            None
        };
    let v2_fd = match self_join.as_ref().and_then(|j| j.v2_dir.as_ref()) {
        Some(d) => Some(OwnedFd::from(
            fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
                .open(d)
                .map_err(|e| Error::io("open", d, e))?,
        )),
        None => None,
    };
    let (console_child, console_parent) =
        super::console_ends(cfg.console.as_ref(), proc_plan.terminal)?;
    let pipe = || nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| Error::sys("pipe", e));
    let hook_pause = if create_hooks.is_empty() {
        None
    } else {
        Some(pipe()?)
    };
    let hook_state = if start_hooks.is_empty() {
        None
    } else {
        Some(pipe()?)
    };
    if fork_after_join {
        // The container's process is our grandchild: reparented to us when its parent
        // exits, so we can still wait for it.
        nix::sys::prctl::set_child_subreaper(true)
            .map_err(|e| Error::sys("become a child subreaper", e))?;
    }

    let ctx = InitContext {
        plan: &plan,
        process: &proc_plan,
        stdio: &cfg.stdio,
        hostname: spec.hostname().as_deref().filter(|h| !h.is_empty()),
        domainname: spec.domainname().as_deref().filter(|h| !h.is_empty()),
        join: &join,
        cgroupns,
        userns,
        new_netns: clone_flags.contains(CloneFlags::CLONE_NEWNET),
        go: go.as_ref().map(|(r, _)| r.as_fd()),
        cgroup_join: self_join.as_ref(),
        sync: sync_w.as_fd(),
        fifo: fifo.as_ref().map(|f| f.as_fd()),
        console: console_child.as_ref().map(|c| c.as_fd()),
        sysctl: &sysctl,
        late_unshare,
        fork_after_join,
        join_userns,
        hook_pause: hook_pause.as_ref().map(|(r, _)| r.as_fd()),
        start_hooks: &start_hooks,
        hook_state: hook_state.as_ref().map(|(r, _)| r.as_fd()),
        attrs: &attrs,
    };
    let (forked, in_v2) =
        crate::sys::fork_into_cgroup(clone_flags, v2_fd.as_ref().map(|f| f.as_fd()))
            .map_err(|e| Error::sys("clone", e))?;
    let mut pid = match forked {
        crate::sys::Forked::Child(unshare) => super::init::init_child(&ctx, unshare),
        crate::sys::Forked::Parent(pid) => pid,
    };
    cleanup.child = Some(pid);
    let hook_pause_w = hook_pause.map(|(r, w)| {
        drop(r);
        w
    });
    let hook_state_w = hook_state.map(|(r, w)| {
        drop(r);
        w
    });
    drop(sync_w);
    drop(fifo);
    drop(console_child);
    let ContainerConfig { stdio, .. } = cfg;
    drop(stdio);

    drop(v2_fd);
    if fork_after_join && !userns {
        // take_grandchild reaps the init: nothing to kill until the grandchild is known.
        cleanup.child = None;
        pid = take_grandchild(&sync_r, pid)?;
        cleanup.child = Some(pid);
    }
    if let Some((go_r, go_w)) = go {
        drop(go_r);
        if userns {
            super::expect_userns(&sync_r)?;
            write_id_maps(pid, spec)?;
            cgroup.add_pid(pid.as_raw())?;
            if let Some(adj) = proc_plan.oom_score_adj {
                let path = PathBuf::from(format!("/proc/{}/oom_score_adj", pid.as_raw()));
                fs::write(&path, adj.to_string()).map_err(|e| Error::io("write", &path, e))?;
            }
        } else if !in_v2 {
            if let Some(d) = self_join.as_ref().and_then(|j| j.v2_dir.as_ref()) {
                let procs = d.join("cgroup.procs");
                fs::write(&procs, pid.as_raw().to_string())
                    .map_err(|e| Error::io("write", &procs, e))?;
            }
        }
        if let Some(d) = &devices {
            d.attach()?;
        }
        fs::File::from(go_w)
            .write_all(b"1")
            .map_err(|e| Error::sys("signal init", e))?;
    }
    if fork_after_join && userns {
        // take_grandchild reaps the init: nothing to kill until the grandchild is known.
        cleanup.child = None;
        pid = take_grandchild(&sync_r, pid)?;
        cleanup.child = Some(pid);
    }
    let mut state = State {
        oci_version: spec.version().clone(),
        id: cfg.id.clone(),
        status: Status::Creating,
        pid: pid.as_raw(),
        bundle: cfg.bundle.clone(),
        rootfs,
        created: now_rfc3339(),
        owner: String::new(),
        annotations: spec.annotations().clone().unwrap_or_default(),
        pid_start_time: 0,
        cgroup: Some(cgroup.clone()),
        namespaces: ns_names,
    };
    if let Some(w) = hook_pause_w {
        expect_hook_pause(&sync_r)?;
        let json = hooks::oci_state(&state, "creating");
        let result = create_hooks.iter().try_for_each(|(kind, list)| {
            let open_ns = || {
                let mut names = state.namespaces.clone();
                // A user namespace is the container's as well when the parent made it.
                names.retain(|n| n != "user" || userns || join_userns);
                hooks::namespace_fds(pid.as_raw(), &names)
            };
            let ns: Option<&dyn Fn() -> Result<Vec<OwnedFd>>> = match kind {
                HookKind::CreateContainer => Some(&open_ns),
                _ => None,
            };
            hooks::run_hooks(*kind, list, &json, ns)
        });
        if let Err(e) = result {
            // The spec: stop the container, go on to delete (poststop hooks, warnings).
            drop(cleanup);
            let poststop = hooks::hooks_of(spec, HookKind::Poststop);
            hooks::run_hooks_warning(
                HookKind::Poststop,
                &poststop,
                &hooks::oci_state(&state, "stopped"),
            );
            return Err(e);
        }
        fs::File::from(w)
            .write_all(b"1")
            .map_err(|e| Error::sys("signal init after the create hooks", e))?;
    }
    if let Some(w) = hook_state_w {
        fs::File::from(w)
            .write_all(&hooks::oci_state(&state, "created"))
            .map_err(|e| Error::sys("send the state to the init", e))?;
    }
    let ready = read_sync(&sync_r)?;
    if ready != wait_for_start {
        return Err(Error::Init {
            step: "unexpected report from the container init".into(),
            source: std::io::Error::from_raw_os_error(libc::EPROTO),
        });
    }
    let pty_master = match console_parent {
        Some(sock) => Some(
            crate::pty::recv_fd(sock.as_fd())
                .map_err(|e| Error::sys("receive pty master", e))?
                .0,
        ),
        None => None,
    };
    let (start_time, _) = super::proc_start_time(pid.as_raw()).unwrap_or((0, 'R'));
    state.status = if wait_for_start {
        Status::Created
    } else {
        Status::Running
    };
    state.pid_start_time = start_time;
    let container = Container {
        state,
        state_dir: cfg.state_dir.clone(),
        sync: wait_for_start.then_some(sync_r),
        pty_master,
        is_child: true,
        warnings,
    };
    container.save()?;
    if let Some(p) = &cfg.pid_file {
        fs::write(p, pid.as_raw().to_string()).map_err(|e| Error::io("write pid file", p, e))?;
    }
    cleanup.armed = false;
    let mut container = container;
    if !wait_for_start {
        let poststart = hooks::hooks_of(spec, HookKind::Poststart);
        if !poststart.is_empty() {
            let w = hooks::run_hooks_warning(
                HookKind::Poststart,
                &poststart,
                &hooks::oci_state(&container.state, "running"),
            );
            container.warnings.extend(w);
        }
    }
    Ok(container)
}

/// Reads the pid of the container's process from the init that forked it after joining a
/// pid namespace (`P` + 4 bytes), and reaps that init.
fn take_grandchild(sync: &OwnedFd, child: nix::unistd::Pid) -> Result<nix::unistd::Pid> {
    let mut file = fs::File::from(
        sync.try_clone()
            .map_err(|e| Error::sys("dup sync pipe", e))?,
    );
    let mut b = [0u8; 1];
    let got = file
        .read(&mut b)
        .map_err(|e| Error::sys("read sync pipe", e))?;
    let _ = nix::sys::wait::waitpid(child, None);
    match (got, b[0]) {
        (1, b'P') => {
            let mut pid = [0u8; 4];
            file.read_exact(&mut pid)
                .map_err(|e| Error::sys("read sync pipe", e))?;
            Ok(nix::unistd::Pid::from_raw(i32::from_le_bytes(pid)))
        }
        (1, _) => {
            let mut rest = Vec::new();
            let _ = file.read_to_end(&mut rest);
            Err(super::init::decode_failure(&rest))
        }
        _ => Err(Error::Init {
            step: "container init died before forking into its pid namespace".into(),
            source: std::io::Error::from_raw_os_error(libc::EPIPE),
        }),
    }
}

/// Waits for the init to reach the create hooks' point (`H`), before `pivot_root`.
fn expect_hook_pause(sync: &OwnedFd) -> Result<()> {
    let mut file = fs::File::from(
        sync.try_clone()
            .map_err(|e| Error::sys("dup sync pipe", e))?,
    );
    let mut b = [0u8; 1];
    match file.read(&mut b) {
        Ok(1) if b[0] == b'H' => Ok(()),
        Ok(1) => {
            let mut rest = Vec::new();
            let _ = file.read_to_end(&mut rest);
            Err(super::init::decode_failure(&rest))
        }
        Ok(_) => Err(Error::Init {
            step: "container init died before the create hooks".into(),
            source: std::io::Error::from_raw_os_error(libc::EPIPE),
        }),
        Err(e) => Err(Error::sys("read sync pipe", e)),
    }
}

/// Without a mount namespace of its own the container shares the runtime's: mounting
/// anything would change the host's mounts, so a spec asking for mounts is refused.
fn refuse_mounts_without_mntns(spec: &Spec, rootfs_mounts: &[RootfsMount]) -> Result<()> {
    let linux = spec.linux().as_ref();
    let nonempty = |v: Option<&Vec<String>>| v.is_some_and(|v| !v.is_empty());
    let what = if spec.mounts().as_ref().is_some_and(|m| !m.is_empty()) {
        "mounts"
    } else if !rootfs_mounts.is_empty() {
        "rootfs mounts"
    } else if linux
        .and_then(|l| l.devices().as_ref())
        .is_some_and(|d| !d.is_empty())
    {
        "linux.devices"
    } else if nonempty(linux.and_then(|l| l.masked_paths().as_ref())) {
        "linux.maskedPaths"
    } else if nonempty(linux.and_then(|l| l.readonly_paths().as_ref())) {
        "linux.readonlyPaths"
    } else if spec.root().as_ref().and_then(|r| r.readonly()) == Some(true) {
        "a read-only root"
    } else {
        return Ok(());
    };
    Err(Error::spec(format!(
        "{what} need a mount namespace: the container has none of its own (it would change the host's mounts)"
    )))
}

fn write_id_maps(pid: nix::unistd::Pid, spec: &Spec) -> Result<()> {
    let linux = spec.linux().as_ref();
    for (file, maps) in [
        ("uid_map", linux.and_then(|l| l.uid_mappings().as_ref())),
        ("gid_map", linux.and_then(|l| l.gid_mappings().as_ref())),
    ] {
        let text: String = maps
            .into_iter()
            .flatten()
            .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
            .collect();
        if text.is_empty() {
            return Err(Error::spec(format!(
                "a user namespace needs {file} entries"
            )));
        }
        let path = PathBuf::from(format!("/proc/{}/{file}", pid.as_raw()));
        fs::write(&path, text).map_err(|e| Error::io("write", &path, e))?;
    }
    Ok(())
}

/// The current time as RFC 3339 with nanoseconds, UTC.
pub(crate) fn now_rfc3339() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        now.subsec_nanos()
    )
}

/// The process attributes of the spec that the init sets right before the exec, or a clear
/// refusal of what this host cannot do (never ignored).
fn process_attrs(
    process: &oci_spec::runtime::Process,
    linux: Option<&oci_spec::runtime::Linux>,
) -> Result<ProcessAttrs> {
    use oci_spec::runtime::{
        IOPriorityClass, LinuxPersonalityDomain, LinuxSchedulerFlag, LinuxSchedulerPolicy,
    };
    let mut attrs = ProcessAttrs::default();
    if let Some(p) = linux.and_then(|l| l.personality().as_ref()) {
        if p.flags().as_ref().is_some_and(|f| !f.is_empty()) {
            return Err(Error::unsupported(
                "linux.personality.flags (only the domain LINUX or LINUX32 is supported)",
            ));
        }
        attrs.personality = Some(match p.domain() {
            LinuxPersonalityDomain::PerLinux => 0x0000,
            LinuxPersonalityDomain::PerLinux32 => 0x0008,
        });
    }
    if let Some(rdt) = linux.and_then(|l| l.intel_rdt().as_ref()) {
        let _ = rdt;
        let mounted = fs::read_to_string("/proc/self/mountinfo")
            .map(|m| m.lines().any(|l| l.contains(" - resctrl ")))
            .unwrap_or(false);
        return Err(Error::unsupported(if mounted {
            "linux.intelRdt: resctrl groups are not supported by berth's runtime"
        } else {
            "linux.intelRdt: this host has no resctrl file system mounted at /sys/fs/resctrl (Intel RDT)"
        }));
    }
    if let Some(io) = process.io_priority() {
        let class = match io.class() {
            IOPriorityClass::IoprioClassRt => 1,
            IOPriorityClass::IoprioClassBe => 2,
            IOPriorityClass::IoprioClassIdle => 3,
        };
        let level = io.priority();
        if !(0..=7).contains(&level) {
            return Err(Error::spec(format!(
                "process.ioPriority.priority {level} is not between 0 and 7"
            )));
        }
        attrs.io_priority = Some((class, level as u32));
    }
    if let Some(s) = process.scheduler() {
        let policy = match s.policy() {
            LinuxSchedulerPolicy::SchedOther => libc::SCHED_OTHER,
            LinuxSchedulerPolicy::SchedFifo => libc::SCHED_FIFO,
            LinuxSchedulerPolicy::SchedRr => libc::SCHED_RR,
            LinuxSchedulerPolicy::SchedBatch => libc::SCHED_BATCH,
            LinuxSchedulerPolicy::SchedIdle => libc::SCHED_IDLE,
            LinuxSchedulerPolicy::SchedDeadline => 6,
            LinuxSchedulerPolicy::SchedIso => {
                return Err(Error::unsupported(
                    "process.scheduler.policy SCHED_ISO does not exist in Linux",
                ))
            }
        };
        let mut flags = 0u64;
        for f in s.flags().iter().flatten() {
            flags |= match f {
                LinuxSchedulerFlag::SchedResetOnFork => 0x01,
                LinuxSchedulerFlag::SchedFlagReclaim => 0x02,
                LinuxSchedulerFlag::SchedFlagDLOverrun => 0x04,
                LinuxSchedulerFlag::SchedFlagKeepPolicy => 0x08,
                LinuxSchedulerFlag::SchedFlagKeepParams => 0x10,
                LinuxSchedulerFlag::SchedFlagUtilClampMin => 0x20,
                LinuxSchedulerFlag::SchedFlagUtilClampMax => 0x40,
            };
        }
        attrs.scheduler = Some(crate::sys::SchedAttr {
            size: 0,
            policy: policy as u32,
            flags,
            nice: s.nice().unwrap_or(0),
            priority: u32::try_from(s.priority().unwrap_or(0))
                .map_err(|_| Error::spec("process.scheduler.priority is negative"))?,
            runtime: s.runtime().unwrap_or(0),
            deadline: s.deadline().unwrap_or(0),
            period: s.period().unwrap_or(0),
        });
    }
    if let Some(profile) = process
        .apparmor_profile()
        .as_deref()
        .filter(|p| !p.is_empty())
    {
        let enabled = fs::read_to_string("/sys/module/apparmor/parameters/enabled")
            .map(|s| s.trim() == "Y")
            .unwrap_or(false);
        if !enabled {
            return Err(Error::unsupported(format!(
                "process.apparmorProfile {profile:?}: AppArmor is not enabled on this host"
            )));
        }
        attrs.lsm_exec.push(("exec", format!("exec {profile}")));
    }
    if let Some(label) = process.selinux_label().as_deref().filter(|l| !l.is_empty()) {
        if !Path::new("/sys/fs/selinux/enforce").exists() {
            return Err(Error::unsupported(format!(
                "process.selinuxLabel {label:?}: SELinux is not enabled on this host"
            )));
        }
        attrs.lsm_exec.push(("exec", label.to_string()));
    }
    Ok(attrs)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn spec_with(patch: serde_json::Value) -> Spec {
        let mut v = serde_json::to_value(crate::spec::default_spec(&["true"])).unwrap();
        for (section, fields) in patch.as_object().unwrap() {
            for (k, val) in fields.as_object().unwrap() {
                v[section][k] = val.clone();
            }
        }
        serde_json::from_value(v).unwrap()
    }

    fn attrs(patch: serde_json::Value) -> Result<ProcessAttrs> {
        let spec = spec_with(patch);
        process_attrs(spec.process().as_ref().unwrap(), spec.linux().as_ref())
    }

    #[test]
    fn process_attributes_are_planned_or_refused_by_name() {
        let a = attrs(serde_json::json!({
            "linux": {"personality": {"domain": "LINUX32"}},
            "process": {"ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 4},
                        "scheduler": {"policy": "SCHED_FIFO", "priority": 10}},
        }))
        .unwrap();
        assert_eq!(a.personality, Some(8));
        assert_eq!(a.io_priority, Some((2, 4)));
        let s = a.scheduler.unwrap();
        assert_eq!((s.policy, s.priority), (libc::SCHED_FIFO as u32, 10));
        let err = |p| {
            attrs(p)
                .err()
                .map(|e: Error| e.to_string())
                .unwrap_or_default()
        };
        assert!(
            err(serde_json::json!({"linux": {"intelRdt": {"closID": "x"}}}))
                .contains("linux.intelRdt")
        );
        assert!(err(
            serde_json::json!({"linux": {"personality": {"domain": "LINUX", "flags": ["X"]}}})
        )
        .contains("personality.flags"));
        assert!(err(serde_json::json!({"process": {"ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 9}}}))
            .contains("between 0 and 7"));
    }

    #[test]
    fn mounts_without_a_mount_namespace_are_refused() {
        let spec = crate::spec::default_spec(&["true"]);
        let e = refuse_mounts_without_mntns(&spec, &[]).unwrap_err();
        assert!(
            e.to_string().contains("mounts need a mount namespace"),
            "{e}"
        );
        let spec = spec_with(serde_json::json!({
            "linux": {"maskedPaths": [], "readonlyPaths": []},
        }));
        let mut spec = spec;
        spec.set_mounts(Some(vec![]));
        refuse_mounts_without_mntns(&spec, &[]).unwrap();
    }
}
