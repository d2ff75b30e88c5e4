//! The container's init: what the cloned child does, in order, until it execs the command.
//! Failures are reported to the parent on the sync pipe as `E`, errno, step; readiness (for
//! `create`) as `R`; "about to exec" as `X`. A failed exec of the command is reported in the
//! same format by the exec stub (`sys/exec_stub.rs`), which holds the pipe until its exec.

use std::io::Read;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;

use nix::sched::CloneFlags;

use crate::error::Error;
use crate::mounts::{InitFailure, MountPlan};
use crate::process::{ProcessPlan, Stdio};
use crate::syscalls::{LinuxSyscalls, Syscalls};

/// Everything the child needs, borrowed from the parent's stack before clone.
pub(crate) struct InitContext<'a> {
    pub plan: &'a MountPlan,
    pub process: &'a ProcessPlan,
    pub stdio: &'a Stdio,
    pub hostname: Option<&'a str>,
    pub domainname: Option<&'a str>,
    pub join: &'a [(OwnedFd, CloneFlags)],
    pub cgroupns: bool,
    pub userns: bool,
    /// The container has a network namespace of its own: bring its loopback up.
    pub new_netns: bool,
    /// The parent writes one byte here once it has written the id mappings and moved the
    /// init into its cgroup (user namespace), or moved it into the v2 cgroup (when clone3
    /// could not make it there).
    pub go: Option<BorrowedFd<'a>>,
    /// Without a user namespace: the init moves itself into its cgroup's v1 hierarchies,
    /// first thing.
    pub cgroup_join: Option<&'a crate::cgroups::SelfJoin>,
    pub sync: BorrowedFd<'a>,
    pub fifo: Option<BorrowedFd<'a>>,
    pub console: Option<BorrowedFd<'a>>,
    pub sysctl: &'a [(PathBuf, String)],
    /// Namespaces unshared after the joins (with a user namespace joined by path, the new
    /// ones must belong to it).
    pub late_unshare: CloneFlags,
    /// Fork once more after the joins (a pid namespace joined by path, or made after a
    /// joined user namespace, holds only children): the child goes on as the container's
    /// process, this one reports its pid (`P` + 4 bytes) and exits.
    pub fork_after_join: bool,
    /// A user namespace was joined by path: become its root after the joins.
    pub join_userns: bool,
    /// OCI `prestart`/`createRuntime`/`createContainer` hooks: before `pivot_root`, write
    /// `H` and wait for one byte here while the parent runs them.
    pub hook_pause: Option<BorrowedFd<'a>>,
    /// OCI `startContainer` hooks, run before the exec with the state read from `hook_state`
    /// (the parent writes it once it knows the pid).
    pub start_hooks: &'a [oci_spec::runtime::Hook],
    pub hook_state: Option<BorrowedFd<'a>>,
    /// Personality, I/O priority, scheduler, LSM labels.
    pub attrs: &'a ProcessAttrs,
}

