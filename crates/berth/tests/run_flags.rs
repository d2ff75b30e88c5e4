//! The isolation and resource flags of `run`/`create`: what the process inside sees, Docker's
//! messages for bad values (status 125, no container left), and Docker's warnings for what
//! this host cannot honour.
#![allow(clippy::unwrap_used)] // a test fails loudly where it unwraps

mod containers_support;

use containers_support::{require_root, stderr, stdout, Env};

fn ns_of(path: &str) -> String {
    std::fs::read_link(path)
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// `run --rm --network none ARGS... busybox sh -c SCRIPT`: (status, stdout, stderr).
fn sh(env: &Env, flags: &[&str], script: &str) -> (Option<i32>, String, String) {
    let mut args = vec!["run", "--rm", "--network", "none"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["busybox", "sh", "-c", script]);
    let out = env.berth(&args);
    (out.status.code(), stdout(&out), stderr(&out))
}

#[test]
fn limits_devices_sysctls_and_oom_settings_reach_the_process() {
    if !require_root("limits_devices_sysctls_and_oom_settings_reach_the_process") {
        return;
    }
    let env = Env::new();
    let (code, out, err) = sh(
        &env,
        &["--ulimit", "nofile=1024:2048", "--ulimit", "nproc=300"],
        "ulimit -n; ulimit -Hn; ulimit -u",
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, "1024\n2048\n300\n");

    let (code, out, err) = sh(
        &env,
        &["--shm-size", "128m"],
        "df -k /dev/shm | tail -n 1 | awk '{print $2}'",
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, "131072\n");
    let (_, out, _) = sh(&env, &[], "df -k /dev/shm | tail -n 1 | awk '{print $2}'");
    assert_eq!(out, "65536\n", "Docker's default /dev/shm is 64 MiB");

    let (code, out, err) = sh(
        &env,
        &["--device", "/dev/null:/dev/xnull:rw"],
        "ls -l /dev/xnull | awk '{print $1, $5, $6}'; echo hi > /dev/xnull && echo wrote",
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, "crw-rw-rw- 1, 3\nwrote\n");

    let (code, out, err) = sh(
        &env,
        &["--sysctl", "net.ipv4.ip_unprivileged_port_start=42"],
        "cat /proc/sys/net/ipv4/ip_unprivileged_port_start",
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, "42\n");

    let (code, out, err) = sh(
        &env,
        &[
            "--oom-score-adj",
            "500",
            "--group-add",
            "27",
            "--group-add",
            "4242",
        ],
        "cat /proc/self/oom_score_adj; id -G",
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, "500\n0 27 4242\n");

    // This host has no block-I/O weight (cgroup v1 without CFQ/BFQ): Docker's warning, and
    // the container still runs.
    let weight = std::path::Path::new("/sys/fs/cgroup/blkio/blkio.weight").exists()
        || std::path::Path::new("/sys/fs/cgroup/blkio/blkio.bfq.weight").exists();
    let (code, _, err) = sh(&env, &["--blkio-weight", "300"], "true");
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        err.contains("WARNING: Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded."),
        !weight,
        "{err}"
    );

    env.ok(&[
        "create",
        "--name",
        "rf-inspect",
        "--ulimit",
        "nofile=10:20",
        "--cpuset-mems",
        "0",
        "--pid",
        "host",
        "--shm-size",
        "1g",
        "busybox",
        "true",
    ]);
    assert_eq!(
        env.inspect(
            "rf-inspect",
            "{{json .HostConfig.Ulimits}} {{.HostConfig.CpusetMems}} {{.HostConfig.PidMode}} {{.HostConfig.ShmSize}}"
        ),
        "[{\"Hard\":20,\"Name\":\"nofile\",\"Soft\":10}] 0 host 1073741824"
    );
    env.ok(&["rm", "rf-inspect"]);
}

