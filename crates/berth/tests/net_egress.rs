//! Outbound NAT by default and the default bridge's subnet pool (issue 14), through the
//! `berth` binary. Root only.
//!
//! berth runs inside a network namespace of the test's own (its "host", entered with
//! `nsenter --net`, the file system shared), so its nftables table, IPv4 forwarding and
//! bridges are that namespace's and the test can assert exactly what is left, whatever
//! other tests do meanwhile. A second namespace plays "the internet": a veth pair from the
//! test's host into it (198.18.N.0/30), an address behind it (198.19.N.1) routed there,
//! and busybox httpd on it. It has no route back to any container subnet, so an answer
//! arriving proves the masquerade. Everything is deleted at the end, and no traffic
//! leaves the namespaces.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};

#[path = "containers_support/mod.rs"]
mod support;

use support::BIN;

fn require(test: &str) -> bool {
    support::require_root_for(test, "network namespaces, bridges, nftables")
        && support::require_tool(test, "nft")
        && support::require_tool(test, "nsenter")
        && support::require_tool(test, "busybox")
}

/// Runs a command, asserting success; its stdout.
fn sh(script: &str) -> String {
    let out = Command::new("sh")
        .args(["-c", script])
        .output()
        .expect("sh");
    assert!(out.status.success(), "{script}: {out:?}");
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// The test's host namespace with berth's root in it, and optionally "the internet".
struct Host {
    env: support::NetEnv,
    /// The host namespace's name (`ip netns`).
    ns: String,
    /// The internet namespace's name, once made.
    net: Option<String>,
    httpd: Option<Child>,
}

impl Host {
    /// A namespace `berth-<tag><N>` with `lo` up, and a berth root whose berth.toml is
    /// `toml` (with `{bridge}` and `{n}` filled in).
    fn new(tag: &str, n: u8, toml: &str) -> Host {
        let env = support::NetEnv::new("egress", &format!("b{tag}"), 220, n);
        let ns = format!("berth-{tag}h{}", env.third);
        let _ = Command::new("ip").args(["netns", "del", &ns]).output();
        sh(&format!("ip netns add {ns} && ip -n {ns} link set lo up"));
        // Forwarding off, as on a fresh host (a new namespace may inherit the host's).
        sh(&format!(
            "nsenter --net=/run/netns/{ns} sh -c 'echo 0 > /proc/sys/net/ipv4/ip_forward'"
        ));
        let toml = toml
            .replace("{bridge}", &env.bridge)
            .replace("{n}", &env.third.to_string());
        std::fs::write(env.root().join("berth.toml"), toml).expect("berth.toml");
        Host {
            env,
            ns,
            net: None,
            httpd: None,
        }
    }

    fn n(&self) -> u8 {
        self.env.third
    }

    /// Makes "the internet": a namespace joined to the host one by a veth pair
    /// (198.18.N.1/30 on the host's end), with 198.19.N.1 on its loopback, routed there,
    /// and busybox httpd on port 80 serving `body`.
    fn internet(&mut self, body: &str) -> String {
        let (h, n) = (self.ns.clone(), self.n());
        let i = format!("berth-egi{n}");
        let _ = Command::new("ip").args(["netns", "del", &i]).output();
        sh(&format!(
            "set -e; ip netns add {i}; ip -n {i} link set lo up
             ip -n {h} link add veg{n} type veth peer name vegi{n} netns {i}
             ip -n {h} addr add 198.18.{n}.1/30 dev veg{n}; ip -n {h} link set veg{n} up
             ip -n {i} addr add 198.18.{n}.2/30 dev vegi{n}; ip -n {i} link set vegi{n} up
             ip -n {i} addr add 198.19.{n}.1/32 dev lo
             ip -n {h} route add 198.19.{n}.0/24 via 198.18.{n}.2"
        ));
        self.net = Some(i.clone());
        let www: PathBuf = self.env.dir.path().join("www");
        std::fs::create_dir_all(&www).expect("www");
        std::fs::write(www.join("index.html"), body).expect("index.html");
        let child = Command::new("ip")
            .args(["netns", "exec", &i, "busybox", "httpd", "-f"])
            .arg("-p")
            .arg(format!("198.19.{n}.1:80"))
            .arg("-h")
            .arg(&www)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("busybox httpd");
        self.httpd = Some(child);
        let url = format!("http://198.19.{n}.1/");
        // Up, as seen from the host namespace itself.
        assert!(
            support::eventually(5, || self
                .in_ns(&format!("busybox wget -q -O- {url}"))
                .status
                .success()),
            "the internet's httpd never answered"
        );
        url
    }

    /// Runs a shell command in the host namespace.
    fn in_ns(&self, script: &str) -> Output {
        Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.ns))
            .args(["sh", "-c", script])
            .output()
            .expect("nsenter")
    }

    fn in_ns_ok(&self, script: &str) -> String {
        let out = self.in_ns(script);
        assert!(out.status.success(), "{script}: {out:?}");
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    fn berth(&self, args: &[&str]) -> Output {
        Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.ns))
            .arg(BIN)
            .arg("--root")
            .arg(self.env.root())
            .arg("--runroot")
            .arg(self.env.runroot())
            .args(args)
            .env_remove("BERTH_ROOT")
            .env_remove("BERTH_RUNROOT")
            .stdin(Stdio::null())
            .output()
            .expect("run berth")
    }

    fn ok(&self, args: &[&str]) -> String {
        support::ok_stdout(args, self.berth(args))
    }

    /// What berth leaves in the host namespace: its nftables tables and the bridges.
    fn leftovers(&self) -> String {
        let tables = self.in_ns_ok("nft list tables");
        let bridges = self.in_ns_ok("ip -br link show type bridge");
        format!("{tables}{bridges}").trim().to_string()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        support::remove_containers_and_networks(|args| self.berth(args));
        if let Some(mut c) = self.httpd.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // The veth pair, the bridges, the table and the dummy go with the namespaces.
        for ns in [Some(self.ns.clone()), self.net.clone()]
            .into_iter()
            .flatten()
        {
            let _ = Command::new("ip").args(["netns", "del", &ns]).output();
        }
    }
}