/// Process attributes set right before the exec, inherited by the command.
#[derive(Debug, Default)]
pub(crate) struct ProcessAttrs {
    /// `personality(2)` persona.
    pub personality: Option<libc::c_ulong>,
    /// (class, level) for `ioprio_set`.
    pub io_priority: Option<(u32, u32)>,
    pub scheduler: Option<crate::sys::SchedAttr>,
    /// (file under /proc/self/attr, value): AppArmor's `exec PROFILE`, SELinux's label.
    pub lsm_exec: Vec<(&'static str, String)>,
}

impl ProcessAttrs {
    fn apply(&self) -> Result<(), InitFailure> {
        if let Some(p) = self.personality {
            crate::sys::set_personality(p).map_err(|e| InitFailure::new("set personality", e))?;
        }
        if let Some((class, level)) = self.io_priority {
            crate::sys::set_io_priority(class, level)
                .map_err(|e| InitFailure::new("set I/O priority", e))?;
        }
        if let Some(attr) = &self.scheduler {
            crate::sys::sched_setattr(attr).map_err(|e| InitFailure::new("set scheduler", e))?;
        }
        for (file, value) in &self.lsm_exec {
            let path = format!("/proc/self/attr/{file}");
            std::fs::write(&path, value)
                .map_err(|e| InitFailure::new(format!("write {path}"), e))?;
        }
        Ok(())
    }
}

pub(crate) fn write_all(fd: BorrowedFd<'_>, data: &[u8]) {
    let mut off = 0;
    while off < data.len() {
        match nix::unistd::write(fd, &data[off..]) {
            Ok(n) if n > 0 => off += n,
            Err(nix::errno::Errno::EINTR) => continue,
            _ => return,
        }
    }
}

/// Runs in the child after clone; never returns.
pub(crate) fn init_child(ctx: &InitContext<'_>, unshare: CloneFlags) -> ! {
    let failure = match init_steps(ctx, unshare) {
        Ok(never) => match never {},
        Err(f) => f,
    };
    report_failure(ctx.sync, &failure);
    crate::sys::exit_now(1)
}

pub(crate) fn report_failure(sync: BorrowedFd<'_>, failure: &InitFailure) {
    let mut msg = vec![b'E'];
    msg.extend_from_slice(
        &failure
            .error
            .raw_os_error()
            .unwrap_or(libc::EIO)
            .to_le_bytes(),
    );
    msg.extend_from_slice(failure.step.as_bytes());
    write_all(sync, &msg);
}

/// Turns a failure record (after the `E`) into the crate's error.
pub(crate) fn decode_failure(rest: &[u8]) -> Error {
    if rest.len() < 4 {
        return Error::Init {
            step: "container init failed without a report".into(),
            source: std::io::Error::from_raw_os_error(libc::EIO),
        };
    }
    let errno = i32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
    let step = String::from_utf8_lossy(&rest[4..]).into_owned();
    if let Some(path) = step.strip_prefix("exec-not-found ") {
        return Error::CommandNotFound {
            path: path.to_string(),
        };
    }
    if let Some(path) = step.strip_prefix("exec-not-executable ") {
        return Error::CommandNotExecutable {
            path: path.to_string(),
        };
    }
    Error::Init {
        step,
        source: std::io::Error::from_raw_os_error(errno),
    }
}

fn init_steps(
    ctx: &InitContext<'_>,
    unshare: CloneFlags,
) -> Result<std::convert::Infallible, InitFailure> {
    let sys = LinuxSyscalls;
    // Only what the init needs: the caller's other descriptors (other containers' pipes,
    // when the caller is multi-threaded) must not be held here.
    let mut keep = vec![0, 1, 2, ctx.sync.as_raw_fd()];
    keep.extend(ctx.go.map(|f| f.as_raw_fd()));
    keep.extend(ctx.fifo.map(|f| f.as_raw_fd()));
    keep.extend(ctx.console.map(|f| f.as_raw_fd()));
    keep.extend(ctx.join.iter().map(|(f, _)| f.as_raw_fd()));
    keep.extend(ctx.hook_pause.map(|f| f.as_raw_fd()));
    keep.extend(ctx.hook_state.map(|f| f.as_raw_fd()));
    for fd in [&ctx.stdio.stdin, &ctx.stdio.stdout, &ctx.stdio.stderr]
        .into_iter()
        .flatten()
    {
        keep.push(fd.as_raw_fd());
    }
    crate::sys::close_fds_except(&keep)
        .map_err(|e| InitFailure::new("close inherited descriptors", e))?;
    if let Some(join) = ctx.cgroup_join {
        // The v2 directory: clone3 made us there, or the parent moves us while we mount.
        join.join(true).map_err(|e| {
            let errno = match &e {
                crate::cgroups::CgroupError::Io { source, .. } => source.raw_os_error(),
                _ => None,
            };
            InitFailure::new(
                e.to_string(),
                std::io::Error::from_raw_os_error(errno.unwrap_or(libc::EIO)),
            )
        })?;
    }
    // Without a user namespace the init sets its own oom_score_adj (the parent does not),
    // through the host's /proc while it still sees it.
    if let Some(adj) = ctx.process.oom_score_adj.filter(|_| !ctx.userns) {
        sys.write_file(
            std::path::Path::new("/proc/self/oom_score_adj"),
            &adj.to_string(),
        )
        .map_err(|e| InitFailure::new("write oom_score_adj", e))?;
    }
    if !unshare.is_empty() {
        sys.unshare(unshare)
            .map_err(|e| InitFailure::new("unshare namespaces", e))?;
    }
    if ctx.userns {
        // The parent writes our id mappings once it reads this.
        write_all(ctx.sync, b"U");
    }
    let wait_go = || -> Result<(), InitFailure> {
        if let Some(fd) = ctx.go {
            let mut b = [0u8; 1];
            let mut f = std::fs::File::from(
                fd.try_clone_to_owned()
                    .map_err(|e| InitFailure::new("dup", e))?,
            );
            f.read_exact(&mut b)
                .map_err(|e| InitFailure::new("wait for the parent to set up the cgroup", e))?;
        }
        Ok(())
    };
    if ctx.userns {
        // Nothing privileged works in the new user namespace before the mappings exist.
        wait_go()?;
        nix::unistd::setresgid(0.into(), 0.into(), 0.into())
            .map_err(|e| InitFailure::new("become root in user namespace", e.into()))?;
        nix::unistd::setresuid(0.into(), 0.into(), 0.into())
            .map_err(|e| InitFailure::new("become root in user namespace", e.into()))?;
    }
    for (fd, flag) in ctx.join {
        nix::sched::setns(fd, *flag)
            .map_err(|e| InitFailure::new(format!("join namespace {flag:?}"), e.into()))?;
    }
    if ctx.join_userns {
        nix::unistd::setresgid(0.into(), 0.into(), 0.into())
            .map_err(|e| InitFailure::new("become root in the joined user namespace", e.into()))?;
        nix::unistd::setresuid(0.into(), 0.into(), 0.into())
            .map_err(|e| InitFailure::new("become root in the joined user namespace", e.into()))?;
    }
    if !ctx.late_unshare.is_empty() {
        sys.unshare(ctx.late_unshare)
            .map_err(|e| InitFailure::new("unshare namespaces", e))?;
    }
    if ctx.fork_after_join {
        match crate::sys::clone_fork(CloneFlags::empty()) {
            Ok(None) => {}
            Ok(Some(pid)) => {
                let mut msg = vec![b'P'];
                msg.extend_from_slice(&pid.as_raw().to_le_bytes());
                write_all(ctx.sync, &msg);
                crate::sys::exit_now(0)
            }
            Err(e) => return Err(InitFailure::new("fork into the joined pid namespace", e)),
        }
    }
    if ctx.new_netns {
        crate::sys::loopback_up().map_err(|e| InitFailure::new("bring up lo", e))?;
    }
    nix::sys::stat::umask(nix::sys::stat::Mode::empty());
    if let Some(h) = ctx.hostname {
        sys.sethostname(h)
            .map_err(|e| InitFailure::new(format!("sethostname {h}"), e))?;
    }
    if let Some(d) = ctx.domainname {
        sys.setdomainname(d)
            .map_err(|e| InitFailure::new(format!("setdomainname {d}"), e))?;
    }
    // The parent may be moving us into the cgroup while we mount (a user namespace, or the
    // v2 cgroup on the fork() path); the cgroup namespace and the cgroup mounts come after
    // that.
    ctx.plan.setup_rootfs_hooked(
        &sys,
        || {
            if !ctx.userns {
                wait_go()?;
            }
            if ctx.cgroupns {
                sys.unshare(CloneFlags::CLONE_NEWCGROUP)
                    .map_err(|e| InitFailure::new("unshare cgroup namespace", e))?;
            }
            Ok(())
        },
        || match ctx.hook_pause {
            Some(fd) => {
                write_all(ctx.sync, b"H");
                let mut b = [0u8; 1];
                let mut f = std::fs::File::from(
                    fd.try_clone_to_owned()
                        .map_err(|e| InitFailure::new("dup", e))?,
                );
                f.read_exact(&mut b)
                    .map_err(|e| InitFailure::new("wait for the create hooks", e))
            }
            None => Ok(()),
        },
    )?;
    // Sysctls before /proc/sys turns read-only (the spec's readonlyPaths), as runc orders them.
    for (path, value) in ctx.sysctl {
        sys.write_file(path, value)
            .map_err(|e| InitFailure::new(format!("write {}", path.display()), e))?;
    }
    ctx.plan.finish_rootfs(&sys)?;
    ctx.process.setup_io(ctx.stdio, ctx.console, false)?;
    ctx.attrs.apply()?;
    // From here on the container's process holds 0, 1 and 2 (and our pipes, closed on exec).
    let mut keep = vec![0, 1, 2, ctx.sync.as_raw_fd()];
    keep.extend(ctx.fifo.map(|f| f.as_raw_fd()));
    keep.extend(ctx.hook_state.map(|f| f.as_raw_fd()));
    crate::sys::close_fds_except(&keep)
        .map_err(|e| InitFailure::new("close inherited descriptors", e))?;
    let sync = ctx.sync;
    let fifo = ctx.fifo;
    let start_hooks = ctx.start_hooks;
    let hook_state = ctx.hook_state;
    Err(ctx.process.apply_and_exec(sync, move || {
        // The state is read before waiting for start: the parent writes it before it
        // returns from create.
        let state = match hook_state {
            Some(fd) => read_to_end(fd)
                .map_err(|e| InitFailure::new("read the state for the startContainer hooks", e))?,
            None => Vec::new(),
        };
        let r = wait_start(sync, fifo).and_then(|()| {
            crate::hooks::run_hooks(
                crate::hooks::HookKind::StartContainer,
                start_hooks,
                &state,
                None,
            )
            .map_err(|e| {
                InitFailure::new(
                    e.to_string(),
                    std::io::Error::from_raw_os_error(libc::ECANCELED),
                )
            })
        });
        // "About to exec": end of file after this means the exec happened.
        if r.is_ok() {
            write_all(sync, b"X");
        }
        r
    }))
}

fn read_to_end(fd: BorrowedFd<'_>) -> std::io::Result<Vec<u8>> {
    let mut f = std::fs::File::from(fd.try_clone_to_owned()?);
    let mut out = Vec::new();
    f.read_to_end(&mut out)?;
    Ok(out)
}

fn wait_start(sync: BorrowedFd<'_>, fifo: Option<BorrowedFd<'_>>) -> Result<(), InitFailure> {
    {
        if let Some(fifo) = fifo {
            write_all(sync, b"R");
            let mut b = [0u8; 1];
            loop {
                match nix::unistd::read(fifo.as_raw_fd(), &mut b) {
                    Ok(1) => break,
                    Err(nix::errno::Errno::EINTR) => continue,
                    Ok(_) => {
                        return Err(InitFailure::new(
                            "wait for start",
                            std::io::Error::from_raw_os_error(libc::EPIPE),
                        ))
                    }
                    Err(e) => return Err(InitFailure::new("wait for start", e.into())),
                }
            }
        }
        Ok(())
    }
}
