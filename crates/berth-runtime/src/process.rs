//! The container process's own settings (user, capabilities, rlimits, seccomp, terminal,
//! env, cwd), prepared in the parent ([`ProcessPlan::from_spec`]) and applied in the child
//! right before `execve`.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use caps::{CapSet, CapsHashSet};
use nix::sys::resource::Resource;
use nix::unistd::{Gid, Uid};
use oci_spec::runtime::{Capabilities, PosixRlimitType, Process};

use crate::error::{Error, Result};
use crate::mounts::InitFailure;
use crate::seccomp::SeccompProgram;

/// Where the container's stdio goes. `None` keeps the caller's descriptor.
#[derive(Debug, Default)]
pub struct Stdio {
    /// Standard input.
    pub stdin: Option<OwnedFd>,
    /// Standard output.
    pub stdout: Option<OwnedFd>,
    /// Standard error.
    pub stderr: Option<OwnedFd>,
}

/// Where the master side of the container's pty goes when `process.terminal` is true.
#[derive(Debug, Clone)]
pub enum Console {
    /// Sent over this unix socket (runc's `--console-socket` protocol: one message whose
    /// SCM_RIGHTS carries the master and whose payload is the pty's name).
    Socket(PathBuf),
    /// Returned to the caller ([`crate::Container::take_pty_master`]).
    Return,
}

/// Capability sets to install, as `caps` sets.
#[derive(Debug, Clone, Default)]
pub struct CapsPlan {
    bounding: CapsHashSet,
    effective: CapsHashSet,
    permitted: CapsHashSet,
    inheritable: CapsHashSet,
    ambient: CapsHashSet,
}

fn to_caps(set: Option<&Capabilities>) -> Result<CapsHashSet> {
    let mut out = CapsHashSet::new();
    for c in set.into_iter().flatten() {
        let name = serde_json::to_value(c)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        let cap: caps::Capability = name
            .parse()
            .map_err(|_| Error::spec(format!("unknown capability {name:?}")))?;
        out.insert(cap);
    }
    Ok(out)
}

fn rlimit_resource(t: PosixRlimitType) -> Resource {
    match t {
        PosixRlimitType::RlimitCpu => Resource::RLIMIT_CPU,
        PosixRlimitType::RlimitFsize => Resource::RLIMIT_FSIZE,
        PosixRlimitType::RlimitData => Resource::RLIMIT_DATA,
        PosixRlimitType::RlimitStack => Resource::RLIMIT_STACK,
        PosixRlimitType::RlimitCore => Resource::RLIMIT_CORE,
        PosixRlimitType::RlimitRss => Resource::RLIMIT_RSS,
        PosixRlimitType::RlimitNproc => Resource::RLIMIT_NPROC,
        PosixRlimitType::RlimitNofile => Resource::RLIMIT_NOFILE,
        PosixRlimitType::RlimitMemlock => Resource::RLIMIT_MEMLOCK,
        PosixRlimitType::RlimitAs => Resource::RLIMIT_AS,
        PosixRlimitType::RlimitLocks => Resource::RLIMIT_LOCKS,
        PosixRlimitType::RlimitSigpending => Resource::RLIMIT_SIGPENDING,
        PosixRlimitType::RlimitMsgqueue => Resource::RLIMIT_MSGQUEUE,
        PosixRlimitType::RlimitNice => Resource::RLIMIT_NICE,
        PosixRlimitType::RlimitRtprio => Resource::RLIMIT_RTPRIO,
        PosixRlimitType::RlimitRttime => Resource::RLIMIT_RTTIME,
    }
}

/// Clamps a requested rlimit to what an unprivileged raise allows: the hard limit never goes
/// above the current hard limit (CAP_SYS_RESOURCE may be missing), the soft never above hard.
pub fn clamp_rlimit(soft: u64, hard: u64, current_hard: u64) -> (u64, u64) {
    let hard = hard.min(current_hard);
    (soft.min(hard), hard)
}

/// Everything about the process, ready for the child.
#[derive(Debug)]
pub struct ProcessPlan {
    pub(crate) args: Vec<CString>,
    pub(crate) env: Vec<CString>,
    pub(crate) path_env: String,
    pub(crate) cwd: PathBuf,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) additional_gids: Vec<u32>,
    pub(crate) umask: u32,
    pub(crate) caps: Option<CapsPlan>,
    pub(crate) rlimits: Vec<(Resource, u64, u64)>,
    pub(crate) no_new_privs: bool,
    pub(crate) seccomp: Option<SeccompProgram>,
    pub(crate) oom_score_adj: Option<i32>,
    pub(crate) terminal: bool,
    pub(crate) console_size: Option<(u16, u16)>,
}

fn cstring(s: &str, what: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::spec(format!("{what} contains a NUL byte: {s:?}")))
}

