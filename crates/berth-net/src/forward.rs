//! The userland port forwarder that runs in a container's monitor: it accepts on the host
//! sockets bound by [`crate::port::bind_ports`] and connects to the container from inside the
//! container's network namespace (sockets keep the namespace they were made in), so it needs
//! no firewall rules and works for rootless containers too.
//!
//! Blocking threads, no async runtime: one thread per host socket, two per TCP connection
//! (one per direction, copying with `splice(2)`), one per UDP client session.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::port::{BoundPort, HostSocket, PublishedPort};
use crate::sys;

/// How long a UDP client session lives without traffic.
pub const UDP_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

const COPY_STACK: usize = 64 * 1024;

/// A running forwarder for one container's published ports. Dropping it stops it.
#[derive(Debug)]
pub struct PortForwarder {
    stop: Arc<AtomicBool>,
    /// Duplicates of the host sockets: shutting them wakes the listener threads, and owning
    /// them means the descriptors cannot be reused by anything else meanwhile.
    wake: Vec<OwnedFd>,
    threads: Vec<JoinHandle<()>>,
    ports: Vec<PublishedPort>,
}

impl PortForwarder {
    /// Starts forwarding every bound port to the same port on 127.0.0.1 inside the network
    /// namespace `netns` (a pinned namespace file or `/proc/PID/ns/net`).
    pub fn start(ports: Vec<BoundPort>, netns: &Path) -> Result<Self> {
        Self::start_to(ports, netns, Ipv4Addr::LOCALHOST)
    }

    /// Like [`PortForwarder::start`], connecting to `target` (the container's address, as
    /// Docker's proxy does: a service bound to the container's loopback only stays private).
    pub fn start_to(ports: Vec<BoundPort>, netns: &Path, target: Ipv4Addr) -> Result<Self> {
        let nsfd = sys::open_netns(netns)?;
        Self::start_fd(ports, nsfd, target)
    }

    /// Like [`PortForwarder::start_to`], with an open namespace descriptor.
    pub fn start_fd(ports: Vec<BoundPort>, netns: OwnedFd, target_ip: Ipv4Addr) -> Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let netns = Arc::new(netns);
        let mut fw = PortForwarder {
            stop: stop.clone(),
            wake: Vec::new(),
            threads: Vec::new(),
            ports: ports.iter().map(|p| p.port).collect(),
        };
        for bp in ports {
            let dup = match &bp.socket {
                HostSocket::Tcp(l) => l.try_clone().map(OwnedFd::from),
                HostSocket::Udp(u) => u.try_clone().map(OwnedFd::from),
            }
            .map_err(|source| Error::Os {
                op: "duplicate a host socket",
                source,
            })?;
            fw.wake.push(dup);
            let target = SocketAddr::V4(SocketAddrV4::new(target_ip, bp.port.container_port));
            let stop = stop.clone();
            let netns = netns.clone();
            let (ready_tx, ready_rx) = std::sync::mpsc::channel::<io::Result<()>>();
            let h = std::thread::Builder::new()
                .name(format!("fwd-{}", bp.port.host_port))
                .stack_size(256 * 1024)
                .spawn(move || {
                    // Everything this thread and its children create lives in the container's
                    // namespace; the host socket was made before and stays on the host.
                    let entered = sys::enter_netns(netns.as_fd());
                    let failed = entered.is_err();
                    let _ = ready_tx.send(entered);
                    if failed {
                        return;
                    }
                    match bp.socket {
                        HostSocket::Tcp(l) => serve_tcp(l, target, stop),
                        HostSocket::Udp(u) => serve_udp(u, target, stop),
                    }
                })
                .map_err(|source| Error::Os {
                    op: "spawn forwarder thread",
                    source,
                })?;
            fw.threads.push(h);
            match ready_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(source)) => {
                    return Err(Error::Os {
                        op: "enter container network namespace",
                        source,
                    })
                }
                Err(_) => {
                    return Err(Error::Os {
                        op: "start forwarder",
                        source: io::Error::other("forwarder thread died"),
                    })
                }
            }
        }
        Ok(fw)
    }

    /// The ports being forwarded.
    pub fn ports(&self) -> &[PublishedPort] {
        &self.ports
    }

    /// Stops accepting, closes the host sockets and waits for the listener threads.
    /// Connections in flight end when either side closes.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for fd in &self.wake {
            sys::shutdown_read(fd.as_raw_fd());
        }
        for h in self.threads.drain(..) {
            let _ = h.join();
        }
        self.wake.clear();
    }
}

impl Drop for PortForwarder {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn serve_tcp(l: TcpListener, target: SocketAddr, stop: Arc<AtomicBool>) {
    loop {
        let conn = l.accept();
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let (client, _) = match conn {
            Ok(c) => c,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE)) => {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return,
            Err(_) => continue,
        };
        let _ = std::thread::Builder::new()
            .stack_size(COPY_STACK)
            .spawn(move || proxy_tcp(client, target));
    }
}

