//! The only place of the runtime where `unsafe` lives: thin wrappers over the syscalls that
//! `nix` does not wrap safely. Every block says why it is sound.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::sched::CloneFlags;
use nix::unistd::Pid;

pub mod bpf;

/// Number of threads of this process (from /proc/self/stat).
pub fn thread_count() -> usize {
    let text = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    text.rfind(')')
        .and_then(|i| text[i + 2..].split(' ').nth(17))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Forks into new namespaces (`flags`). Returns `None` in the child and the child's pid in
/// the parent.
///
/// A single-threaded caller gets one raw `clone(2)` (the fast path). A multi-threaded
/// caller gets the C library's `fork()`, whose handlers leave the allocator usable in the
/// child even if another thread held its lock: the calling thread enters a new pid
/// namespace for its children first (and leaves it after), the child unshares the rest
/// (returned in [`Forked::Child`]). With a user namespace the raw clone is used in any case
/// (the pid namespace must belong to it), so such callers should be single-threaded.
pub fn fork_into(flags: CloneFlags) -> io::Result<Forked> {
    fork_into_cgroup(flags, None).map(|(forked, _)| forked)
}

/// [`fork_into`], and on the raw-clone path the child starts in the cgroup v2 directory
/// `cgroup` (an open directory, `O_PATH` is enough) with `clone3(CLONE_INTO_CGROUP)`: no
/// later move, which waits for an RCU grace period. The flag says whether that happened (it
/// does not on the `fork()` path, nor on kernels or layouts that refuse it).
///
/// The caller is made not dumpable first ([`set_not_dumpable`]) and stays so: the child
/// inherits that from its first instruction, while it is still berth's binary inside the
/// container's namespaces (an `exec`'s child is born in the container's pid namespace).
/// Setting it back in the caller would race with a concurrent fork of another thread.
pub fn fork_into_cgroup(
    flags: CloneFlags,
    cgroup: Option<BorrowedFd<'_>>,
) -> io::Result<(Forked, bool)> {
    set_not_dumpable()?;
    // A pid namespace made before the user namespace would not belong to it (no /proc
    // mount inside): with a user namespace, one clone makes them all, in the right order.
    if thread_count() <= 1 || flags.contains(CloneFlags::CLONE_NEWUSER) {
        if let Some(cg) = cgroup {
            match clone3_into_cgroup(flags, cg) {
                Ok(None) => return Ok((Forked::Child(CloneFlags::empty()), true)),
                Ok(Some(pid)) => return Ok((Forked::Parent(pid), true)),
                // Older kernels (ENOSYS, E2BIG), a cgroup that is not on the v2 hierarchy
                // (EBADF) or that refuses processes (EOPNOTSUPP, EBUSY): the plain clone.
                Err(e) if e.raw_os_error() != Some(libc::EAGAIN) => {
                    log::debug!("clone3 into a cgroup: {e}; cloning plainly");
                }
                Err(e) => return Err(e),
            }
        }
        return Ok((
            match clone_fork(flags)? {
                None => Forked::Child(CloneFlags::empty()),
                Some(pid) => Forked::Parent(pid),
            },
            false,
        ));
    }
    fork_multithreaded(flags).map(|f| (f, false))
}

fn fork_multithreaded(flags: CloneFlags) -> io::Result<Forked> {
    let newpid = flags.contains(CloneFlags::CLONE_NEWPID);
    let own = if newpid {
        let own = std::fs::File::open("/proc/thread-self/ns/pid_for_children")?;
        nix::sched::unshare(CloneFlags::CLONE_NEWPID)?;
        Some(own)
    } else {
        None
    };
    // SAFETY: fork() is called as documented; the child only runs the container setup and
    // then execs or _exits, and glibc's fork handlers reset the allocator's locks in it.
    let ret = unsafe { libc::fork() };
    let err = io::Error::last_os_error();
    if ret != 0 {
        if let Some(own) = own {
            // Back to our own pid namespace for later children of this thread.
            nix::sched::setns(&own, CloneFlags::CLONE_NEWPID)?;
        }
    }
    match ret {
        -1 => Err(err),
        0 => Ok(Forked::Child(flags - CloneFlags::CLONE_NEWPID)),
        pid => Ok(Forked::Parent(Pid::from_raw(pid))),
    }
}

/// Which side of [`fork_into`] we are on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forked {
    /// The child; it still has to `unshare` these namespaces itself.
    Child(CloneFlags),
    /// The parent, with the child's pid.
    Parent(Pid),
}