impl ProcessPlan {
    /// Prepares `process` (with the container's seccomp section) for the child.
    pub fn from_spec(
        process: &Process,
        seccomp: Option<&oci_spec::runtime::LinuxSeccomp>,
    ) -> Result<ProcessPlan> {
        let args = process.args().clone().unwrap_or_default();
        if args.is_empty() || args[0].is_empty() {
            return Err(Error::spec("process.args is empty"));
        }
        let env = process.env().clone().unwrap_or_default();
        let path_env = env
            .iter()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
            .to_string();
        if !process.cwd().is_absolute() {
            return Err(Error::spec(format!(
                "process.cwd {} is not absolute",
                process.cwd().display()
            )));
        }
        let caps = match process.capabilities() {
            Some(c) => Some(CapsPlan {
                bounding: to_caps(c.bounding().as_ref())?,
                effective: to_caps(c.effective().as_ref())?,
                permitted: to_caps(c.permitted().as_ref())?,
                inheritable: to_caps(c.inheritable().as_ref())?,
                ambient: to_caps(c.ambient().as_ref())?,
            }),
            None => None,
        };
        let mut rlimits = Vec::new();
        for r in process.rlimits().iter().flatten() {
            let res = rlimit_resource(r.typ());
            let (_, cur_hard) = nix::sys::resource::getrlimit(res)
                .map_err(|e| Error::sys(format!("getrlimit {:?}", r.typ()), e))?;
            let (soft, hard) = clamp_rlimit(r.soft(), r.hard(), cur_hard);
            rlimits.push((res, soft, hard));
        }
        let user = process.user();
        Ok(ProcessPlan {
            args: args
                .iter()
                .map(|a| cstring(a, "argument"))
                .collect::<Result<_>>()?,
            env: env
                .iter()
                .map(|e| cstring(e, "environment variable"))
                .collect::<Result<_>>()?,
            path_env,
            cwd: process.cwd().clone(),
            uid: user.uid(),
            gid: user.gid(),
            additional_gids: user.additional_gids().clone().unwrap_or_default(),
            umask: user.umask().unwrap_or(0o022),
            caps,
            rlimits,
            no_new_privs: process.no_new_privileges().unwrap_or(false),
            seccomp: seccomp.map(crate::seccomp::compile).transpose()?,
            oom_score_adj: process.oom_score_adj(),
            terminal: process.terminal().unwrap_or(false),
            console_size: process.console_size().map(|b| {
                (
                    b.height().min(u16::MAX as u64) as u16,
                    b.width().min(u16::MAX as u64) as u16,
                )
            }),
        })
    }

    /// Finds the command in the container (after `pivot_root`): a path with a `/` is taken
    /// as is, a bare name is looked up in the process's `PATH`.
    pub(crate) fn resolve_command(&self) -> Result<CString, InitFailure> {
        let arg0 = self.args[0].to_string_lossy().into_owned();
        let not_found = || {
            InitFailure::new(
                format!("exec-not-found {arg0}"),
                io::Error::from_raw_os_error(libc::ENOENT),
            )
        };
        let check = |p: &Path| -> Option<Result<CString, InitFailure>> {
            let meta = std::fs::metadata(p).ok()?;
            if meta.is_dir() {
                return None;
            }
            if nix::unistd::access(p, nix::unistd::AccessFlags::X_OK).is_err() {
                return Some(Err(InitFailure::new(
                    format!("exec-not-executable {arg0}"),
                    io::Error::from_raw_os_error(libc::EACCES),
                )));
            }
            Some(Ok(
                CString::new(p.as_os_str().as_bytes()).unwrap_or_default()
            ))
        };
        if arg0.contains('/') {
            let p = if Path::new(&arg0).is_absolute() {
                PathBuf::from(&arg0)
            } else {
                self.cwd.join(&arg0)
            };
            // A directory named by path is found but cannot be run (Docker: 126).
            if p.is_dir() {
                return Err(InitFailure::new(
                    format!("exec-not-executable {arg0}"),
                    io::Error::from_raw_os_error(libc::EACCES),
                ));
            }
            return check(&p).unwrap_or_else(|| Err(not_found()));
        }
        let mut denied = None;
        for dir in self.path_env.split(':').filter(|d| !d.is_empty()) {
            match check(&Path::new(dir).join(&arg0)) {
                Some(Ok(p)) => return Ok(p),
                Some(Err(e)) => denied = denied.or(Some(e)),
                None => {}
            }
        }
        Err(denied.unwrap_or_else(not_found))
    }

