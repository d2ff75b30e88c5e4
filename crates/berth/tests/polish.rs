//! Docker-parity details of the container verbs, as a user sees them: `stats` NET I/O and
//! BLOCK I/O, MAC addresses in `inspect` and `network inspect`, addresses freed at stop,
//! `wait` of several containers, and `ps --filter`/`--format`. Root only; each test has its
//! own root, bridge and subnet (10.218.<reserved>.0/24) and removes what it made.

use std::path::PathBuf;
use std::process::Command;

#[path = "containers_support/mod.rs"]
mod support;

use support::require_root_for;

fn require_root(test: &str) -> bool {
    require_root_for(test, "namespaces, bridges, overlayfs, cgroups")
}

type Env = support::NetEnv;

/// This file's environment: its own reservation pool, bridge names and 10.218.x.0/24.
fn env(n: u8) -> Env {
    Env::new("polish", "bp", 218, n)
}

/// Bytes of a Docker decimal size (`648B`, `1.2kB`, `4.19MB`).
fn decimal_bytes(s: &str) -> f64 {
    let units = [("kB", 1e3), ("MB", 1e6), ("GB", 1e9), ("B", 1.0)];
    for (u, m) in units {
        if let Some(n) = s.strip_suffix(u) {
            return n
                .parse::<f64>()
                .unwrap_or_else(|_| panic!("not a size: {s:?}"))
                * m;
        }
    }
    panic!("not a size: {s:?}");
}

/// `(left, right)` bytes of a `A / B` cell.
fn pair(cell: &str) -> (f64, f64) {
    let (a, b) = cell
        .split_once(" / ")
        .unwrap_or_else(|| panic!("not `A / B`: {cell:?}"));
    (decimal_bytes(a), decimal_bytes(b))
}

/// The block device (`MAJ:MIN`) under `path`.
fn device_of(path: &std::path::Path) -> String {
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata(path).expect("stat").dev();
    let (major, minor) = ((dev >> 8) & 0xfff, (dev & 0xff) | ((dev >> 12) & 0xfff00));
    format!("{major}:{minor}")
}

#[test]
fn stats_shows_net_and_block_io_mem_percent_and_pids() {
    if !require_root("stats_shows_net_and_block_io_mem_percent_and_pids") {
        return;
    }
    let env = env(1);
    let id = env.ok(&[
        "run",
        "-d",
        "--name",
        "pstat1",
        "-m",
        "64m",
        "busybox",
        "sh",
        "-c",
        "sleep 300 & sleep 300 & wait",
    ]);
    let gw = env.gateway();
    // Traffic on eth0: two pings of the gateway (98-byte frames each way at least).
    env.ok(&["exec", "pstat1", "ping", "-c", "2", "-W", "2", &gw]);
    // Traffic on loopback does not count, as in Docker.
    env.ok(&[
        "exec",
        "pstat1",
        "ping",
        "-c",
        "2",
        "-s",
        "12000",
        "127.0.0.1",
    ]);
    // On cgroup v1 the kernel counts a cgroup's block I/O only where a throttle rule is
    // active: a rule far above any real rate turns counting on (the cgroup goes with rm).
    let blkio = PathBuf::from(format!("/sys/fs/cgroup/blkio/berth/{id}"));
    if blkio.exists() {
        let rule = format!("{} 1099511627776", device_of(&env.root()));
        std::fs::write(blkio.join("blkio.throttle.write_bps_device"), &rule)
            .expect("throttle rule");
    }
    env.ok(&[
        "exec",
        "pstat1",
        "dd",
        "if=/dev/zero",
        "of=/written",
        "bs=64k",
        "count=64",
        "conv=fsync",
    ]);

    let line = env.ok(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}}|{{.NetIO}}|{{.BlockIO}}|{{.MemPerc}}|{{.PIDs}}|{{.MemUsage}}",
        "pstat1",
    ]);
    let cells: Vec<&str> = line.split('|').collect();
    assert_eq!(cells.len(), 6, "{line}");
    assert_eq!(cells[0], "pstat1");
    let (rx, tx) = pair(cells[1]);
    assert!(rx >= 2.0 * 98.0 && tx >= 2.0 * 98.0, "NET I/O {line}");
    // 2 pings of 12 kB on lo would be over 40 kB: not counted.
    assert!(rx < 20_000.0 && tx < 20_000.0, "loopback counted: {line}");
    let (read, written) = pair(cells[2]);
    assert!(read >= 0.0 && written >= 4_000_000.0, "BLOCK I/O {line}");
    let pct = cells[3]
        .strip_suffix('%')
        .and_then(|p| p.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("MEM % {line}"));
    assert!(pct > 0.0 && pct < 100.0, "{line}");
    assert!(
        cells[3].split_once('.').is_some_and(|(_, d)| d.len() == 3),
        "{line}"
    );
    assert_eq!(cells[4], "3", "sh and two sleeps: {line}");
    assert!(cells[5].ends_with(" / 64MiB"), "{line}");

    // The table has Docker's titles for those columns.
    let table = env.ok(&[
        "stats",
        "--no-stream",
        "--format",
        "table {{.Name}}\\t{{.NetIO}}\\t{{.BlockIO}}\\t{{.MemPerc}}\\t{{.PIDs}}",
        "pstat1",
    ]);
    let header = table.lines().next().unwrap_or_default();
    let titles: Vec<&str> = header
        .split("  ")
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    assert_eq!(
        titles,
        ["NAME", "NET I/O", "BLOCK I/O", "MEM %", "PIDS"],
        "{table}"
    );

    // No network: nothing but loopback, so 0B / 0B.
    env.ok(&[
        "run",
        "-d",
        "--name",
        "pstat2",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "ping -c 3 127.0.0.1; sleep 300",
    ]);
    let none = env.ok(&["stats", "--no-stream", "--format", "{{.NetIO}}", "pstat2"]);
    assert_eq!(none, "0B / 0B");
    // A stopped one (stats -a): all zero, the limit too, as Docker.
    env.ok(&["stop", "-t", "0", "pstat2"]);
    let stopped = env.ok(&[
        "stats",
        "-a",
        "--no-stream",
        "--format",
        "{{.Name}}|{{.MemUsage}}|{{.MemPerc}}|{{.NetIO}}|{{.BlockIO}}|{{.PIDs}}",
        "pstat2",
    ]);
    assert_eq!(stopped, "pstat2|0B / 0B|0.00%|0B / 0B|0B / 0B|0");
    env.ok(&["rm", "-f", "pstat1", "pstat2"]);
    assert!(!blkio.exists(), "cgroup left: {}", blkio.display());
}

