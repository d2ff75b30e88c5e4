//! Against the real kernel (root only): setup, published ports, name resolution files,
//! conflicts and teardown, with per-test subnets and bridge names.

use super::net::v6_at;
use super::setup::port_requests;
use super::*;
use crate::ErrorKind;
use berth_net::forward::PortForwarder;
use berth_net::ops::NetOps;
use berth_net::port::Proto;
use ipnet::{Ipv4Net, Ipv6Net};
use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

#[test]
fn ipv6_addresses_keep_the_ipv4_host_offset() {
    let s4: Ipv4Net = "10.1.2.0/24".parse().unwrap();
    let s6: Ipv6Net = "fd00:1:2::/64".parse().unwrap();
    let at = |a: &str| v6_at(&s4, &s6, a.parse().unwrap()).to_string();
    assert_eq!(at("10.1.2.1"), "fd00:1:2::1");
    assert_eq!(at("10.1.2.254"), "fd00:1:2::fe");
}

#[test]
fn publish_all_adds_exposed_ports_not_already_published() {
    let req = NetworkRequest {
        publish: vec!["8080:80".into()],
        publish_all: true,
        exposed: vec!["80/tcp".into(), "53/udp".into(), "9000".into()],
        ..Default::default()
    };
    let reqs = port_requests(&req).unwrap();
    let got: Vec<(u16, u16, Proto)> = reqs
        .iter()
        .map(|r| (r.host_port, r.container_port, r.proto))
        .collect();
    assert_eq!(
        got,
        vec![
            (8080, 80, Proto::Tcp),
            (0, 53, Proto::Udp),
            (0, 9000, Proto::Tcp)
        ]
    );
    let bad = NetworkRequest {
        publish_all: true,
        exposed: vec!["80/sctp".into()],
        ..Default::default()
    };
    assert_eq!(
        port_requests(&bad).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    assert!(check_publish(&["nope".into()]).is_err());
}

fn root_or_skip(test: &str) -> bool {
    if nix_is_root() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{test} needs root (network namespaces, bridges) and CI is set");
    }
    eprintln!("skipping {test}: needs root");
    false
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .is_some_and(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

struct Env {
    _dir: tempfile::TempDir,
    engine: Engine,
    bridge: String,
    third: u8,
    _reservation: berth_net::test_support::Reservation,
}

impl Drop for Env {
    fn drop(&mut self) {
        // The default bridge and its elements in berth's nftables table (the table goes
        // with the host's last berth bridge).
        let _ = self.engine.networks().network_prune();
        let _ = self.engine.networks().net_ops().remove_bridge(&self.bridge);
    }
}

fn env(n: u8) -> Env {
    env_with(n, "")
}

fn env_with(n: u8, extra: &str) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let reservation = berth_net::test_support::reserve("engine");
    let third = reservation.n;
    let bridge = format!("be{third}x{n}");
    std::fs::create_dir_all(dir.path().join("root")).unwrap();
    std::fs::write(
        dir.path().join("root/berth.toml"),
        format!("[network]\nsubnet = \"10.212.{third}.0/24\"\nbridge = \"{bridge}\"\n{extra}"),
    )
    .unwrap();
    let engine = Engine::open(crate::EngineConfig {
        root: dir.path().join("root"),
        runroot: dir.path().join("run"),
    })
    .unwrap();
    Env {
        _dir: dir,
        engine,
        bridge,
        third,
        _reservation: reservation,
    }
}

fn id(n: u32) -> String {
    format!("{:08x}{}", n, "c".repeat(56))
}

/// The kernel destroys an unpinned namespace (and its veth pairs) asynchronously.
fn link_gone(e: &Networks<'_>, name: &str) -> bool {
    for _ in 0..200 {
        if !e.net_ops().link_exists(name).unwrap() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

/// Serves `n` connections, then closes the listener (it would pin the namespace).
fn serve(l: TcpListener, body: &'static str, n: usize) {
    std::thread::spawn(move || {
        for c in l.incoming().take(n) {
            let Ok(mut c) = c else { return };
            let mut buf = [0u8; 512];
            let _ = c.read(&mut buf);
            let _ = write!(c, "HTTP/1.0 200 OK\r\n\r\n{body}");
        }
    });
}

fn get(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn bridge_setup_publishes_resolves_and_tears_down() {
    if !root_or_skip("bridge_setup") {
        return;
    }
    let env = env(1);
    let e = &env.engine.networks();
    let a = id(1);
    let t = std::time::Instant::now();
    let net = e
        .network_setup(&NetworkRequest {
            container_id: a.clone(),
            container_name: "web".into(),
            hostname: "webhost".into(),
            publish: vec!["127.0.0.1::80".into()],
            add_hosts: vec!["db:10.1.2.3".into()],
            dns: vec!["10.0.0.53".into()],
            ..Default::default()
        })
        .unwrap();
    eprintln!("setup with bridge + 1 port: {:?}", t.elapsed());
    let ns = net.netns.clone().unwrap();
    let addr = net.addresses["bridge"];
    assert_eq!(addr.to_string(), format!("10.212.{}.2", env.third));
    let hosts = std::fs::read_to_string(&net.etc.hosts).unwrap();
    assert!(hosts.contains(&format!("{addr}\twebhost")), "{hosts}");
    assert!(hosts.contains("10.1.2.3\tdb"));
    assert_eq!(
        std::fs::read_to_string(&net.etc.resolv_conf).unwrap(),
        "nameserver 10.0.0.53\n"
    );
    let l = berth_net::ops::in_netns(&ns, || TcpListener::bind("0.0.0.0:80"))
        .unwrap()
        .unwrap();
    serve(l, "ok-a", 2);
    // Straight to the container's address over the bridge, and through the forwarder.
    assert!(get(SocketAddr::from((addr, 80))).ends_with("ok-a"));
    let host_port = net.ports[0].port.host_port;
    let ports = e.container_ports_by_id(&a).unwrap();
    assert_eq!(ports.len(), 1);
    let fwd = PortForwarder::start(net.ports, &ns).unwrap();
    assert!(get(SocketAddr::from(([127, 0, 0, 1], host_port))).ends_with("ok-a"));
    fwd.stop();
    let veth = endpoint::veth_name(&a, &e.store.resolve_network("bridge").unwrap().id);
    assert!(e.net_ops().link_exists(&veth).unwrap());
    let t = std::time::Instant::now();
    e.network_teardown(&a, true).unwrap();
    eprintln!("teardown: {:?}", t.elapsed());
    assert!(link_gone(e, &veth), "{veth} still there");
    assert!(!ns.exists());
    assert!(e.store.container_endpoints(&a).unwrap().is_empty());
    assert!(e.container_ports_by_id(&a).unwrap().is_empty());
}

#[test]
fn user_network_peers_resolve_by_name_and_alias() {
    if !root_or_skip("user_network") {
        return;
    }
    let env = env(2);
    let e = &env.engine.networks();
    let nid = e
        .network_create(&NetworkCreate {
            name: "front".into(),
            subnet: Some(format!("10.213.{}.0/24", env.third)),
            ..Default::default()
        })
        .unwrap();
    let (a, b) = (id(2), id(3));
    let req = |id: &str, name: &str, aliases: Vec<String>| NetworkRequest {
        container_id: id.into(),
        container_name: name.into(),
        mode: "front".into(),
        hostname: name.into(),
        aliases,
        ..Default::default()
    };
    let na = e.network_setup(&req(&a, "alpha", vec![])).unwrap();
    let nb = e
        .network_setup(&req(&b, "beta", vec!["api".into()]))
        .unwrap();
    let ha = std::fs::read_to_string(&na.etc.hosts).unwrap();
    let ip_b = nb.addresses["front"];
    assert!(ha.contains(&format!("{ip_b}\tbeta api")), "{ha}");
    let hb = std::fs::read_to_string(&nb.etc.hosts).unwrap();
    assert!(
        hb.contains(&format!("{}\talpha", na.addresses["front"])),
        "{hb}"
    );
    // A reaches B by address from inside A's namespace.
    let nsb = nb.netns.clone().unwrap();
    let l = berth_net::ops::in_netns(&nsb, || TcpListener::bind("0.0.0.0:8080"))
        .unwrap()
        .unwrap();
    serve(l, "from-beta", 1);
    let nsa = na.netns.clone().unwrap();
    let got = berth_net::ops::in_netns(&nsa, move || get(SocketAddr::from((ip_b, 8080)))).unwrap();
    assert!(got.ends_with("from-beta"));
    // rm of B takes it out of A's hosts file.
    e.network_teardown(&b, true).unwrap();
    let ha = std::fs::read_to_string(&na.etc.hosts).unwrap();
    assert!(!ha.contains("beta"), "{ha}");
    e.network_teardown(&a, true).unwrap();
    assert_eq!(e.network_remove(&nid).unwrap(), "front");
    assert!(!e
        .net_ops()
        .link_exists(&endpoint::bridge_name(&nid))
        .unwrap());
}

#[test]
fn port_in_use_fails_before_anything_is_made() {
    if !root_or_skip("port_in_use") {
        return;
    }
    let env = env(3);
    let e = &env.engine.networks();
    let taken = TcpListener::bind("0.0.0.0:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let c = id(4);
    let err = e
        .network_setup(&NetworkRequest {
            container_id: c.clone(),
            publish: vec![format!("{port}:80")],
            hostname: "x".into(),
            ..Default::default()
        })
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert!(err.to_string().contains("already in use"), "{err}");
    assert!(!e.netns_path(&c).exists());
    assert!(e.store.container_endpoints(&c).unwrap().is_empty());
}

#[test]
fn twenty_parallel_setups_get_distinct_addresses_and_leave_nothing() {
    if !root_or_skip("parallel") {
        return;
    }
    let env = env(4);
    let cfg = env.engine.config().clone();
    let t = std::time::Instant::now();
    let hs: Vec<_> = (0..20u32)
        .map(|i| {
            let cfg = cfg.clone();
            std::thread::spawn(move || {
                let e = Engine::open(cfg).unwrap();
                let n = e
                    .networks()
                    .network_setup(&NetworkRequest {
                        container_id: id(100 + i),
                        hostname: format!("c{i}"),
                        publish: vec!["127.0.0.1::80".into()],
                        ..Default::default()
                    })
                    .unwrap();
                n.addresses["bridge"]
            })
        })
        .collect();
    let mut addrs: Vec<Ipv4Addr> = hs.into_iter().map(|h| h.join().unwrap()).collect();
    eprintln!("20 parallel setups: {:?}", t.elapsed());
    addrs.sort();
    addrs.dedup();
    assert_eq!(addrs.len(), 20);
    let e = &env.engine.networks();
    let bridge = e.store.resolve_network("bridge").unwrap().id;
    for i in 0..20 {
        e.network_teardown(&id(100 + i), true).unwrap();
    }
    for i in 0..20 {
        let veth = endpoint::veth_name(&id(100 + i), &bridge);
        assert!(link_gone(e, &veth), "{veth} still there");
    }
    assert!(e.store.all_endpoints().unwrap().is_empty());
    assert!(e.store.ports(None).unwrap().is_empty());
    assert_eq!(
        std::fs::read_dir(cfg.runroot.join("netns"))
            .unwrap()
            .count(),
        0
    );
}

fn nft_list(what: &str) -> String {
    let out = std::process::Command::new("nft")
        .args([
            "list",
            what,
            "inet",
            "berth",
            match what {
                "map" => "dnat_tcp",
                _ => "subnets",
            },
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn nftables_rules_are_installed_and_removed() {
    if !root_or_skip("nftables") {
        return;
    }
    if std::process::Command::new("nft")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var_os("CI").is_none(),
            "nft missing (scripts/install-test-deps.sh)"
        );
        eprintln!("skipping nftables: nft missing");
        return;
    }
    // berth's table is the host's, shared with every other berth root (and test) running
    // now: this test only checks its own elements, and IPv4 forwarding stays on (as
    // berth leaves it, documented in docs/config.md).
    let env = env_with(5, "nftables = true\n");
    let e = &env.engine.networks();
    let free = TcpListener::bind("0.0.0.0:0").unwrap();
    let port = free.local_addr().unwrap().port();
    drop(free);
    let c = id(200);
    let net = e
        .network_setup(&NetworkRequest {
            container_id: c.clone(),
            hostname: "n".into(),
            publish: vec![format!("{port}:80")],
            ..Default::default()
        })
        .unwrap();
    let addr = net.addresses["bridge"];
    let map = nft_list("map");
    assert!(map.contains(&format!("{port} : {addr} . 80")), "{map}");
    let subnet = format!("10.212.{}.0/24", env.third);
    assert!(nft_list("set").contains(&subnet));
    drop(net);
    e.network_teardown(&c, true).unwrap();
    assert!(
        !nft_list("map").contains(&format!("{port} :")),
        "DNAT element left"
    );
    // The default bridge goes with `network prune` when no container runs on it, and its
    // elements with it; the table goes with the last bridge on the host.
    e.network_prune().unwrap();
    assert!(!e.net_ops().link_exists(&env.bridge).unwrap());
    assert!(!nft_list("set").contains(&subnet), "subnet element left");
    let bridges = std::process::Command::new("nft")
        .args(["list", "set", "inet", "berth", "bridges"])
        .output()
        .unwrap();
    let bridges = String::from_utf8_lossy(&bridges.stdout);
    assert!(
        !bridges.contains(&format!("\"{}\"", env.bridge)),
        "{bridges}"
    );
}
