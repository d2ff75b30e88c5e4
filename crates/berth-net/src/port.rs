//! Published ports: `-p [ip:][hostPort:]containerPort[/tcp|udp]` parsed the way Docker does,
//! and the host listeners bound for them before the container starts.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A transport protocol of a published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Proto {
    /// `tcp` or `udp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `-p` request for one container port: which host address and port (range) to use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRequest {
    /// Host address to listen on; `None` means every address (`0.0.0.0` and `[::]`).
    pub host_ip: Option<IpAddr>,
    /// First acceptable host port; 0 means any free port.
    pub host_port: u16,
    /// Last acceptable host port (equal to `host_port` for one port).
    pub host_port_end: u16,
    /// The port inside the container.
    pub container_port: u16,
    /// TCP or UDP.
    pub proto: Proto,
}

/// A published port as bound: what `berth port` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PublishedPort {
    /// The host address listened on (0.0.0.0 or :: for every address).
    pub host_ip: IpAddr,
    /// The host port listened on.
    pub host_port: u16,
    /// The port inside the container.
    pub container_port: u16,
    /// TCP or UDP.
    pub proto: Proto,
}

impl fmt::Display for PublishedPort {
    /// Docker's `berth port` line: `80/tcp -> 0.0.0.0:8080`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{} -> {}",
            self.container_port,
            self.proto,
            SocketAddr::new(self.host_ip, self.host_port)
        )
    }
}

fn bad(spec: &str, reason: &'static str) -> Error {
    Error::InvalidPublish {
        spec: spec.to_string(),
        reason,
    }
}

fn parse_range(spec: &str, s: &str) -> Result<(u16, u16)> {
    let (a, b) = match s.split_once('-') {
        Some((a, b)) => (a, b),
        None => (s, s),
    };
    let a: u16 = a
        .parse()
        .map_err(|_| bad(spec, "a port is a number from 1 to 65535"))?;
    let b: u16 = b
        .parse()
        .map_err(|_| bad(spec, "a port is a number from 1 to 65535"))?;
    if a == 0 || b == 0 {
        return Err(bad(spec, "a port is a number from 1 to 65535"));
    }
    if b < a {
        return Err(bad(spec, "a port range ends after it starts"));
    }
    Ok((a, b))
}

/// Parses one `-p/--publish` value into one request per container port.
///
/// Accepted: `80`, `8080:80`, `127.0.0.1:8080:80`, `127.0.0.1::80`, `[::1]:8080:80`,
/// `127.0.0.1:0:80` (host port 0: any free port), `8000-8002:80-82`, `8000-8010:80` (the
/// first free port of the range), `80-82`, and a `/tcp` or `/udp` suffix.
///
/// ```
/// use berth_net::port::{parse_publish, Proto};
/// let reqs = parse_publish("127.0.0.1:8080:80/udp").unwrap();
/// assert_eq!(reqs[0].host_port, 8080);
/// assert_eq!(reqs[0].container_port, 80);
/// assert_eq!(reqs[0].proto, Proto::Udp);
/// ```
pub fn parse_publish(spec: &str) -> Result<Vec<PortRequest>> {
    let (body, proto) = match spec.rsplit_once('/') {
        Some((b, "tcp")) => (b, Proto::Tcp),
        Some((b, "udp")) => (b, Proto::Udp),
        Some(_) => return Err(bad(spec, "the protocol is tcp or udp")),
        None => (spec, Proto::Tcp),
    };
    if body.is_empty() {
        return Err(bad(
            spec,
            "expected [ip:][hostPort:]containerPort[/tcp|udp]",
        ));
    }
    // Split off the address: a bracketed IPv6 address, or everything before the last two colons.
    let (ip_part, rest): (Option<&str>, &str) = if let Some(stripped) = body.strip_prefix('[') {
        let (ip, rest) = stripped
            .split_once(']')
            .ok_or_else(|| bad(spec, "an IPv6 address closes with ]"))?;
        let rest = rest
            .strip_prefix(':')
            .ok_or_else(|| bad(spec, "expected [ip]:hostPort:containerPort"))?;
        (Some(ip), rest)
    } else {
        let parts: Vec<&str> = body.split(':').collect();
        match parts.len() {
            1 | 2 => (None, body),
            3 => (Some(parts[0]), &body[parts[0].len() + 1..]),
            _ => {
                return Err(bad(
                    spec,
                    "expected [ip:][hostPort:]containerPort[/tcp|udp]",
                ))
            }
        }
    };
    let host_ip = match ip_part {
        None | Some("") => None,
        Some(ip) => Some(
            IpAddr::from_str(ip).map_err(|_| bad(spec, "the host address is not an IP address"))?,
        ),
    };
    let (host, container) = match rest.split_once(':') {
        Some((h, c)) => (Some(h), c),
        None => (None, rest),
    };
    let (cstart, cend) = parse_range(spec, container)?;
    let (hstart, hend) = match host {
        // Host port 0, as an empty one: any free port (Docker's `127.0.0.1:0:80`).
        None | Some("") | Some("0") => (0, 0),
        Some(h) => parse_range(spec, h)?,
    };
    let n = usize::from(cend - cstart) + 1;
    let mut out = Vec::with_capacity(n);
    if hstart == 0 {
        for p in cstart..=cend {
            out.push(PortRequest {
                host_ip,
                host_port: 0,
                host_port_end: 0,
                container_port: p,
                proto,
            });
        }
    } else if n == 1 {
        out.push(PortRequest {
            host_ip,
            host_port: hstart,
            host_port_end: hend,
            container_port: cstart,
            proto,
        });
    } else {
        if usize::from(hend - hstart) + 1 != n {
            return Err(bad(
                spec,
                "the host and container port ranges have the same length",
            ));
        }
        for (i, p) in (cstart..=cend).enumerate() {
            let hp = hstart + i as u16;
            out.push(PortRequest {
                host_ip,
                host_port: hp,
                host_port_end: hp,
                container_port: p,
                proto,
            });
        }
    }
    Ok(out)
}