/// `inspect -f TEMPLATE NAME`.
fn inspect(env: &Env, name: &str, template: &str) -> String {
    env.ok(&["inspect", "-f", template, name])
}

#[test]
fn mac_addresses_show_in_inspect_and_network_inspect() {
    if !require_root("mac_addresses_show_in_inspect_and_network_inspect") {
        return;
    }
    let env = env(2);
    let subnet = format!("10.219.{}.0/26", env.third);
    env.ok(&["network", "create", "--subnet", &subnet, "pmac2"]);
    let fixed = env.ok(&[
        "run",
        "-d",
        "--name",
        "pmac2a",
        "--network",
        "pmac2",
        "--mac-address",
        "02:42:AC:11:00:99",
        "busybox",
        "sleep",
        "300",
    ]);
    let auto = env.ok(&[
        "run",
        "-d",
        "--name",
        "pmac2b",
        "--network",
        "pmac2",
        "busybox",
        "sleep",
        "300",
    ]);
    env.ok(&["run", "-d", "--name", "pmac2c", "busybox", "sleep", "300"]);

    // What the interfaces really have.
    let mac_of = |name: &str, ifname: &str| {
        env.ok(&[
            "exec",
            name,
            "cat",
            &format!("/sys/class/net/{ifname}/address"),
        ])
    };
    let auto_mac = mac_of("pmac2b", "eth0");
    assert_eq!(mac_of("pmac2a", "eth0"), "02:42:ac:11:00:99");
    assert_eq!(auto_mac.len(), 17, "{auto_mac}");

    let net: serde_json::Value =
        serde_json::from_str(&env.ok(&["network", "inspect", "pmac2"])).expect("json");
    let shown = |id: &str| net[0]["Containers"][id]["MacAddress"].clone();
    assert_eq!(shown(&fixed), "02:42:ac:11:00:99", "{net}");
    assert_eq!(shown(&auto), auto_mac.as_str(), "{net}");

    assert_eq!(
        inspect(
            &env,
            "pmac2a",
            "{{.NetworkSettings.Networks.pmac2.MacAddress}}"
        ),
        "02:42:ac:11:00:99"
    );
    assert_eq!(
        inspect(&env, "pmac2b", "{{.NetworkSettings.MacAddress}}"),
        auto_mac
    );
    assert_eq!(
        inspect(
            &env,
            "pmac2b",
            "{{.NetworkSettings.Networks.pmac2.MacAddress}}"
        ),
        auto_mac
    );
    // The default bridge, and a network connected while running (eth1).
    let bridge_mac = mac_of("pmac2c", "eth0");
    assert_eq!(
        inspect(&env, "pmac2c", "{{.NetworkSettings.MacAddress}}"),
        bridge_mac
    );
    assert_eq!(
        inspect(
            &env,
            "pmac2c",
            "{{.NetworkSettings.Networks.bridge.MacAddress}}"
        ),
        bridge_mac
    );
    env.ok(&["network", "connect", "pmac2", "pmac2c"]);
    assert_eq!(
        inspect(
            &env,
            "pmac2c",
            "{{.NetworkSettings.Networks.pmac2.MacAddress}}"
        ),
        mac_of("pmac2c", "eth1")
    );
    // No two interfaces share one.
    let mut all = vec![auto_mac.clone(), bridge_mac, mac_of("pmac2c", "eth1")];
    all.push("02:42:ac:11:00:99".into());
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 4, "{all:?}");

    // Stopped: the generated one is gone, a configured one stays (as Docker).
    env.ok(&["stop", "-t", "0", "pmac2a", "pmac2b"]);
    assert_eq!(
        inspect(
            &env,
            "pmac2a",
            "{{.NetworkSettings.Networks.pmac2.MacAddress}}"
        ),
        "02:42:ac:11:00:99"
    );
    assert_eq!(
        inspect(
            &env,
            "pmac2b",
            "{{.NetworkSettings.Networks.pmac2.MacAddress}}"
        ),
        ""
    );
    assert_eq!(
        inspect(&env, "pmac2b", "{{.NetworkSettings.MacAddress}}"),
        ""
    );
}