fn ip_on(h: &Host, net: &str, container: &str) -> String {
    let v: serde_json::Value =
        serde_json::from_str(&h.ok(&["network", "inspect", net])).expect("json");
    v[0]["Containers"]
        .as_object()
        .expect("containers")
        .values()
        .find(|c| c["Name"] == container)
        .and_then(|c| c["IPv4Address"].as_str())
        .expect("an address")
        .split('/')
        .next()
        .expect("ip")
        .to_string()
}

fn wget(h: &Host, network: &str, url: &str, tries: u32) -> Output {
    let script = format!(
        "for i in $(seq {tries}); do timeout 2 wget -q -O- {url} && exit 0; sleep 0.2; done; exit 1"
    );
    h.berth(&[
        "run",
        "--rm",
        "--network",
        network,
        "busybox",
        "sh",
        "-c",
        &script,
    ])
}

#[test]
fn containers_reach_the_internet_through_nat_and_networks_stay_isolated() {
    let test = "containers_reach_the_internet_through_nat_and_networks_stay_isolated";
    if !require(test) {
        return;
    }
    let mut h = Host::new(
        "eg",
        1,
        "[network]\nsubnet = \"10.220.{n}.0/26\"\nbridge = \"{bridge}\"\n",
    );
    let n = h.n();
    let url = h.internet("hello from the internet\n");
    assert_eq!(h.in_ns_ok("cat /proc/sys/net/ipv4/ip_forward").trim(), "0");

    // The default bridge: no berth.toml key needed. Turning on forwarding is said once.
    let first = wget(&h, "bridge", &url, 10);
    assert!(
        first.status.success(),
        "default bridge to the internet: {first:?}"
    );
    assert_eq!(
        String::from_utf8_lossy(&first.stdout),
        "hello from the internet\n"
    );
    let said = String::from_utf8_lossy(&first.stderr).to_string();
    assert!(said.contains("enabled IPv4 forwarding"), "{said}");
    assert_eq!(h.in_ns_ok("cat /proc/sys/net/ipv4/ip_forward").trim(), "1");
    // The internet has no route back to the containers: the answer came through NAT.
    let back = Command::new("ip")
        .args(["-n", h.net.as_deref().expect("internet"), "route", "get"])
        .arg(format!("10.220.{n}.2"))
        .output()
        .expect("ip route get");
    assert!(!back.status.success(), "the internet routes back: {back:?}");

    // A user network, and another one that must not reach the first.
    let (neta, netb) = (format!("ega{n}"), format!("egb{n}"));
    h.ok(&[
        "network",
        "create",
        "--subnet",
        &format!("10.220.{n}.64/26"),
        &neta,
    ]);
    h.ok(&[
        "network",
        "create",
        "--subnet",
        &format!("10.220.{n}.128/26"),
        &netb,
    ]);
    let again = wget(&h, &neta, &url, 10);
    assert!(
        again.status.success(),
        "user network to the internet: {again:?}"
    );
    assert_eq!(
        String::from_utf8_lossy(&again.stdout),
        "hello from the internet\n"
    );
    assert!(
        !String::from_utf8_lossy(&again.stderr).contains("forwarding"),
        "said twice: {again:?}"
    );
    let web = format!("egweb{n}");
    h.ok(&[
        "run",
        "-d",
        "--name",
        &web,
        "--network",
        &neta,
        "busybox",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/etc",
    ]);
    let web_url = format!("http://{}/hostname", ip_on(&h, &neta, &web));
    let same = wget(&h, &neta, &web_url, 15);
    assert!(same.status.success(), "same network: {same:?}");
    let other = wget(&h, &netb, &web_url, 3);
    assert!(
        !other.status.success(),
        "a container on {netb} reached {web_url} on {neta}: {other:?}"
    );
    let from_default = wget(&h, "bridge", &web_url, 2);
    assert!(
        !from_default.status.success(),
        "the default bridge reached {web_url}"
    );

    // Nothing is left once the last network is gone: no bridge, no table.
    assert!(h.leftovers().contains("table inet berth"));
    h.ok(&["rm", "-f", &web]);
    h.ok(&["network", "rm", &neta, &netb]);
    h.ok(&["network", "prune", "-f"]);
    assert_eq!(h.leftovers(), "", "berth left a table or a bridge");
}

