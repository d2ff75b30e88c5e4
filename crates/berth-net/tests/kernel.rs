//! berth-net against the real kernel: namespaces, a bridge, veth endpoints and the port
//! forwarder, with servers running inside namespaces these tests create. Root only; traffic
//! stays on loopback and inside the test's own namespaces and bridges.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use berth_net::endpoint::{self, netns_path};
use berth_net::forward::PortForwarder;
use berth_net::ops::{BridgeSpec, EndpointSpec, LinuxNetOps, NetOps};
use berth_net::port::{bind_ports, parse_publish};

fn root_or_skip(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{test} needs root (network namespaces, bridges) and CI is set");
    }
    eprintln!("skipping {test}: needs root for network namespaces and bridges");
    false
}

/// A bridge name and a /27 of 10.211.R.0/24 unique to this test (R reserved per process).
fn bridge(n: u8) -> BridgeSpec {
    static R: std::sync::OnceLock<berth_net::test_support::Reservation> =
        std::sync::OnceLock::new();
    let r = R
        .get_or_init(|| berth_net::test_support::reserve("kernel"))
        .n;
    let base = n * 32;
    BridgeSpec {
        name: format!("bt{r}x{n}"),
        subnet: format!("10.211.{r}.{base}/27").parse().unwrap(),
        gateway: Ipv4Addr::new(10, 211, r, base + 1),
        forwarding: false,
        ipv6: None,
    }
}

fn endpoint(b: &BridgeSpec, host: u8, name: &str) -> EndpointSpec {
    let o = b.gateway.octets();
    EndpointSpec {
        host_ifname: name.to_string(),
        container_ifname: "eth0".into(),
        address: Ipv4Addr::new(o[0], o[1], o[2], o[3] - 1 + host),
        prefix_len: 27,
        default_gateway: Some(b.gateway),
        mac: None,
        ipv6: None,
    }
}

/// Runs `f` on a thread inside the namespace `ns`.
fn spawn_in<T: Send + 'static>(
    ns: &Path,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    let fd = std::fs::File::open(ns).unwrap();
    std::thread::spawn(move || {
        nix::sched::setns(fd.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        f()
    })
}

/// A one-shot-per-connection HTTP-ish server: answers every connection with `body`.
fn serve_http(l: TcpListener, body: &'static str) {
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { return };
            std::thread::spawn(move || {
                let mut buf = [0u8; 1024];
                let _ = c.read(&mut buf);
                let _ = write!(
                    c,
                    "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{}",
                    body.len(),
                    body
                );
            });
        }
    });
}

fn get(addr: SocketAddr) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

struct Cleanup {
    ops: LinuxNetOps,
    netns: Vec<PathBuf>,
    links: Vec<String>,
    bridges: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for n in &self.netns {
            let _ = endpoint::teardown(&self.ops, Some(n), &self.links);
        }
        for b in &self.bridges {
            let _ = self.ops.remove_bridge(b);
        }
    }
}

#[test]
fn veth_on_a_bridge_reaches_a_server_in_the_namespace_and_teardown_leaves_nothing() {
    if !root_or_skip("veth_on_a_bridge") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ns = netns_path(dir.path(), "c1");
    let b = bridge(1);
    let ep = endpoint(&b, 2, &format!("{}v", b.name));
    let mut guard = Cleanup {
        ops: LinuxNetOps::new(),
        netns: vec![ns.clone()],
        links: vec![ep.host_ifname.clone()],
        bridges: vec![b.name.clone()],
    };
    endpoint::setup(&guard.ops, &ns, &[(b.clone(), ep.clone())]).unwrap();
    assert!(guard.ops.link_exists(&ep.host_ifname).unwrap());

    let addr = SocketAddr::from((ep.address, 8080));
    let l = spawn_in(&ns, move || TcpListener::bind(addr).unwrap())
        .join()
        .unwrap();
    serve_http(l, "hello from the namespace");
    let page = get(addr).unwrap();
    assert!(page.ends_with("hello from the namespace"), "{page}");

    // Inside: lo is up, eth0 has the address and the default route via the gateway.
    let (ok_lo, route) = spawn_in(&ns, || {
        let lo = TcpListener::bind("127.0.0.1:0").is_ok();
        let route = std::fs::read_to_string("/proc/net/route").unwrap();
        (lo, route)
    })
    .join()
    .unwrap();
    assert!(ok_lo);
    assert!(
        route.lines().any(|l| l.starts_with("eth0\t00000000")),
        "{route}"
    );

    endpoint::teardown(&guard.ops, Some(&ns), std::slice::from_ref(&ep.host_ifname)).unwrap();
    assert!(!guard.ops.link_exists(&ep.host_ifname).unwrap());
    assert!(!ns.exists());
    guard.ops.remove_bridge(&b.name).unwrap();
    assert!(!guard.ops.link_exists(&b.name).unwrap());
    guard.netns.clear();
    guard.bridges.clear();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(dir.path().to_str().unwrap()));
}

