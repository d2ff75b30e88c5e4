//! Setting up and tearing down one container's networking: its namespace and one veth
//! endpoint per network, all or nothing; teardown keeps going past failures.

use std::path::{Path, PathBuf};

use crate::error::{Result, TeardownErrors};
use crate::ops::{BridgeSpec, EndpointSpec, NetOps};

/// Where a container's network namespace is pinned: `RUNROOT/netns/<container id>`.
pub fn netns_path(runroot: &Path, container_id: &str) -> PathBuf {
    runroot.join("netns").join(container_id)
}

/// The host-side veth name of a container's endpoint on a network: `vb` + 9 hex digits of
/// the container ID + 4 of the network ID (15 characters, the kernel's limit), so cleanup
/// after a crash finds it from the IDs alone.
pub fn veth_name(container_id: &str, network_id: &str) -> String {
    let c: String = container_id.chars().take(9).collect();
    let n: String = network_id.chars().take(4).collect();
    format!("vb{c}{n}")
}

/// The bridge interface of a user-defined network: `br-` + 12 hex digits of its ID (Docker's).
pub fn bridge_name(network_id: &str) -> String {
    let n: String = network_id.chars().take(12).collect();
    format!("br-{n}")
}

/// Creates the namespace at `netns` (lo up) and one endpoint per `(bridge, endpoint)`.
/// On failure everything made so far is removed again and the first error returned.
pub fn setup(ops: &dyn NetOps, netns: &Path, links: &[(BridgeSpec, EndpointSpec)]) -> Result<()> {
    ops.create_netns(netns)?;
    for (i, (bridge, ep)) in links.iter().enumerate() {
        let r = ops
            .ensure_bridge(bridge)
            .and_then(|()| ops.add_endpoint(netns, bridge, ep));
        if let Err(e) = r {
            let made: Vec<String> = links[..i]
                .iter()
                .map(|(_, e)| e.host_ifname.clone())
                .collect();
            let _ = teardown(ops, Some(netns), &made);
            return Err(e);
        }
    }
    Ok(())
}

/// Adds one endpoint to a running container's namespace (`network connect`).
pub fn connect(
    ops: &dyn NetOps,
    netns: &Path,
    bridge: &BridgeSpec,
    ep: &EndpointSpec,
) -> Result<()> {
    ops.ensure_bridge(bridge)?;
    ops.add_endpoint(netns, bridge, ep)
}

/// Removes endpoints and the namespace; every step is tried, the errors are collected.
pub fn teardown(ops: &dyn NetOps, netns: Option<&Path>, host_ifnames: &[String]) -> Result<()> {
    let mut errs = TeardownErrors::default();
    for name in host_ifnames {
        errs.note(ops.remove_endpoint(name));
    }
    if let Some(ns) = netns {
        errs.note(ops.remove_netns(ns));
    }
    errs.finish()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::ops::{NetCall, RecordingNetOps};
    use std::net::Ipv4Addr;

    fn link(n: u8) -> (BridgeSpec, EndpointSpec) {
        (
            BridgeSpec {
                name: format!("br{n}"),
                subnet: format!("10.{n}.0.0/24").parse().unwrap(),
                gateway: Ipv4Addr::new(10, n, 0, 1),
                forwarding: false,
                ipv6: None,
            },
            EndpointSpec {
                host_ifname: format!("vb{n}"),
                container_ifname: format!("eth{n}"),
                address: Ipv4Addr::new(10, n, 0, 2),
                prefix_len: 24,
                default_gateway: None,
                mac: None,
                ipv6: None,
            },
        )
    }

    #[test]
    fn names_fit_the_kernel_limit() {
        let id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        assert_eq!(veth_name(id, "fedcba9876").len(), 15);
        assert_eq!(bridge_name(id), "br-0123456789ab");
    }

    #[test]
    fn setup_makes_namespace_then_endpoints() {
        let ops = RecordingNetOps::new();
        let ns = Path::new("/run/x/netns/c1");
        setup(&ops, ns, &[link(1), link(2)]).unwrap();
        let calls = ops.calls();
        assert_eq!(calls[0], NetCall::CreateNetns(ns.into()));
        assert_eq!(calls[1], NetCall::EnsureBridge("br1".into()));
        assert!(matches!(&calls[2], NetCall::AddEndpoint(_, b, v, _) if b == "br1" && v == "vb1"));
        assert_eq!(ops.links(), vec!["br1", "vb1", "br2", "vb2"]);
    }

    #[test]
    fn failed_setup_leaves_nothing() {
        let ops = RecordingNetOps::new();
        let ns = Path::new("/run/x/netns/c2");
        ops.fail_add_endpoint(true);
        assert!(setup(&ops, ns, &[link(1)]).is_err());
        assert_eq!(ops.calls().last(), Some(&NetCall::RemoveNetns(ns.into())));
        assert!(!ops.links().iter().any(|l| l.starts_with("vb")));
    }

    #[test]
    fn teardown_tries_everything() {
        let ops = RecordingNetOps::new();
        teardown(&ops, Some(Path::new("/n")), &["a".into(), "b".into()]).unwrap();
        assert_eq!(
            ops.calls(),
            vec![
                NetCall::RemoveEndpoint("a".into()),
                NetCall::RemoveEndpoint("b".into()),
                NetCall::RemoveNetns("/n".into())
            ]
        );
    }
}