#[test]
fn the_default_bridge_takes_the_first_free_subnet_of_its_pool_and_keeps_it() {
    let test = "the_default_bridge_takes_the_first_free_subnet_of_its_pool_and_keeps_it";
    if !require(test) {
        return;
    }
    // The pool's first /26 is on an interface, its second is routed somewhere: the third
    // is the first free one. The interface is a dummy, or a bare bridge on kernels without
    // the dummy driver.
    let h = Host::new(
        "ep",
        2,
        "[network]\nbridge = \"{bridge}\"\npool = [{ base = \"10.220.{n}.0/24\", size = 26 }]\n",
    );
    let n = h.n();
    h.in_ns_ok(&format!(
        "set -e; ip link add dpool{n} type dummy || ip link add dpool{n} type bridge
         ip addr add 10.220.{n}.1/26 dev dpool{n}
         ip link set dpool{n} up; ip route add 10.220.{n}.64/26 dev dpool{n}"
    ));
    let out = h.ok(&[
        "run", "--rm", "busybox", "ip", "-4", "-o", "addr", "show", "eth0",
    ]);
    assert!(out.contains(&format!("inet 10.220.{n}.130/26")), "{out}");
    let inspect = |h: &Host| -> serde_json::Value {
        serde_json::from_str::<serde_json::Value>(&h.ok(&["network", "inspect", "bridge"]))
            .expect("json")[0]["IPAM"]["Config"][0]
            .clone()
    };
    let cfg = inspect(&h);
    assert_eq!(cfg["Subnet"], format!("10.220.{n}.128/26"), "{cfg}");
    assert_eq!(cfg["Gateway"], format!("10.220.{n}.129"), "{cfg}");
    // The choice is stored: with the dummy gone it stays.
    h.in_ns_ok(&format!("ip link del dpool{n}"));
    assert_eq!(inspect(&h)["Subnet"], format!("10.220.{n}.128/26"));

    // A root with no [network] subnet or pool takes Docker's pools: 172.17.0.0/16 first,
    // here held by an interface, so 172.18.0.0/16.
    let fresh = tempfile::tempdir().expect("temp dir");
    let (root, run) = (fresh.path().join("root"), fresh.path().join("run"));
    std::fs::create_dir_all(&root).expect("root");
    std::fs::write(
        root.join("berth.toml"),
        format!("[network]\nbridge = \"bpd{n}\"\n"),
    )
    .expect("berth.toml");
    h.in_ns_ok(&format!(
        "set -e; ip link add dd{n} type dummy || ip link add dd{n} type bridge
         ip addr add 172.17.0.1/16 dev dd{n}"
    ));
    let berth = |args: &[&str]| -> Output {
        Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", h.ns))
            .arg(BIN)
            .arg("--root")
            .arg(&root)
            .arg("--runroot")
            .arg(&run)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run berth")
    };
    let out = support::ok_stdout(
        &["network", "inspect"],
        berth(&["network", "inspect", "bridge"]),
    );
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(
        v[0]["IPAM"]["Config"][0]["Subnet"], "172.18.0.0/16",
        "{out}"
    );
    support::remove_containers_and_networks(berth);
    h.in_ns_ok(&format!("ip link del dd{n}"));

    h.ok(&["network", "prune", "-f"]);
    assert_eq!(h.leftovers(), "", "berth left a table or a bridge");
}