/// Parses an image's `ExposedPorts` key (`80/tcp`, `53/udp`, `8080`) into a port and protocol.
pub fn parse_exposed(key: &str) -> Result<(u16, Proto)> {
    let (p, proto) = match key.rsplit_once('/') {
        Some((p, "tcp")) => (p, Proto::Tcp),
        Some((p, "udp")) => (p, Proto::Udp),
        Some(_) => return Err(bad(key, "the protocol is tcp or udp")),
        None => (key, Proto::Tcp),
    };
    let port: u16 = p
        .parse()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| bad(key, "a port is a number from 1 to 65535"))?;
    Ok((port, proto))
}

/// A bound host socket of a published port, ready to hand to the forwarder.
#[derive(Debug)]
pub enum HostSocket {
    /// A listening TCP socket.
    Tcp(TcpListener),
    /// A bound UDP socket.
    Udp(UdpSocket),
}

impl HostSocket {
    /// The raw descriptor (to pass it to a monitor across exec).
    pub fn as_raw_fd(&self) -> RawFd {
        match self {
            HostSocket::Tcp(l) => l.as_raw_fd(),
            HostSocket::Udp(u) => u.as_raw_fd(),
        }
    }

    /// Gives up ownership of the descriptor.
    pub fn into_owned_fd(self) -> OwnedFd {
        match self {
            HostSocket::Tcp(l) => OwnedFd::from(l),
            HostSocket::Udp(u) => OwnedFd::from(u),
        }
    }

    /// Takes ownership of a descriptor made by [`HostSocket::into_owned_fd`].
    pub fn from_owned_fd(proto: Proto, fd: OwnedFd) -> Self {
        match proto {
            Proto::Tcp => HostSocket::Tcp(TcpListener::from(fd)),
            Proto::Udp => HostSocket::Udp(UdpSocket::from(fd)),
        }
    }
}

/// One published port with its bound host socket.
#[derive(Debug)]
pub struct BoundPort {
    /// What was bound.
    pub port: PublishedPort,
    /// The socket.
    pub socket: HostSocket,
}

impl BoundPort {
    /// Encodes the port and its descriptor number for a monitor started by exec
    /// (`tcp/0.0.0.0/8080/80/FD`); the descriptor must be kept open across the exec.
    pub fn to_fd_arg(&self) -> String {
        let p = &self.port;
        format!(
            "{}/{}/{}/{}/{}",
            p.proto,
            p.host_ip,
            p.host_port,
            p.container_port,
            self.socket.as_raw_fd()
        )
    }

    /// Clears close-on-exec on the descriptor so an exec'd monitor inherits it.
    pub fn keep_across_exec(&self) -> Result<()> {
        crate::sys::set_cloexec(self.socket.as_raw_fd(), false)
    }