fn proxy_tcp(client: TcpStream, target: SocketAddr) {
    // This thread inherited the container's namespace from the listener thread.
    let upstream = match TcpStream::connect(target) {
        Ok(s) => s,
        Err(_) => return, // nothing listens in the container (yet): close the client
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (c2, u2) = match (client.try_clone(), upstream.try_clone()) {
        (Ok(c), Ok(u)) => (c, u),
        _ => return,
    };
    let back = std::thread::Builder::new()
        .stack_size(COPY_STACK)
        .spawn(move || pump(&u2, &c2));
    pump(&client, &upstream);
    if let Ok(h) = back {
        let _ = h.join();
    }
}

/// Copies one direction until end of stream, then half-closes the other side.
fn pump(from: &TcpStream, to: &TcpStream) {
    let r = match sys::SplicePipe::new() {
        Ok(p) => p.copy(from.as_fd(), to.as_fd()).map(|_| ()),
        Err(e) => Err(e),
    };
    if r.is_err() {
        let _ = from.shutdown(Shutdown::Both);
        let _ = to.shutdown(Shutdown::Both);
    } else {
        let _ = to.shutdown(Shutdown::Write);
    }
}

struct UdpSession {
    inner: Arc<UdpSocket>,
    last: Arc<Mutex<Instant>>,
}

fn serve_udp(host: UdpSocket, target: SocketAddr, stop: Arc<AtomicBool>) {
    let host = Arc::new(host);
    let sessions: Arc<Mutex<HashMap<SocketAddr, UdpSession>>> = Arc::default();
    let mut buf = vec![0u8; 65536];
    let mut handles: Vec<JoinHandle<()>> = Vec::new();
    loop {
        let got = host.recv_from(&mut buf);
        if stop.load(Ordering::SeqCst) {
            // Wake the session threads (they hold the host socket) and wait for them, so the
            // host port is free when stop() returns.
            if let Ok(m) = sessions.lock() {
                for s in m.values() {
                    sys::shutdown_read(s.inner.as_raw_fd());
                }
            }
            for h in handles {
                let _ = h.join();
            }
            return;
        }
        let (n, client) = match got {
            Ok(x) => x,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => {
                // A shut-down socket returns 0-length reads, not errors; other errors are
                // per-packet (ICMP unreachable): keep going.
                continue;
            }
        };
        if n == 0 && stop.load(Ordering::SeqCst) {
            return;
        }
        let existing = sessions
            .lock()
            .ok()
            .and_then(|m| m.get(&client).map(|s| (s.inner.clone(), s.last.clone())));
        let (inner, last) = match existing {
            Some(x) => x,
            None => match new_udp_session(&host, client, target, &sessions, &stop) {
                Some((i, l, h)) => {
                    handles.retain(|h| !h.is_finished());
                    handles.push(h);
                    (i, l)
                }
                None => continue,
            },
        };
        if let Ok(mut l) = last.lock() {
            *l = Instant::now();
        }
        let _ = inner.send(&buf[..n]);
    }
}

type SessionParts = (Arc<UdpSocket>, Arc<Mutex<Instant>>, JoinHandle<()>);

fn new_udp_session(
    host: &Arc<UdpSocket>,
    client: SocketAddr,
    target: SocketAddr,
    sessions: &Arc<Mutex<HashMap<SocketAddr, UdpSession>>>,
    stop: &Arc<AtomicBool>,
) -> Option<SessionParts> {
    // Created on the listener thread, hence inside the container's namespace.
    let inner = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
    inner.connect(target).ok()?;
    inner
        .set_read_timeout(Some(Duration::from_millis(500)))
        .ok()?;
    let inner = Arc::new(inner);
    let last = Arc::new(Mutex::new(Instant::now()));
    if let Ok(mut m) = sessions.lock() {
        m.insert(
            client,
            UdpSession {
                inner: inner.clone(),
                last: last.clone(),
            },
        );
    }
    let (h, i, l, s, st) = (
        host.clone(),
        inner.clone(),
        last.clone(),
        sessions.clone(),
        stop.clone(),
    );
    let spawned = std::thread::Builder::new()
        .stack_size(COPY_STACK)
        .spawn(move || {
            let mut buf = vec![0u8; 65536];
            loop {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                match i.recv(&mut buf) {
                    Ok(n) => {
                        if let Ok(mut t) = l.lock() {
                            *t = Instant::now();
                        }
                        let _ = h.send_to(&buf[..n], client);
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) =>
                    {
                        let idle = l.lock().map(|t| t.elapsed()).unwrap_or_default();
                        if idle >= UDP_IDLE_TIMEOUT {
                            break;
                        }
                    }
                    Err(_) => {} // ICMP port unreachable from the container: keep the session
                }
            }
            if let Ok(mut m) = s.lock() {
                m.remove(&client);
            }
        });
    match spawned {
        Ok(h) => Some((inner, last, h)),
        Err(_) => {
            if let Ok(mut m) = sessions.lock() {
                m.remove(&client);
            }
            None
        }
    }
}