#[test]
fn forwarder_serves_tcp_on_v4_and_v6_and_udp_from_inside_the_namespace() {
    if !root_or_skip("forwarder") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ns = netns_path(dir.path(), "c2");
    let guard = Cleanup {
        ops: LinuxNetOps::new(),
        netns: vec![ns.clone()],
        links: vec![],
        bridges: vec![],
    };
    endpoint::setup(&guard.ops, &ns, &[]).unwrap();
    // Servers listen on the namespace's loopback only: reachable only through the forwarder.
    let l = spawn_in(&ns, || TcpListener::bind("127.0.0.1:80").unwrap())
        .join()
        .unwrap();
    serve_http(l, "through the forwarder");
    let u = spawn_in(&ns, || UdpSocket::bind("127.0.0.1:53").unwrap())
        .join()
        .unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while let Ok((n, from)) = u.recv_from(&mut buf) {
            let _ = u.send_to(&buf[..n], from);
        }
    });

    let mut reqs = parse_publish("80").unwrap();
    reqs.extend(parse_publish("53/udp").unwrap());
    let bound = bind_ports(&reqs).unwrap();
    let tcp_port = bound[0].port.host_port;
    let udp_port = bound
        .iter()
        .find(|b| b.port.proto == berth_net::port::Proto::Udp)
        .unwrap()
        .port
        .host_port;
    let fwd = PortForwarder::start(bound, &ns).unwrap();

    let page = get(SocketAddr::from(([127, 0, 0, 1], tcp_port))).unwrap();
    assert!(page.ends_with("through the forwarder"), "{page}");
    if let Ok(page6) = get(format!("[::1]:{tcp_port}").parse().unwrap()) {
        assert!(page6.ends_with("through the forwarder"), "{page6}");
    }
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    c.send_to(b"ping", ("127.0.0.1", udp_port)).unwrap();
    let mut buf = [0u8; 16];
    let (n, _) = c.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"ping");

    // A large transfer goes through intact (splice path).
    let big = spawn_in(&ns, || TcpListener::bind("127.0.0.1:81").unwrap())
        .join()
        .unwrap();
    std::thread::spawn(move || {
        if let Ok((mut c, _)) = big.accept() {
            let chunk = vec![7u8; 1 << 20];
            for _ in 0..32 {
                c.write_all(&chunk).unwrap();
            }
        }
    });
    let bound = bind_ports(&parse_publish("127.0.0.1::81").unwrap()).unwrap();
    let p = bound[0].port.host_port;
    let fwd2 = PortForwarder::start(bound, &ns).unwrap();
    let mut s = TcpStream::connect(("127.0.0.1", p)).unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    assert_eq!(got.len(), 32 << 20);
    assert!(got.iter().all(|b| *b == 7));

    fwd.stop();
    fwd2.stop();
    // Stopped: the host ports are free again.
    TcpListener::bind(("0.0.0.0", tcp_port)).unwrap();
    UdpSocket::bind(("0.0.0.0", udp_port)).unwrap();
    drop(guard);
    assert!(!ns.exists());
}

