//! A small synchronous rtnetlink client: requests are batched into one `sendmsg` and their
//! acknowledgements read back, so a whole container setup costs few round trips.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, BorrowedFd};

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL,
    NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressMessage};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::rule::{RuleAction, RuleAttribute, RuleMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

const NLMSG_ERROR: u16 = 2;
const RTM_NEWLINK: u16 = 16;

use crate::error::{Error, Result};

/// One request of a batch: the message, its extra flags, and what to call it in errors.
pub(crate) struct Request {
    pub msg: RouteNetlinkMessage,
    pub flags: u16,
    pub op: &'static str,
    pub target: String,
    /// Errnos that count as success (EEXIST for "ensure", ENODEV for "delete").
    pub ok_errnos: &'static [i32],
}

/// An rtnetlink socket bound to the network namespace it was created in.
pub(crate) struct Rtnl {
    sock: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl Rtnl {
    /// Opens a socket in the calling thread's network namespace.
    pub fn open() -> Result<Self> {
        let mut sock = Socket::new(NETLINK_ROUTE).map_err(|source| Error::Os {
            op: "open netlink socket",
            source,
        })?;
        sock.bind_auto().map_err(|source| Error::Os {
            op: "bind netlink socket",
            source,
        })?;
        let _ = sock.set_ext_ack(true);
        Ok(Rtnl {
            sock,
            seq: 1,
            buf: vec![0; 64 * 1024],
        })
    }

    /// Sends every request in one datagram and waits for all acknowledgements. Returns the
    /// first failure (the kernel goes on with the later requests of the batch regardless).
    pub fn batch(&mut self, reqs: Vec<Request>) -> Result<()> {
        self.batch_collect(reqs).map(|_| ())
    }

    /// Like [`Rtnl::batch`], also returning the interface indexes of the link messages
    /// answered (for GET requests). Answers are read from their raw headers: decoding every
    /// attribute of a link (statistics, per-family configuration) costs time and warns on
    /// kernels newer than the crate.
    pub fn batch_collect(&mut self, reqs: Vec<Request>) -> Result<Vec<u32>> {
        if reqs.is_empty() {
            return Ok(Vec::new());
        }
        let first_seq = self.seq;
        let mut out = Vec::new();
        for r in &reqs {
            let mut hdr = NetlinkHeader::default();
            hdr.flags = NLM_F_REQUEST | NLM_F_ACK | r.flags;
            hdr.sequence_number = self.seq;
            self.seq = self.seq.wrapping_add(1);
            let mut m = NetlinkMessage::new(hdr, NetlinkPayload::InnerMessage(r.msg.clone()));
            m.finalize();
            let start = out.len();
            out.resize(start + m.buffer_len(), 0);
            m.serialize(&mut out[start..]);
        }
        let kernel = SocketAddr::new(0, 0);
        self.sock
            .send_to(&out, &kernel, 0)
            .map_err(|source| Error::Os {
                op: "send netlink request",
                source,
            })?;
        let mut pending = reqs.len();
        let mut first_err: Option<Error> = None;
        let mut answers = Vec::new();
        let rd = |b: &[u8], at: usize| -> u32 {
            b.get(at..at + 4)
                .map(|x| u32::from_ne_bytes([x[0], x[1], x[2], x[3]]))
                .unwrap_or(0)
        };
        while pending > 0 {
            let n = self
                .sock
                .recv(&mut &mut self.buf[..], 0)
                .map_err(|source| Error::Os {
                    op: "receive netlink answer",
                    source,
                })?;
            let b = &self.buf[..n];
            let mut off = 0;
            while off + 16 <= n {
                let len = rd(b, off) as usize;
                let kind = u16::from_ne_bytes([b[off + 4], b[off + 5]]);
                let seq = rd(b, off + 8);
                if kind == NLMSG_ERROR {
                    let idx = seq.wrapping_sub(first_seq) as usize;
                    if idx < reqs.len() {
                        pending -= 1;
                        let code = rd(b, off + 16) as i32;
                        if code != 0 {
                            let errno = -code;
                            let r = &reqs[idx];
                            if !r.ok_errnos.contains(&errno) && first_err.is_none() {
                                first_err = Some(Error::Netlink {
                                    op: r.op,
                                    target: r.target.clone(),
                                    source: io::Error::from_raw_os_error(errno),
                                });
                            }
                        }
                    }
                } else if kind == RTM_NEWLINK {
                    // struct ifinfomsg { u8 family; u8 pad; u16 type; i32 index; ... }
                    answers.push(rd(b, off + 16 + 4));
                }
                if len < 16 {
                    break;
                }
                off += (len + 3) & !3;
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(answers),
        }
    }

    /// The index of the link named `name`, if it exists.
    pub fn link_index(&mut self, name: &str) -> Result<Option<u32>> {
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        let r = self.batch_collect(vec![Request {
            msg: RouteNetlinkMessage::GetLink(m),
            flags: 0,
            op: "get link",
            target: name.to_string(),
            ok_errnos: &[],
        }]);
        match r {
            Ok(answers) => Ok(answers.into_iter().next()),
            Err(Error::Netlink { source, .. }) if source.raw_os_error() == Some(libc::ENODEV) => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// The raw descriptor (for tests of which namespace it lives in).
    #[allow(dead_code)]
    pub fn raw_fd(&self) -> i32 {
        self.sock.as_raw_fd()
    }
}

/// `ip link add NAME type bridge` + up; EEXIST counts as success.
pub(crate) fn new_bridge(name: &str) -> Request {
    let mut m = LinkMessage::default();
    m.header.flags = LinkFlags::Up;
    m.header.change_mask = LinkFlags::Up;
    m.attributes.push(LinkAttribute::IfName(name.to_string()));
    m.attributes
        .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
            InfoKind::Bridge,
        )]));
    Request {
        msg: RouteNetlinkMessage::NewLink(m),
        flags: NLM_F_CREATE | NLM_F_EXCL,
        op: "create bridge",
        target: name.to_string(),
        ok_errnos: &[libc::EEXIST],
    }
}

/// Sets a link up by index.
pub(crate) fn link_up(index: u32, name: &str) -> Request {
    let mut m = LinkMessage::default();
    m.header.index = index;
    m.header.flags = LinkFlags::Up;
    m.header.change_mask = LinkFlags::Up;
    Request {
        msg: RouteNetlinkMessage::SetLink(m),
        flags: 0,
        op: "set link up",
        target: name.to_string(),
        ok_errnos: &[],
    }
}

/// Creates a veth pair: `host` (up, enslaved to `master`) here, `peer` created directly in
/// the namespace `netns`, so no separate move is needed. The peer is set up later from
/// inside (asking for it up at creation fails with ENOTCONN across namespaces).
pub(crate) fn new_veth(
    host: &str,
    master: u32,
    peer: &str,
    peer_mac: Option<[u8; 6]>,
    netns: BorrowedFd<'_>,
) -> Request {
    let mut p = LinkMessage::default();
    p.attributes.push(LinkAttribute::IfName(peer.to_string()));
    if let Some(mac) = peer_mac {
        p.attributes.push(LinkAttribute::Address(mac.to_vec()));
    }
    p.attributes.push(LinkAttribute::NetNsFd(netns.as_raw_fd()));
    let mut m = LinkMessage::default();
    m.header.flags = LinkFlags::Up;
    m.header.change_mask = LinkFlags::Up;
    m.attributes.push(LinkAttribute::IfName(host.to_string()));
    m.attributes.push(LinkAttribute::Controller(master));
    m.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::Kind(InfoKind::Veth),
        LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(p))),
    ]));
    Request {
        msg: RouteNetlinkMessage::NewLink(m),
        flags: NLM_F_CREATE | NLM_F_EXCL,
        op: "create veth",
        target: host.to_string(),
        ok_errnos: &[],
    }
}

