//! berth-net: container networking for berth: network namespaces, the default bridge and
//! user-defined bridge networks, veth pairs, IP address management, the `/etc/hosts`,
//! `/etc/hostname` and `/etc/resolv.conf` of containers, and published ports.
//!
//! It owns no database and knows nothing of images: `berth-engine` keeps networks and
//! address allocations in the store and calls this crate to make them real.
//!
//! Main types and functions:
//! - [`ops::NetOps`]: the kernel operations (netlink, namespaces) with the Linux
//!   implementation [`ops::LinuxNetOps`] and the recording fake [`ops::RecordingNetOps`];
//! - [`endpoint::setup`] / [`endpoint::teardown`]: a container's namespace and endpoints,
//!   all or nothing;
//! - [`port::parse_publish`], [`port::bind_ports`] and [`forward::PortForwarder`]: `-p`
//!   values, the host sockets bound before the container starts, and the userland
//!   forwarder that the container's monitor runs;
//! - [`etc`]: hosts and resolv.conf rendering; [`ipam`]: free addresses and subnets;
//!   [`config::NetConfig`]: `[network]` of `berth.toml` (`docs/config.md`); [`nft`]: the
//!   nftables rules, on by default (masquerade, DNAT, isolation), in berth's own table.
//!
//! How a container uses it (`berth-engine`'s `network` and `network_container` modules do
//! this): before start, bind the published ports ([`port::bind_ports`]; a port in use fails
//! here), create the pinned namespace and endpoints ([`endpoint::setup`]), write the /etc
//! files ([`etc`]), give the runtime the namespace path; the monitor then runs
//! [`forward::PortForwarder::start`]`(ports, &netns_path)` until the container ends;
//! teardown unpins the namespace ([`endpoint::teardown`]), the kernel then removes the
//! veth pair with it.
//!
//! ```
//! use berth_net::port::{parse_publish, Proto};
//! let reqs = parse_publish("8080:80").unwrap();
//! assert_eq!((reqs[0].host_port, reqs[0].container_port, reqs[0].proto), (8080, 80, Proto::Tcp));
//! ```
#![deny(missing_docs)]

pub mod config;
pub mod endpoint;
pub mod error;
pub mod etc;
pub mod forward;
pub mod ipam;
pub mod nft;
pub mod ops;
pub mod port;
mod sys;
#[doc(hidden)]
pub mod test_support;

pub use error::{Error, ErrorKind, Result};