    /// Rebuilds a port from [`BoundPort::to_fd_arg`] in the process that inherited the fd.
    ///
    /// The descriptor must be one this process inherited for this purpose and owns.
    pub fn from_fd_arg(arg: &str) -> Result<Self> {
        let parts: Vec<&str> = arg.split('/').collect();
        let err = || bad(arg, "expected proto/ip/hostPort/containerPort/fd");
        if parts.len() != 5 {
            return Err(err());
        }
        let proto = match parts[0] {
            "tcp" => Proto::Tcp,
            "udp" => Proto::Udp,
            _ => return Err(err()),
        };
        let host_ip: IpAddr = parts[1].parse().map_err(|_| err())?;
        let host_port: u16 = parts[2].parse().map_err(|_| err())?;
        let container_port: u16 = parts[3].parse().map_err(|_| err())?;
        let fd: RawFd = parts[4].parse().map_err(|_| err())?;
        let owned = crate::sys::adopt_fd(fd)?;
        crate::sys::set_cloexec(fd, true)?;
        Ok(BoundPort {
            port: PublishedPort {
                host_ip,
                host_port,
                container_port,
                proto,
            },
            socket: HostSocket::from_owned_fd(proto, owned),
        })
    }
}

fn bind_one(addr: SocketAddr, proto: Proto) -> std::io::Result<HostSocket> {
    crate::sys::bind_socket(addr, proto)
}

fn bind_err(addr: SocketAddr, proto: Proto, e: std::io::Error) -> Error {
    if e.raw_os_error() == Some(libc::EADDRINUSE) {
        Error::PortInUse {
            addr,
            proto: proto.as_str(),
        }
    } else {
        Error::Bind {
            addr,
            proto: proto.as_str(),
            source: e,
        }
    }
}

fn v6_unavailable(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EAFNOSUPPORT) | Some(libc::EADDRNOTAVAIL) | Some(libc::EPROTONOSUPPORT)
    )
}

/// Binds one request on a given port: either its address, or 0.0.0.0 and [::] (when IPv6
/// exists) with the same port. Returns the sockets, or the error of the first failing bind.
fn bind_at(req: &PortRequest, port: u16) -> Result<Vec<BoundPort>> {
    let mut out = Vec::new();
    match req.host_ip {
        Some(ip) => {
            let addr = SocketAddr::new(ip, port);
            let s = bind_one(addr, req.proto).map_err(|e| bind_err(addr, req.proto, e))?;
            let port = local_port(&s)?;
            out.push(bound(ip, port, req, s));
        }
        None => {
            let addr4 = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port);
            let s4 = bind_one(addr4, req.proto).map_err(|e| bind_err(addr4, req.proto, e))?;
            let port = local_port(&s4)?;
            out.push(bound(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port, req, s4));
            let addr6 = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port);
            match bind_one(addr6, req.proto) {
                Ok(s6) => out.push(bound(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port, req, s6)),
                Err(e) if v6_unavailable(&e) => {}
                Err(e) => return Err(bind_err(addr6, req.proto, e)),
            }
        }
    }
    Ok(out)
}

fn local_port(s: &HostSocket) -> Result<u16> {
    let r = match s {
        HostSocket::Tcp(l) => l.local_addr(),
        HostSocket::Udp(u) => u.local_addr(),
    };
    r.map(|a| a.port()).map_err(|source| Error::Os {
        op: "getsockname",
        source,
    })
}

fn bound(ip: IpAddr, port: u16, req: &PortRequest, socket: HostSocket) -> BoundPort {
    BoundPort {
        port: PublishedPort {
            host_ip: ip,
            host_port: port,
            container_port: req.container_port,
            proto: req.proto,
        },
        socket,
    }
}

