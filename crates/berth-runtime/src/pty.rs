//! Terminals: the container's pty is made inside the container (its own devpts) and the
//! master is passed out over a unix socket with SCM_RIGHTS.

use std::io;
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::Path;

use nix::fcntl::OFlag;
use nix::sys::socket::{
    connect, recvmsg, sendmsg, socket, AddressFamily, ControlMessage, ControlMessageOwned,
    MsgFlags, SockFlag, SockType, UnixAddr,
};

use crate::mounts::InitFailure;

/// Sends `fd` over the connected unix socket `sock` with `payload` as the message.
pub fn send_fd(sock: BorrowedFd<'_>, fd: BorrowedFd<'_>, payload: &[u8]) -> io::Result<()> {
    let fds = [fd.as_raw_fd()];
    let iov = [IoSlice::new(payload)];
    sendmsg::<()>(
        sock.as_raw_fd(),
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )?;
    Ok(())
}

/// Receives one descriptor (and its message) from the unix socket `sock`.
pub fn recv_fd(sock: BorrowedFd<'_>) -> io::Result<(OwnedFd, Vec<u8>)> {
    let mut buf = vec![0u8; 4096];
    let mut cmsg = nix::cmsg_space!([RawFd; 1]);
    let (fd, n) = {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )?;
        let mut fd = None;
        for c in msg.cmsgs()? {
            if let ControlMessageOwned::ScmRights(fds) = c {
                for f in fds {
                    let owned = crate::sys::owned_fd_from_received(f);
                    if fd.is_none() {
                        fd = Some(owned);
                    }
                }
            }
        }
        (fd, msg.bytes)
    };
    buf.truncate(n);
    let fd = fd.ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "no descriptor in the console message",
        )
    })?;
    Ok((fd, buf))
}

/// Connects to a console socket (runc's `--console-socket`).
pub fn connect_console_socket(path: &Path) -> io::Result<OwnedFd> {
    let sock = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    let addr = UnixAddr::new(path)?;
    connect(sock.as_raw_fd(), &addr)?;
    Ok(sock)
}

/// In the container: makes a pty, sends its master over `sock`, and makes the slave the
/// controlling terminal and stdio of this process.
pub(crate) fn setup_pty(sock: BorrowedFd<'_>, size: Option<(u16, u16)>) -> Result<(), InitFailure> {
    let fail = |step: &'static str| move |e: nix::errno::Errno| InitFailure::new(step, e.into());
    let master = nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .map_err(fail("open /dev/ptmx"))?;
    nix::pty::grantpt(&master).map_err(fail("grantpt"))?;
    nix::pty::unlockpt(&master).map_err(fail("unlockpt"))?;
    let name = nix::pty::ptsname_r(&master).map_err(fail("ptsname"))?;
    let slave = nix::fcntl::open(
        name.as_str(),
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(fail("open pty slave"))?;
    let slave = crate::sys::owned_fd_from_received(slave);
    if let Some((rows, cols)) = size {
        crate::sys::set_winsize(slave.as_fd(), rows, cols)
            .map_err(|e| InitFailure::new("set window size", e))?;
    }
    send_fd(sock, master.as_fd(), name.as_bytes())
        .map_err(|e| InitFailure::new("send pty master", e))?;
    drop(master);
    nix::unistd::setsid().map_err(fail("setsid"))?;
    crate::sys::set_controlling_tty(slave.as_fd())
        .map_err(|e| InitFailure::new("set controlling terminal", e))?;
    for target in 0..3 {
        nix::unistd::dup2(slave.as_raw_fd(), target).map_err(fail("dup pty slave"))?;
    }
    Ok(())
}

/// Copies between the caller's stdin/stdout and a pty master until the master reports end
/// of file (the container's side closed). For a foreground `run` with a terminal.
pub fn proxy_stdio(master: OwnedFd) -> std::thread::JoinHandle<()> {
    use std::io::{Read, Write};
    let mut input = match master.try_clone() {
        Ok(m) => Some(std::fs::File::from(m)),
        Err(_) => None,
    };
    if let Some(mut to_master) = input.take() {
        // Detached: ends with the process; stdin may never reach EOF.
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            let mut stdin = std::io::stdin();
            while let Ok(n) = stdin.read(&mut buf) {
                if n == 0 || to_master.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        });
    }
    std::thread::spawn(move || {
        let mut from_master = std::fs::File::from(master);
        let mut buf = [0u8; 4096];
        let mut stdout = std::io::stdout();
        // EIO means the last slave descriptor closed.
        while let Ok(n) = from_master.read(&mut buf) {
            if n == 0 || stdout.write_all(&buf[..n]).is_err() {
                break;
            }
            let _ = stdout.flush();
        }
    })
}
