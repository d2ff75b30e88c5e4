//! Raw netlink queries that need no message crate: the host's IPv4 subnets (addresses and
//! routes, for picking a free subnet) and whether an nftables table or set exists (one
//! round trip instead of running `nft`, on every container start).

use std::io;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use netlink_sys::{Socket, SocketAddr};

use crate::error::{Error, Result};

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLM_F_DUMP: u16 = 0x300;

const NETLINK_ROUTE: isize = 0;
const NETLINK_NETFILTER: isize = 12;

const RTM_GETLINK: u16 = 18;
const RTM_NEWLINK: u16 = 16;
const IFLA_IFNAME: u16 = 3;
const IFLA_MASTER: u16 = 10;
const RTM_GETADDR: u16 = 22;
const RTM_NEWADDR: u16 = 20;
const RTM_GETROUTE: u16 = 26;
const RTM_NEWROUTE: u16 = 24;
const AF_INET: u8 = 2;
const IFA_ADDRESS: u16 = 1;
const RTA_DST: u16 = 1;
const RTA_TABLE: u16 = 15;
const RTA_OIF: u16 = 4;
const RT_TABLE_LOCAL: u32 = 255;

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_MSG_GETTABLE: u16 = 1;
const NFT_MSG_GETSET: u16 = 10;
const NFTA_TABLE_NAME: u16 = 1;
const NFTA_SET_TABLE: u16 = 1;
const NFTA_SET_NAME: u16 = 2;

fn os(op: &'static str) -> impl FnOnce(io::Error) -> Error {
    move |source| Error::Os { op, source }
}

fn attr(kind: u16, value: &[u8]) -> Vec<u8> {
    let len = 4 + value.len();
    let mut v = Vec::with_capacity((len + 3) & !3);
    v.extend_from_slice(&(len as u16).to_ne_bytes());
    v.extend_from_slice(&kind.to_ne_bytes());
    v.extend_from_slice(value);
    v.resize((len + 3) & !3, 0);
    v
}

fn cstr(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

/// One answer message: its type and payload.
type Answer = (u16, Vec<u8>);

/// Attributes after a fixed header of `skip` bytes: `(type, value)`.
fn attrs(payload: &[u8], skip: usize) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    let mut off = skip;
    while off + 4 <= payload.len() {
        let len = u16::from_ne_bytes([payload[off], payload[off + 1]]) as usize;
        let kind = u16::from_ne_bytes([payload[off + 2], payload[off + 3]]) & 0x3fff;
        if len < 4 || off + len > payload.len() {
            break;
        }
        out.push((kind, &payload[off + 4..off + len]));
        off += (len + 3) & !3;
    }
    out
}

/// Sends one request and collects the answers' `(type, payload)` until the dump ends or
/// the acknowledgement comes. An error answer is returned as its errno.
fn request(
    proto: isize,
    kind: u16,
    flags: u16,
    body: &[u8],
) -> Result<std::result::Result<Vec<Answer>, i32>> {
    let mut sock = Socket::new(proto).map_err(os("open netlink socket"))?;
    sock.bind_auto().map_err(os("bind netlink socket"))?;
    let len = 16 + body.len();
    let mut msg = Vec::with_capacity(len);
    msg.extend_from_slice(&(len as u32).to_ne_bytes());
    msg.extend_from_slice(&kind.to_ne_bytes());
    msg.extend_from_slice(&(NLM_F_REQUEST | flags).to_ne_bytes());
    msg.extend_from_slice(&1u32.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg.extend_from_slice(body);
    sock.send_to(&msg, &SocketAddr::new(0, 0), 0)
        .map_err(os("send netlink request"))?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = sock
            .recv(&mut &mut buf[..], 0)
            .map_err(os("receive netlink answer"))?;
        let b = &buf[..n];
        let mut off = 0;
        while off + 16 <= n {
            let len = u32::from_ne_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]]) as usize;
            let t = u16::from_ne_bytes([b[off + 4], b[off + 5]]);
            if len < 16 || off + len > n {
                return Ok(Ok(out));
            }
            match t {
                NLMSG_DONE => return Ok(Ok(out)),
                NLMSG_ERROR => {
                    let code =
                        i32::from_ne_bytes([b[off + 16], b[off + 17], b[off + 18], b[off + 19]]);
                    return Ok(if code == 0 { Ok(out) } else { Err(-code) });
                }
                _ => out.push((t, b[off + 16..off + len].to_vec())),
            }
            off += (len + 3) & !3;
        }
    }
}

/// Every link of this namespace: `(index, name, master's index)`.
pub(crate) fn links() -> Result<Vec<(u32, String, Option<u32>)>> {
    // struct ifinfomsg { family, pad, type: u16, index: i32, flags: u32, change: u32 }
    let body = [0u8; 16];
    let answers = request(NETLINK_ROUTE, RTM_GETLINK, NLM_F_DUMP, &body)?
        .map_err(|e| os("dump links")(io::Error::from_raw_os_error(e)))?;
    let mut out = Vec::new();
    for (t, p) in answers {
        if t != RTM_NEWLINK || p.len() < 16 {
            continue;
        }
        let index = u32::from_ne_bytes([p[4], p[5], p[6], p[7]]);
        let mut name = String::new();
        let mut master = None;
        for (k, v) in attrs(&p, 16) {
            match k {
                IFLA_IFNAME => {
                    name = String::from_utf8_lossy(v.split(|b| *b == 0).next().unwrap_or(v))
                        .into_owned()
                }
                IFLA_MASTER if v.len() == 4 => {
                    master = Some(u32::from_ne_bytes([v[0], v[1], v[2], v[3]]))
                }
                _ => {}
            }
        }
        out.push((index, name, master));
    }
    Ok(out)
}

