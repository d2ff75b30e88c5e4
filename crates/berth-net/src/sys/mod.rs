//! The kernel face of berth-net: network namespaces, sockets, splice, netlink. The only
//! module with `unsafe`; everything above it goes through [`crate::ops::NetOps`] or the
//! safe helpers here.
#![allow(unsafe_code)]

pub(crate) mod linux;
pub(crate) mod netlink;
pub(crate) mod query;

use std::fs::File;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, FdFlag, OFlag, SpliceFFlags};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::socket::{
    bind, listen, setsockopt, socket, sockopt, AddressFamily, Backlog, SockFlag, SockType,
    SockaddrStorage,
};

use crate::error::{Error, Result};
use crate::port::{HostSocket, Proto};

/// Sets or clears close-on-exec on a descriptor.
pub(crate) fn set_cloexec(fd: RawFd, on: bool) -> Result<()> {
    // SAFETY: the descriptor is only inspected and flagged; fcntl on a closed fd returns EBADF.
    let b = unsafe { BorrowedFd::borrow_raw(fd) };
    let flags = fcntl(b.as_raw_fd(), FcntlArg::F_GETFD).map_err(|e| Error::os("F_GETFD", e))?;
    let mut flags = FdFlag::from_bits_truncate(flags);
    flags.set(FdFlag::FD_CLOEXEC, on);
    fcntl(b.as_raw_fd(), FcntlArg::F_SETFD(flags)).map_err(|e| Error::os("F_SETFD", e))?;
    Ok(())
}

/// Takes ownership of an inherited descriptor, after checking that it is open.
pub(crate) fn adopt_fd(fd: RawFd) -> Result<OwnedFd> {
    if fd < 0 {
        return Err(Error::os("adopt descriptor", Errno::EBADF));
    }
    fcntl(fd, FcntlArg::F_GETFD).map_err(|e| Error::os("adopt descriptor", e))?;
    // SAFETY: the fd is open (checked above) and the caller hands us its only ownership:
    // it was inherited across exec for exactly this purpose.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Binds a host socket: TCP listeners with SO_REUSEADDR (as every server), UDP without it
/// (it would let two sockets share a port), IPv6 sockets with IPV6_V6ONLY so that 0.0.0.0
/// and [::] are two separate listeners as in Docker.
pub(crate) fn bind_socket(addr: SocketAddr, proto: Proto) -> io::Result<HostSocket> {
    let fam = if addr.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    let ty = match proto {
        Proto::Tcp => SockType::Stream,
        Proto::Udp => SockType::Datagram,
    };
    let fd = socket(fam, ty, SockFlag::SOCK_CLOEXEC, None)?;
    if proto == Proto::Tcp {
        setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    }
    if addr.is_ipv6() {
        setsockopt(&fd, sockopt::Ipv6V6Only, &true)?;
    }
    bind(fd.as_raw_fd(), &SockaddrStorage::from(addr))?;
    Ok(match proto {
        Proto::Tcp => {
            listen(&fd, Backlog::new(1024).unwrap_or(Backlog::MAXCONN))?;
            HostSocket::Tcp(fd.into())
        }
        Proto::Udp => HostSocket::Udp(fd.into()),
    })
}

fn ns_err(path: &Path, op: &'static str, e: impl Into<io::Error>) -> Error {
    Error::Netns {
        path: path.to_path_buf(),
        op,
        source: e.into(),
    }
}

/// Creates a new network namespace pinned by a bind mount on `path` (as `ip netns add` does),
/// with `lo` up. The work happens on a short-lived thread, so this process stays where it is.
pub(crate) fn create_netns(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| ns_err(path, "create directory", e))?;
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| ns_err(path, "create pin file", e))?;
    let r = std::thread::scope(|s| {
        s.spawn(|| -> Result<()> {
            unshare(CloneFlags::CLONE_NEWNET).map_err(|e| ns_err(path, "unshare", e))?;
            mount(
                Some("/proc/thread-self/ns/net"),
                path,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(|e| ns_err(path, "bind mount", e))?;
            let mut rtnl = netlink::Rtnl::open()?;
            rtnl.batch(vec![netlink::link_up(1, "lo")])
        })
        .join()
        .unwrap_or_else(|_| Err(ns_err(path, "thread", io::Error::other("panicked"))))
    });
    if r.is_err() {
        let _ = remove_netns(path);
    }
    r
}

/// Unpins and deletes a namespace made by [`create_netns`]; a missing one is fine.
pub(crate) fn remove_netns(path: &Path) -> Result<()> {
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => {}
        Err(e) => return Err(ns_err(path, "unmount", e)),
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ns_err(path, "remove pin file", e)),
    }
}

/// Opens a namespace file (pinned path or /proc/PID/ns/net).
pub(crate) fn open_netns(path: &Path) -> Result<OwnedFd> {
    File::open(path)
        .map(OwnedFd::from)
        .map_err(|e| ns_err(path, "open", e))
}

/// Moves the calling thread into the network namespace `fd` (only this thread).
pub(crate) fn enter_netns(fd: BorrowedFd<'_>) -> io::Result<()> {
    setns(fd, CloneFlags::CLONE_NEWNET).map_err(io::Error::from)
}

/// Runs `f` on a thread inside the namespace at `path` and returns its result.
pub(crate) fn in_netns<T: Send>(path: &Path, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    let fd = open_netns(path)?;
    std::thread::scope(|s| {
        s.spawn(|| {
            enter_netns(fd.as_fd()).map_err(|e| ns_err(path, "setns", e))?;
            f()
        })
        .join()
        .unwrap_or_else(|_| Err(ns_err(path, "thread", io::Error::other("panicked"))))
    })
}

/// Writes a sysctl file under /proc/sys (e.g. a bridge's `forwarding`).
pub(crate) fn write_sysctl(path: &str, value: &str) -> Result<()> {
    std::fs::write(path, value).map_err(|e| Error::file("write sysctl", path, e))
}

/// A pipe for splicing from one socket to another.
pub(crate) struct SplicePipe {
    r: OwnedFd,
    w: OwnedFd,
}

impl SplicePipe {
    /// A pipe with a 1 MiB buffer when the system allows it (fewer splice calls).
    pub fn new() -> io::Result<Self> {
        let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
        let _ = fcntl(w.as_raw_fd(), FcntlArg::F_SETPIPE_SZ(1 << 20));
        Ok(SplicePipe { r, w })
    }

    /// Copies everything from `from` to `to` through the pipe, without user-space copies.
    /// Returns the number of bytes moved when `from` reaches end of stream.
    pub fn copy(&self, from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> io::Result<u64> {
        // No SPLICE_F_MORE: on a TCP socket it means MSG_MORE, which holds a short answer
        // back for up to 200 ms waiting for more.
        let flags = SpliceFFlags::SPLICE_F_MOVE;
        let mut total = 0u64;
        loop {
            let n = match nix::fcntl::splice(from, None, &self.w, None, 1 << 20, flags) {
                Ok(0) => return Ok(total),
                Ok(n) => n,
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            };
            let mut left = n;
            while left > 0 {
                match nix::fcntl::splice(&self.r, None, to, None, left, flags) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(m) => left -= m,
                    Err(Errno::EINTR) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            total += n as u64;
        }
    }
}

/// Wakes threads blocked in accept/recv on a socket by shutting its reading side.
pub(crate) fn shutdown_read(fd: RawFd) {
    // SAFETY: shutdown on a raw fd has no memory effects; a stale fd gives EBADF/ENOTSOCK.
    unsafe {
        libc::shutdown(fd, libc::SHUT_RD);
    }
}