/// Forks with `clone(2)` and the given namespace flags (no new stack: fork semantics).
/// Returns `None` in the child and the child's pid in the parent.
///
/// The caller must be single-threaded, as for `fork(2)` without the C library's handlers:
/// the child has a copy of the whole address space but only the calling thread, so locks
/// held by other threads stay held. [`fork_into`] picks this only when that holds.
pub fn clone_fork(flags: CloneFlags) -> io::Result<Option<Pid>> {
    let flags = flags.bits() as libc::c_ulong | libc::SIGCHLD as libc::c_ulong;
    // SAFETY: a clone without CLONE_VM and with a null stack behaves like fork: the child gets
    // a copy-on-write copy of the address space and continues on a copy of this stack. The
    // remaining arguments (parent_tid, child_tid, tls) are unused without the flags that read
    // them (CLONE_PARENT_SETTID, CLONE_CHILD_SETTID, CLONE_SETTLS), which we never pass.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone,
            flags,
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_int>(),
            std::ptr::null_mut::<libc::c_int>(),
            0 as libc::c_ulong,
        )
    };
    match ret {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(None),
        pid => Ok(Some(Pid::from_raw(pid as i32))),
    }
}

/// `struct clone_args` of `clone3(2)` up to `cgroup` (CLONE_ARGS_SIZE_VER2).
#[repr(C)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// [`clone_fork`] with `clone3(2)`, the child born in the cgroup v2 directory `cgroup`.
/// The same rule holds: the caller must be single-threaded.
pub fn clone3_into_cgroup(flags: CloneFlags, cgroup: BorrowedFd<'_>) -> io::Result<Option<Pid>> {
    let args = CloneArgs {
        // The namespace flags are below bit 31; `as u32` keeps them from sign-extending.
        flags: flags.bits() as u32 as u64 | CLONE_INTO_CGROUP,
        pidfd: 0,
        child_tid: 0,
        parent_tid: 0,
        exit_signal: libc::SIGCHLD as u64,
        stack: 0,
        stack_size: 0,
        tls: 0,
        set_tid: 0,
        set_tid_size: 0,
        cgroup: cgroup.as_raw_fd() as u64,
    };
    // SAFETY: as `clone_fork`: no CLONE_VM and no stack, so the child continues on a
    // copy-on-write copy of this address space and stack, like fork. The kernel reads
    // `size_of::<CloneArgs>()` bytes from `args`, valid for the call; no flag that writes
    // through a pointer (CLONE_PIDFD, CLONE_*_SETTID) is passed.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match ret {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(None),
        pid => Ok(Some(Pid::from_raw(pid as i32))),
    }
}

/// Loads a classic BPF program as this thread's seccomp filter (mode 2).
pub fn seccomp_set_filter(program: &[libc::sock_filter], flags: u32) -> io::Result<()> {
    let len = u16::try_from(program.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "seccomp program too long"))?;
    let prog = libc::sock_fprog {
        len,
        filter: program.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `prog` points at `len` valid sock_filter entries borrowed for the duration of the
    // call; the kernel copies the program and keeps no pointer into our memory.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER as libc::c_ulong,
            flags as libc::c_ulong,
            &prog as *const libc::sock_fprog,
        )
    };
    if ret == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Makes `fd` (a terminal) the controlling terminal of this session.
pub fn set_controlling_tty(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: TIOCSCTTY takes an int argument by value and touches no memory of ours.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSCTTY, 0) };
    if ret == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sets the window size of terminal `fd`.