/// The IPv4 addresses of this namespace with their prefixes: `(link index, subnet)`.
pub(crate) fn ipv4_addresses() -> Result<Vec<(u32, Ipv4Net)>> {
    let mut out = Vec::new();
    // struct ifaddrmsg { family, prefixlen, flags, scope, index: u32 }
    let body = [AF_INET, 0, 0, 0, 0, 0, 0, 0];
    let addrs = request(NETLINK_ROUTE, RTM_GETADDR, NLM_F_DUMP, &body)?
        .map_err(|e| os("dump addresses")(io::Error::from_raw_os_error(e)))?;
    for (t, p) in addrs {
        if t != RTM_NEWADDR || p.len() < 8 || p[0] != AF_INET {
            continue;
        }
        let index = u32::from_ne_bytes([p[4], p[5], p[6], p[7]]);
        for (k, v) in attrs(&p, 8) {
            if k == IFA_ADDRESS && v.len() == 4 {
                let a = Ipv4Addr::new(v[0], v[1], v[2], v[3]);
                if let Ok(n) = Ipv4Net::new(a, p[1]) {
                    out.push((index, n.trunc()));
                }
            }
        }
    }
    Ok(out)
}

/// The IPv4 subnets in use on this host (its network namespace): every interface address
/// with its prefix, and every route's destination but the default route and the local
/// table's; none of link `except` (its addresses, routes out of it).
pub(crate) fn host_ipv4_subnets(except: Option<&str>) -> Result<Vec<Ipv4Net>> {
    let skip = match except {
        Some(name) => links()?.into_iter().find(|l| l.1 == name).map(|l| l.0),
        None => None,
    };
    let mut out: Vec<Ipv4Net> = ipv4_addresses()?
        .into_iter()
        .filter(|(i, _)| Some(*i) != skip)
        .map(|(_, n)| n)
        .collect();
    // struct rtmsg { family, dst_len, src_len, tos, table, protocol, scope, type, flags: u32 }
    let body = [AF_INET, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let routes = request(NETLINK_ROUTE, RTM_GETROUTE, NLM_F_DUMP, &body)?
        .map_err(|e| os("dump routes")(io::Error::from_raw_os_error(e)))?;
    for (t, p) in routes {
        if t != RTM_NEWROUTE || p.len() < 12 || p[0] != AF_INET || p[1] == 0 {
            continue;
        }
        let mut table = u32::from(p[4]);
        let mut dst = None;
        let mut oif = None;
        for (k, v) in attrs(&p, 12) {
            match (k, v.len()) {
                (RTA_DST, 4) => dst = Some(Ipv4Addr::new(v[0], v[1], v[2], v[3])),
                (RTA_TABLE, 4) => table = u32::from_ne_bytes([v[0], v[1], v[2], v[3]]),
                (RTA_OIF, 4) => oif = Some(u32::from_ne_bytes([v[0], v[1], v[2], v[3]])),
                _ => {}
            }
        }
        if table == RT_TABLE_LOCAL || (skip.is_some() && oif == skip) {
            continue;
        }
        if let Some(n) = dst.and_then(|d| Ipv4Net::new(d, p[1]).ok()) {
            out.push(n.trunc());
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// The nftables family number of `inet`, `ip`, `ip6`.
fn nf_family(family: &str) -> u8 {
    match family {
        "ip" => 2,
        "ip6" => 10,
        _ => 1,
    }
}

fn nft_get(kind: u16, family: &str, attrs: &[u8]) -> Result<bool> {
    // struct nfgenmsg { family, version, res_id: be16 }
    let mut body = vec![nf_family(family), 0, 0, 0];
    body.extend_from_slice(attrs);
    match request(
        NETLINK_NETFILTER,
        (NFNL_SUBSYS_NFTABLES << 8) | kind,
        NLM_F_ACK,
        &body,
    )? {
        Ok(_) => Ok(true),
        Err(e) if e == libc::ENOENT => Ok(false),
        Err(e) => Err(Error::Os {
            op: "query nftables",
            source: io::Error::from_raw_os_error(e),
        }),
    }
}

/// Whether table `name` of `family` exists (EPROTONOSUPPORT and the like: an error, e.g. a
/// kernel without nf_tables).
pub(crate) fn nft_table_exists(family: &str, name: &str) -> Result<bool> {
    nft_get(
        NFT_MSG_GETTABLE,
        family,
        &attr(NFTA_TABLE_NAME, &cstr(name)),
    )
}

/// Whether set `set` of table `table` of `family` exists.
pub(crate) fn nft_set_exists(family: &str, table: &str, set: &str) -> Result<bool> {
    let mut a = attr(NFTA_SET_TABLE, &cstr(table));
    a.extend(attr(NFTA_SET_NAME, &cstr(set)));
    nft_get(NFT_MSG_GETSET, family, &a)
}
