//! Networks and published ports end to end through the `berth` binary (issue 4), each test
//! on its own root with its own subnet and bridge name. Root only; traffic stays on loopback
//! and inside namespaces and bridges these tests made; every bridge is removed at the end.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use berth_engine::network::berth_net;

#[path = "containers_support/mod.rs"]
mod support;

use support::BIN;

fn require_root(test: &str) -> bool {
    support::require_root_for(test, "network namespaces, bridges, overlayfs")
}

/// A free TCP and UDP port on the host (both families), for `-p`.
fn free_port() -> u16 {
    loop {
        let l = TcpListener::bind("0.0.0.0:0").expect("bind");
        let p = l.local_addr().expect("addr").port();
        drop(l);
        // A dual-stack [::] bind checks both families at once.
        if UdpSocket::bind(("::", p)).is_ok() && TcpListener::bind(("::", p)).is_ok() {
            return p;
        }
    }
}

type Env = support::NetEnv;

/// This file's environment: its own reservation pool, bridge names and 10.214.x.0/24.
fn env(n: u8) -> Env {
    Env::new("cli", "bn", 214, n)
}

/// A user network's subnet unique to a test: 10.215.<reserved>.<64 i>/26.
trait Subnets {
    fn subnet(&self, i: u8) -> String;
}

impl Subnets for Env {
    fn subnet(&self, i: u8) -> String {
        format!("10.215.{}.{}/26", self.third, i * 64)
    }
}

fn http_get(addr: SocketAddr) -> std::io::Result<String> {
    http_get_path(addr, "/")
}