pub fn set_winsize(fd: BorrowedFd<'_>, rows: u16, cols: u16) -> io::Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one `winsize` from the pointer, which is valid for the call.
    let ret = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::TIOCSWINSZ,
            &ws as *const libc::winsize,
        )
    };
    if ret == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Opens a pidfd for `pid` (Linux >= 5.3).
pub fn pidfd_open(pid: Pid) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes two integers and returns a new fd or -1.
    let ret = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0 as libc::c_uint) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: on success the kernel returned a new file descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(ret as RawFd) })
}

/// Sends `sig` to the process behind `pidfd` (no pid-reuse race).
pub fn pidfd_send_signal(pidfd: BorrowedFd<'_>, sig: i32) -> io::Result<()> {
    // SAFETY: the info pointer may be null; all other arguments are integers.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null_mut::<libc::siginfo_t>(),
            0 as libc::c_uint,
        )
    };
    if ret == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sets the NIS domain name of this UTS namespace.
pub fn setdomainname(name: &str) -> io::Result<()> {
    // SAFETY: the pointer and length describe the bytes of `name`, valid for the call.
    let ret = unsafe { libc::setdomainname(name.as_ptr() as *const libc::c_char, name.len()) };
    if ret == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Resets every catchable signal to its default action and unblocks all signals, so the
/// container's command does not inherit our dispositions (Rust ignores SIGPIPE) or mask.
pub fn reset_signals() {
    for sig in 1..libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: installing SIG_DFL touches no memory of ours; invalid numbers fail with EINVAL,
        // which is ignored on purpose.
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
        }
    }
    // SAFETY: `set` is a valid, initialised sigset for the duration of the call.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

/// Takes ownership of a descriptor the kernel just installed for us (SCM_RIGHTS, F_DUPFD).
pub fn owned_fd_from_received(fd: RawFd) -> OwnedFd {
    // SAFETY: the descriptor was just installed in our table by recvmsg and nothing else owns it.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Sets the close-on-exec flag of `fd` on or off.
pub fn set_cloexec(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, FdFlag};
    let flags = if on {
        FdFlag::FD_CLOEXEC
    } else {
        FdFlag::empty()
    };
    fcntl(fd.as_raw_fd(), FcntlArg::F_SETFD(flags))?;
    Ok(())
}

/// Ends the process at once, without running exit handlers or flushing stdio buffers that
/// belong to the parent (the forked child must not).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and touches no memory of ours.
    unsafe { libc::_exit(code) }
}