/// Lines of `/etc/hosts` in container `name` that name `peer`.
fn hosts_entries(env: &Env, name: &str, peer: &str) -> Vec<String> {
    env.ok(&["exec", name, "cat", "/etc/hosts"])
        .lines()
        .filter(|l| l.split_whitespace().skip(1).any(|n| n == peer))
        .map(str::to_string)
        .collect()
}

/// Docker frees a stopped container's endpoint: its name stops resolving and `network
/// inspect` drops it. berth does both, and keeps the address itself for the container's
/// next start (so a restart policy never hands it to another container in between).
#[test]
fn a_stopped_container_leaves_network_inspect_and_its_peers_hosts() {
    if !require_root("a_stopped_container_leaves_network_inspect_and_its_peers_hosts") {
        return;
    }
    let env = env(3);
    let subnet = format!("10.219.{}.64/26", env.third);
    env.ok(&["network", "create", "--subnet", &subnet, "pnet3"]);
    let a = env.ok(&[
        "run",
        "-d",
        "--name",
        "pnet3a",
        "--network",
        "pnet3",
        "busybox",
        "sleep",
        "300",
    ]);
    env.ok(&[
        "run",
        "-d",
        "--name",
        "pnet3b",
        "--network",
        "pnet3",
        "busybox",
        "sleep",
        "300",
    ]);
    let ip = inspect(
        &env,
        "pnet3a",
        "{{.NetworkSettings.Networks.pnet3.IPAddress}}",
    );
    assert_eq!(hosts_entries(&env, "pnet3b", "pnet3a").len(), 1);
    let listed = |id: &str| {
        let v: serde_json::Value =
            serde_json::from_str(&env.ok(&["network", "inspect", "pnet3"])).expect("json");
        v[0]["Containers"].get(id).is_some()
    };
    assert!(listed(&a));

    env.ok(&["stop", "-t", "0", "pnet3a"]);
    assert!(
        !listed(&a),
        "a stopped container is listed by network inspect"
    );
    assert_eq!(
        hosts_entries(&env, "pnet3b", "pnet3a"),
        Vec::<String>::new(),
        "a stopped peer still in /etc/hosts"
    );
    assert_eq!(
        inspect(
            &env,
            "pnet3a",
            "{{.NetworkSettings.Networks.pnet3.IPAddress}}"
        ),
        ""
    );

    env.ok(&["start", "pnet3a"]);
    assert!(listed(&a));
    assert_eq!(
        inspect(
            &env,
            "pnet3a",
            "{{.NetworkSettings.Networks.pnet3.IPAddress}}"
        ),
        ip
    );
    let back = hosts_entries(&env, "pnet3b", "pnet3a");
    assert_eq!(back.len(), 1, "{back:?}");
    assert!(back[0].starts_with(&format!("{ip}\t")), "{back:?}");
}

