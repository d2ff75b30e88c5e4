//! `exec`: run another process in a running container: join its namespaces and cgroup, then
//! apply the process's user, capabilities, seccomp, env and cwd like the init does.

use std::fs;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;

use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::unistd::Pid;
use oci_spec::runtime::{Process, Spec};

use super::init::report_failure;
use super::{read_sync, Container, ExitStatus, Op, CONFIG_FILE};
use crate::error::{Error, Result};
use crate::mounts::InitFailure;
use crate::process::{Console, ProcessPlan, Stdio};

/// A process started by [`Container::exec`]; it is a child of the caller.
#[derive(Debug)]
pub struct ExecProcess {
    /// Host pid.
    pub pid: Pid,
    /// The pty master when the process has a terminal and [`Console::Return`] was asked.
    pub pty_master: Option<OwnedFd>,
}

impl ExecProcess {
    /// Waits for the process to exit.
    pub fn wait(&self) -> Result<ExitStatus> {
        use nix::sys::wait::{waitpid, WaitStatus};
        loop {
            match waitpid(self.pid, None) {
                Ok(WaitStatus::Exited(_, code)) => return Ok(ExitStatus { code, signal: None }),
                Ok(WaitStatus::Signaled(_, sig, _)) => {
                    return Ok(ExitStatus {
                        code: 128 + sig as i32,
                        signal: Some(sig as i32),
                    })
                }
                Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(Error::sys("wait for exec process", e)),
            }
        }
    }
}

const NS_ORDER: [(&str, CloneFlags); 6] = [
    ("user", CloneFlags::CLONE_NEWUSER),
    ("ipc", CloneFlags::CLONE_NEWIPC),
    ("uts", CloneFlags::CLONE_NEWUTS),
    ("net", CloneFlags::CLONE_NEWNET),
    ("cgroup", CloneFlags::CLONE_NEWCGROUP),
    ("mnt", CloneFlags::CLONE_NEWNS),
];