#[test]
fn namespace_modes_share_what_they_name() {
    if !require_root("namespace_modes_share_what_they_name") {
        return;
    }
    let env = Env::new();
    let own = |ns: &str| ns_of(&format!("/proc/self/ns/{ns}"));
    let (code, out, err) = sh(
        &env,
        &[
            "--pid",
            "host",
            "--ipc",
            "host",
            "--uts",
            "host",
            "--cgroupns",
            "host",
        ],
        "for n in pid ipc uts cgroup; do readlink /proc/self/ns/$n; done; hostname",
    );
    assert_eq!(code, Some(0), "{err}");
    let host_name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(
        out,
        format!(
            "{}\n{}\n{}\n{}\n{}",
            own("pid"),
            own("ipc"),
            own("uts"),
            own("cgroup"),
            host_name
        )
    );
    // The host's name is untouched.
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap(),
        host_name
    );

    // --pid/--ipc container:NAME join a running container's namespaces.
    let id = env.ok(&[
        "run",
        "-d",
        "--name",
        "rf-target",
        "--network",
        "none",
        "busybox",
        "sleep",
        "60",
    ]);
    let pid = env.inspect("rf-target", "{{.State.Pid}}");
    let (code, out, err) = sh(
        &env,
        &[
            "--pid",
            "container:rf-target",
            "--ipc",
            &format!("container:{}", &id[..12]),
        ],
        "readlink /proc/self/ns/pid; readlink /proc/self/ns/ipc; ps -o comm | grep -c sleep",
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        out,
        format!(
            "{}\n{}\n1\n",
            ns_of(&format!("/proc/{pid}/ns/pid")),
            ns_of(&format!("/proc/{pid}/ns/ipc"))
        )
    );
    env.ok(&["stop", "-t", "0", "rf-target"]);
    let (code, _, err) = sh(&env, &["--pid", "container:rf-target"], "true");
    assert_eq!(code, Some(125), "{err}");
    assert!(err.contains("is not running"), "{err}");
    env.ok(&["rm", "rf-target"]);
    assert_eq!(
        env.all_ids(),
        Vec::<String>::new(),
        "a failed start leaves no container"
    );
}

#[test]
fn bad_values_are_one_line_status_125_and_leave_nothing() {
    if !require_root("bad_values_are_one_line_status_125_and_leave_nothing") {
        return;
    }
    let env = Env::new();
    let cases: &[(&[&str], &str)] = &[
        (
            &["--ulimit", "nofile=abc"],
            "invalid argument \"nofile=abc\" for \"--ulimit\" flag: strconv.ParseInt: parsing \"abc\": invalid syntax",
        ),
        (&["--ulimit", "bogus=1"], "invalid ulimit type: bogus"),
        (
            &["--device", "/dev/nonexistent"],
            "error gathering device information while adding custom device \"/dev/nonexistent\": no such file or directory",
        ),
        (&["--sysctl", "vm.swappiness=1"], "sysctl 'vm.swappiness=1' is not allowed"),
        (&["--pid", "bogus"], "--pid: invalid PID mode"),
        (&["--ipc", "bogus"], "--ipc: invalid IPC mode"),
        (&["--uts", "container:x"], "--uts: invalid UTS mode"),
        (&["--oom-score-adj", "-1001"], "range for oom score adj is [-1000, 1000]"),
        (&["--memory-swappiness", "101"], "valid memory swappiness range is 0-100"),
        (&["--blkio-weight", "5"], "Range of blkio weight is from 10 to 1000"),
        (&["--device-cgroup-rule", "z 1:2 r"], "invalid device cgroup format 'z 1:2 r'"),
        (&["--group-add", "nosuchgroup"], "nosuchgroup"),
        (&["--cpuset-mems", "7"], "Requested memory nodes are not available"),
    ];
    for (flags, want) in cases {
        let (code, out, err) = sh(&env, flags, "true");
        assert_eq!(code, Some(125), "{flags:?}: {err}");
        assert_eq!(out, "", "{flags:?}");
        assert_eq!(err.lines().count(), 1, "{flags:?}: {err}");
        assert!(err.contains(want), "{flags:?}: want {want:?}, got {err}");
    }
    assert_eq!(env.all_ids(), Vec::<String>::new());
    assert_eq!(env.mounts_here(), Vec::<String>::new());
}