/// `wait A B C`: each status on its own line in the order given, status 0; an unknown one is
/// Docker's error line after the others' statuses, and status 1.
#[test]
fn wait_prints_each_status_in_order_and_names_an_unknown_one_last() {
    if !require_root("wait_prints_each_status_in_order_and_names_an_unknown_one_last") {
        return;
    }
    let env = env(4);
    env.ok(&[
        "run",
        "-d",
        "--name",
        "pwait4a",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "exit 3",
    ]);
    env.ok(&[
        "run",
        "-d",
        "--name",
        "pwait4b",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "sleep 1; exit 5",
    ]);
    env.ok(&[
        "create",
        "--name",
        "pwait4c",
        "--network",
        "none",
        "busybox",
        "true",
    ]);
    let out = env.berth(&["wait", "pwait4b", "pwait4a"]);
    assert_eq!(out.status.code(), Some(0), "{}", support::stderr(&out));
    assert_eq!(support::stdout(&out), "5\n3\n");
    assert_eq!(support::stderr(&out), "");

    // A created container is waited for until it has run (Docker's `wait` of a created one);
    // stdout and stderr share one pipe here, to see the error come last.
    let waiter = Command::new("sh")
        .args(["-c", "exec \"$@\" 2>&1", "sh", support::BIN, "--root"])
        .arg(env.root())
        .arg("--runroot")
        .arg(env.runroot())
        .args(["wait", "pwait4a", "pwait4-nosuch", "pwait4c"])
        .env_remove("BERTH_ROOT")
        .env_remove("BERTH_RUNROOT")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn wait");
    std::thread::sleep(std::time::Duration::from_millis(300));
    env.ok(&["start", "pwait4c"]);
    let out = waiter.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        support::stdout(&out),
        "3\n0\nError: No such container: pwait4-nosuch\n"
    );
}