impl Container {
    /// Runs `process` inside the running container. The calling thread briefly enters the
    /// container's pid namespace for children (and leaves it again) so that the new process
    /// is both inside it and a child of the caller.
    pub fn exec(
        &mut self,
        process: &Process,
        stdio: Stdio,
        console: Option<Console>,
    ) -> Result<ExecProcess> {
        self.check(Op::Exec, "exec")?;
        let config = self.state_dir.join(CONFIG_FILE);
        let spec = Spec::load(&config)
            .map_err(|e| Error::io("read", &config, std::io::Error::other(e.to_string())))?;
        let seccomp = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref());
        let plan = ProcessPlan::from_spec(process, seccomp)?;
        if plan.terminal && console.is_none() {
            return Err(Error::spec(
                "process.terminal is true but no console was given",
            ));
        }
        let pid = self.state.pid;
        let mut join: Vec<(OwnedFd, CloneFlags)> = Vec::new();
        for (name, flag) in NS_ORDER {
            if self.state.namespaces.iter().any(|n| n == name) {
                let p = format!("/proc/{pid}/ns/{name}");
                let f = fs::File::open(&p).map_err(|e| Error::io("open namespace", &p, e))?;
                join.push((OwnedFd::from(f), flag));
            }
        }
        let (sync_r, sync_w) =
            nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| Error::sys("pipe", e))?;
        let (console_child, console_parent) = super::console_ends(console.as_ref(), plan.terminal)?;
        let in_pidns = self.state.namespaces.iter().any(|n| n == "pid");
        let own_pidns = if in_pidns {
            let target = fs::File::open(format!("/proc/{pid}/ns/pid"))
                .map_err(|e| Error::io("open namespace", format!("/proc/{pid}/ns/pid"), e))?;
            let own = fs::File::open("/proc/thread-self/ns/pid_for_children").map_err(|e| {
                Error::io("open namespace", "/proc/thread-self/ns/pid_for_children", e)
            })?;
            nix::sched::setns(&target, CloneFlags::CLONE_NEWPID)
                .map_err(|e| Error::sys("enter pid namespace", e))?;
            Some(own)
        } else {
            None
        };
        // The child moves itself into the cgroup (`SelfJoin`: no global lock), born in the
        // v2 directory when clone3 can do that.
        let cgroup_join = self.state.cgroup.as_ref().map(|cg| cg.self_join());
        let v2_fd = cgroup_join
            .as_ref()
            .and_then(|j| j.v2_dir.as_ref())
            .and_then(|d| {
                fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
                    .open(d)
                    .ok()
            })
            .map(OwnedFd::from);
        let forked =
            crate::sys::fork_into_cgroup(CloneFlags::empty(), v2_fd.as_ref().map(|f| f.as_fd()));
        if let Ok((crate::sys::Forked::Child(_), in_v2)) = forked {
            let failure = exec_child(
                (cgroup_join.as_ref(), in_v2),
                &join,
                &plan,
                &stdio,
                console_child.as_ref().map(|c| c.as_fd()),
                sync_w.as_fd(),
            );
            report_failure(sync_w.as_fd(), &failure);
            crate::sys::exit_now(1);
        }
        if let Some(own) = own_pidns {
            nix::sched::setns(&own, CloneFlags::CLONE_NEWPID)
                .map_err(|e| Error::sys("leave pid namespace", e))?;
        }
        drop(v2_fd);
        let child = match forked.map_err(|e| Error::sys("clone", e))?.0 {
            crate::sys::Forked::Parent(pid) => pid,
            crate::sys::Forked::Child(_) => Pid::from_raw(0),
        };
        drop(sync_w);
        drop(console_child);
        drop(stdio);
        if let Err(e) = read_sync(&sync_r) {
            let _ = nix::sys::wait::waitpid(child, None);
            return Err(e);
        }
        let pty_master = match console_parent {
            Some(sock) => Some(
                crate::pty::recv_fd(sock.as_fd())
                    .map_err(|e| Error::sys("receive pty master", e))?
                    .0,
            ),
            None => None,
        };
        Ok(ExecProcess {
            pid: child,
            pty_master,
        })
    }
}

fn exec_child(
    (cgroup_join, in_v2): (Option<&crate::cgroups::SelfJoin>, bool),
    join: &[(OwnedFd, CloneFlags)],
    plan: &ProcessPlan,
    stdio: &Stdio,
    console: Option<std::os::fd::BorrowedFd<'_>>,
    sync: std::os::fd::BorrowedFd<'_>,
) -> InitFailure {
    use std::os::fd::AsRawFd;
    let mut keep = vec![0, 1, 2, sync.as_raw_fd()];
    keep.extend(console.map(|f| f.as_raw_fd()));
    keep.extend(join.iter().map(|(f, _)| f.as_raw_fd()));
    for fd in [&stdio.stdin, &stdio.stdout, &stdio.stderr]
        .into_iter()
        .flatten()
    {
        keep.push(fd.as_raw_fd());
    }
    if let Err(e) = crate::sys::close_fds_except(&keep) {
        return InitFailure::new("close inherited descriptors", e);
    }
    if let Some(j) = cgroup_join {
        if let Err(e) = j.join(in_v2) {
            return InitFailure::new(e.to_string(), std::io::Error::from_raw_os_error(libc::EIO));
        }
    }
    for (fd, flag) in join {
        if let Err(e) = nix::sched::setns(fd, *flag) {
            return InitFailure::new(format!("join namespace {flag:?}"), e.into());
        }
    }
    if let Err(f) = plan.setup_io(stdio, console, true) {
        return f;
    }
    if let Err(e) = crate::sys::close_fds_except(&[0, 1, 2, sync.as_raw_fd()]) {
        return InitFailure::new("close inherited descriptors", e);
    }
    plan.apply_and_exec(sync, || {
        super::init::write_all(sync, b"X");
        Ok(())
    })
}