#[test]
fn log_opts_expose_platform_label_file_and_cidfile() {
    if !require_root("log_opts_expose_platform_label_file_and_cidfile") {
        return;
    }
    let env = Env::new();
    let dir = env.dir.path();
    std::fs::write(dir.join("labels"), "# team\nteam=infra\n\ntier=web\n").unwrap();
    let cid = dir.join("cid");
    let cid_s = cid.to_str().unwrap();
    let labels = dir.join("labels");
    env.ok(&[
        "create",
        "--name",
        "rf-misc",
        "--log-opt",
        "max-size=1k",
        "--log-opt",
        "max-file=2",
        "--expose",
        "7000-7001/udp",
        "--expose",
        "80",
        "--label-file",
        labels.to_str().unwrap(),
        "-l",
        "tier=db",
        "--cidfile",
        cid_s,
        "--platform",
        "linux/amd64",
        "busybox",
        "sh",
        "-c",
        "i=0; while [ $i -lt 200 ]; do echo line-$i-xxxxxxxxxxxxxxxxxxxxxxxx; i=$((i+1)); done",
    ]);
    let id = env.inspect("rf-misc", "{{.Id}}");
    assert_eq!(std::fs::read_to_string(&cid).unwrap(), id);
    assert_eq!(
        env.inspect(
            "rf-misc",
            "{{json .HostConfig.LogConfig}} {{json .Config.ExposedPorts}} {{json .Config.Labels}}"
        ),
        "{\"Config\":{\"max-file\":\"2\",\"max-size\":\"1k\"},\"Type\":\"json-file\"} \
         {\"7000/udp\":{},\"7001/udp\":{},\"80/tcp\":{}} {\"team\":\"infra\",\"tier\":\"db\"}"
    );
    // The log is bounded: two files of about 1 KiB.
    env.ok(&["start", "-a", "rf-misc"]);
    let logs = env.ok(&["logs", "rf-misc"]);
    assert!(
        logs.ends_with("line-199-xxxxxxxxxxxxxxxxxxxxxxxx"),
        "{logs}"
    );
    assert!(
        logs.lines().count() < 100,
        "{} lines kept",
        logs.lines().count()
    );

    // A second create with the same --cidfile: Docker's refusal, no container, file kept.
    let out = env.berth(&["create", "--cidfile", cid_s, "busybox", "true"]);
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        format!("Error: Container ID file found, make sure the other container isn't running or delete {cid_s}\n")
    );
    assert_eq!(std::fs::read_to_string(&cid).unwrap(), id);
    env.ok(&["rm", "rf-misc"]);
    std::fs::remove_file(&cid).unwrap();

    // A create that fails removes the --cidfile it claimed.
    let out = env.berth(&[
        "create",
        "--cidfile",
        cid_s,
        "--log-opt",
        "max-size=lots",
        "busybox",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert!(!cid.exists());
    let cases: &[(&[&str], &str)] = &[
        (&["--log-opt", "compress=true"], "unknown log opt 'compress' for json-file log driver"),
        (&["--log-driver", "syslog"], "logger: no log driver named 'syslog' is registered"),
        (&["--expose", "99999"], "invalid range format for --expose: 99999"),
        (
            &["--platform", "linux/arm64"],
            "image with reference busybox was found but its platform (linux/amd64) does not match the specified platform (linux/arm64)",
        ),
        (&["--label-file", "/nonexistent-labels"], "open /nonexistent-labels: no such file or directory"),
    ];
    for (flags, want) in cases {
        let mut args = vec!["create"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["busybox", "true"]);
        let out = env.berth(&args);
        assert_eq!(out.status.code(), Some(125), "{flags:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(want), "{flags:?}: {}", stderr(&out));
    }
    assert_eq!(env.all_ids(), Vec::<String>::new());
}