    /// Sets rlimits, oom_score_adj and the terminal or stdio. Call in the child, inside the
    /// container's namespaces and root.
    pub(crate) fn setup_io(
        &self,
        stdio: &Stdio,
        console: Option<BorrowedFd<'_>>,
        write_oom_score_adj: bool,
    ) -> Result<(), InitFailure> {
        // The init's is written by the parent (a user namespace may not write its own).
        if let Some(adj) = self.oom_score_adj.filter(|_| write_oom_score_adj) {
            std::fs::write("/proc/self/oom_score_adj", adj.to_string())
                .map_err(|e| InitFailure::new("write oom_score_adj", e))?;
        }
        for (res, soft, hard) in &self.rlimits {
            nix::sys::resource::setrlimit(*res, *soft, *hard)
                .map_err(|e| InitFailure::new(format!("setrlimit {res:?}"), e.into()))?;
        }
        if self.terminal {
            let sock = console.ok_or_else(|| {
                InitFailure::new(
                    "terminal requested without a console",
                    io::Error::from_raw_os_error(libc::EINVAL),
                )
            })?;
            crate::pty::setup_pty(sock, self.console_size)?;
        } else {
            dup_stdio(stdio).map_err(|e| InitFailure::new("set up stdio", e))?;
        }
        Ok(())
    }

    /// Drops privileges, installs seccomp and execs the command through the sealed exec
    /// stub ([`crate::sys::exec_sealed_stub`]), which reports a failed exec on `report` (the
    /// sync pipe, in the format of `init::report_failure`). Returns only on failure.
    ///
    /// Never `execve` straight from here: this process is berth's binary, and a command
    /// that is a script with `#!/proc/self/exe` would run (and expose) it in the container.
    pub(crate) fn apply_and_exec(
        &self,
        report: BorrowedFd<'_>,
        ready: impl FnOnce() -> Result<(), InitFailure>,
    ) -> InitFailure {
        match self.apply_and_exec_inner(report, ready) {
            Ok(never) => match never {},
            Err(e) => e,
        }
    }

    fn apply_and_exec_inner(
        &self,
        report: BorrowedFd<'_>,
        ready: impl FnOnce() -> Result<(), InitFailure>,
    ) -> Result<std::convert::Infallible, InitFailure> {
        let path = self.resolve_command()?;
        // Before seccomp: the profile need not allow memfd_create.
        let stub = crate::sys::sealed_exec_stub()
            .map_err(|e| InitFailure::new("make the sealed exec stub", e))?;
        if self.no_new_privs {
            nix::sys::prctl::set_no_new_privs()
                .map_err(|e| InitFailure::new("set no_new_privs", e.into()))?;
        }
        // Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: load it before dropping.
        if !self.no_new_privs {
            if let Some(s) = &self.seccomp {
                s.load()
                    .map_err(|e| InitFailure::new("load seccomp filter", e))?;
            }
        }
        if let Some(c) = &self.caps {
            for cap in caps::all() {
                if !c.bounding.contains(&cap) {
                    match caps::drop(None, CapSet::Bounding, cap) {
                        Ok(()) => {}
                        // Capabilities newer than this kernel do not exist to drop.
                        Err(_)
                            if !caps::runtime::procfs_all_supported(None)
                                .map(|s| s.contains(&cap))
                                .unwrap_or(true) => {}
                        Err(e) => {
                            return Err(InitFailure::new(
                                format!("drop {cap} from bounding set"),
                                caps_errno(&e),
                            ))
                        }
                    }
                }
            }
        }
        self.set_user()?;
        // A change of user resets dumpability to fs.suid_dumpable, which may be 2: set it
        // again (see `sys::fork_into_cgroup`).
        crate::sys::set_not_dumpable().map_err(|e| InitFailure::new("set not dumpable", e))?;
        if let Some(c) = &self.caps {
            let set = |which: CapSet, v: &CapsHashSet, name: &str| {
                caps::set(None, which, v).map_err(|e| {
                    InitFailure::new(format!("set {name} capabilities"), caps_errno(&e))
                })
            };
            set(CapSet::Inheritable, &c.inheritable, "inheritable")?;
            set(CapSet::Effective, &c.effective, "effective")?;
            set(CapSet::Permitted, &c.permitted, "permitted")?;
            caps::clear(None, CapSet::Ambient)
                .map_err(|e| InitFailure::new("clear ambient capabilities", caps_errno(&e)))?;
            for cap in &c.ambient {
                // Like runc: an ambient capability that is not permitted and inheritable is skipped.
                let _ = caps::raise(None, CapSet::Ambient, *cap);
            }
        }
        // runc's wording, which Docker shows for `exec -w /missing`.
        nix::unistd::chdir(&self.cwd).map_err(|e| {
            InitFailure::new(
                format!("chdir to cwd ({:?}) set in config.json failed", self.cwd),
                e.into(),
            )
        })?;
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(
            self.umask as libc::mode_t,
        ));
        if self.no_new_privs {
            if let Some(s) = &self.seccomp {
                s.load()
                    .map_err(|e| InitFailure::new("load seccomp filter", e))?;
            }
        }
        crate::sys::reset_signals();
        ready()?;
        // The stub inherits the report pipe and closes it on its own exec of the command.
        crate::sys::set_cloexec(report, false)
            .map_err(|e| InitFailure::new("pass the sync pipe to the exec stub", e))?;
        let err = crate::sys::exec_sealed_stub(stub.as_fd(), report, &path, &self.args, &self.env);
        Err(InitFailure::new(
            format!(
                "exec the sealed exec stub for {}",
                self.args[0].to_string_lossy()
            ),
            err,
        ))
    }

    fn set_user(&self) -> Result<(), InitFailure> {
        let gids: Vec<Gid> = self
            .additional_gids
            .iter()
            .map(|g| Gid::from_raw(*g))
            .collect();
        nix::unistd::setgroups(&gids).map_err(|e| InitFailure::new("setgroups", e.into()))?;
        let gid = Gid::from_raw(self.gid);
        nix::unistd::setresgid(gid, gid, gid)
            .map_err(|e| InitFailure::new(format!("setgid {}", self.gid), e.into()))?;
        if self.uid != 0 {
            nix::sys::prctl::set_keepcaps(true)
                .map_err(|e| InitFailure::new("keep capabilities", e.into()))?;
        }
        let uid = Uid::from_raw(self.uid);
        nix::unistd::setresuid(uid, uid, uid)
            .map_err(|e| InitFailure::new(format!("setuid {}", self.uid), e.into()))?;
        if self.uid != 0 {
            nix::sys::prctl::set_keepcaps(false)
                .map_err(|e| InitFailure::new("keep capabilities", e.into()))?;
        }
        Ok(())
    }
}