/// Deletes a link by name; a missing link counts as success.
pub(crate) fn del_link(name: &str) -> Request {
    let mut m = LinkMessage::default();
    m.attributes.push(LinkAttribute::IfName(name.to_string()));
    Request {
        msg: RouteNetlinkMessage::DelLink(m),
        flags: 0,
        op: "delete link",
        target: name.to_string(),
        ok_errnos: &[libc::ENODEV],
    }
}

/// Adds an address with its prefix to a link, with the family's `extra` attribute;
/// EEXIST counts as success.
fn new_addr(
    index: u32,
    ifname: &str,
    addr: std::net::IpAddr,
    prefix: u8,
    extra: AddressAttribute,
) -> Request {
    let mut m = AddressMessage::default();
    m.header.family = match addr {
        std::net::IpAddr::V4(_) => AddressFamily::Inet,
        std::net::IpAddr::V6(_) => AddressFamily::Inet6,
    };
    m.header.prefix_len = prefix;
    m.header.index = index;
    m.attributes.push(AddressAttribute::Local(addr));
    m.attributes.push(AddressAttribute::Address(addr));
    m.attributes.push(extra);
    Request {
        msg: RouteNetlinkMessage::NewAddress(m),
        flags: NLM_F_CREATE | NLM_F_EXCL,
        op: "add address",
        target: format!("{addr}/{prefix} on {ifname}"),
        ok_errnos: &[libc::EEXIST],
    }
}