/// Binds host sockets for every request, all or nothing: on any failure every socket
/// bound so far is closed and the error names the port that could not be had.
pub fn bind_ports(reqs: &[PortRequest]) -> Result<Vec<BoundPort>> {
    let mut all = Vec::new();
    for req in reqs {
        let got = if req.host_port == 0 {
            // An ephemeral port free on v4 may be taken on v6: retry a few times.
            let mut last = None;
            let mut ok = None;
            for _ in 0..8 {
                match bind_at(req, 0) {
                    Ok(v) => {
                        ok = Some(v);
                        break;
                    }
                    Err(e) => last = Some(e),
                }
            }
            match ok {
                Some(v) => v,
                None => return Err(last.expect("at least one attempt")),
            }
        } else {
            let mut first_err = None;
            let mut ok = None;
            for p in req.host_port..=req.host_port_end {
                match bind_at(req, p) {
                    Ok(v) => {
                        ok = Some(v);
                        break;
                    }
                    Err(e) => {
                        if first_err.is_none() {
                            first_err = Some(e);
                        }
                    }
                }
            }
            match ok {
                Some(v) => v,
                None => return Err(first_err.expect("a range holds one port at least")),
            }
        };
        all.extend(got);
    }
    Ok(all)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_forms() {
        let r = parse_publish("80").unwrap();
        assert_eq!((r[0].host_port, r[0].container_port), (0, 80));
        let r = parse_publish("8080:80").unwrap();
        assert_eq!(
            (r[0].host_ip, r[0].host_port, r[0].container_port),
            (None, 8080, 80)
        );
        let r = parse_publish("127.0.0.1::80/udp").unwrap();
        assert_eq!(r[0].host_ip, Some("127.0.0.1".parse().unwrap()));
        assert_eq!((r[0].host_port, r[0].proto), (0, Proto::Udp));
        let r = parse_publish("[::1]:8080:80").unwrap();
        assert_eq!(r[0].host_ip, Some("::1".parse().unwrap()));
        let r = parse_publish("8000-8002:80-82").unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!((r[2].host_port, r[2].container_port), (8002, 82));
        let r = parse_publish("8000-8010:80").unwrap();
        assert_eq!((r[0].host_port, r[0].host_port_end), (8000, 8010));
        let r = parse_publish("80-81").unwrap();
        assert_eq!(r.len(), 2);
        let r = parse_publish("127.0.0.1:0:80").unwrap();
        assert_eq!((r[0].host_port, r[0].host_port_end), (0, 0));
        assert_eq!(r[0].host_ip, Some("127.0.0.1".parse().unwrap()));
        let r = parse_publish("0:80/udp").unwrap();
        assert_eq!((r[0].host_port, r[0].proto), (0, Proto::Udp));
    }

    #[test]
    fn rejects_bad_specs() {
        for s in [
            "",
            "x",
            "0",
            "70000",
            "80/sctp",
            "1:2:3:4",
            "[::1:80:80",
            "8000-8001:80-82",
            "90-80",
            "a.b.c.d:80:80",
            ":",
            "80:",
        ] {
            assert!(parse_publish(s).is_err(), "{s} should be refused");
        }
    }

    #[test]
    fn displays_like_docker_port() {
        let p = PublishedPort {
            host_ip: "::".parse().unwrap(),
            host_port: 8080,
            container_port: 80,
            proto: Proto::Tcp,
        };
        assert_eq!(p.to_string(), "80/tcp -> [::]:8080");
    }

    #[test]
    fn port_in_use_is_a_conflict_and_nothing_stays_bound() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let free = TcpListener::bind("127.0.0.1:0").unwrap();
        let free_port = free.local_addr().unwrap().port();
        drop(free);
        let mut reqs = parse_publish(&format!("127.0.0.1:{free_port}:81")).unwrap();
        reqs.extend(parse_publish(&format!("127.0.0.1:{port}:80")).unwrap());
        let err = bind_ports(&reqs).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Conflict);
        assert!(err.to_string().contains("already in use"), "{err}");
        // The first socket was released with the failure.
        TcpListener::bind(("127.0.0.1", free_port)).unwrap();
    }

    #[test]
    fn fd_arg_round_trip_hands_over_the_socket() {
        use std::os::fd::IntoRawFd;
        let mut b = bind_ports(&parse_publish("127.0.0.1::80/udp").unwrap()).unwrap();
        let bp = b.remove(0);
        bp.keep_across_exec().unwrap();
        let arg = bp.to_fd_arg();
        let port = bp.port;
        // Give up ownership as a process does across exec.
        let _raw = bp.socket.into_owned_fd().into_raw_fd();
        let back = BoundPort::from_fd_arg(&arg).unwrap();
        assert_eq!(back.port, port);
        assert!(matches!(back.socket, HostSocket::Udp(_)));
        assert!(BoundPort::from_fd_arg("tcp/1.2.3.4/1/2/-1").is_err());
        assert!(BoundPort::from_fd_arg("nonsense").is_err());
    }

    #[test]
    fn binds_v4_and_v6_on_the_same_port() {
        let reqs = parse_publish("0:80").unwrap_or_else(|_| parse_publish("80").unwrap());
        let b = bind_ports(&reqs).unwrap();
        assert!(!b.is_empty());
        let port = b[0].port.host_port;
        assert!(b.iter().all(|x| x.port.host_port == port));
    }
}