/// Brings the loopback interface of the current network namespace up (as Docker's
/// `--network none` has it): `SIOCGIFFLAGS`/`SIOCSIFFLAGS` on `lo`.
pub fn loopback_up() -> io::Result<()> {
    use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
    let sock = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads the name and writes the flags into `req`, which is valid and
    // exclusively borrowed for the call.
    if unsafe {
        libc::ioctl(
            sock.as_raw_fd(),
            libc::SIOCGIFFLAGS,
            &mut req as *mut libc::ifreq,
        )
    } < 0
    {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel filled the flags member of the union above.
    unsafe {
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
    }
    // SAFETY: SIOCSIFFLAGS reads `req`, valid for the call.
    if unsafe {
        libc::ioctl(
            sock.as_raw_fd(),
            libc::SIOCSIFFLAGS,
            &req as *const libc::ifreq,
        )
    } < 0
    {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Closes every descriptor of this process except those in `keep` (the container's init
/// must not hold the caller's other descriptors: pipes of other containers would never see
/// end of file while it waits).
pub fn close_fds_except(keep: &[RawFd]) -> io::Result<()> {
    let mut keep: Vec<u32> = keep
        .iter()
        .filter(|fd| **fd >= 0)
        .map(|fd| *fd as u32)
        .collect();
    keep.sort_unstable();
    keep.dedup();
    let mut from: u32 = 0;
    for k in keep.iter().copied().chain(std::iter::once(u32::MAX)) {
        if k > from {
            let to = if k == u32::MAX { u32::MAX } else { k - 1 };
            // SAFETY: close_range takes three integers; closing descriptors we do not keep
            // is the point (nothing in this process uses them after the fork).
            let ret = unsafe { libc::syscall(libc::SYS_close_range, from, to, 0u32) };
            if ret != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        if k == u32::MAX {
            break;
        }
        from = k + 1;
    }
    Ok(())
}

/// `berth-exec`, the sealed exec stub (source: `sys/exec_stub.rs`, built by `build.rs`):
/// every process berth starts in a container is exec'd through it ([`exec_sealed_stub`]).
pub static EXEC_STUB: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/berth-exec"));

/// Name of the stub's memfd: a container process that looks at `/proc/PID/exe` during the
/// stub's exec sees `/memfd:berth-exec (deleted)`.
pub const EXEC_STUB_NAME: &str = "berth-exec";

const MFD_EXEC: libc::c_uint = 0x10;

/// A memfd holding [`EXEC_STUB`], sealed against any change (write, grow, shrink, and
/// further seals), close-on-exec. Writing to it (through `/proc/PID/exe` or otherwise)
/// fails, and it is not berth's binary anyway.
pub fn sealed_exec_stub() -> io::Result<OwnedFd> {
    let name = c"berth-exec";
    let flags = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
    // Kernels since 6.3 want MFD_EXEC said (vm.memfd_noexec may refuse it unsaid);
    // older ones reject the flag.
    let fd = match memfd_create(name, flags | MFD_EXEC) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => memfd_create(name, flags)?,
        r => r?,
    };
    let mut off = 0;
    while off < EXEC_STUB.len() {
        match nix::unistd::write(&fd, &EXEC_STUB[off..]) {
            Ok(n) => off += n,
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    // SAFETY: F_ADD_SEALS takes an integer argument and touches no memory of ours.
    if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// A memfd (close-on-exec) holding `data`, positioned at its start: a hook's stdin, which
/// unlike a pipe cannot raise SIGPIPE in the writer when the hook does not read it.
pub fn memfd_holding(data: &[u8]) -> io::Result<OwnedFd> {
    use std::io::{Seek, Write};
    let fd = memfd_create(c"berth-hook-state", libc::MFD_CLOEXEC)?;
    let mut f = std::fs::File::from(fd);
    f.write_all(data)?;
    f.rewind()?;
    Ok(OwnedFd::from(f))
}

fn memfd_create(name: &std::ffi::CStr, flags: libc::c_uint) -> io::Result<OwnedFd> {
    // SAFETY: `name` is a NUL-terminated string valid for the call.
    let ret = unsafe { libc::memfd_create(name.as_ptr(), flags) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(ret) })
}

/// Execs `path` with `args` and `env` through the sealed stub `stub` (from
/// [`sealed_exec_stub`]): `berth-exec REPORT PATH ARGS...`. The stub reports a failed exec
/// of `path` on `report` (which must not be close-on-exec) and exits 127. Returns only when
/// the stub itself could not be exec'd.
///
/// `execveat(stub, "", AT_EMPTY_PATH)` needs no `/proc`; when that is refused (a seccomp
/// profile without `execveat`), `execve("/proc/self/fd/N")` runs the same sealed file.
pub fn exec_sealed_stub(
    stub: BorrowedFd<'_>,
    report: BorrowedFd<'_>,
    path: &std::ffi::CStr,
    args: &[std::ffi::CString],
    env: &[std::ffi::CString],
) -> io::Error {
    let report_arg = match std::ffi::CString::new(report.as_raw_fd().to_string()) {
        Ok(s) => s,
        Err(e) => return io::Error::new(io::ErrorKind::InvalidInput, e),
    };
    let mut argv: Vec<*const libc::c_char> = Vec::with_capacity(args.len() + 4);
    argv.push(c"berth-exec".as_ptr());
    argv.push(report_arg.as_ptr());
    argv.push(path.as_ptr());
    argv.extend(args.iter().map(|a| a.as_ptr()));
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).collect();
    envp.push(std::ptr::null());
    // SAFETY: argv and envp are NULL-terminated arrays of pointers to NUL-terminated
    // strings (`args`, `env`, `report_arg`, literals), all alive for the call; execveat
    // returns only on failure.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            stub.as_raw_fd(),
            c"".as_ptr(),
            argv.as_ptr(),
            envp.as_ptr(),
            libc::AT_EMPTY_PATH,
        );
    }
    let first = io::Error::last_os_error();
    let Ok(proc_path) = std::ffi::CString::new(format!("/proc/self/fd/{}", stub.as_raw_fd()))
    else {
        return first;
    };
    // SAFETY: as above, with a NUL-terminated path.
    unsafe {
        libc::execve(proc_path.as_ptr(), argv.as_ptr(), envp.as_ptr());
    }
    // The first error says more (no /proc in the container says ENOENT for the second).
    first
}

/// Makes this process not dumpable: its `/proc/PID` entries belong to root and only a
/// process with CAP_SYS_PTRACE over it may open `/proc/PID/exe`, `fd/`, `mem` or ptrace it.
/// A forked child inherits it (until its next exec), so a container process never gets at
/// berth's binary through a child of berth that is still setting up in its namespaces.
pub fn set_not_dumpable() -> io::Result<()> {
    nix::sys::prctl::set_dumpable(false)?;
    Ok(())
}

/// `openat(2)` relative to `dir`, returning an owned descriptor (nix 0.29 hands out raw ones).
pub fn openat_owned(
    dir: BorrowedFd<'_>,
    name: &std::ffi::OsStr,
    flags: nix::fcntl::OFlag,
    mode: nix::sys::stat::Mode,
) -> io::Result<OwnedFd> {
    let fd = nix::fcntl::openat(Some(dir.as_raw_fd()), name, flags, mode)?;
    // SAFETY: openat just returned this descriptor and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The ID of the mount that `fd` lies on (`statx(STATX_MNT_ID)`), to tell whether a lookup
/// landed on a new mount.
pub fn mount_id(fd: BorrowedFd<'_>) -> io::Result<u64> {
    // SAFETY: statx is all-integer, zeroes are a valid value.
    let mut st: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: the path is a valid NUL-terminated empty string, `st` is writable and lives
    // across the call.
    let ret = unsafe {
        libc::statx(
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
            libc::STATX_MNT_ID,
            &mut st,
        )
    };
    if ret != 0 {
        return Err(io::Error::last_os_error());
    }
    if st.stx_mask & libc::STATX_MNT_ID == 0 {
        return Err(io::Error::from_raw_os_error(libc::ENOSYS));
    }
    Ok(st.stx_mnt_id)
}

/// Makes `cmd` join the namespaces `fds` (opened `/proc/PID/ns/*` files, the user namespace
/// first) in its child between fork and exec: an OCI `createContainer` hook runs in the
/// container's namespaces. A pid namespace applies to the hook's own children only.
pub fn join_namespaces_before_exec(cmd: &mut std::process::Command, fds: Vec<OwnedFd>) {
    use std::os::unix::process::CommandExt;
    let join = move || -> io::Result<()> {
        for fd in &fds {
            nix::sched::setns(fd, CloneFlags::empty())?;
        }
        Ok(())
    };
    // SAFETY: the closure runs in the forked child before exec and only calls setns(2),
    // which is async-signal-safe and allocates nothing (the descriptors were opened before
    // the fork; errors are plain errno values).
    unsafe {
        cmd.pre_exec(join);
    }
}

/// Sets `O_NONBLOCK` on `fd`.
pub fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let flags = OFlag::from_bits_truncate(fcntl(fd.as_raw_fd(), FcntlArg::F_GETFL)?);
    fcntl(fd.as_raw_fd(), FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(())
}

/// `personality(2)`: sets the execution domain (`PER_LINUX`, `PER_LINUX32`) that the
/// container's command is exec'd with.
pub fn set_personality(persona: libc::c_ulong) -> io::Result<()> {
    // SAFETY: personality takes an integer and touches no memory of ours.
    let ret = unsafe { libc::personality(persona) };
    if ret == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `ioprio_set(IOPRIO_WHO_PROCESS, 0, class << 13 | level)` for the calling process.
pub fn set_io_priority(class: u32, level: u32) -> io::Result<()> {
    const IOPRIO_WHO_PROCESS: libc::c_long = 1;
    let prio = ((class << 13) | level) as libc::c_long;
    // SAFETY: ioprio_set takes three integers and touches no memory of ours.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_ioprio_set,
            IOPRIO_WHO_PROCESS,
            0 as libc::c_long,
            prio,
        )
    };
    if ret == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `struct sched_attr` of `sched_setattr(2)` (SCHED_ATTR_SIZE_VER0, 48 bytes).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct SchedAttr {
    /// Size of this struct.
    pub size: u32,
    /// `SCHED_OTHER`, `SCHED_FIFO`, ...
    pub policy: u32,
    /// `SCHED_FLAG_*`.
    pub flags: u64,
    /// Nice value (SCHED_OTHER, SCHED_BATCH).
    pub nice: i32,
    /// Static priority (SCHED_FIFO, SCHED_RR).
    pub priority: u32,
    /// SCHED_DEADLINE runtime, ns.
    pub runtime: u64,
    /// SCHED_DEADLINE deadline, ns.
    pub deadline: u64,
    /// SCHED_DEADLINE period, ns.
    pub period: u64,
}

/// `sched_setattr(2)` for the calling thread (inherited by the exec'd command).
pub fn sched_setattr(attr: &SchedAttr) -> io::Result<()> {
    let mut attr = *attr;
    attr.size = std::mem::size_of::<SchedAttr>() as u32;
    // SAFETY: `attr` is a valid, initialised sched_attr of the size it states, alive across
    // the call; the kernel only reads it.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_sched_setattr,
            0 as libc::c_long,
            &attr as *const SchedAttr,
            0 as libc::c_uint,
        )
    };
    if ret == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn the_stub_memfd_is_sealed_and_holds_the_stub() {
        let fd = sealed_exec_stub().unwrap();
        // SAFETY: F_GET_SEALS takes no argument.
        let seals = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) };
        let all = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
        assert_eq!(seals & all, all);
        assert_eq!(
            nix::unistd::write(&fd, b"pwned"),
            Err(nix::errno::Errno::EPERM)
        );
        let held = std::fs::read(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap();
        assert_eq!(held, EXEC_STUB);
        assert!(EXEC_STUB.len() < 16 * 1024, "{} bytes", EXEC_STUB.len());
        let link = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap();
        assert_eq!(link.to_string_lossy(), "/memfd:berth-exec (deleted)");
    }

    /// The stub's protocol: `berth-exec ERRFD PATH ARG0...` execs PATH; a failure is
    /// berth's init failure record on ERRFD (here stdout) and status 127.
    #[test]
    fn the_stub_execs_the_command_or_reports_the_errno() {
        let fd = sealed_exec_stub().unwrap();
        let stub = format!("/proc/self/fd/{}", fd.as_raw_fd());
        let out = Command::new(&stub)
            .args(["2", "/bin/echo", "echo", "hi"])
            .output()
            .unwrap();
        assert!(out.status.success());
        assert_eq!(out.stdout, b"hi\n");
        let out = Command::new(&stub)
            .args(["1", "/no/such/file", "cmd"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(127));
        let mut want = vec![b'E'];
        want.extend_from_slice(&libc::ENOENT.to_le_bytes());
        want.extend_from_slice(b"exec-not-found cmd");
        assert_eq!(out.stdout, want);
        // A file without execute bits (root too gets EACCES).
        let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
        let out = Command::new(&stub)
            .args(["1", manifest, "manifest"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(127));
        assert!(out.stdout.ends_with(b"exec-not-executable manifest"));
        // On its own (as an interpreter, `#!/proc/self/exe`) it only exits.
        let out = Command::new(&stub).arg("/trap").output().unwrap();
        assert_eq!(out.status.code(), Some(127));
        assert!(out.stdout.is_empty());
    }
}