/// The OS error inside a `caps` error, which only formats it into its message ("capset
/// failure: Operation not permitted (os error 1)"): the failure keeps its errno instead of
/// becoming EIO on the way to the parent. EINVAL when the message holds none.
pub(crate) fn caps_errno(e: &caps::errors::CapsError) -> io::Error {
    let msg = e.to_string();
    msg.rsplit_once("(os error ")
        .and_then(|(_, rest)| rest.trim_end_matches(')').parse::<i32>().ok())
        .map_or_else(
            || io::Error::from_raw_os_error(libc::EINVAL),
            io::Error::from_raw_os_error,
        )
}

/// Puts the given descriptors on 0, 1 and 2 (dup2 clears close-on-exec on the copies).
fn dup_stdio(stdio: &Stdio) -> io::Result<()> {
    // First copy every source above 2 so that no dup2 overwrites a later source.
    let mut moved: Vec<(OwnedFd, i32)> = Vec::new();
    for (fd, target) in [(&stdio.stdin, 0), (&stdio.stdout, 1), (&stdio.stderr, 2)] {
        if let Some(fd) = fd {
            let copy = nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(3))?;
            moved.push((crate::sys::owned_fd_from_received(copy), target));
        }
    }
    for (fd, target) in &moved {
        nix::unistd::dup2(fd.as_raw_fd(), *target)?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Issue #16: a capability failure reported EIO ("Input/output error").
    #[test]
    fn caps_errors_keep_their_errno() {
        let e = caps::errors::CapsError::from(format!(
            "capset failure: {}",
            io::Error::from_raw_os_error(libc::EPERM)
        ));
        assert_eq!(caps_errno(&e).raw_os_error(), Some(libc::EPERM));
        let e = caps::errors::CapsError::from("no such capability".to_string());
        assert_eq!(caps_errno(&e).raw_os_error(), Some(libc::EINVAL));
    }

    #[test]
    fn rlimits_never_raise_the_hard_limit() {
        assert_eq!(clamp_rlimit(1_048_576, 1_048_576, 20_000), (20_000, 20_000));
        assert_eq!(clamp_rlimit(1024, 4096, 20_000), (1024, 4096));
        assert_eq!(clamp_rlimit(1024, 1024, u64::MAX), (1024, 1024));
    }

    #[test]
    fn plan_converts_capabilities_and_rejects_empty_args() {
        let spec = crate::spec::default_spec(&["true"]);
        let p = ProcessPlan::from_spec(spec.process().as_ref().unwrap(), None).unwrap();
        let caps = p.caps.unwrap();
        let mask: u64 = caps.effective.iter().map(|c| c.bitmask()).sum();
        assert_eq!(format!("{mask:016x}"), "00000000a80425fb");
        let mut proc = spec.process().clone().unwrap();
        proc.set_args(Some(vec![]));
        assert!(ProcessPlan::from_spec(&proc, None).is_err());
    }
}