/// Adds an IPv4 address with its prefix (and the subnet's broadcast address) to a link;
/// EEXIST counts as success.
pub(crate) fn new_addr4(index: u32, ifname: &str, addr: Ipv4Addr, prefix: u8) -> Request {
    let bits = if prefix >= 32 { 0 } else { u32::MAX >> prefix };
    let broadcast = AddressAttribute::Broadcast(Ipv4Addr::from(u32::from(addr) | bits));
    new_addr(index, ifname, addr.into(), prefix, broadcast)
}

/// Adds an IPv6 address with its prefix to a link, usable at once (no duplicate address
/// detection: berth allocated it); EEXIST counts as success.
pub(crate) fn new_addr6(index: u32, ifname: &str, addr: Ipv6Addr, prefix: u8) -> Request {
    let nodad = AddressAttribute::Flags(AddressFlags::Nodad);
    new_addr(index, ifname, addr.into(), prefix, nodad)
}

/// The priority of berth's IPv6 policy rules: right after the `local` table's (0), so
/// traffic to the host's own addresses is still delivered, before any other rule.
pub(crate) const BRIDGE_RULE_PRIORITY: u32 = 1000;

/// The IPv6 policy rule `from all iif BRIDGE prohibit` (priority
/// [`BRIDGE_RULE_PRIORITY`]): what arrives on the bridge for an address that is not the
/// host's own is refused instead of routed, as IPv4's per-interface `forwarding = 0` does
/// (IPv6 has only the host-wide switch). `add` false deletes it. EEXIST on add, ENOENT
/// on delete and a kernel without IPv6 count as success.
pub(crate) fn bridge_rule6(bridge: &str, add: bool) -> Request {
    let mut m = RuleMessage::default();
    m.header.family = AddressFamily::Inet6;
    m.header.action = RuleAction::Prohibit;
    m.attributes
        .push(RuleAttribute::Iifname(bridge.to_string()));
    m.attributes
        .push(RuleAttribute::Priority(BRIDGE_RULE_PRIORITY));
    if add {
        Request {
            msg: RouteNetlinkMessage::NewRule(m),
            flags: NLM_F_CREATE | NLM_F_EXCL,
            op: "add IPv6 rule",
            target: format!("iif {bridge} prohibit"),
            // A kernel without IPv6 has nothing to route.
            ok_errnos: &[libc::EEXIST, libc::EAFNOSUPPORT, libc::EOPNOTSUPP],
        }
    } else {
        Request {
            msg: RouteNetlinkMessage::DelRule(m),
            flags: 0,
            op: "delete IPv6 rule",
            target: format!("iif {bridge} prohibit"),
            ok_errnos: &[libc::ENOENT, libc::EAFNOSUPPORT, libc::EOPNOTSUPP],
        }
    }
}

/// Adds the default route (IPv4 or IPv6, by the gateway's family) via `gw` on link `index`.
pub(crate) fn default_route(index: u32, gw: std::net::IpAddr) -> Request {
    let mut m = RouteMessage::default();
    let (family, gateway) = match gw {
        std::net::IpAddr::V4(a) => (AddressFamily::Inet, RouteAddress::Inet(a)),
        std::net::IpAddr::V6(a) => (AddressFamily::Inet6, RouteAddress::Inet6(a)),
    };
    m.header.address_family = family;
    m.header.table = RouteHeader::RT_TABLE_MAIN;
    m.header.protocol = RouteProtocol::Boot;
    m.header.scope = RouteScope::Universe;
    m.header.kind = RouteType::Unicast;
    m.attributes.push(RouteAttribute::Gateway(gateway));
    m.attributes.push(RouteAttribute::Oif(index));
    Request {
        msg: RouteNetlinkMessage::NewRoute(m),
        flags: NLM_F_CREATE | NLM_F_EXCL,
        op: "add default route",
        target: format!("via {gw}"),
        ok_errnos: &[libc::EEXIST],
    }
}