fn http_get_path(addr: SocketAddr, path: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(3)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

/// Retries a GET until the server in the container answers (it starts asynchronously).
fn get_eventually(addr: SocketAddr) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match http_get(addr) {
            Ok(s) if s.starts_with("HTTP/1.") => return s,
            r => {
                if Instant::now() > deadline {
                    panic!("no HTTP answer on {addr}: {r:?}");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

const HTTPD: &[&str] = &[
    "sh",
    "-c",
    "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www",
];

fn links_with_prefix(prefix: &str) -> Vec<String> {
    std::fs::read_dir("/sys/class/net")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().to_string())
                .filter(|n| n.starts_with(prefix))
                .collect()
        })
        .unwrap_or_default()
}

fn veth_gone(container_id: &str) -> bool {
    let prefix = format!("vb{}", &container_id[..9]);
    for _ in 0..300 {
        if links_with_prefix(&prefix).is_empty() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

#[test]
fn published_port_serves_http_on_v4_and_v6_stop_frees_it_start_rebinds() {
    if !require_root("published_port_http") {
        return;
    }
    let env = env(1);
    let port = free_port();
    let mut args = vec!["run", "-d", "--name", "web1", "-p"];
    let spec = format!("{port}:80");
    args.push(&spec);
    args.push("busybox");
    args.extend_from_slice(HTTPD);
    let id = env.ok(&args);
    let page = get_eventually(SocketAddr::from(([127, 0, 0, 1], port)));
    assert!(page.contains("200 OK"), "{page}");
    assert!(
        page.trim_end().ends_with(&id[..12]),
        "the page shows the hostname: {page}"
    );
    let page6 = get_eventually(format!("[::1]:{port}").parse().expect("v6 addr"));
    assert!(page6.contains("200 OK"), "{page6}");
    assert_eq!(
        env.ok(&["port", "web1"]),
        format!("80/tcp -> 0.0.0.0:{port}\n80/tcp -> [::]:{port}")
    );
    assert_eq!(
        env.ok(&["port", "web1", "80"]),
        format!("0.0.0.0:{port}\n[::]:{port}")
    );

    env.ok(&["stop", "-t", "1", "web1"]);
    // Stopped: the port is free and the container's interface is gone.
    TcpListener::bind(("0.0.0.0", port)).expect("port freed by stop");
    assert!(veth_gone(&id), "veth left after stop");
    assert!(env.ok(&["port", "web1"]).is_empty());

    env.ok(&["start", "web1"]);
    let page = get_eventually(SocketAddr::from(([127, 0, 0, 1], port)));
    assert!(page.contains("200 OK"), "after restart: {page}");

    env.ok(&["rm", "-f", "web1"]);
    TcpListener::bind(("0.0.0.0", port)).expect("port freed by rm");
    assert!(veth_gone(&id), "veth left after rm");
    assert!(!env.runroot().join("netns").join(&id).exists());
}

#[test]
fn udp_published_port_echoes() {
    if !require_root("udp_published_port") {
        return;
    }
    let env = env(2);
    let port = free_port();
    let spec = format!("{port}:53/udp");
    let id = env.ok(&["run", "-d", "-p", &spec, "busybox", "sleep", "60"]);
    eprintln!("started {id}");
    // busybox has no UDP server: run the echo server inside the container's namespace.
    let ns = env.runroot().join("netns").join(&id);
    let sock = berth_net::ops::in_netns(&ns, || UdpSocket::bind("0.0.0.0:53"))
        .expect("enter netns")
        .expect("bind 53 in the container");
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while let Ok((n, from)) = sock.recv_from(&mut buf) {
            let _ = sock.send_to(&buf[..n], from);
        }
    });
    eprintln!("echo server up");
    for target in [format!("127.0.0.1:{port}"), format!("[::1]:{port}")] {
        eprintln!("to {target}");
        let local = if target.starts_with('[') {
            "[::1]:0"
        } else {
            "127.0.0.1:0"
        };
        let c = UdpSocket::bind(local).expect("client");
        c.set_read_timeout(Some(Duration::from_secs(3)))
            .expect("timeout");
        c.send_to(b"ping-udp", &target).expect("send");
        let mut buf = [0u8; 64];
        let (n, _) = c
            .recv_from(&mut buf)
            .expect("echo through the published port");
        assert_eq!(&buf[..n], b"ping-udp");
    }
    env.ok(&["rm", "-f", &id]);
    UdpSocket::bind(("0.0.0.0", port)).expect("udp port freed");
}

#[test]
fn user_network_resolves_names_and_aliases_and_networks_are_isolated() {
    if !require_root("user_network") {
        return;
    }
    let env = env(3);
    let (s1, s2) = (env.subnet(0), env.subnet(1));
    env.ok(&["network", "create", "--subnet", &s1, "front"]);
    env.ok(&["network", "create", "--subnet", &s2, "back"]);
    let ls = env.ok(&["network", "ls"]);
    for name in ["bridge", "host", "none", "front", "back"] {
        assert!(ls.contains(name), "{ls}");
    }
    // Debian's static busybox cannot resolve names itself (its libc lookups crash without
    // NSS modules), so the containers look names up in /etc/hosts with awk, as a resolver
    // would; berth keeps that file in sync as peers come and go.
    let lookup = |host: &str| {
        format!("awk -v h={host} '{{for (i = 2; i <= NF; i++) if ($i == h) print $1}}' /etc/hosts")
    };
    // alpha serves its hostname and, once beta appears in its hosts file, beta's page.
    let alpha_script = format!(
        "mkdir -p /www && hostname > /www/index.html && httpd -p 80 -h /www && \
         while :; do ip=$({}); [ -n \"$ip\" ] && timeout 3 wget -q -O /www/peer.html http://$ip:80/ && break; sleep 0.1; done; \
         exec sleep 600",
        lookup("beta")
    );
    let alpha = env.ok(&[
        "run",
        "-d",
        "--name",
        "alpha",
        "--network",
        "front",
        "--network-alias",
        "api",
        "busybox",
        "sh",
        "-c",
        &alpha_script,
    ]);
    let mut b = vec![
        "run",
        "-d",
        "--name",
        "beta",
        "--network",
        "front",
        "busybox",
    ];
    b.extend_from_slice(HTTPD);
    let beta = env.ok(&b);
    let fetch = |host: &str| -> String {
        let script = format!(
            "for i in 1 2 3 4 5 6 7 8 9 10; do ip=$({}); \
               [ -n \"$ip\" ] && timeout 3 wget -q -O- http://$ip:80/ && exit 0; sleep 0.2; done; \
             cat /etc/hosts >&2; exit 1",
            lookup(host)
        );
        let out = env.berth(&[
            "run",
            "--rm",
            "--network",
            "front",
            "busybox",
            "sh",
            "-c",
            &script,
        ]);
        assert!(
            out.status.success(),
            "fetching {host}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    // By name and by alias from a third container on the network.
    assert_eq!(fetch("alpha"), &alpha[..12]);
    assert_eq!(fetch("api"), &alpha[..12]);
    assert_eq!(fetch("beta"), &beta[..12]);
    let inspect: serde_json::Value =
        serde_json::from_str(&env.ok(&["network", "inspect", "front"])).expect("json");
    let ip = inspect[0]["Containers"][&alpha]["IPv4Address"]
        .as_str()
        .expect("alpha's address")
        .split('/')
        .next()
        .expect("ip")
        .to_string();
    // alpha fetched beta by name once beta joined (its hosts file was updated in place).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let page = get_eventually(format!("{ip}:80").parse().expect("alpha addr"));
        let peer = http_get_path(
            format!("{ip}:80").parse().expect("alpha addr"),
            "/peer.html",
        );
        if let Ok(p) = peer {
            if p.contains("200 OK") {
                assert!(p.trim_end().ends_with(&beta[..12]), "{p}");
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "alpha never fetched beta: {page}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // From the other network the same address answers nothing; on the same network it does.
    let probe = |net: &str| {
        env.berth(&[
            "run",
            "--rm",
            "--network",
            net,
            "busybox",
            "sh",
            "-c",
            // Not as PID 1 (no exec by sh): a SIGTERM to the namespace's init is ignored.
            &format!("timeout 2 wget -q -O- http://{ip}:80/; exit $?"),
        ])
    };
    assert!(
        probe("front").status.success(),
        "same network must reach {ip}"
    );
    let out = probe("back");
    assert!(
        !out.status.success(),
        "a container on another network reached {ip}"
    );
    assert_ne!(out.status.code(), Some(139), "wget must fail, not crash");
    // The network in use cannot be removed; once empty it can.
    assert!(!env.berth(&["network", "rm", "front"]).status.success());
    env.ok(&["rm", "-f", "alpha", "beta"]);
    assert_eq!(env.ok(&["network", "rm", "front"]), "front");
    assert!(env.ok(&["network", "prune", "-f"]).contains("back"));
}

#[test]
fn port_in_use_is_refused_before_the_container_starts() {
    if !require_root("port_in_use") {
        return;
    }
    let env = env(4);
    let taken = TcpListener::bind("0.0.0.0:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let spec = format!("{port}:80");
    let out = env.berth(&[
        "run", "-d", "--name", "clash", "-p", &spec, "busybox", "sleep", "30",
    ]);
    assert_eq!(out.status.code(), Some(125));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "one error line: {err}");
    assert!(
        err.contains("already in use") && err.contains(&port.to_string()),
        "{err}"
    );
    // No container was made, and nothing of the network is left.
    assert!(env.ok(&["ps", "-aq"]).is_empty(), "a container was left");
    assert_eq!(
        std::fs::read_dir(env.runroot().join("netns"))
            .map(|d| d.count())
            .unwrap_or(0),
        0
    );
    // A bad spec is refused at once.
    let out = env.berth(&["run", "-d", "-p", "80:99999", "busybox", "true"]);
    assert_eq!(out.status.code(), Some(125));
}

#[test]
fn twenty_containers_rm_f_leave_no_veth_address_or_listener() {
    if !require_root("twenty_rm") {
        return;
    }
    let env = env(5);
    let mut ids = Vec::new();
    let hs: Vec<_> = (0..20)
        .map(|_| {
            let root = env.dir.path().join("root");
            let run = env.runroot();
            std::thread::spawn(move || {
                let out = Command::new(BIN)
                    .arg("--root")
                    .arg(root)
                    .arg("--runroot")
                    .arg(run)
                    .args(["run", "-d", "-p", "127.0.0.1::80", "busybox", "sleep", "60"])
                    .output()
                    .expect("run");
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                String::from_utf8_lossy(&out.stdout).trim().to_string()
            })
        })
        .collect();
    for h in hs {
        ids.push(h.join().expect("thread"));
    }
    let inspect: serde_json::Value =
        serde_json::from_str(&env.ok(&["network", "inspect", "bridge"])).expect("json");
    let mut addrs: Vec<String> = inspect[0]["Containers"]
        .as_object()
        .expect("containers")
        .values()
        .map(|c| c["IPv4Address"].as_str().unwrap_or_default().to_string())
        .collect();
    addrs.sort();
    addrs.dedup();
    assert_eq!(addrs.len(), 20, "distinct addresses: {addrs:?}");
    let ports: Vec<u16> = ids
        .iter()
        .map(|id| {
            env.ok(&["port", id])
                .rsplit(':')
                .next()
                .and_then(|p| p.parse().ok())
                .expect("a published port")
        })
        .collect();
    let mut args = vec!["rm", "-f"];
    args.extend(ids.iter().map(String::as_str));
    env.ok(&args);
    for id in &ids {
        assert!(veth_gone(id), "veth of {id} left");
    }
    for p in ports {
        TcpListener::bind(("127.0.0.1", p)).expect("listener closed");
    }
    let inspect: serde_json::Value =
        serde_json::from_str(&env.ok(&["network", "inspect", "bridge"])).expect("json");
    assert_eq!(
        inspect[0]["Containers"].as_object().map(|m| m.len()),
        Some(0)
    );
    assert_eq!(
        std::fs::read_dir(env.runroot().join("netns"))
            .map(|d| d.count())
            .unwrap_or(0),
        0
    );
}

#[test]
fn connect_and_disconnect_a_running_container() {
    if !require_root("connect_disconnect") {
        return;
    }
    let env = env(6);
    let subnet = env.subnet(0);
    let prefix = subnet.rsplit_once('.').expect("subnet").0.to_string();
    env.ok(&["network", "create", "--subnet", &subnet, "side"]);
    let id = env.ok(&["run", "-d", "--name", "c6", "busybox", "sleep", "60"]);
    // exec runs in the container's network namespace: lo and eth0 only.
    let addrs = env.ok(&["exec", "c6", "ip", "-o", "-4", "addr"]);
    assert_eq!(addrs.lines().count(), 2, "{addrs}");
    env.ok(&["network", "connect", "--alias", "extra", "side", "c6"]);
    let addrs = env.ok(&["exec", "c6", "ip", "-o", "-4", "addr"]);
    assert!(
        addrs
            .lines()
            .any(|l| l.contains("eth1") && l.contains(&format!("{prefix}."))),
        "{addrs}"
    );
    let inspect: serde_json::Value =
        serde_json::from_str(&env.ok(&["network", "inspect", "side"])).expect("json");
    assert_eq!(inspect[0]["Containers"][&id]["Name"], "c6");
    let again = env.berth(&["network", "connect", "side", "c6"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    env.ok(&["network", "disconnect", "side", "c6"]);
    let addrs = env.ok(&["exec", "c6", "ip", "-o", "-4", "addr"]);
    assert!(!addrs.contains("eth1"), "{addrs}");
    let inspect: serde_json::Value =
        serde_json::from_str(&env.ok(&["network", "inspect", "side"])).expect("json");
    assert_eq!(
        inspect[0]["Containers"].as_object().map(|m| m.len()),
        Some(0)
    );
    env.ok(&["rm", "-f", "c6"]);
    assert_eq!(env.ok(&["network", "rm", "side"]), "side");
}

#[test]
fn hostname_add_host_and_dns_reach_the_containers_files() {
    if !require_root("etc_files") {
        return;
    }
    let env = env(7);
    let out = env.ok(&[
        "run",
        "--rm",
        "--hostname",
        "myhost",
        "--add-host",
        "db:10.1.2.3",
        "--dns",
        "10.0.0.53",
        "--dns-search",
        "example.org",
        "busybox",
        "sh",
        "-c",
        "cat /etc/hosts; echo ---; cat /etc/resolv.conf; echo ---; cat /etc/hostname; hostname",
    ]);
    let parts: Vec<&str> = out.split("---").map(str::trim).collect();
    assert!(parts[0].contains("10.1.2.3\tdb"), "{out}");
    assert!(parts[0].lines().any(|l| l.ends_with("\tmyhost")), "{out}");
    assert_eq!(parts[1], "nameserver 10.0.0.53\nsearch example.org");
    assert_eq!(parts[2], "myhost\nmyhost");
    let bad = env.berth(&["run", "--rm", "--add-host", "nocolon", "busybox", "true"]);
    assert_eq!(bad.status.code(), Some(125));
    assert_eq!(String::from_utf8_lossy(&bad.stderr).lines().count(), 1);
}

#[test]
fn network_ls_pads_to_the_longest_name_and_a_duplicate_create_is_refused() {
    if !require_root("network_ls_and_duplicate") {
        return;
    }
    let env = env(11);
    let long = "a-rather-long-network-name-11";
    let id = env.ok(&["network", "create", "--subnet", &env.subnet(0), long]);
    let ls = env.ok(&["network", "ls"]);
    let lines: Vec<&str> = ls.lines().collect();
    // Docker's tabwriter: each column as wide as its longest cell plus 3.
    let name_col = "NETWORK ID".len().max(12) + 3;
    let driver_col = name_col + long.len() + 3;
    assert_eq!(
        lines[0],
        format!(
            "{:<15}{:<w$}{:<10}SCOPE",
            "NETWORK ID",
            "NAME",
            "DRIVER",
            w = long.len() + 3
        ),
        "{ls}"
    );
    for l in &lines {
        assert!(l.len() > driver_col, "{l}");
        let driver = l[driver_col..].split_whitespace().next().expect("driver");
        assert!(
            ["DRIVER", "bridge", "host", "null"].contains(&driver),
            "DRIVER column misplaced in {l:?} ({ls})"
        );
        assert_ne!(&l[name_col..name_col + 1], " ", "NAME column in {l:?}");
    }
    assert!(lines
        .iter()
        .any(|l| l.starts_with(&format!("{}   {long}   bridge", &id[..12]))));
    let again = env.berth(&["network", "create", long]);
    assert_eq!(again.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&again.stderr).trim_end(),
        format!("Error: network with name {long} already exists")
    );
    assert_eq!(
        env.ok(&["network", "ls", "-q", "--filter", &format!("name={long}")])
            .lines()
            .count(),
        1,
        "one network of that name"
    );
}

#[test]
fn host_port_zero_takes_a_free_port_that_berth_port_shows() {
    if !require_root("host_port_zero") {
        return;
    }
    let env = env(12);
    let mut args = vec![
        "run",
        "-d",
        "--name",
        "zero12",
        "-p",
        "127.0.0.1:0:80",
        "busybox",
    ];
    args.extend_from_slice(HTTPD);
    let id = env.ok(&args);
    let shown = env.ok(&["port", "zero12", "80"]);
    let addr: SocketAddr = shown.parse().expect("berth port prints ip:port");
    assert_eq!(addr.ip().to_string(), "127.0.0.1", "{shown}");
    assert_ne!(addr.port(), 0, "{shown}");
    let page = get_eventually(addr);
    assert!(page.trim_end().ends_with(&id[..12]), "{page}");
    env.ok(&["rm", "-f", "zero12"]);
    TcpListener::bind(addr).expect("port freed by rm");
}

#[test]
fn ip_and_mac_address_on_a_user_network_are_checked_and_set() {
    if !require_root("ip_and_mac_address") {
        return;
    }
    let env = env(13);
    let subnet = env.subnet(1);
    let prefix = subnet.rsplit_once('.').expect("subnet").0.to_string();
    let base: u8 = subnet
        .rsplit_once('.')
        .and_then(|(_, r)| r.split('/').next())
        .and_then(|x| x.parse().ok())
        .expect("subnet base");
    env.ok(&["network", "create", "--subnet", &subnet, "fixed13"]);
    let ip = format!("{prefix}.{}", base + 20);
    let out = env.ok(&[
        "run",
        "-d",
        "--name",
        "fixed13a",
        "--network",
        "fixed13",
        "--ip",
        &ip,
        "--mac-address",
        "02:42:AC:11:00:99",
        "busybox",
        "sleep",
        "60",
    ]);
    assert_eq!(out.len(), 64, "{out}");
    let addrs = env.ok(&["exec", "fixed13a", "ip", "-o", "-4", "addr", "show", "eth0"]);
    assert!(addrs.contains(&format!("inet {ip}/26")), "{addrs}");
    let mac = env.ok(&["exec", "fixed13a", "cat", "/sys/class/net/eth0/address"]);
    assert_eq!(mac, "02:42:ac:11:00:99");
    let inspect: serde_json::Value =
        serde_json::from_str(&env.ok(&["network", "inspect", "fixed13"])).expect("json");
    assert_eq!(
        inspect[0]["Containers"][&out]["IPv4Address"],
        format!("{ip}/26")
    );
    let gateway = format!("{prefix}.{}", base + 1);
    let outside = format!("{prefix}.{}", base + 64);
    let cases: Vec<(Vec<&str>, String)> = vec![
        (
            vec!["--network", "fixed13", "--ip", &ip],
            format!("Address already in use: {ip} on network fixed13"),
        ),
        (
            vec!["--network", "fixed13", "--ip", &gateway],
            format!("Address already in use: {gateway} on network fixed13"),
        ),
        (
            vec!["--network", "fixed13", "--ip", &outside],
            format!(
                "Invalid address {outside}: It does not belong to any of this network's subnets"
            ),
        ),
        (
            vec!["--ip", &ip],
            "user specified IP address is supported on user defined networks only".into(),
        ),
        (
            vec!["--network", "fixed13", "--ip", "10.1.2"],
            "invalid argument \"10.1.2\" for \"--ip\" flag".into(),
        ),
        (
            vec!["--network", "fixed13", "--mac-address", "02:42:ac:11:00"],
            "invalid argument \"02:42:ac:11:00\" for \"--mac-address\" flag".into(),
        ),
        (
            vec!["--network", "fixed13", "--mac-address", "01:00:5e:00:00:01"],
            "multicast".into(),
        ),
    ];
    for (flags, want) in cases {
        let mut args = vec!["run", "--rm"];
        args.extend(flags.iter().copied());
        args.extend(["busybox", "true"]);
        let out = env.berth(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(125), "{flags:?}: {err}");
        assert_eq!(
            err.lines().count(),
            1,
            "one error line for {flags:?}: {err}"
        );
        assert!(err.contains(&want), "{flags:?}: {err}");
    }
    // Nothing was left by the refusals: one container, one address in use.
    assert_eq!(env.ok(&["ps", "-aq"]).lines().count(), 1);
    let inspect: serde_json::Value =
        serde_json::from_str(&env.ok(&["network", "inspect", "fixed13"])).expect("json");
    assert_eq!(
        inspect[0]["Containers"].as_object().map(|m| m.len()),
        Some(1)
    );
    assert_eq!(
        std::fs::read_dir(env.runroot().join("netns"))
            .map(|d| d.count())
            .unwrap_or(0),
        1
    );
    // network connect --ip: checked the same way, then set on the new interface.
    env.ok(&["run", "-d", "--name", "fixed13b", "busybox", "sleep", "60"]);
    let taken = env.berth(&["network", "connect", "--ip", &ip, "fixed13", "fixed13b"]);
    assert_eq!(taken.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&taken.stderr).trim_end(),
        format!("Error: Address already in use: {ip} on network fixed13")
    );
    let ip2 = format!("{prefix}.{}", base + 30);
    env.ok(&["network", "connect", "--ip", &ip2, "fixed13", "fixed13b"]);
    let addrs = env.ok(&["exec", "fixed13b", "ip", "-o", "-4", "addr", "show", "eth1"]);
    assert!(addrs.contains(&format!("inet {ip2}/26")), "{addrs}");
    env.ok(&["rm", "-f", "fixed13b"]);
    // Once its holder is gone, the address can be had.
    env.ok(&["rm", "-f", "fixed13a"]);
    let again = env.ok(&[
        "run",
        "--rm",
        "--network",
        "fixed13",
        "--ip",
        &ip,
        "busybox",
        "ip",
        "-o",
        "-4",
        "addr",
        "show",
        "eth0",
    ]);
    assert!(again.contains(&format!("inet {ip}/26")), "{again}");
}

#[test]
fn a_killed_monitor_leaves_no_listener_veth_or_namespace_after_the_next_command() {
    if !require_root("killed_monitor_network") {
        return;
    }
    let env = env(14);
    let port = free_port();
    let spec = format!("{port}:80");
    let mut args = vec!["run", "-d", "--name", "crash14", "-p", &spec, "busybox"];
    args.extend_from_slice(HTTPD);
    let id = env.ok(&args);
    get_eventually(SocketAddr::from(([127, 0, 0, 1], port)));
    // The monitor (the forwarder's process) is the container process's parent.
    let pid = env.ok(&["inspect", "-f", "{{.State.Pid}}", "crash14"]);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let ppid = stat[stat.rfind(')').expect("stat") + 2..]
        .split_whitespace()
        .nth(1)
        .expect("ppid")
        .to_string();
    let cmdline = std::fs::read_to_string(format!("/proc/{ppid}/cmdline")).unwrap_or_default();
    assert!(cmdline.contains("_monitor"), "not the monitor: {cmdline}");
    let killed = Command::new("kill")
        .args(["-9", &ppid])
        .status()
        .expect("kill");
    assert!(killed.success());
    // The next berth command notices: nothing runs, and the container shows as exited.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !env.ok(&["ps", "-q"]).is_empty() {
        assert!(
            Instant::now() < deadline,
            "still running after its monitor died"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = env.ok(&["inspect", "-f", "{{.State.Status}}", "crash14"]);
    assert_eq!(status, "exited");
    TcpListener::bind(("0.0.0.0", port)).expect("the published port is free");
    TcpListener::bind(("::", port)).expect("the published v6 port is free");
    assert!(veth_gone(&id), "veth left after the monitor died");
    assert!(
        !env.runroot().join("netns").join(&id).exists(),
        "netns pin left"
    );
    assert!(env.ok(&["port", "crash14"]).is_empty(), "port rows left");
    // It starts again on the same port.
    env.ok(&["start", "crash14"]);
    let page = get_eventually(SocketAddr::from(([127, 0, 0, 1], port)));
    assert!(page.contains("200 OK"), "{page}");
    env.ok(&["rm", "-f", "crash14"]);
}

#[test]
fn ipv6_user_network_gives_addresses_routes_and_hosts_entries() {
    if !require_root("ipv6_user_network") {
        return;
    }
    let env = env(15);
    let subnet6 = format!("fd00:215:{}:15::/64", env.third);
    env.ok(&[
        "network",
        "create",
        "--ipv6",
        "--subnet",
        &subnet6,
        "--subnet",
        &env.subnet(0),
        "six15",
    ]);
    let inspect: serde_json::Value =
        serde_json::from_str(&env.ok(&["network", "inspect", "six15"])).expect("json");
    assert_eq!(inspect[0]["EnableIPv6"], true);
    let gw6 = format!("fd00:215:{}:15::1", env.third);
    assert_eq!(inspect[0]["IPAM"]["Config"][1]["Subnet"], subnet6.as_str());
    assert_eq!(inspect[0]["IPAM"]["Config"][1]["Gateway"], gw6.as_str());
    let ls = env.ok(&[
        "network",
        "ls",
        "--filter",
        "name=six15",
        "--format",
        "json",
    ]);
    let ls: serde_json::Value = serde_json::from_str(&ls).expect("json");
    assert_eq!(ls["IPv6"], "true");

    let mut args = vec![
        "run",
        "-d",
        "--name",
        "web15",
        "--network",
        "six15",
        "busybox",
    ];
    args.extend_from_slice(HTTPD);
    let web = env.ok(&args);
    let inspect: serde_json::Value =
        serde_json::from_str(&env.ok(&["network", "inspect", "six15"])).expect("json");
    let web6 = inspect[0]["Containers"][&web]["IPv6Address"]
        .as_str()
        .expect("an IPv6 address")
        .to_string();
    assert!(
        web6.starts_with(&format!("fd00:215:{}:15::", env.third)) && web6.ends_with("/64"),
        "{web6}"
    );
    let web6 = web6.trim_end_matches("/64").to_string();
    // A second container: its own address and default route, web15's IPv6 address in its
    // hosts file under web15's name, and web15's page over IPv6 by that name.
    let script = "ip -6 -o addr show dev eth0 scope global; ip -6 route show default; \
         ip=$(awk -v h=web15 '{for (i = 2; i <= NF; i++) if ($i == h && $1 ~ /:/) print $1}' /etc/hosts); \
         echo \"hosts $ip\"; \
         for i in 1 2 3 4 5 6 7 8 9 10; do timeout 3 wget -q -O- \"http://[$ip]:80/\" && exit 0; sleep 0.2; done; exit 1";
    let out = env.ok(&[
        "run",
        "--rm",
        "--network",
        "six15",
        "busybox",
        "sh",
        "-c",
        script,
    ]);
    assert!(
        out.contains(&format!("inet6 fd00:215:{}:15::", env.third)),
        "{out}"
    );
    assert!(
        out.contains(&format!("default via {gw6} dev eth0")),
        "{out}"
    );
    assert!(out.contains(&format!("hosts {web6}")), "{out}");
    assert!(
        out.trim_end().ends_with(&web[..12]),
        "the page over IPv6: {out}"
    );
    let settings = env.ok(&[
        "inspect",
        "-f",
        "{{json .NetworkSettings.Networks}}",
        "web15",
    ]);
    let settings: serde_json::Value = serde_json::from_str(&settings).expect("json");
    assert_eq!(settings["six15"]["GlobalIPv6Address"], web6.as_str());
    assert_eq!(settings["six15"]["IPv6Gateway"], gw6.as_str());

    // Refused: an IPv6 subnet without --ipv6, one too small for the IPv4 hosts, an overlap.
    let v4 = env.subnet(1);
    for (args, want) in [
        (
            vec!["network", "create", "--subnet", "fd00:215:9::/64", "bad15a"],
            "without --ipv6",
        ),
        (
            vec![
                "network",
                "create",
                "--ipv6",
                "--subnet",
                "fd00:215:9::/124",
                "--subnet",
                &v4,
                "bad15b",
            ],
            "smaller than IPv4 subnet",
        ),
        (
            vec![
                "network", "create", "--ipv6", "--subnet", &subnet6, "--subnet", &v4, "bad15c",
            ],
            "overlaps",
        ),
    ] {
        let out = env.berth(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.starts_with("Error: ") && err.contains(want),
            "{args:?}: {err}"
        );
    }
    // --ipv6 alone takes a unique local /64.
    env.ok(&["network", "create", "--ipv6", "--subnet", &v4, "auto15"]);
    let inspect: serde_json::Value =
        serde_json::from_str(&env.ok(&["network", "inspect", "auto15"])).expect("json");
    let auto = inspect[0]["IPAM"]["Config"][1]["Subnet"]
        .as_str()
        .expect("an IPv6 subnet");
    assert!(auto.starts_with("fd") && auto.ends_with("::/64"), "{auto}");
    let ls = env.ok(&["network", "ls", "-q"]);
    assert_eq!(ls.lines().count(), 5, "no refused network was made: {ls}");
    env.ok(&["rm", "-f", "web15"]);
    env.ok(&["network", "rm", "six15", "auto15"]);
}

/// A named network namespace of a test's own (`ip netns add`), in which berth runs through
/// `nsenter --net` (no new mount namespace, so berth's mounts and pins stay visible), so a
/// test can turn on forwarding and load nftables rules without touching the host's. Drop
/// removes the containers and networks made in it, then the namespace with whatever is left
/// in it (bridges, the nftables table).
struct NetnsEnv {
    env: Env,
    name: String,
}

impl NetnsEnv {
    fn new(env: Env, name: &str) -> NetnsEnv {
        let _ = Command::new("ip").args(["netns", "del", name]).output();
        let out = Command::new("ip")
            .args(["netns", "add", name])
            .output()
            .expect("ip netns add");
        assert!(out.status.success(), "ip netns add {name}: {out:?}");
        let ns = NetnsEnv {
            env,
            name: name.to_string(),
        };
        ns.sh("ip link set lo up");
        ns
    }

    fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }

    /// Runs a shell command inside the namespace, asserting success.
    fn sh(&self, script: &str) -> String {
        let out = Command::new("nsenter")
            .arg(format!("--net={}", self.path()))
            .args(["sh", "-c", script])
            .output()
            .expect("nsenter");
        assert!(out.status.success(), "{script}: {out:?}");
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    fn berth(&self, args: &[&str]) -> std::process::Output {
        Command::new("nsenter")
            .arg(format!("--net={}", self.path()))
            .arg(BIN)
            .arg("--root")
            .arg(self.env.root())
            .arg("--runroot")
            .arg(self.env.runroot())
            .args(args)
            .env_remove("BERTH_ROOT")
            .env_remove("BERTH_RUNROOT")
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run berth")
    }

    fn ok(&self, args: &[&str]) -> String {
        support::ok_stdout(args, self.berth(args))
    }
}

impl Drop for NetnsEnv {
    fn drop(&mut self) {
        support::remove_containers_and_networks(|args| self.berth(args));
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// The nftables table of berth before the `inet` one (IPv4 only), as a host upgraded from
/// that berth still has it.
const LEGACY_TABLE: &str = "table ip berth {
  set bridges { type ifname; }
  set subnets { type ipv4_addr; flags interval; }
  set pairs { type ifname . ifname; }
  map dnat_tcp { type inet_service : ipv4_addr . inet_service; }
  map dnat_udp { type inet_service : ipv4_addr . inet_service; }
  chain forward {
    type filter hook forward priority filter; policy accept;
    iifname . oifname @pairs drop
  }
}
";

#[test]
fn nftables_isolate_ipv6_between_networks_when_the_host_forwards_ipv6() {
    ipv6_isolation("nftables_ipv6_isolation", true, 16);
}

#[test]
fn without_nftables_ipv6_between_networks_is_refused_when_the_host_forwards_ipv6() {
    ipv6_isolation("rules_ipv6_isolation", false, 18);
}

/// Two IPv6 networks in a namespace of the test's own that forwards IPv6 (as a router host
/// does): a container on one cannot reach one on the other, over IPv6 or IPv4, while the
/// same network works; with `nftables` the inet table's bridge rules do it, without it berth's
/// IPv6 policy rules (`iif BRIDGE prohibit`). Taking those away opens the route, so the
/// refusal was theirs.
fn ipv6_isolation(test: &str, nftables: bool, n: u8) {
    if !require_root(test)
        || !support::require_tool(test, "nft")
        || !support::require_tool(test, "nsenter")
    {
        return;
    }
    let env = env(n);
    {
        let toml = env.root().join("berth.toml");
        let mut cfg = std::fs::read_to_string(&toml).expect("berth.toml");
        cfg.push_str(if nftables {
            "nftables = true\n"
        } else {
            "nftables = false\n"
        });
        std::fs::write(&toml, cfg).expect("berth.toml");
    }
    let third = env.third;
    let (s1, s2, s3) = (env.subnet(0), env.subnet(1), env.subnet(2));
    let ns = NetnsEnv::new(env, &format!("berth-v6iso-{third}"));
    // In the test's namespace only: IPv6 forwarding on (as on a router host), and the
    // legacy `ip berth` table that berth must replace on first use.
    ns.sh("echo 1 > /proc/sys/net/ipv6/conf/all/forwarding");
    if nftables {
        // Any nftables step replaces it, a network's removal as well as a container's start;
        // after a removal no bridge is left, so neither is a table.
        ns.sh(&format!("nft -f - <<'EOF'\n{LEGACY_TABLE}EOF"));
        ns.ok(&["network", "create", "--subnet", &s3, "gone"]);
        ns.ok(&["network", "rm", "gone"]);
        assert_eq!(ns.sh("nft list tables").trim(), "");
        ns.sh(&format!("nft -f - <<'EOF'\n{LEGACY_TABLE}EOF"));
    }
    let (neta, netb) = (format!("v6a{n}"), format!("v6b{n}"));
    let (web_name, cli) = (format!("web{n}"), format!("cli{n}"));
    let (a6, b6) = (
        format!("fd00:216:{third}:{n}1::/64"),
        format!("fd00:216:{third}:{n}2::/64"),
    );
    ns.ok(&[
        "network", "create", "--ipv6", "--subnet", &a6, "--subnet", &s1, &neta,
    ]);
    ns.ok(&[
        "network", "create", "--ipv6", "--subnet", &b6, "--subnet", &s2, &netb,
    ]);
    let mut args = vec![
        "run",
        "-d",
        "--name",
        &web_name,
        "--network",
        &netb,
        "busybox",
    ];
    args.extend_from_slice(HTTPD);
    let web = ns.ok(&args);
    let inspect: serde_json::Value =
        serde_json::from_str(&ns.ok(&["network", "inspect", &netb])).expect("json");
    let web6 = inspect[0]["Containers"][&web]["IPv6Address"]
        .as_str()
        .expect("an IPv6 address")
        .trim_end_matches("/64")
        .to_string();
    let web4 = inspect[0]["Containers"][&web]["IPv4Address"]
        .as_str()
        .expect("an IPv4 address")
        .split('/')
        .next()
        .expect("ip")
        .to_string();
    let tables = ns.sh("nft list tables");
    assert_eq!(
        tables.trim(),
        if nftables { "table inet berth" } else { "" },
        "the legacy table is replaced, not kept"
    );
    // A client on the other network, probing with exec (the control below takes the
    // isolation away under a container that is already running).
    ns.ok(&[
        "run",
        "-d",
        "--name",
        &cli,
        "--network",
        &neta,
        "busybox",
        "sleep",
        "600",
    ]);
    let script = |url: &str, tries: u32| {
        format!(
            "for i in $(seq {tries}); do timeout 2 wget -q -O- {url} && exit 0; sleep 0.2; done; exit 1"
        )
    };
    let url6 = format!("http://[{web6}]:80/");
    let url4 = format!("http://{web4}:80/");
    let same = ns.berth(&[
        "run",
        "--rm",
        "--network",
        &netb,
        "busybox",
        "sh",
        "-c",
        &script(&url6, 15),
    ]);
    assert!(
        same.status.success() && String::from_utf8_lossy(&same.stdout).contains(&web[..12]),
        "same network over IPv6: {same:?}"
    );
    let other = ns.berth(&["exec", &cli, "sh", "-c", &script(&url6, 3)]);
    assert!(
        !other.status.success(),
        "a container on another network reached {web6} over IPv6: {other:?}"
    );
    let other4 = ns.berth(&["exec", &cli, "sh", "-c", &script(&url4, 2)]);
    assert!(!other4.status.success(), "reached {web4} over IPv4");
    let bridge = |net: &str| -> String {
        let v: serde_json::Value =
            serde_json::from_str(&ns.ok(&["network", "inspect", net])).expect("json");
        v[0]["Options"]["com.docker.network.bridge.name"]
            .as_str()
            .expect("bridge name")
            .to_string()
    };
    let (bra, brb) = (bridge(&neta), bridge(&netb));
    let rules = ns.sh("ip -6 rule");
    for br in [&bra, &brb] {
        assert_eq!(
            rules.contains(&format!("iif {br} prohibit")),
            !nftables,
            "{rules}"
        );
    }
    // Without the isolation the namespace routes between the bridges (the failures above
    // were its doing, not a missing route).
    if nftables {
        ns.sh("nft flush set inet berth bridges");
    } else {
        for br in [&bra, &brb] {
            ns.sh(&format!("ip -6 rule del iif {br} priority 1000 prohibit"));
        }
    }
    let open = ns.berth(&["exec", &cli, "sh", "-c", &script(&url6, 15)]);
    assert!(
        open.status.success() && String::from_utf8_lossy(&open.stdout).contains(&web[..12]),
        "routing between the networks works once the isolation is gone: {open:?}"
    );
    if nftables {
        // A network made after every container started and first used through `network
        // connect` is isolated too.
        let netc = format!("v6c{n}");
        ns.ok(&["network", "create", "--subnet", &s3, &netc]);
        ns.ok(&["network", "connect", &netc, &cli]);
        let brc = bridge(&netc);
        let bridges = ns.sh("nft list set inet berth bridges");
        assert!(bridges.contains(&format!("\"{brc}\"")), "{bridges}");
    }
    if !nftables {
        // The next container on the network puts its rule back; removing the network
        // takes it away.
        ns.ok(&["run", "--rm", "--network", &neta, "busybox", "true"]);
        assert!(ns.sh("ip -6 rule").contains(&format!("iif {bra} prohibit")));
        ns.ok(&["rm", "-f", &cli]);
        ns.ok(&["network", "rm", &neta]);
        assert!(!ns.sh("ip -6 rule").contains(&format!("iif {bra} ")));
    }
}

#[test]
fn stopped_container_releases_its_address_and_gets_one_again_at_start() {
    if !require_root("stop_releases_address") {
        return;
    }
    let env = env(17);
    // A /29: gateway .193, hosts .194 to .198.
    let inspect = |name: &str, template: &str| env.ok(&["inspect", "-f", template, name]);
    let base = format!("10.215.{}.192", env.third);
    let host = |n: u8| format!("10.215.{}.{}", env.third, 192 + n);
    env.ok(&[
        "network",
        "create",
        "--subnet",
        &format!("{base}/29"),
        "small17",
    ]);
    let run = |name: &str| {
        let mut args = vec![
            "run",
            "-d",
            "--name",
            name,
            "--network",
            "small17",
            "busybox",
        ];
        args.extend_from_slice(HTTPD);
        env.ok(&args)
    };
    let ip_of = |name: &str| inspect(name, "{{.NetworkSettings.Networks.small17.IPAddress}}");
    let a = run("first17");
    assert_eq!(ip_of("first17"), host(2));
    let veth = inspect(
        "first17",
        "{{.NetworkSettings.Networks.small17.EndpointID}}",
    );
    assert!(!veth.is_empty());
    env.ok(&["stop", "-t", "1", "first17"]);
    // Stopped: no address anywhere in inspect, still connected to the network, its
    // interface gone from the host.
    assert_eq!(inspect("first17", "{{.NetworkSettings.IPAddress}}"), "");
    assert_eq!(ip_of("first17"), "");
    assert!(
        inspect("first17", "{{json .NetworkSettings.Networks}}").contains("small17"),
        "still connected"
    );
    assert!(
        support::eventually(5, || !std::path::Path::new("/sys/class/net")
            .join(&veth)
            .exists()),
        "veth {veth} left on the host"
    );
    // The address went back to the pool: the next container gets it.
    let b = run("second17");
    assert_eq!(ip_of("second17"), host(2));
    // Started again, the first gets the next free address, and the two reach each other,
    // by name (hosts files updated) and by address.
    env.ok(&["start", "first17"]);
    assert_eq!(ip_of("first17"), host(3));
    let fetch = |from: &str, target: &str| {
        let script = format!(
            "for i in $(seq 20); do ip=$(awk -v h={target} '{{for (i = 2; i <= NF; i++) if ($i == h) print $1}}' /etc/hosts); \
             [ -n \"$ip\" ] && timeout 2 wget -q -O- http://$ip:80/ && exit 0; sleep 0.2; done; cat /etc/hosts >&2; exit 1"
        );
        env.ok(&["exec", from, "sh", "-c", &script])
    };
    assert_eq!(fetch("second17", "first17"), &a[..12]);
    assert_eq!(fetch("first17", "second17"), &b[..12]);
    let out = env.ok(&["exec", "first17", "ping", "-c", "1", "-W", "2", &host(2)]);
    assert!(out.contains("1 packets received"), "{out}");
    // Both stopped, then started in the other order: each gets back the address it had
    // (the first's .195 though .194 is lower and free).
    env.ok(&["stop", "-t", "1", "second17", "first17"]);
    assert_eq!(inspect("second17", "{{.NetworkSettings.IPAddress}}"), "");
    env.ok(&["start", "first17"]);
    assert_eq!(ip_of("first17"), host(3));
    env.ok(&["start", "second17"]);
    assert_eq!(ip_of("second17"), host(2));
    assert_eq!(fetch("second17", "first17"), &a[..12]);
    // A /30 holds one container: while another has the address, start fails with nothing
    // made (no namespace pinned, no address held) and works once the address is free.
    env.ok(&[
        "network",
        "create",
        "--subnet",
        &format!("10.215.{}.200/30", env.third),
        "tiny17",
    ]);
    env.ok(&["network", "connect", "tiny17", "first17"]);
    assert_eq!(
        inspect("first17", "{{.NetworkSettings.Networks.tiny17.IPAddress}}"),
        format!("10.215.{}.202", env.third)
    );
    env.ok(&["stop", "-t", "1", "first17"]);
    let mut args = vec![
        "run",
        "-d",
        "--name",
        "taker17",
        "--network",
        "tiny17",
        "busybox",
    ];
    args.extend_from_slice(HTTPD);
    env.ok(&args);
    let out = env.berth(&["start", "first17"]);
    // Docker's `start` exits 1 when a container fails to start.
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("no available IPv4 addresses on this network's address pools: tiny17 ("),
        "{err}"
    );
    let first_id = inspect("first17", "{{.Id}}");
    assert!(
        !env.runroot().join("netns").join(&first_id).exists(),
        "netns pin left"
    );
    assert_eq!(inspect("first17", "{{.State.Running}}"), "false");
    // The failed start held no address on small17 either: a new container takes .195.
    env.ok(&[
        "run",
        "-d",
        "--name",
        "probe17",
        "--network",
        "small17",
        "busybox",
        "sleep",
        "60",
    ]);
    assert_eq!(ip_of("probe17"), host(3));
    env.ok(&["rm", "-f", "taker17", "probe17"]);
    env.ok(&["start", "first17"]);
    assert_eq!(ip_of("first17"), host(3));
    assert_eq!(
        inspect("first17", "{{.NetworkSettings.Networks.tiny17.IPAddress}}"),
        format!("10.215.{}.202", env.third)
    );
    // rm frees everything: a new container takes .194 once both are gone.
    env.ok(&["rm", "-f", "first17", "second17"]);
    run("third17");
    assert_eq!(ip_of("third17"), host(2));
    env.ok(&["rm", "-f", "third17"]);
    env.ok(&["network", "rm", "small17"]);
    env.ok(&["network", "rm", "tiny17"]);
}

#[test]
fn connect_ip_holds_at_every_start_but_not_while_stopped() {
    if !require_root("connect_ip_static") {
        return;
    }
    let env = env(19);
    let ip = format!("10.215.{}.212", env.third);
    env.ok(&[
        "network",
        "create",
        "--subnet",
        &format!("10.215.{}.208/29", env.third),
        "stat19",
    ]);
    env.ok(&["create", "--name", "c19", "busybox", "sleep", "600"]);
    env.ok(&["network", "connect", "--ip", &ip, "stat19", "c19"]);
    let inspect = |what: &str| env.ok(&["inspect", "-f", what, "c19"]);
    assert_eq!(
        inspect("{{json .NetworkSettings.Networks.stat19.IPAMConfig}}"),
        format!("{{\"IPv4Address\":\"{ip}\"}}")
    );
    assert_eq!(
        inspect("{{.NetworkSettings.Networks.stat19.IPAddress}}"),
        ""
    );
    // Not held while stopped (as Docker): another container may take it, and then the
    // start fails, saying so, with nothing left behind.
    env.ok(&[
        "run",
        "-d",
        "--name",
        "t19",
        "--network",
        "stat19",
        "--ip",
        &ip,
        "busybox",
        "sleep",
        "600",
    ]);
    let out = env.berth(&["start", "c19"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("Address already in use: {ip}")),
        "{err}"
    );
    assert_eq!(inspect("{{.State.Running}}"), "false");
    env.ok(&["rm", "-f", "t19"]);
    env.ok(&["start", "c19"]);
    assert_eq!(
        inspect("{{.NetworkSettings.Networks.stat19.IPAddress}}"),
        ip
    );
    // Stopped and started again with lower addresses free: still the one asked for.
    env.ok(&["stop", "-t", "1", "c19"]);
    env.ok(&[
        "run",
        "-d",
        "--name",
        "t19b",
        "--network",
        "stat19",
        "busybox",
        "sleep",
        "600",
    ]);
    env.ok(&["start", "c19"]);
    assert_eq!(
        inspect("{{.NetworkSettings.Networks.stat19.IPAddress}}"),
        ip
    );
    env.ok(&["rm", "-f", "c19", "t19b"]);
    env.ok(&["network", "rm", "stat19"]);
}