#[test]
fn containers_on_different_bridges_cannot_reach_each_other() {
    if !root_or_skip("isolation") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (ns_a, ns_b, ns_a2) = (
        netns_path(dir.path(), "a"),
        netns_path(dir.path(), "b"),
        netns_path(dir.path(), "a2"),
    );
    let (ba, bb) = (bridge(3), bridge(4));
    let ea = endpoint(&ba, 2, &format!("{}a", ba.name));
    let ea2 = endpoint(&ba, 3, &format!("{}c", ba.name));
    let eb = endpoint(&bb, 2, &format!("{}b", bb.name));
    let guard = Cleanup {
        ops: LinuxNetOps::new(),
        netns: vec![ns_a.clone(), ns_b.clone(), ns_a2.clone()],
        links: vec![
            ea.host_ifname.clone(),
            eb.host_ifname.clone(),
            ea2.host_ifname.clone(),
        ],
        bridges: vec![ba.name.clone(), bb.name.clone()],
    };
    endpoint::setup(&guard.ops, &ns_a, &[(ba.clone(), ea.clone())]).unwrap();
    endpoint::setup(&guard.ops, &ns_a2, &[(ba.clone(), ea2.clone())]).unwrap();
    endpoint::setup(&guard.ops, &ns_b, &[(bb.clone(), eb.clone())]).unwrap();
    let b_addr = SocketAddr::from((eb.address, 80));
    let l = spawn_in(&ns_b, move || TcpListener::bind(b_addr).unwrap())
        .join()
        .unwrap();
    serve_http(l, "b");
    let a_addr = SocketAddr::from((ea.address, 80));
    let l = spawn_in(&ns_a, move || TcpListener::bind(a_addr).unwrap())
        .join()
        .unwrap();
    serve_http(l, "a");
    // Same bridge: reachable.
    let same = spawn_in(&ns_a2, move || get(a_addr).map_err(|e| e.to_string()))
        .join()
        .unwrap();
    assert!(same.unwrap().ends_with('a'));
    // Other bridge: not reachable, even if the host forwards IPv4 elsewhere.
    let across = spawn_in(&ns_a, move || {
        TcpStream::connect_timeout(&b_addr, Duration::from_millis(700)).is_ok()
    })
    .join()
    .unwrap();
    assert!(!across, "a container on another network was reachable");
    drop(guard);
}

#[test]
fn setup_cost_breakdown() {
    if !root_or_skip("setup_cost_breakdown") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let b = bridge(5);
    let ops = LinuxNetOps::new();
    ops.ensure_bridge(&b).unwrap();
    let mut lines = Vec::new();
    for i in 0..5u8 {
        let ns = netns_path(dir.path(), &format!("t{i}"));
        let ep = endpoint(&b, 10 + i, &format!("{}t{i}", b.name));
        let t0 = std::time::Instant::now();
        ops.create_netns(&ns).unwrap();
        let t1 = t0.elapsed();
        ops.ensure_bridge(&b).unwrap();
        let t2 = t0.elapsed();
        ops.add_endpoint(&ns, &b, &ep).unwrap();
        let t3 = t0.elapsed();
        ops.remove_netns(&ns).unwrap();
        let t4 = t0.elapsed();
        lines.push(format!(
            "netns {:?} bridge {:?} endpoint {:?} unpin {:?}",
            t1,
            t2 - t1,
            t3 - t2,
            t4 - t3
        ));
    }
    let _ = ops.remove_bridge(&b.name);
    eprintln!("{}", lines.join("\n"));
}

/// The host's IPv6 policy rules that name `bridge`, as `ip -6 rule` prints them.
fn rules_of(bridge: &str) -> Vec<String> {
    let out = std::process::Command::new("ip")
        .args(["-6", "rule"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(&format!("iif {bridge} ")))
        .map(|l| l.trim().to_string())
        .collect()
}

#[test]
fn a_bridge_without_forwarding_refuses_to_route_ipv6_and_the_rule_goes_with_it() {
    if !root_or_skip("bridge_ipv6_rule") {
        return;
    }
    let mut b = bridge(6);
    let guard = Cleanup {
        ops: LinuxNetOps::new(),
        netns: Vec::new(),
        links: Vec::new(),
        bridges: vec![b.name.clone()],
    };
    let want = format!("1000:\tfrom all iif {} prohibit", b.name);
    guard.ops.ensure_bridge(&b).unwrap();
    guard.ops.ensure_bridge(&b).unwrap();
    assert_eq!(rules_of(&b.name), vec![want.clone()], "one rule, made once");
    // Forwarding on (nftables): routing is the firewall's business, the rule goes.
    b.forwarding = true;
    guard.ops.ensure_bridge(&b).unwrap();
    assert!(rules_of(&b.name).is_empty());
    b.forwarding = false;
    guard.ops.ensure_bridge(&b).unwrap();
    assert_eq!(rules_of(&b.name), vec![want]);
    guard.ops.remove_bridge(&b.name).unwrap();
    assert!(
        rules_of(&b.name).is_empty(),
        "rule left with the bridge gone"
    );
    assert!(!guard.ops.link_exists(&b.name).unwrap());
}