/// `ps --filter` and `--format` as Docker: status with name, name as a regular expression,
/// ancestor (an image and those built on it), labels (ANDed), before/since, publish,
/// expose, volume, network; Networks, Mounts, LocalVolumes, Size and CreatedAt fields.
#[test]
fn ps_filters_and_format_fields_are_dockers() {
    if !require_root("ps_filters_and_format_fields_are_dockers") {
        return;
    }
    let env = env(5);
    let ctx = env.dir.path().join("ctx");
    std::fs::create_dir_all(&ctx).expect("ctx");
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nRUN echo child > /child\n",
    )
    .expect("Dockerfile");
    env.ok(&[
        "build",
        "-q",
        "-t",
        "pps5child:1",
        ctx.to_str().expect("utf-8"),
    ]);
    let data = env.dir.path().join("a-long-data-directory");
    std::fs::create_dir_all(&data).expect("data");
    let bind = format!("{}:/data", data.display());

    let out = env.berth(&[
        "run",
        "--name",
        "pps5a",
        "--label",
        "k=v",
        "--label",
        "z=1",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "exit 2",
    ]);
    assert_eq!(out.status.code(), Some(2));
    env.ok(&[
        "run",
        "-d",
        "--name",
        "pps5b",
        "--label",
        "k=w",
        "--network",
        "none",
        "busybox",
        "sleep",
        "300",
    ]);
    env.ok(&[
        "run",
        "-d",
        "--name",
        "pps5c",
        "--network",
        "none",
        "pps5child:1",
        "sleep",
        "300",
    ]);
    env.ok(&[
        "run",
        "-d",
        "--name",
        "pps5d",
        "-p",
        "127.0.0.1:0:80",
        "-v",
        &bind,
        "busybox",
        "sleep",
        "300",
    ]);
    let ps = |filters: &[&str]| {
        let mut args = vec!["ps", "--format", "{{.Names}}"];
        args.extend_from_slice(filters);
        env.ok(&args)
            .lines()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };

    let exited = env.ok(&[
        "ps",
        "--filter",
        "status=exited",
        "--filter",
        "name=pps5a",
        "--format",
        "{{.Names}} {{.Status}}",
    ]);
    assert!(exited.starts_with("pps5a Exited (2) "), "{exited}");
    assert_eq!(exited.lines().count(), 1, "{exited}");
    assert!(ps(&["--filter", "status=exited", "--filter", "name=pps5b"]).is_empty());
    // Names are regular expressions, matched with and without the leading slash.
    assert_eq!(
        ps(&["-a", "--filter", "name=^pps5[ab]$"]),
        ["pps5b", "pps5a"]
    );
    assert_eq!(ps(&["-a", "--filter", "name=^/pps5a$"]), ["pps5a"]);
    assert_eq!(
        ps(&["-a", "--filter", "name=pps5c", "--filter", "name=pps5d"]),
        ["pps5d", "pps5c"]
    );
    // An ancestor is the image or one built on it; an unknown image matches nothing.
    assert_eq!(
        ps(&["--filter", "ancestor=busybox"]),
        ["pps5d", "pps5c", "pps5b"]
    );
    assert_eq!(ps(&["-a", "--filter", "ancestor=pps5child:1"]), ["pps5c"]);
    assert!(ps(&["-a", "--filter", "ancestor=pps5nosuch:1"]).is_empty());
    // Labels: every one must hold.
    assert_eq!(ps(&["-a", "--filter", "label=k=v"]), ["pps5a"]);
    assert_eq!(ps(&["-a", "--filter", "label=k"]), ["pps5b", "pps5a"]);
    assert_eq!(
        ps(&["-a", "--filter", "label=k", "--filter", "label=z=1"]),
        ["pps5a"]
    );
    let labels = env.ok(&[
        "ps",
        "-a",
        "--filter",
        "label=k",
        "--format",
        "table {{.Names}}\\t{{.Label \"k\"}}\\t{{.Label \"z\"}}",
    ]);
    let rows: Vec<Vec<&str>> = labels
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows,
        [
            vec!["NAMES", "k", "z"],
            vec!["pps5b", "w"],
            vec!["pps5a", "v", "1"]
        ],
        "{labels}"
    );
    assert_eq!(ps(&["-a", "--filter", "before=pps5b"]), ["pps5a"]);
    assert_eq!(ps(&["--filter", "since=pps5b"]), ["pps5d", "pps5c"]);
    assert_eq!(ps(&["--filter", "publish=80"]), ["pps5d"]);
    assert_eq!(ps(&["--filter", "expose=79-81/tcp"]), ["pps5d"]);
    assert!(ps(&["--filter", "publish=80/udp"]).is_empty());
    assert_eq!(ps(&["--filter", "volume=/data"]), ["pps5d"]);
    assert_eq!(ps(&["--filter", "network=bridge"]), ["pps5d"]);
    assert_eq!(
        ps(&["-a", "--filter", "network=none"]),
        ["pps5c", "pps5b", "pps5a"]
    );

    for (filter, error) in [
        (
            "before=pps5nosuch",
            "Error: No such container: pps5nosuch\n",
        ),
        ("color=red", "Error: invalid filter 'color'\n"),
    ] {
        let out = env.berth(&["ps", "--filter", filter]);
        assert_eq!(out.status.code(), Some(1), "{filter}");
        assert_eq!(support::stderr(&out), error, "{filter}");
        assert_eq!(support::stdout(&out), "", "{filter}");
    }

    env.ok(&["exec", "pps5d", "sh", "-c", "echo hello > /hello"]);
    let fields = env.ok(&[
        "ps",
        "--filter",
        "name=pps5d",
        "--format",
        "{{.Networks}}|{{.Mounts}}|{{.LocalVolumes}}|{{.Size}}|{{.CreatedAt}}",
    ]);
    let f: Vec<&str> = fields.split('|').collect();
    assert_eq!(f.len(), 5, "{fields}");
    assert_eq!(f[0], "bridge");
    let full = data.display().to_string();
    let cut: String = full.chars().take(14).collect();
    assert_eq!(
        f[1],
        format!("{cut}…"),
        "Docker cuts mounts to 15 characters"
    );
    assert_eq!(f[2], "0");
    assert!(
        f[3].starts_with("6B (virtual ") && f[3].ends_with("MB)"),
        "{fields}"
    );
    assert!(f[4].ends_with(" +0000 UTC") && f[4].len() == 29, "{fields}");
    let untrunc = env.ok(&[
        "ps",
        "--no-trunc",
        "--filter",
        "name=pps5d",
        "--format",
        "{{.Mounts}}",
    ]);
    assert_eq!(untrunc, full);
    // -s adds Docker's SIZE column.
    let table = env.ok(&["ps", "-s", "--filter", "name=pps5d"]);
    let header = table.lines().next().unwrap_or_default();
    assert!(header.ends_with("NAMES   SIZE"), "{table}");
}
